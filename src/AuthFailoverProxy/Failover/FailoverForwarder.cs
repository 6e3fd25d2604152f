using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.Proxying;
using AuthFailoverProxy.State;
using AuthFailoverProxy.Telemetry;
using Microsoft.Extensions.Options;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Yarp.ReverseProxy.Forwarder;

namespace AuthFailoverProxy.Failover;

/// <summary>
/// Forwards an agent's request through a pool so the agent never sees a key fail: the body is kept, the best key is
/// injected, and a rejected key is marked and the same bytes replayed on the next one, until a key answers, every
/// usable key was tried once, or the deadline passes. An unwell upstream is retried on the same key with backoff
/// (Polly), without blaming the key.
/// </summary>
internal sealed partial class FailoverForwarder
{
    private static readonly ResiliencePropertyKey<FailoverAttempt> AttemptKey = new("afp.attempt");

    /// <summary>How soon an agent refused for a full spill should try again: long enough for a few bodies to go.</summary>
    private static readonly TimeSpan SpillFullRetryAfter = TimeSpan.FromSeconds(5);

    private readonly IHttpForwarder _forwarder;
    private readonly KeyStateBoard _board;
    private readonly ClientAuthenticator _authenticator;
    private readonly PoolExhaustionLog _exhaustionLog;
    private readonly SafeMode _safeMode;
    private readonly FailoverOptions _options;
    private readonly RequestBodyOptions _bodyOptions;
    private readonly BodySpill _bodySpill;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly RequestTelemetry _telemetry;
    private readonly ResiliencePipeline<AttemptVerdict> _upstreamRetry;
    private readonly Health.KeySuspicions _suspicions;
    private readonly TimeSpan _checkBound;
    private readonly Action<PoolKey> _trialPassed;
    private readonly KeyScopeBoard _scopes;
    private readonly PoolRegistry _registry;
    private readonly Health.UpstreamIncidents _incidents;
    private readonly RequestRejections _rejections;
    private readonly TimeSpan _incidentRecheck;
    private readonly Usage.ClientBudgets _budgets;

    /// <summary>What reads a delivered answer's usage: <see cref="_telemetry"/>, or null with <c>Usage:Enabled</c> false.</summary>
    private readonly RequestTelemetry? _usage;

    public FailoverForwarder(
        IHttpForwarder forwarder,
        KeyStateBoard board,
        ClientAuthenticator authenticator,
        PoolExhaustionLog exhaustionLog,
        SafeMode safeMode,
        UpstreamCircuits circuits,
        IOptions<FailoverOptions> options,
        BodySpill bodySpill,
        TimeProvider time,
        ILogger<FailoverForwarder> logger,
        RequestTelemetry telemetry,
        Health.KeySuspicions suspicions,
        IOptions<Health.ProbeOptions> probes,
        KeyScopeBoard scopes,
        PoolRegistry registry,
        Health.UpstreamIncidents incidents,
        RequestRejections rejections,
        Usage.ClientBudgets budgets,
        IOptions<Usage.UsageOptions> usage)
    {
        _budgets = budgets;
        _rejections = rejections;
        _incidents = incidents;
        _incidentRecheck = probes.Value.IncidentRecheckDelay;
        _scopes = scopes;
        _registry = registry;
        _suspicions = suspicions;
        _checkBound = probes.Value.Timeout;
        _forwarder = forwarder;
        _board = board;
        _authenticator = authenticator;
        _exhaustionLog = exhaustionLog;
        _safeMode = safeMode;
        // Built with the forwarder so that every pool has its breaker before the first request (see Pool.Circuit).
        _ = circuits;
        _options = options.Value;
        _bodySpill = bodySpill;
        _bodyOptions = bodySpill.Options;
        _time = time;
        _logger = logger;
        _telemetry = telemetry;
        _usage = usage.Value.Enabled ? telemetry : null;
        _upstreamRetry = BuildUpstreamRetry(_options, time);
        _trialPassed = OnTrialPassed;
    }

