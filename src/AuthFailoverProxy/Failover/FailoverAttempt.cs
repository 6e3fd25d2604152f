using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.Proxying;
using AuthFailoverProxy.State;
using Yarp.ReverseProxy.Forwarder;

namespace AuthFailoverProxy.Failover;

/// <summary>What became of one upstream call.</summary>
internal enum AttemptVerdict
{
    /// <summary>The upstream's answer went to the client: done.</summary>
    Delivered,

    /// <summary>The key was rejected: take it out of service and replay on the next key.</summary>
    KeyDead,

    /// <summary>The key is rate limited: rest it and replay on the next key.</summary>
    KeyCooling,

    /// <summary>The key may not serve this request (a model its organization lacks, a kind of client it is not for): replay on the next key, record nothing.</summary>
    KeyRefused,

    /// <summary>The upstream is unwell and another try on the same key is allowed.</summary>
    RetryUpstream,

    /// <summary>The upstream is unwell, no try is left, and nothing reached the client yet.</summary>
    UpstreamFailed,

    /// <summary>The client went away.</summary>
    ClientGone,

    /// <summary>The pool's circuit is open: the upstream is down and is not being called.</summary>
    CircuitOpen,

    /// <summary>The request could not be built for the upstream (the client's fault): nothing was sent, nothing is retried.</summary>
    Unforwardable,

    /// <summary>A stream's response headers did not come in time: the call is hung. The next key is tried; no key is blamed.</summary>
    Hung,
}

