using System.Diagnostics;
using AuthFailoverProxy.Failover;
using AuthFailoverProxy.KeyPool;
using Yarp.ReverseProxy.Forwarder;

namespace AuthFailoverProxy.Telemetry;

/// <summary>
/// What the request path tells about itself: the metrics of each request and each upstream attempt, one activity per
/// attempt when someone traces, and a Debug summary line per request when someone asked for it. Every call is cheap
/// when nothing listens: a branch per instrument, a null activity, one level check.
/// </summary>
/// <remarks>
/// The summary line has its own category, <c>AuthFailoverProxy.Requests</c>, so it can be turned on alone:
/// <c>Serilog:MinimumLevel:Override:AuthFailoverProxy.Requests=Debug</c>.
/// </remarks>
internal sealed partial class RequestTelemetry(ProxyMetrics metrics, TimeProvider time, ILoggerFactory loggerFactory, ModelLabels models, Usage.UsageLedger ledger, Usage.ClientBudgets budgets)
{
    /// <summary>The logger category of the per-request summary line.</summary>
    public const string RequestLogCategory = "AuthFailoverProxy.Requests";

    /// <summary>The name of the activity of one upstream attempt.</summary>
    public const string AttemptActivityName = "afp.upstream_attempt";

    /// <summary>The <c>gen_ai.operation.name</c> of tokens read from an answer to a path that is no known GenAI operation.</summary>
    private const string OtherOperation = "other";

    private readonly ILogger _requestLog = loggerFactory.CreateLogger(RequestLogCategory);
    private Action<UsageReader>? _usagePassed;

    /// <summary>
    /// Returns a reader for the usage of a delivered answer of <paramref name="mediaType"/> (null: nothing to read), with
    /// the labels it will be counted under taken now (the attempt is reused by the next try of the walk). Once the answer
    /// has passed, <see cref="UsagePassed"/> records its tokens, the models bounded by <see cref="ModelLabels"/>, and hands
    /// its model and usage to the attempt, whose end (<see cref="AttemptEnded"/>) labels its duration and span with them.
    /// </summary>
    public UsageReader? OpenUsage(FailoverAttempt attempt, string? mediaType)
    {
        if (UsageReader.For(mediaType) is not { } reader)
        {
            return null;
        }

        var pool = attempt.Pool;
        reader.Attempt = attempt;
        reader.Labels = models;
        reader.Where = new UsageWhere(pool.Name, attempt.Key.Name, attempt.Client, attempt.Scope.Model, ProxyTelemetry.ProviderName(pool.Kind), attempt.Operation ?? OtherOperation);
        return reader;
    }

    /// <summary>Gets what is called once an answer opened by <see cref="OpenUsage"/> has passed: one delegate for every answer.</summary>
    public Action<UsageReader> UsagePassed => _usagePassed ??= Passed;

    private void Passed(UsageReader reader)
    {
        var where = reader.Where;
        if (reader.Seen)
        {
            // The provider answered for these models: they are real, and may become labels.
            var responseModel = reader.ResponseLabel ??= models.LearnAndLabel(reader.Model);
            // Mostly the model asked for is the one that answered, and has the same label.
            reader.RequestLabel = string.Equals(where.RequestedModel, reader.Model, StringComparison.Ordinal) ? responseModel : models.LearnAndLabel(where.RequestedModel);
            metrics.TokensUsed(new TokenUsageTags(where.Provider, where.Operation, reader.RequestLabel, responseModel, where.Pool, where.Key, where.Client), reader.Usage);
            ledger.Record(where.Pool, where.Key, where.Client, responseModel, reader.Usage);
            budgets.Spent(where.Client, reader.Usage.Input + reader.Usage.Output);
        }

        reader.Attempt?.AnswerRead(reader);
    }

    /// <summary>
    /// Returns the GenAI operation a path stands for (<c>chat</c> for Messages, chat completions and the Responses API,
    /// <c>text_completion</c>, <c>embeddings</c>), or null for a call that asks no model for anything (model lists,
    /// token counts, files, batches, <c>HEAD /</c>): those are no GenAI operation.
    /// </summary>
    internal static string? OperationOf(string target)
    {
        var path = target.AsSpan(0, target.IndexOf('?') is var q and >= 0 ? q : target.Length).TrimEnd('/');
        return path.EndsWith("/chat/completions") || path.EndsWith("/messages") || path.EndsWith("/responses") ? "chat"
            : path.EndsWith("/completions") ? "text_completion"
            : path.EndsWith("/embeddings") ? "embeddings"
            : null;
    }