    private async Task RespondBudgetSpentAsync(HttpContext context, Pool pool, Usage.BudgetRefusal spent)
    {
        var (what, kind) = spent.Limit switch
        {
            Usage.BudgetLimit.RequestsPerMinute => ("requests per minute", ProxyErrorKind.RequestBudgetSpent),
            Usage.BudgetLimit.TokensPerMinute => ("tokens per minute", ProxyErrorKind.TokenBudgetSpent),
            _ => ("tokens per day (UTC)", ProxyErrorKind.TokenBudgetSpent),
        };
        var wait = spent.ResetsAt - _time.GetUtcNow();
        await ProviderErrorResponse.WriteAsync(context, pool.Kind, kind, string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"client '{spent.Client}' has spent its budget of {spent.Allowed:N0} {what}, set by this proxy's operator. It resets at {spent.ResetsAt:yyyy-MM-dd HH:mm:ss} UTC. Nothing was sent upstream."),
            retryAfter: wait);
        _telemetry.BudgetRefused(context, pool, spent);
    }

    /// <summary>Forwards the request to <paramref name="pool"/>; <paramref name="target"/> is the path and query to send after the upstream's base path.</summary>
    public async Task ForwardAsync(HttpContext context, Pool pool, string target)
    {
        if (_authenticator.Authenticate(context.Request) is not { } client)
        {
            await ProviderErrorResponse.WriteAsync(context, pool.Kind, ProxyErrorKind.ClientUnauthorized,
                "missing or invalid client token. Send the token this proxy issued you as x-api-key, as Authorization: Bearer, or (Azure OpenAI SDKs) as api-key.");
            _telemetry.RequestRefused(context, pool);
            return;
        }

        if (_budgets.Admit(client) is { } spent)
        {
            // Before the body is read: a runaway agent costs neither an upstream call nor the proxy's memory.
            await RespondBudgetSpentAsync(context, pool, spent);
            return;
        }

        BodyRead read;
        try
        {
            read = await ReplayableBody.ReadAsync(context.Request, _bodySpill, context.RequestAborted);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or BadHttpRequestException && context.RequestAborted.IsCancellationRequested)
        {
            return;
        }
        catch (BadHttpRequestException ex)
        {
            // A body shorter than its Content-Length, or one trickling in below the server's minimum data rate.
            await ProviderErrorResponse.WriteAsync(context, pool.Kind, ProxyErrorKind.BadRequest,
                $"the request body could not be read ({ex.Message}). Nothing was sent upstream.", statusCode: ex.StatusCode);
            _telemetry.RequestRefused(context, pool);
            return;
        }

        if (read.Body is not { } body)
        {
            await (read.Refusal == BodyRefusal.SpillFull
                ? ProviderErrorResponse.WriteAsync(context, pool.Kind, ProxyErrorKind.Busy,
                    $"the proxy's room for large request bodies is full ({_bodyOptions.MaxSpillBytes} bytes on disk at once, RequestBody:MaxSpillBytes); nothing was sent upstream. Try again shortly.",
                    retryAfter: SpillFullRetryAfter)
                : ProviderErrorResponse.WriteAsync(context, pool.Kind, ProxyErrorKind.RequestTooLarge,
                    $"the request body is larger than the {_bodyOptions.MaxBytes} bytes this proxy accepts (RequestBody:MaxBytes)."));
            _telemetry.RequestRefused(context, pool);
            return;
        }

        await using (body)
        {
            var asksForStream = RequestFacts.AsksForStream(body.InMemory);
            var (sent, streamUsage) = (body, StreamUsage.Untouched);
            if ((asksForStream || body.IsSpilled) && StreamUsageRequest.Applies(pool, target))
            {
                try
                {
                    // Asked once, before the first try: every replay sends the same bytes.
                    (sent, streamUsage) = await StreamUsageRequest.AskAsync(body, asksForStream, context.RequestAborted);
                }
                catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
                {
                    return;
                }
            }

            var attempt = new FailoverAttempt(pool, sent, target, _time.GetUtcNow() + _options.Deadline, _options, _time, UpstreamHeaders.FindNotForwarded(context.Request.Headers))
            {
                AsksForStream = asksForStream,
                StreamUsage = streamUsage,
                TrialPassed = _trialPassed,
                RequestHeaders = context.Request.Headers,
                Client = client,
                Usage = _usage,
            };
            PoolKey? trial = null;
            TaskCompletionSource? walked = null;
            try
            {
                while (true)
                {
                    pool = attempt.Pool;
                    var key = pool.SelectKey(attempt.Tried, _time, attempt);
                    var deadlinePassed = key is not null && attempt.Attempts > 0 && _time.GetUtcNow() >= attempt.Deadline;
                    if (key is null && attempt.Hung)
                    {
                        // Every key left was given up on because the upstream did not answer: that is the upstream, not the keys.
                        await RespondUpstreamFailedAsync(context, attempt);
                        return;
                    }

                    if (key is null && await TryEnterSafeModeAsync(context, attempt))
                    {
                        continue;
                    }

                    if (key is null || deadlinePassed)
                    {
                        // Before giving up, let the checks of keys this request just found suspect finish (within the
                        // deadline): the answer then says what is known, not what is being checked. The walk is over:
                        // the checks, which wait for it to see every key it met, may tell.
                        walked?.TrySetResult();
                        var left = attempt.Deadline - _time.GetUtcNow();
                        await _suspicions.WhenCheckedAsync(attempt.SafeModeFrom ?? pool, left < _checkBound ? left : _checkBound);
                        await RespondNoUsableKeyAsync(context, attempt, deadlinePassed);
                        return;
                    }

                    _telemetry.KeyChosen(attempt, key);
                    attempt.UseKey(key);
                    // A dead key is only ever chosen for its trial (see KeyHealer): this request carries it.
                    trial = key.TrialTaken ? key : null;
                    var verdict = await SendOnceAsync(context, attempt);
                    if (verdict == AttemptVerdict.RetryUpstream)
                    {
                        verdict = await RetryUnwellUpstreamAsync(context, attempt);
                    }

                    if (attempt.Rejection is { } rejection)
                    {
                        // About the request, not the key: counted, never held against it.
                        _rejections.Count(pool, key, attempt.Scope.Model, rejection, attempt.RejectionReason);
                    }

                    if (trial is not null)
                    {
                        trial = null;
                        if (key.EndTrial())
                        {
                            // Still under way: the trial was not passed when the answer was delivered.
                            EndFailedTrial(key, verdict);
                        }
                    }

                    switch (verdict)
                    {
                        case AttemptVerdict.KeyDead:
                            // Skipped for this request at once; blamed only once a check that no request shaped confirms it.
                            _suspicions.Suspect(pool, key, attempt.Failure!, (walked ??= new(TaskCreationOptions.RunContinuationsAsynchronously)).Task);
                            attempt.GiveUpOn(key);
                            LogFailingOver(_logger, pool.Name, key.Name, attempt.Failure!.Label);
                            break;
                        case AttemptVerdict.KeyCooling:
                            Cool(pool, key, attempt);
                            attempt.GiveUpOn(key);
                            LogFailingOver(_logger, pool.Name, key.Name, attempt.Failure!.Label);
                            break;
                        case AttemptVerdict.KeyRefused:
                            // Already given up on for this request. A subscription token refused to this kind of client
                            // is out for such requests; a 403 is held against no key unless another key serves it.
                            if (attempt.Failure!.Status == 400 && !attempt.Scope.FromClaudeCode)
                            {
                                _scopes.Report(key, new KeyScope(KeyScopeKind.OtherClients, string.Empty, _time.GetUtcNow() + _options.ScopedRefusalTime, attempt.Failure));
                            }

                            LogFailingOver(_logger, pool.Name, key.Name, attempt.Failure!.Label);
                            break;
                        case AttemptVerdict.Hung:
                            // No retry on the same key: within the deadline, the next key gets its chance.
                            attempt.GiveUpOn(key);
                            LogFailingOver(_logger, pool.Name, key.Name, "no response headers in time");
                            break;
                        case AttemptVerdict.CircuitOpen:
                            if (await TryEnterSafeModeAsync(context, attempt))
                            {
                                break;
                            }

                            await RespondCircuitOpenAsync(context, attempt);
                            return;
                        case AttemptVerdict.UpstreamFailed or AttemptVerdict.RetryUpstream:
                            await RespondUpstreamFailedAsync(context, attempt);
                            return;
                        case AttemptVerdict.Unforwardable:
                            ResetIfNotStarted(context);
                            await ProviderErrorResponse.WriteAsync(context, pool.Kind, ProxyErrorKind.BadRequest,
                                $"the request could not be sent upstream as it is ({attempt.TransportException?.GetType().Name ?? "invalid request"}): a header or the target is not valid for the upstream. Nothing was sent, and no key is blamed.");
                            return;
                        default:
                            if (attempt.Refusals is { } refusals && context.Response.StatusCode < 400)
                            {
                                ScopeRefusals(attempt, refusals);
                            }

                            return;
                    }
                }
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                // The client went away; its upstream call was cancelled with it.
            }
            finally
            {
                // A trial whose request went away ends without a verdict; the key's next check opens another.
                trial?.EndTrial();
                walked?.TrySetResult();
                _telemetry.RequestEnded(context, attempt);
            }
        }
    }

    /// <summary>
    /// Rests a rate-limited key, and every key of its organization with it (they share its limits), for the request's
    /// model class only when the request names a model (Opus, Sonnet and Haiku are limited apart), whole otherwise. The
    /// walk then goes on to keys of other organizations.
    /// </summary>
    private void Cool(Pool pool, PoolKey key, FailoverAttempt attempt)
    {
        var (failure, until) = (attempt.Failure!, attempt.CoolUntil);
        var organization = key.Organization;
        var modelClass = attempt.Scope.ModelClass;
        if (modelClass is not null)
        {
            _scopes.ReportForOrganization(SameProvider(pool), key, organization, new KeyScope(KeyScopeKind.ModelClass, modelClass, until, failure) { Organization = organization });
            return;
        }

        _board.ReportCooling(key, failure, until);
        if (organization is null)
        {
            return;
        }

        foreach (var other in SameProvider(pool).SelectMany(p => p.Keys))
        {
            if (other != key && string.Equals(other.Organization, organization, StringComparison.Ordinal))
            {
                _board.ReportCooling(other, failure, until);
            }
        }
    }

    /// <summary>The pools whose keys may share an organization with <paramref name="pool"/>'s: those of the same provider.</summary>
    private IEnumerable<Pool> SameProvider(Pool pool) => _registry.Pools.Where(p => p.Kind == pool.Kind);

    /// <summary>
    /// Another key served a request that keys refused with a 403: the refusals were about those keys' organization (a
    /// model it lacks), not the request. Each is out for that model id only, for a while, and serves everything else.
    /// </summary>
    private void ScopeRefusals(FailoverAttempt attempt, List<(PoolKey Key, KeyFailure Failure)> refusals)
    {
        if (attempt.Scope.Model is not { } model)
        {
            return;
        }

        var until = _time.GetUtcNow() + _options.ScopedRefusalTime;
        foreach (var (key, failure) in refusals)
        {
            _scopes.Report(key, new KeyScope(KeyScopeKind.Model, model, until, failure) { Organization = key.Organization });
        }
    }

    /// <summary>A trial passed: its request was answered below 400. A dead key returns to service; a suspect is cleared.</summary>
    private void OnTrialPassed(PoolKey key)
    {
        if (!key.EndTrial())
        {
            return;
        }

        if (key.Health.State == KeyState.Dead)
        {
            _board.Heal(key, "a real request given to it as a trial succeeded");
        }
        else if (key.Suspicion is { } suspicion)
        {
            LogTrialCleared(_logger, key.Pool, key.Name, key.Fingerprint, suspicion.Failure.Label);
        }
    }

    /// <summary>
    /// A trial that was not passed: a rate limit still proves the key authenticates (the switch that follows records the
    /// cooldown on the key once it is back); anything else leaves the key as it was, and its backoff goes on.
    /// </summary>
    private void EndFailedTrial(PoolKey key, AttemptVerdict verdict)
    {
        if (verdict == AttemptVerdict.KeyCooling)
        {
            if (key.Health.State == KeyState.Dead)
            {
                _board.Heal(key, "a real request given to it as a trial found it rate limited but valid");
            }

            key.ClearSuspicion();
            return;
        }

        LogTrialFailed(_logger, key.Pool, key.Name, verdict);
    }

    /// <summary>
    /// Switches to the pool's fallback when none of its own keys can serve (or its upstream is down), asking for the
    /// substitute model if one is named. Returns false when there is no fallback or the request already uses it.
    /// </summary>
    private async ValueTask<bool> TryEnterSafeModeAsync(HttpContext context, FailoverAttempt attempt)
    {
        var pool = attempt.Pool;
        if (attempt.SafeModeFrom is not null || pool.Fallback is not { } fallback)
        {
            return false;
        }

        var rewritten = pool.FallbackModel is { } model && attempt.Body.HasBody
            ? await ModelRewriter.TryRewriteAsync(attempt.Body, model, context.RequestAborted)
            : null;
        _safeMode.Enter(pool, fallback);
        attempt.EnterSafeMode(fallback, rewritten);
        return true;
    }

    /// <summary>
    /// Retries on the same key, paced by Polly (exponential backoff, jitter, the upstream's retry-after). The first try
    /// already ran on the fast path, so requests that succeed never touch the pipeline; the pipeline is entered with that
    /// try's outcome replayed as its own first execution, so its attempt count and delays are exactly as if it had made
    /// the first call itself.
    /// </summary>
    private async ValueTask<AttemptVerdict> RetryUnwellUpstreamAsync(HttpContext context, FailoverAttempt attempt)
    {
        var resilienceContext = ResilienceContextPool.Shared.Get(context.RequestAborted);
        resilienceContext.Properties.Set(AttemptKey, attempt);
        var firstTryReplayed = false;
        try
        {
            return await _upstreamRetry.ExecuteAsync(
                async _ =>
                {
                    if (!firstTryReplayed)
                    {
                        firstTryReplayed = true;
                        return AttemptVerdict.RetryUpstream;
                    }

                    if (_time.GetUtcNow() >= attempt.Deadline)
                    {
                        // The deadline bounds every new try, on the same key as on the next.
                        return AttemptVerdict.UpstreamFailed;
                    }

                    _telemetry.Retrying(attempt);
                    return await SendOnceAsync(context, attempt);
                },
                resilienceContext);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(resilienceContext);
        }
    }

    /// <summary>
    /// One upstream call. A healthy pool's calls go straight out (and an unwell answer to one puts the pool on guard); a
    /// guarded pool's (recently unwell, or circuit not closed) go through its Polly circuit breaker, which refuses them at
    /// once while the circuit is open.
    /// </summary>
    private ValueTask<AttemptVerdict> SendOnceAsync(HttpContext context, FailoverAttempt attempt)
        => attempt.Pool.Circuit is { IsGuarded: true } circuit
            ? SendGuardedAsync(context, attempt, circuit)
            : SendCoreAsync(context, attempt, unguarded: true);

    private async ValueTask<AttemptVerdict> SendGuardedAsync(HttpContext context, FailoverAttempt attempt, UpstreamCircuit circuit)
    {
        var resilienceContext = ResilienceContextPool.Shared.Get(context.RequestAborted);
        try
        {
            var outcome = await circuit.Pipeline.ExecuteOutcomeAsync(
                static async (_, state) =>
                {
                    await state.Self.SendCoreAsync(state.Context, state.Attempt, unguarded: false);
                    return Outcome.FromResult(state.Attempt.TryWasUnwell);
                },
                resilienceContext,
                (Self: this, Context: context, Attempt: attempt));
            if (outcome.Exception is BrokenCircuitException broken)
            {
                return attempt.CircuitRefused(broken.RetryAfter);
            }

            outcome.ThrowIfException();
            if (attempt.TryWasUnwell)
            {
                circuit.NoteUnwell();
            }

            return attempt.Verdict;
        }
        finally
        {
            ResilienceContextPool.Shared.Return(resilienceContext);
        }
    }

    /// <summary>Sends one try through YARP and judges it; <paramref name="unguarded"/>: called straight, not through the pool's circuit breaker.</summary>
    private async ValueTask<AttemptVerdict> SendCoreAsync(HttpContext context, FailoverAttempt attempt, bool unguarded)
    {
        if (context.Response.StatusCode != StatusCodes.Status200OK)
        {
            // A previous try left its status behind (YARP copies it before the transformer declines the answer).
            context.Response.Clear();
        }

        attempt.BeginTry(context);
        // One activity per upstream call, while someone traces (null otherwise); it is the parent of the call, so the
        // traceparent the upstream sees names this attempt.
        var activity = RequestTelemetry.AttemptStarted(attempt);
        try
        {
            var pool = attempt.Pool;
            // A stream gets its headers at once: one that does not is hung, and is given up on well within the deadline.
            using var headersTimer = attempt.AsksForStream ? new CancellationTokenSource(_options.StreamHeadersTimeout, _time) : null;
            using var linked = headersTimer is null ? null : CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, headersTimer.Token);
            attempt.HeadersTimer = headersTimer;
            var error = await _forwarder.SendAsync(context, pool.DestinationPrefix, pool.Client, pool.RequestConfig, attempt, linked?.Token ?? context.RequestAborted);
            attempt.HeadersTimer = null;
            if (error == ForwarderError.None)
            {
                return attempt.Verdict;
            }

            if (context.RequestAborted.IsCancellationRequested)
            {
                return attempt.Verdict = AttemptVerdict.ClientGone;
            }

            if (headersTimer is { IsCancellationRequested: true } && attempt.RespondedAt == 0)
            {
                LogStreamHung(_logger, pool.Name, attempt.Key.Name, _options.StreamHeadersTimeout.TotalSeconds);
                return attempt.HeadersTimedOut();
            }

            if (error == ForwarderError.RequestCreation)
            {
                // Nothing reached the upstream: the request itself cannot be sent. Not the upstream's fault nor the key's.
                attempt.TransportFailed(error, context.Features.Get<IForwarderErrorFeature>()?.Exception);
                return attempt.Verdict = AttemptVerdict.Unforwardable;
            }

            if (context.Response.HasStarted)
            {
                // The answer was already flowing when the connection broke: too late to replay, and the client sees the cut.
                LogBrokenMidResponse(_logger, pool.Name, attempt.Key.Name, error);
                return attempt.BrokeMidAnswer(error);
            }

            var exception = context.Features.Get<IForwarderErrorFeature>()?.Exception;
            if (_logger.IsEnabled(LogLevel.Debug))
            {
#pragma warning disable CA1873 // Guarded by the level check above, which the analyzer does not see through.
                LogTransportError(_logger, pool.Name, attempt.Key.Name, error, TransportFailure.Describe(exception));
#pragma warning restore CA1873
            }

            return attempt.TransportFailed(error, exception);
        }
        finally
        {
            _telemetry.AttemptEnded(attempt, activity);
            if (unguarded && attempt.TryWasUnwell)
            {
                // The breaker counts the calls it guards itself; an unguarded call that found the upstream unwell puts the
                // pool on guard.
                attempt.Pool.Circuit?.NoteUnwell();
            }
        }
    }

    private Task RespondNoUsableKeyAsync(HttpContext context, FailoverAttempt attempt, bool deadlinePassed)
    {
        var pool = attempt.SafeModeFrom ?? attempt.Pool;
        var now = _time.GetUtcNow();
        var (message, retryAfter) = NoUsableKeyReport.Build(pool, now, deadlinePassed, attempt.Attempts, attempt, _incidents.Of(pool), _incidentRecheck);
        if (attempt.SafeModeFrom is not null)
        {
            var (fallbackMessage, fallbackRetryAfter) = NoUsableKeyReport.Build(attempt.Pool, now, deadlinePassed, attempt.Attempts, attempt, _incidents.Of(attempt.Pool), _incidentRecheck);
            message = $"{message} Safe mode could not help: {fallbackMessage}";
            retryAfter = retryAfter is null || fallbackRetryAfter < retryAfter ? fallbackRetryAfter ?? retryAfter : retryAfter;
        }

        _exhaustionLog.Report(pool, message);
        ResetIfNotStarted(context);
        context.Response.Headers[FailoverAttempt.AttemptsHeader] = AttemptCounts.ToHeader(attempt.Attempts);
        return ProviderErrorResponse.WriteAsync(context, pool.Kind, ProxyErrorKind.NoUsableKey, message, retryAfter, upstreamRequestId: attempt.UpstreamRequestId);
    }

    private Task RespondCircuitOpenAsync(HttpContext context, FailoverAttempt attempt)
    {
        var pool = attempt.Pool;
        ResetIfNotStarted(context);
        context.Response.Headers[FailoverAttempt.AttemptsHeader] = AttemptCounts.ToHeader(attempt.Attempts);
        return ProviderErrorResponse.WriteAsync(context, pool.Kind, ProxyErrorKind.CircuitOpen,
            $"the upstream {pool.DestinationPrefix} is failing, so the proxy has stopped calling it for now (circuit breaker open). " +
            "It is checked in the background and calls resume as soon as it answers. The keys are not at fault and stay in service; retry later.",
            attempt.CircuitRetryAfter ?? _options.RetryDelay);
    }

    private Task RespondUpstreamFailedAsync(HttpContext context, FailoverAttempt attempt)
    {
        var pool = attempt.Pool;
        ResetIfNotStarted(context);
        context.Response.Headers[FailoverAttempt.AttemptsHeader] = AttemptCounts.ToHeader(attempt.Attempts);
        var what = attempt.TransportError switch
        {
            ForwarderError.RequestTimedOut when attempt.Hung => $"sent no response headers within {_options.StreamHeadersTimeout.TotalSeconds:0} s for a stream (Failover:StreamHeadersTimeout) on any key",
            ForwarderError.RequestTimedOut => $"did not answer within {_options.ActivityTimeout.TotalSeconds:0} s (Failover:ActivityTimeout)",
            ForwarderError.None => $"answered {attempt.LastUnwellStatus}",
            _ => $"could not be reached: {TransportFailure.Describe(attempt.TransportException, pool.Name)}",
        };
        var kind = attempt.TransportError == ForwarderError.RequestTimedOut ? ProxyErrorKind.UpstreamTimeout : ProxyErrorKind.UpstreamUnreachable;
        return ProviderErrorResponse.WriteAsync(context, pool.Kind, kind,
            $"the upstream {pool.DestinationPrefix} {what} (tried {attempt.Attempts} times). The keys are not at fault and stay in service; retry later.",
            _options.RetryDelay,
            upstreamRequestId: attempt.UpstreamRequestId);
    }

    private static void ResetIfNotStarted(HttpContext context)
    {
        if (!context.Response.HasStarted)
        {
            context.Response.Clear();
        }
    }

    private static ResiliencePipeline<AttemptVerdict> BuildUpstreamRetry(FailoverOptions options, TimeProvider time)
    {
        var builder = new ResiliencePipelineBuilder<AttemptVerdict> { TimeProvider = time };
        if (options.UpstreamRetries > 0)
        {
            builder.AddRetry(new RetryStrategyOptions<AttemptVerdict>
            {
                ShouldHandle = static args => ValueTask.FromResult(args.Outcome is { Result: AttemptVerdict.RetryUpstream }),
                MaxRetryAttempts = options.UpstreamRetries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.RetryDelay,
                MaxDelay = options.MaxRetryDelay,
                // Honour the upstream's retry-after when it names one (bounded by MaxRetryDelay).
                DelayGenerator = args =>
                {
                    if (args.Context.Properties.TryGetValue(AttemptKey, out var attempt) && attempt.RetryAfter is { } at)
                    {
                        var wait = at - time.GetUtcNow();
                        return ValueTask.FromResult<TimeSpan?>(wait <= TimeSpan.Zero ? TimeSpan.Zero : wait > options.MaxRetryDelay ? options.MaxRetryDelay : wait);
                    }

                    return ValueTask.FromResult<TimeSpan?>(null);
                },
            });
        }

        return builder.Build();
    }

    [LoggerMessage(EventId = 3001, Level = LogLevel.Debug, Message = "Pool '{Pool:l}': key '{KeyName:l}' answered {Failure:l}; replaying the request on the next key.")]
    private static partial void LogFailingOver(ILogger logger, string pool, string keyName, string failure);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Debug, Message = "Pool '{Pool:l}': upstream call with key '{KeyName:l}' failed in transport ({Error}): {Reason:l}.")]
    private static partial void LogTransportError(ILogger logger, string pool, string keyName, ForwarderError error, string reason);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Debug, Message = "Pool '{Pool:l}': the upstream sent no response headers within {Seconds} s for a stream with key '{KeyName:l}'; the next key is tried.")]
    private static partial void LogStreamHung(ILogger logger, string pool, string keyName, double seconds);

    [LoggerMessage(EventId = 3006, Level = LogLevel.Information, Message = "Pool '{Pool:l}': key '{KeyName:l}' ({Fingerprint:l}) served the trial request it was given after a request got {Failure:l}: the key is fine and no longer tried last.")]
    private static partial void LogTrialCleared(ILogger logger, string pool, string keyName, string fingerprint, string failure);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Debug, Message = "Pool '{Pool:l}': the trial request given to dead key '{KeyName:l}' did not succeed ({Verdict}); it stays out of service.")]
    private static partial void LogTrialFailed(ILogger logger, string pool, string keyName, AttemptVerdict verdict);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Warning, Message = "Pool '{Pool:l}': the upstream connection broke while the answer from key '{KeyName:l}' was streaming ({Error}); the client saw a cut-off response.")]
    private static partial void LogBrokenMidResponse(ILogger logger, string pool, string keyName, ForwarderError error);
}