/// <summary>
/// One request's walk through a pool. As YARP's transformer it swaps the client token for the current key on the way
/// out and, on the way back, decides from status and error body whether the answer goes to the client or the request
/// is replayed. Nothing of a rejected answer reaches the client: the decision is made before its first byte.
/// </summary>
internal sealed class FailoverAttempt(Pool pool, ReplayableBody body, string target, DateTimeOffset deadline, FailoverOptions options, TimeProvider time, string[]? notForwarded = null)
    : HttpTransformer, IScopedRequest
{
    internal const string KeyHeader = "x-afp-key";
    internal const string AttemptsHeader = "x-afp-attempts";
    internal const string SafeModeHeader = "x-afp-safe-mode";
    private static readonly IHeaderDictionary EmptyHeaders = new HeaderDictionary();

    private Uri? _uri;
    private Pool? _uriPool;
    private KeyFailure? _firstRefusal;
    private RequestScope? _scope;
    private StreamHold? _opening;
    private Telemetry.UsageReader? _answer;

    /// <summary>Gets the pool being walked: the request's own, or its fallback in safe mode.</summary>
    public Pool Pool { get; private set; } = pool;

    /// <summary>Gets the body to send: the agent's, or its safe-mode rewrite.</summary>
    public ReplayableBody Body { get; private set; } = body;

    /// <summary>Gets the pool whose requests the fallback serves, when this request is in safe mode.</summary>
    public Pool? SafeModeFrom { get; private set; }

    public DateTimeOffset Deadline => deadline;

    /// <summary>Gets the key of the current try.</summary>
    public PoolKey Key { get; private set; } = null!;

    /// <summary>Gets the number of upstream calls made for this request so far.</summary>
    public int Attempts { get; private set; }

    /// <summary>Gets the keys this request gave up on; allocated only when a failover happens.</summary>
    public List<PoolKey>? Tried { get; private set; }

    public AttemptVerdict Verdict { get; set; }

    /// <summary>Gets what the upstream said when it rejected <see cref="Key"/>.</summary>
    public KeyFailure? Failure { get; private set; }

    /// <summary>Gets when a rate-limited <see cref="Key"/> may be used again.</summary>
    public DateTimeOffset CoolUntil { get; private set; }

    /// <summary>Gets the <c>retry-after</c> an unwell upstream asked for, used to pace the next try.</summary>
    public DateTimeOffset? RetryAfter { get; private set; }

    /// <summary>Gets the transport error of the last try, if it had one.</summary>
    public ForwarderError TransportError { get; private set; }

    /// <summary>Gets what the HTTP stack threw for the last try's transport error, if anything.</summary>
    public Exception? TransportException { get; private set; }

    /// <summary>Gets the status of the last upstream answer that was not delivered, for the final error.</summary>
    public int LastUnwellStatus { get; private set; }

    /// <summary>Gets a value indicating whether the upstream was unwell on the last try (5xx, no connection, no answer).</summary>
    public bool TryWasUnwell { get; private set; }

    /// <summary>Gets the provider's request id of the last upstream answer this request did not deliver, to pass back on the proxy's own answer.</summary>
    public string? UpstreamRequestId { get; private set; }

    /// <summary>Gets a value indicating whether the request asks for a stream, whose response headers must come at once.</summary>
    public bool AsksForStream { get; init; }

    /// <summary>Gets the agent's request headers, read only when a key has scopes (<see cref="Scope"/>).</summary>
    public IHeaderDictionary? RequestHeaders { get; init; }

    /// <summary>
    /// Gets what the request asks for that a key can be out for (its model, the model's class, whether it is Claude
    /// Code's): read from the body on first use, once per request (and again in safe mode, whose body may name another
    /// model): the telemetry of each call made for a model labels with its model.
    /// </summary>
    public RequestScope Scope => _scope ??= RequestScope.Of(Body.InMemory, RequestHeaders ?? EmptyHeaders);

    /// <summary>Gets the provider's answer of the current try when it was about the request rather than the key, and why; null otherwise.</summary>
    public KeyFailure? Rejection { get; private set; }

    /// <summary>Gets why <see cref="Rejection"/> was about the request.</summary>
    public RejectionReason RejectionReason { get; private set; }

    /// <summary>Gets the keys that refused this request with a 403 that may be about their organization, not the request; allocated only then.</summary>
    public List<(PoolKey Key, KeyFailure Failure)>? Refusals { get; private set; }

    /// <summary>Gets what to do when a key carrying its trial (see <see cref="PoolKey.TrialTaken"/>) has its answer delivered below 400.</summary>
    public Action<PoolKey>? TrialPassed { get; init; }

    /// <summary>Gets the name of the client token the request came with (never the token).</summary>
    public string Client { get; init; } = Proxying.ClientAuthenticator.AnonymousClient;

    /// <summary>Gets the path and query sent after the upstream's base path.</summary>
    public string Target => target;

    /// <summary>
    /// Gets the GenAI operation the target stands for (<c>chat</c>, <c>text_completion</c>, <c>embeddings</c>), or null:
    /// worked out once per request for the telemetry of each of its upstream calls.
    /// </summary>
    public string? Operation { get; } = Telemetry.RequestTelemetry.OperationOf(target);

    /// <summary>Gets who asked for the usage of an OpenAI chat stream: when the proxy did, its usage chunk is not the agent's to see.</summary>
    public Telemetry.StreamUsage StreamUsage { get; init; }

    /// <summary>Gets what records the tokens a delivered answer spent once it has passed (null: not counted).</summary>
    public Telemetry.RequestTelemetry? Usage { get; init; }

    /// <summary>Gets or sets the timer that gives up on a stream whose response headers do not come; stopped when they do.</summary>
    public CancellationTokenSource? HeadersTimer { get; set; }

    /// <summary>Gets a value indicating whether a call of this request hung (no response headers in time).</summary>
    public bool Hung { get; private set; }

    /// <summary>Gets a value indicating whether two keys refused this request alike: the request is at fault, not the keys.</summary>
    public bool RequestAtFault { get; private set; }

    /// <summary>Gets how long the open circuit asks clients to wait.</summary>
    public TimeSpan? CircuitRetryAfter { get; private set; }

    /// <summary>Gets when the first upstream call was sent, as a <see cref="TimeProvider"/> timestamp; 0 before it (telemetry).</summary>
    public long FirstTryStartedAt { get; private set; }

    /// <summary>Gets when the current try was sent, as a timestamp (telemetry).</summary>
    public long TryStartedAt { get; private set; }

    /// <summary>Gets when the current try's response headers arrived, as a timestamp; 0 while there is no answer (telemetry).</summary>
    public long RespondedAt { get; private set; }

    /// <summary>Gets the status the upstream answered the current try with; 0 while there is no answer.</summary>
    public int UpstreamStatus { get; private set; }

    /// <summary>
    /// Gets when the delivered stream's first content came, as a timestamp (telemetry): the event the stream's hold waited
    /// for, or, when the opening outlasted the hold, the first bytes after it. 0 for anything else.
    /// </summary>
    public long FirstChunkAt => _opening?.ContentAt ?? 0;

    /// <summary>Gets the status an error event the delivered stream opened with stands for (the final try's); 0 when none did.</summary>
    public int StreamErrorStatus => _opening is { Opening: StreamOpening.Error } opening ? opening.ErrorEvent.Status : 0;

    /// <summary>
    /// Gets what was read of the delivered answer (its model and usage) once it has passed, or null: not read, or not yet
    /// (a compressed answer cut short is read a moment after).
    /// </summary>
    public Telemetry.UsageReader? Answer => Volatile.Read(ref _answer);

    private int TriesOnKey { get; set; }

    private bool IsFinalTry { get; set; }

    public void UseKey(PoolKey key)
    {
        Key = key;
        TriesOnKey = 0;
    }

    public void GiveUpOn(PoolKey key) => (Tried ??= []).Add(key);

    /// <summary>Walks the fallback pool from now on, with a rewritten body when the pool names a substitute model.</summary>
    public void EnterSafeMode(Pool fallback, ReplayableBody? rewritten)
    {
        SafeModeFrom = Pool;
        Pool = fallback;
        Body = rewritten ?? Body;
        Tried = null;
        _scope = null;
    }

    /// <summary>Starts a try: the body is rewound and the last answer forgotten.</summary>
    public void BeginTry(HttpContext context)
    {
        Attempts++;
        TriesOnKey++;
        IsFinalTry = TriesOnKey > options.UpstreamRetries || time.GetUtcNow() >= deadline;
        Verdict = AttemptVerdict.Delivered;
        Failure = null;
        Rejection = null;
        RetryAfter = null;
        TransportError = ForwarderError.None;
        TransportException = null;
        TryWasUnwell = false;
        UpstreamStatus = 0;
        RespondedAt = 0;
        _opening = null;
        _answer = null;
        TryStartedAt = time.GetTimestamp();
        FirstTryStartedAt = Attempts == 1 ? TryStartedAt : FirstTryStartedAt;
        if (Body.HasBody)
        {
            context.Request.Body = Body.OpenRead();
        }
    }

    /// <summary>Records that the pool's circuit refused the try.</summary>
    public AttemptVerdict CircuitRefused(TimeSpan? retryAfter)
    {
        CircuitRetryAfter = retryAfter;
        return Verdict = AttemptVerdict.CircuitOpen;
    }

    /// <summary>Records that the current try got no response headers in time: hung, not the key's fault; the next key is tried.</summary>
    public AttemptVerdict HeadersTimedOut()
    {
        TransportError = ForwarderError.RequestTimedOut;
        TransportException = null;
        LastUnwellStatus = 0;
        TryWasUnwell = true;
        Hung = true;
        return Verdict = AttemptVerdict.Hung;
    }

    /// <summary>Records that the connection broke while the answer was already passing to the client: delivered, cut off.</summary>
    public AttemptVerdict BrokeMidAnswer(ForwarderError error)
    {
        TransportError = error;
        return Verdict = AttemptVerdict.Delivered;
    }

    /// <summary>Takes what was read of the delivered answer, once it has passed (see <see cref="Answer"/>).</summary>
    public void AnswerRead(Telemetry.UsageReader reader) => Volatile.Write(ref _answer, reader);

    /// <summary>Judges a transport failure (refused, reset, timed out) of the current try.</summary>
    public AttemptVerdict TransportFailed(ForwarderError error, Exception? exception)
    {
        TransportError = error;
        TransportException = exception;
        LastUnwellStatus = 0;
        TryWasUnwell = error != ForwarderError.RequestCreation;
        return Verdict = IsFinalTry ? AttemptVerdict.UpstreamFailed : AttemptVerdict.RetryUpstream;
    }

    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);

        // The agent's path and query exactly as it sent them (see UpstreamTarget), after the upstream's base path. Built
        // once per pool: replays reuse it.
        if (_uriPool != Pool)
        {
            _uri = new Uri(Pool.DestinationPrefix + target, UriKind.Absolute);
            _uriPool = Pool;
        }

        proxyRequest.RequestUri = _uri;

        // The upstream's own name goes out (taken from the request URI), in Host and as the TLS server name: never the name
        // the agent used to reach the proxy, which would fail the certificate check or reach another site behind a
        // name-routed front.
        proxyRequest.Headers.Host = null;
        if (notForwarded is not null)
        {
            UpstreamHeaders.Remove(proxyRequest.Headers, notForwarded);
        }

        // The client's token stops here (the headers were copied from its request); the pool's key goes out instead.
        Pool.Authorize(proxyRequest.Headers, Key);

        if (Body.IsRewritten && proxyRequest.Content?.Headers.ContentLength is not null)
        {
            // A rewritten model, or a stream asked for its usage, changes the body's length.
            proxyRequest.Content.Headers.ContentLength = Body.Length;
        }

        if (StreamUsage == Telemetry.StreamUsage.AskedByProxy)
        {
            // The usage chunk is taken out of the stream as it passes, which a compressed stream would not allow.
            proxyRequest.Headers.Remove("Accept-Encoding");
        }
    }

    public override async ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
    {
        if (proxyResponse is null)
        {
            return false;
        }

        var status = (int)proxyResponse.StatusCode;
        UpstreamStatus = status;
        RespondedAt = time.GetTimestamp();
        if (Key.LearnsOrganization)
        {
            // Until known (or given up on): which organization's limits the key shares.
            Organizations.Learn(Key, proxyResponse);
        }

        // The headers are in: from here the activity timeout governs, however long the stream runs.
        HeadersTimer?.CancelAfter(Timeout.InfiniteTimeSpan);
        if (!FailureClassifier.NeedsInspection(status))
        {
            if (options.StreamHoldTime > TimeSpan.Zero && StreamHold.Applies(proxyResponse))
            {
                return await HoldStreamOpeningAsync(httpContext, proxyResponse, cancellationToken);
            }

            return await DeliverAsync(httpContext, proxyResponse, passed: null, cancellationToken);
        }

        if (status >= 500 || status == 408)
        {
            // The upstream is unwell, whatever its body says: no need to read it.
            LastUnwellStatus = status;
            TryWasUnwell = true;
            if (IsFinalTry)
            {
                return await DeliverAsync(httpContext, proxyResponse, passed: null, cancellationToken);
            }

            RetryAfter = RetryAfterHeaders.RetryAfter(proxyResponse.Headers, time.GetUtcNow());
            UpstreamRequestId = UpstreamErrorJudge.RequestId(proxyResponse) ?? UpstreamRequestId;
            Verdict = AttemptVerdict.RetryUpstream;
            return false;
        }

        var (prefix, rest) = await UpstreamErrorJudge.ReadErrorBodyAsync(proxyResponse.Content, cancellationToken);
        var judgement = UpstreamErrorJudge.Judge(Pool.Kind, Key, proxyResponse, prefix.Span, time.GetUtcNow(), options);
        if (judgement.Class is FailureClass.KeyRefusesRequest or FailureClass.KeyRefusesClient && RefusalEndsTheWalk(judgement))
        {
            // The request's own fault, or no key left to ask: the agent gets the provider's answer, and no key is blamed.
            Rejected(judgement.Failure!, RequestAtFault ? RejectionReason.RequestAtFault : RejectionReason.Refused);
            return await DeliverAsync(httpContext, proxyResponse, new PrefixedContent(prefix, rest), cancellationToken);
        }

        if (judgement.Class is FailureClass.KeyRefusesRequest or FailureClass.KeyRefusesClient)
        {
            rest?.Dispose();
            if (judgement.Class == FailureClass.KeyRefusesRequest)
            {
                // About the key's organization if another key serves the request; the request's own if none does. The
                // request's model is read now: its body is let go once an answer is delivered.
                (Refusals ??= []).Add((Key, judgement.Failure!));
            }

            Rejected(judgement.Failure!, RejectionReason.Refused);
            Failure = judgement.Failure;
            UpstreamRequestId = judgement.Failure?.RequestId ?? UpstreamRequestId;
            Verdict = AttemptVerdict.KeyRefused;
            return false;
        }

        if (judgement.Class is FailureClass.KeyDead or FailureClass.KeyCooling)
        {
            rest?.Dispose();
            Failure = judgement.Failure;
            UpstreamRequestId = judgement.Failure?.RequestId ?? UpstreamRequestId;
            CoolUntil = judgement.CoolUntil;
            Verdict = judgement.Class == FailureClass.KeyCooling ? AttemptVerdict.KeyCooling : AttemptVerdict.KeyDead;
            return false;
        }

        // The client's own error: hand it over exactly as the upstream sent it.
        if (judgement.Failure is { } clientError)
        {
            Rejected(clientError, RejectionReason.ClientError);
        }

        return await DeliverAsync(httpContext, proxyResponse, new PrefixedContent(prefix, rest), cancellationToken);
    }

    /// <summary>
    /// Notes that the key's answer was about the request, to be counted (never held against the key). The request's
    /// model is read now: the body is let go once an answer is delivered.
    /// </summary>
    private void Rejected(KeyFailure answer, RejectionReason reason)
    {
        Rejection = answer;
        RejectionReason = reason;
        _ = Scope;
    }

    /// <summary>
    /// Holds a stream's opening until its first content event (<see cref="StreamHold"/>). An error event before it is
    /// judged like the same error as a status: an overloaded upstream is retried with backoff, a rate-limited or rejected
    /// key gives way to the next, and the agent sees a clean stream from the retry. Anything else goes to the agent: the
    /// held bytes first, then the rest as it comes.
    /// </summary>
    private async ValueTask<bool> HoldStreamOpeningAsync(HttpContext httpContext, HttpResponseMessage proxyResponse, CancellationToken cancellationToken)
    {
        var hold = await StreamHold.ReadOpeningAsync(proxyResponse.Content, Pool.Kind, options.StreamHoldTime, time, cancellationToken);
        if (hold.Opening == StreamOpening.Error)
        {
            var (status, error) = hold.ErrorEvent;
            var judgement = UpstreamErrorJudge.Judge(Pool.Kind, Key, status, error, proxyResponse, time.GetUtcNow(), options);
            UpstreamStatus = status;
            switch (judgement.Class)
            {
                case FailureClass.UpstreamUnwell when !IsFinalTry:
                    hold.Dispose();
                    LastUnwellStatus = status;
                    TryWasUnwell = true;
                    UpstreamRequestId = UpstreamErrorJudge.RequestId(proxyResponse) ?? UpstreamRequestId;
                    Verdict = AttemptVerdict.RetryUpstream;
                    return false;
                case FailureClass.KeyDead or FailureClass.KeyCooling or FailureClass.KeyRefusesClient:
                    hold.Dispose();
                    Failure = judgement.Failure;
                    CoolUntil = judgement.CoolUntil;
                    UpstreamRequestId = judgement.Failure?.RequestId ?? UpstreamRequestId;
                    Verdict = judgement.Class switch
                    {
                        FailureClass.KeyCooling => AttemptVerdict.KeyCooling,
                        FailureClass.KeyDead => AttemptVerdict.KeyDead,
                        _ => AttemptVerdict.KeyRefused,
                    };
                    if (Verdict == AttemptVerdict.KeyRefused)
                    {
                        GiveUpOn(Key);
                        Rejected(Failure!, RejectionReason.Refused);
                    }

                    return false;
            }

            // The final try, or the request's own error: the agent gets the stream as the provider sent it.
            UpstreamStatus = (int)proxyResponse.StatusCode;
        }

        _opening = hold;
        return await DeliverAsync(httpContext, proxyResponse, hold.ToContent(), cancellationToken);
    }

    /// <summary>
    /// Decides whether a key's refusal of this request goes back to the agent rather than on to the next key: when a
    /// second key refuses the request with the very same words (the request is at fault, not the keys: a bad request costs
    /// at most two upstream calls, whatever the pool's size), or when no other key is left to ask. A refusal that is
    /// about the credential (a subscription token refused for this kind of client) never counts as the request's fault:
    /// the walk goes on to the keys that can serve it.
    /// </summary>
    private bool RefusalEndsTheWalk(UpstreamJudgement judgement)
    {
        GiveUpOn(Key);
        if (judgement.Class == FailureClass.KeyRefusesRequest)
        {
            if (judgement.Failure!.IsSameAnswer(_firstRefusal))
            {
                RequestAtFault = true;
                return true;
            }

            _firstRefusal ??= judgement.Failure;
        }

        return Pool.SelectKey(Tried, time, this) is null;
    }

    /// <summary>
    /// Hands the answer to the agent: the upstream's status and headers, and <paramref name="passed"/> (content that passes
    /// on the upstream's bytes: a held stream opening, an error body partly read) or else the upstream's content itself,
    /// read on the side for its usage.
    /// </summary>
    private async ValueTask<bool> DeliverAsync(HttpContext httpContext, HttpResponseMessage proxyResponse, HttpContent? passed, CancellationToken cancellationToken)
    {
        Verdict = AttemptVerdict.Delivered;
        var upstream = proxyResponse.Content;
        var content = passed ?? upstream;
        // Before the body goes: the reader's labels take the request's model from it.
        if (UpstreamStatus < 300 && Usage is { } telemetry
            && Telemetry.UsageContent.Readable(upstream, out var encoding)
            && telemetry.OpenUsage(this, upstream.Headers.ContentType?.MediaType) is { } usage)
        {
            // Read as it passes, from the try whose answer is delivered only: a try that failed over counts nothing.
            content = new Telemetry.UsageContent(content, encoding, usage, telemetry.UsagePassed);
        }

        var filtered = StreamUsage == Telemetry.StreamUsage.AskedByProxy && UpstreamStatus < 300 && upstream.Headers.ContentEncoding.Count == 0
            && upstream.Headers.ContentType?.MediaType == "text/event-stream";
        if (filtered)
        {
            // Outside the usage tap, which reads the chunk before it is taken out.
            content = new Telemetry.UsageChunkFilter.FilteredContent(content);
        }

        // No replay can follow: the body goes as soon as the upstream has read it, not when the answer ends, so a long
        // stream holds neither its request's memory nor its spill file.
        Body.Release();
        if (UpstreamStatus < 400)
        {
            if (Key.TrialTaken)
            {
                // Told as the answer is committed, not when a long stream ends.
                TrialPassed?.Invoke(Key);
            }

            if (Key.Suspicion is not null)
            {
                // A real request served: the best evidence that the key is fine.
                Key.ClearSuspicion();
            }
        }

        // The agent's headers are the upstream content's, copied while it is still in place: the content put there next
        // carries none of its own. It is put there whatever happens, so the response disposes what it wraps.
        bool proceed;
        try
        {
            proceed = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
        }
        finally
        {
            proxyResponse.Content = content;
        }

        var headers = httpContext.Response.Headers;
        if (filtered)
        {
            // Shorter by the chunk taken out.
            headers.ContentLength = null;
        }

        headers[KeyHeader] = Key.Name;
        headers[AttemptsHeader] = AttemptCounts.ToHeader(Attempts);
        if (SafeModeFrom is not null)
        {
            headers[SafeModeHeader] = Pool.Name;
        }

        return proceed;
    }
}

/// <summary>Which organization a key belongs to, as the provider names it in its answers.</summary>
internal static class Organizations
{
    public static void Learn(PoolKey key, HttpResponseMessage response)
    {
        key.LookedForOrganization();
        var headers = response.Headers.NonValidated;
        if ((headers.TryGetValues("anthropic-organization-id", out var values) || headers.TryGetValues("openai-organization", out values))
            && values.ToString() is { Length: > 0 and <= 128 } organization)
        {
            key.LearnOrganization(organization);
        }
    }
}

/// <summary>Cached header values for attempt counts, so the common case allocates nothing.</summary>
internal static class AttemptCounts
{
    private static readonly string[] Cached = [.. Enumerable.Range(0, 16).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture))];

    public static string ToHeader(int attempts)
        => (uint)attempts < (uint)Cached.Length ? Cached[attempts] : attempts.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