    /// <summary>Starts the activity of an upstream attempt, when someone listens; tags never carry a secret, a request id or a path.</summary>
    public static Activity? AttemptStarted(FailoverAttempt attempt)
    {
        var operation = attempt.Operation;
        // Read before the first answer is delivered, which lets the request's body go: the attempt's end labels with it.
        var requested = operation is null ? null : attempt.Scope.Model;
        var activity = ProxyTelemetry.Source.StartActivity(AttemptActivityName, ActivityKind.Internal);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("afp.pool", attempt.Pool.Name);
            activity.SetTag("afp.key", attempt.Key.Name);
            activity.SetTag("afp.client", attempt.Client);
            activity.SetTag("afp.attempt", attempt.Attempts);
            if (attempt.SafeModeFrom is { } from)
            {
                activity.SetTag("afp.safe_mode_for", from.Name);
            }

            if (operation is not null)
            {
                activity.SetTag("gen_ai.provider.name", ProxyTelemetry.ProviderName(attempt.Pool.Kind));
                activity.SetTag("gen_ai.operation.name", operation);
                // A span is no series: the model as the agent named it (at most 128 characters, RequestScope).
                activity.SetTag("gen_ai.request.model", requested);
            }
        }

        return activity;
    }

    /// <summary>
    /// Records an upstream attempt and ends its activity, once its verdict is known and a delivered answer has passed to
    /// the agent: YARP returns from forwarding only when it has copied the whole answer, so this is the end of a stream,
    /// not its response headers.
    /// </summary>
    public void AttemptEnded(FailoverAttempt attempt, Activity? activity)
    {
        var end = time.GetTimestamp();
        var duration = time.GetElapsedTime(attempt.TryStartedAt, end);
        TimeSpan? firstByte = attempt.RespondedAt == 0 ? null : time.GetElapsedTime(attempt.TryStartedAt, attempt.RespondedAt);
        metrics.UpstreamCalled(attempt.Pool.Name, attempt.Key.Name, attempt.UpstreamStatus, duration, firstByte);
        var operation = attempt.Operation;
        var errorType = ErrorTypeOf(attempt);
        var answer = attempt.Answer;
        if (operation is not null)
        {
            TimeSpan? firstChunk = attempt.FirstChunkAt == 0 ? null : time.GetElapsedTime(attempt.TryStartedAt, attempt.FirstChunkAt);
            // The labels an answer whose usage was counted got then; worked out here otherwise.
            var responseModel = answer?.ResponseLabel ?? (answer?.Model is { } model ? models.Label(model) : null);
            var requestModel = answer?.RequestLabel ?? models.Label(attempt.Scope.Model);
            var where = new TokenUsageTags(ProxyTelemetry.ProviderName(attempt.Pool.Kind), operation, requestModel, responseModel, attempt.Pool.Name, attempt.Key.Name, attempt.Client);
            metrics.OperationEnded(in where, errorType, duration, firstChunk);
        }

        if (activity is null)
        {
            return;
        }

        if (activity.IsAllDataRequested)
        {
            if (attempt.UpstreamStatus != 0)
            {
                activity.SetTag("http.response.status_code", attempt.UpstreamStatus);
            }

            activity.SetTag("afp.outcome", Outcome(attempt.Verdict));
            if (attempt.Failure is { } failure)
            {
                activity.SetTag("afp.failure", failure.Label);
            }

            if (errorType is not null)
            {
                activity.SetTag("error.type", errorType);
            }

            if (operation is not null && answer is not null)
            {
                if (answer.Model is { Length: <= KeyPool.ModelClasses.MaxModelLength } model)
                {
                    activity.SetTag("gen_ai.response.model", model);
                }

                if (answer.Seen)
                {
                    var usage = answer.Usage;
                    activity.SetTag("gen_ai.usage.input_tokens", usage.Input);
                    activity.SetTag("gen_ai.usage.output_tokens", usage.Output);
                }
            }

            if (attempt.Verdict is not (AttemptVerdict.Delivered or AttemptVerdict.ClientGone))
            {
                activity.SetStatus(ActivityStatusCode.Error);
            }
        }

        activity.Dispose();
    }

    /// <summary>
    /// Returns why an attempt failed, in few values (<see cref="ErrorTypes"/>): the agent gone, a transport failure, or
    /// the upstream's error status; null for an answer below 400 that passed whole.
    /// </summary>
    internal static string? ErrorTypeOf(FailoverAttempt attempt)
    {
        if (attempt.Verdict == AttemptVerdict.ClientGone)
        {
            return ErrorTypes.ClientGone;
        }

        switch (attempt.TransportError)
        {
            case ForwarderError.None:
                var status = attempt.StreamErrorStatus is > 0 and var streamError ? streamError : attempt.UpstreamStatus;
                return status >= 400 ? ErrorTypes.Status(status) : null;
            case ForwarderError.RequestTimedOut or ForwarderError.ResponseBodyCanceled:
                // Without the agent gone, a cancelled copy is the activity timeout.
                return ErrorTypes.Timeout;
            case ForwarderError.ResponseBodyDestination:
                return ErrorTypes.ResponseCut;
            case ForwarderError.ResponseBodyClient or ForwarderError.RequestBodyClient or ForwarderError.RequestCanceled or ForwarderError.RequestBodyCanceled:
                return ErrorTypes.ClientGone;
            case ForwarderError.RequestCreation:
                return ErrorTypes.RequestInvalid;
            default:
                return ErrorTypes.Connection;
        }
    }

    /// <summary>
    /// Called before the walk puts <paramref name="next"/> to use: when the request just gave up on a key (rejected, rate
    /// limited, or its pool's circuit open), that is one failover, from that key to this one.
    /// </summary>
    public void KeyChosen(FailoverAttempt attempt, PoolKey next)
    {
        // The verdict of the last try is still the request's until the next try begins.
        if (FailoverReason(attempt.Verdict) is { } reason)
        {
            metrics.FailedOver(attempt.Key.Pool, attempt.Key.Name, next.Name, reason);
        }
    }

    /// <summary>Called before an unwell upstream is called again on the same key.</summary>
    public void Retrying(FailoverAttempt attempt)
    {
        var reason = attempt.TransportError switch
        {
            ForwarderError.None => RetryReasons.Status,
            ForwarderError.RequestTimedOut => RetryReasons.Timeout,
            _ => RetryReasons.Connection,
        };
        metrics.Retried(attempt.Pool.Name, attempt.Key.Name, reason);
    }

    /// <summary>Records a request the walk answered, and writes its summary line when Debug is on for it.</summary>
    public void RequestEnded(HttpContext context, FailoverAttempt attempt)
    {
        if (attempt.Verdict is AttemptVerdict.KeyDead or AttemptVerdict.KeyCooling or AttemptVerdict.KeyRefused or AttemptVerdict.Hung)
        {
            // The request gave up on its last key and found no next one.
            metrics.FailedOver(attempt.Key.Pool, attempt.Key.Name, ProxyTelemetry.NoKey, FailoverReason(attempt.Verdict)!);
        }

        // A delivered answer counts under the pool and key that gave it (in safe mode, the fallback's); the proxy's own
        // answers count under the request's pool, key "none".
        var served = attempt.Attempts > 0 && attempt.Verdict == AttemptVerdict.Delivered;
        var pool = served ? attempt.Pool : attempt.SafeModeFrom ?? attempt.Pool;
        var key = served ? attempt.Key.Name : ProxyTelemetry.NoKey;
        Answered(context, pool, key, attempt.Attempts, attempt.FirstTryStartedAt);
    }

    /// <summary>Records a request answered before any upstream call (no client token, an unreadable or oversized body).</summary>
    public void RequestRefused(HttpContext context, Pool pool) => Answered(context, pool, ProxyTelemetry.NoKey, 0, startedAt: 0);

    /// <summary>Records a request refused because its client had spent its budget.</summary>
    public void BudgetRefused(HttpContext context, Pool pool, Usage.BudgetRefusal refusal)
    {
        metrics.BudgetRefused(refusal.Client, refusal.Limit switch
        {
            Usage.BudgetLimit.RequestsPerMinute => "requests_per_minute",
            Usage.BudgetLimit.TokensPerMinute => "tokens_per_minute",
            _ => "tokens_per_day",
        });
        RequestRefused(context, pool);
    }

    // startedAt: when the first upstream call was sent (0: none was), for the summary line's duration.
    private void Answered(HttpContext context, Pool pool, string key, int attempts, long startedAt)
    {
        var status = context.Response.StatusCode;
        var statusClass = context.RequestAborted.IsCancellationRequested ? "cancelled" : ProxyTelemetry.StatusClass(status);
        if (_requestLog.IsEnabled(LogLevel.Debug))
        {
            var elapsed = startedAt == 0 ? TimeSpan.Zero : time.GetElapsedTime(startedAt);
            LogRequest(_requestLog, pool.Name, context.Request.Method, status, key, attempts, elapsed.TotalMilliseconds);
        }

        metrics.RequestAnswered(pool.Name, key, statusClass);
    }

    private static string? FailoverReason(AttemptVerdict verdict) => verdict switch
    {
        AttemptVerdict.KeyDead => FailoverReasons.Dead,
        AttemptVerdict.KeyCooling => FailoverReasons.Cooling,
        AttemptVerdict.KeyRefused => FailoverReasons.Refused,
        AttemptVerdict.Hung => FailoverReasons.Hung,
        AttemptVerdict.CircuitOpen => FailoverReasons.CircuitOpen,
        _ => null,
    };

    private static string Outcome(AttemptVerdict verdict) => verdict switch
    {
        AttemptVerdict.Delivered => "delivered",
        AttemptVerdict.KeyDead => "key_dead",
        AttemptVerdict.KeyCooling => "key_cooling",
        AttemptVerdict.KeyRefused => "key_refused",
        AttemptVerdict.Hung => "hung",
        AttemptVerdict.RetryUpstream => "retry_upstream",
        AttemptVerdict.UpstreamFailed => "upstream_failed",
        AttemptVerdict.ClientGone => "client_gone",
        AttemptVerdict.CircuitOpen => "circuit_open",
        _ => "unknown",
    };

    [LoggerMessage(EventId = 9001, Level = LogLevel.Debug,
        Message = "Pool '{Pool:l}': {Method:l} answered {Status} by key '{KeyName:l}' after {Attempts} upstream calls over {ElapsedMs:0.0} ms.")]
    private static partial void LogRequest(ILogger logger, string pool, string method, int status, string keyName, int attempts, double elapsedMs);
}
