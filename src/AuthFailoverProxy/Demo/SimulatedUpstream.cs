using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;

namespace AuthFailoverProxy.Demo;

/// <summary>How the simulated upstream treats one key. Statuses and bodies follow FACTS.md.</summary>
internal enum KeyFault
{
    /// <summary>The key works.</summary>
    None,

    /// <summary>401 <c>authentication_error</c> "invalid x-api-key" (OpenAI: 401 <c>invalid_api_key</c>).</summary>
    Revoked,

    /// <summary>403 <c>permission_error</c>: OAuth tokens refused by organization policy (the outage).</summary>
    OAuthRejected,

    /// <summary>402 <c>billing_error</c>.</summary>
    Billing,

    /// <summary>400 <c>invalid_request_error</c> "Your credit balance is too low…".</summary>
    NoCredit,

    /// <summary>429 with <c>error.details.error_code = enforced_spend_limit_reached</c> and no <c>retry-after</c>.</summary>
    SpendLimit,

    /// <summary>
    /// OpenAI's 429 <c>insufficient_quota</c>. Anthropic has no such answer; in its dialect this is a 429
    /// <c>rate_limit_error</c> carrying <c>details.error_code = insufficient_quota</c>, so the status and meaning stay the same.
    /// </summary>
    InsufficientQuota,

    /// <summary>429 rate limited, with <c>retry-after</c> and the provider's reset headers.</summary>
    RateLimited,
}

/// <summary>A failure of the upstream itself, not of any key.</summary>
internal enum UpstreamFault
{
    /// <summary>529 <c>overloaded_error</c>.</summary>
    Overloaded,

    /// <summary>500 <c>api_error</c>.</summary>
    InternalError,

    /// <summary>502.</summary>
    BadGateway,

    /// <summary>503.</summary>
    Unavailable,

    /// <summary>504 <c>timeout_error</c>.</summary>
    GatewayTimeout,

    /// <summary>The connection is aborted before any header is sent.</summary>
    ResetConnection,

    /// <summary>No answer at all until the caller gives up; the request then counts in <see cref="SimulatedUpstream.AbortedRequests"/>.</summary>
    Hang,
}

/// <summary>One request as the simulated upstream received it.</summary>
/// <param name="Method">The HTTP method.</param>
/// <param name="PathAndQuery">The request target exactly as sent, e.g. <c>/v1/messages?beta=true</c>.</param>
/// <param name="Headers">The headers by lower-case name (looked up case-insensitively); repeated values joined with ", ".</param>
/// <param name="Body">The exact bytes received; empty when <see cref="SimulatedUpstream.RecordBodies"/> is off.</param>
/// <param name="Key">The credential used: the <c>x-api-key</c> value, else the Bearer token.</param>
internal sealed record RecordedRequest(
    string Method,
    string PathAndQuery,
    IReadOnlyDictionary<string, string> Headers,
    byte[] Body,
    string? Key);

/// <summary>
/// A real HTTP server on loopback that answers like the Anthropic and OpenAI APIs, with faults on demand: per key
/// (revoked, OAuth refused, out of credit, rate limited…) and for the whole upstream (overload, 5xx, reset, hang).
/// Serves the demo, the functional tests (one instance per test, in parallel) and the benchmark, so the request path is
/// lock-free except for the request log and takes nothing from the environment (no configuration, no logging).
/// </summary>
internal sealed class SimulatedUpstream : IAsyncDisposable
{
    internal const string OrganizationId = "5e1f7a2c-0d9b-4c3e-8f61-2a7b9c4d0e15";
    internal const string ReplyText = "Hello from the simulated upstream.";
    private const string DefaultAnthropicModel = "claude-sonnet-4-5";
    private const string DefaultOpenAIModel = "gpt-4o";
    private const int OutputTokens = 9;
    private static readonly TimeSpan DefaultRetryAfter = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan ShutdownGrace = TimeSpan.FromSeconds(5);
    private static readonly string[] ReplyWords = ["Hello", " from", " the", " simulated", " upstream."];

    private readonly WebApplication _app;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, (KeyFault Fault, TimeSpan RetryAfter)> _keyFaults = new(StringComparer.Ordinal);
    private readonly Queue<FaultBatch> _upstreamFaults = new();
    private readonly List<RecordedRequest> _requests = [];
    private readonly TaskCompletionSource _firstAbort = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stopping = new();
    private int _pendingUpstreamFaults;
    private int _requestCount;
    private int _abortedRequests;
    private int _disposed;

    private SimulatedUpstream(WebApplication app, TimeProvider time)
    {
        _app = app;
        _time = time;
        app.Run(HandleAsync);
    }

    private enum Dialect
    {
        Anthropic,
        OpenAI,
    }

    /// <summary>Gets the server's root, <c>http://127.0.0.1:{port}</c>.</summary>
    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>Gets or sets a value indicating whether request bodies are kept in <see cref="Requests"/>. <value>The default value is <see langword="true"/>.</value></summary>
    public bool RecordBodies { get; set; } = true;

    /// <summary>Gets a snapshot of every request received, faulted ones included, in the order they were received.</summary>
    public IReadOnlyList<RecordedRequest> Requests
    {
        get
        {
            lock (_requests)
            {
                return [.. _requests];
            }
        }
    }

    /// <summary>Gets the number of requests that reached the server since it started (<see cref="ClearRequests"/> does not reset it).</summary>
    public int RequestCount => Volatile.Read(ref _requestCount);

    /// <summary>Gets the number of requests whose caller went away: a <see cref="UpstreamFault.Hang"/>, or a disconnect mid-stream.</summary>
    public int AbortedRequests => Volatile.Read(ref _abortedRequests);

    /// <summary>Gets a task that completes when the first request is aborted by its caller.</summary>
    public Task WhenAborted => _firstAbort.Task;

    /// <summary>
    /// Gets or sets a hook called before streaming event number <c>index</c> (0-based) of an SSE response is written;
    /// tests block here to prove events arrive one by one. The token fires when the caller goes away or the server stops.
    /// <value>The default value is <see langword="null"/> (no wait).</value>
    /// </summary>
    public Func<int, CancellationToken, Task>? BeforeStreamEvent { get; set; }

    /// <summary>Gets or sets the number of text delta events in a stream. <value>The default value is 5.</value></summary>
    public int StreamDeltas { get; set; } = 5;

    /// <summary>Starts a server on 127.0.0.1; <paramref name="port"/> 0 picks a free port.</summary>
    public static async Task<SimulatedUpstream> StartAsync(TimeProvider? time = null, int port = 0, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(port);

        // The empty builder reads no appsettings, environment or command line and has no logging providers, so the fake
        // is silent and a test's configuration can never leak into it.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = null;
            // Tests stall streams and bodies on purpose; Kestrel must not cut them for being slow.
            kestrel.Limits.MinRequestBodyDataRate = null;
            kestrel.Limits.MinResponseDataRate = null;
            kestrel.Listen(IPAddress.Loopback, port);
        });

        var upstream = new SimulatedUpstream(builder.Build(), time ?? TimeProvider.System);
        try
        {
            await upstream._app.StartAsync(cancellationToken);
            var address = upstream._app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
            upstream.BaseAddress = new Uri(address.TrimEnd('/'), UriKind.Absolute);
            return upstream;
        }
        catch
        {
            await upstream.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Makes every request with <paramref name="secret"/> fail with <paramref name="fault"/> from now on;
    /// <see cref="KeyFault.None"/> restores the key. <paramref name="retryAfter"/> is the wait a rate-limited key announces
    /// (default 30 seconds).
    /// </summary>
    public void SetKeyFault(string secret, KeyFault fault, TimeSpan? retryAfter = null)
    {
        ArgumentNullException.ThrowIfNull(secret);
        if (fault == KeyFault.None)
        {
            _keyFaults.TryRemove(secret, out _);
        }
        else
        {
            _keyFaults[secret] = (fault, retryAfter ?? DefaultRetryAfter);
        }
    }

    /// <summary>Makes the next <paramref name="count"/> requests, whatever their key, fail with <paramref name="fault"/>. Calls queue up in order.</summary>
    public void FailNext(int count, UpstreamFault fault)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count == 0)
        {
            return;
        }

        lock (_upstreamFaults)
        {
            _upstreamFaults.Enqueue(new FaultBatch(fault, count));
            _pendingUpstreamFaults += count;
        }
    }

    /// <summary>Forgets the recorded requests. <see cref="RequestCount"/> and <see cref="AbortedRequests"/> keep counting.</summary>
    public void ClearRequests()
    {
        lock (_requests)
        {
            _requests.Clear();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // Releases hanging and stalled requests first, so stopping does not wait for them.
        await _stopping.CancelAsync();
        using (var grace = new CancellationTokenSource(ShutdownGrace))
        {
            try
            {
                await _app.StopAsync(grace.Token);
            }
            catch (OperationCanceledException)
            {
                // Past the grace period Kestrel has aborted what was left; nothing more to wait for.
            }
        }

        await _app.DisposeAsync();
        _stopping.Dispose();
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var path = request.Path.Value ?? "/";
        var key = KeyOf(request.Headers, out var bearerOnly);
        var dialect = DialectOf(path, bearerOnly);

        RequestShape shape;
        try
        {
            shape = await ReadAndRecordAsync(context, key, NeedsBody(path));
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or BadHttpRequestException)
        {
            // The caller went away while sending its body; it was recorded with what had arrived.
            return;
        }

        if (TakeUpstreamFault() is { } upstreamFault)
        {
            await FailUpstreamAsync(context, dialect, upstreamFault);
            return;
        }

        if (key is null)
        {
            WriteError(context, dialect, dialect == Dialect.Anthropic
                ? new ErrorReply(401, "authentication_error", "x-api-key header is required", null)
                : new ErrorReply(401, "invalid_request_error", "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from https://platform.openai.com/account/api-keys.", null));
            return;
        }

        if (_keyFaults.TryGetValue(key, out var keyFault))
        {
            FailKey(context, dialect, key, keyFault.Fault, keyFault.RetryAfter);
            return;
        }

        var method = request.Method;
        switch (path)
        {
            case "/v1/messages" when HttpMethods.IsPost(method):
                await MessagesAsync(context, shape);
                break;
            case "/v1/messages/count_tokens" when HttpMethods.IsPost(method):
                WriteJson(context, dialect, 200, shape, static (json, shape, _) => json.WriteNumber("input_tokens"u8, shape.Length / 4));
                break;
            case "/v1/models" when HttpMethods.IsGet(method):
                WriteConstant(context, dialect, dialect == Dialect.Anthropic
                    ? "{\"data\":[{\"type\":\"model\",\"id\":\"claude-sonnet-4-5\",\"display_name\":\"Claude Sonnet 4.5\",\"created_at\":\"2025-09-29T00:00:00Z\"}],\"has_more\":false,\"first_id\":\"claude-sonnet-4-5\",\"last_id\":\"claude-sonnet-4-5\"}"u8
                    : "{\"object\":\"list\",\"data\":[{\"id\":\"gpt-4o\",\"object\":\"model\",\"created\":1715367049,\"owned_by\":\"system\"}]}"u8);
                break;
            case "/v1/chat/completions" when HttpMethods.IsPost(method):
                await ChatCompletionsAsync(context, shape);
                break;
            case "/v1/completions" when HttpMethods.IsPost(method):
                await WithValidBodyAsync(context, shape, WriteTextCompletion);
                break;
            case "/v1/embeddings" when HttpMethods.IsPost(method):
                await WithValidBodyAsync(context, shape, WriteEmbeddings);
                break;
            case "/v1/responses" when HttpMethods.IsPost(method):
                await WithValidBodyAsync(context, shape, WriteResponse);
                break;
            default:
                WriteError(context, dialect, dialect == Dialect.Anthropic
                    ? new ErrorReply(404, "not_found_error", "Not Found", null)
                    : new ErrorReply(404, "invalid_request_error", $"Invalid URL ({method} {path})", "unknown_url"));
                break;
        }
    }

    private static string? KeyOf(IHeaderDictionary headers, out bool bearerOnly)
    {
        bearerOnly = false;
        if (headers.TryGetValue("x-api-key", out var apiKey) && apiKey.ToString() is { Length: > 0 } key)
        {
            return key;
        }

        if (headers.Authorization.ToString() is { Length: > 7 } authorization && authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            var token = authorization.AsSpan(7).Trim();
            if (!token.IsEmpty)
            {
                bearerOnly = true;
                return token.ToString();
            }
        }

        return null;
    }

    private static Dialect DialectOf(string path, bool bearerOnly) => path switch
    {
        "/v1/chat/completions" or "/v1/completions" or "/v1/embeddings" or "/v1/responses" => Dialect.OpenAI,
        "/v1/messages" or "/v1/messages/count_tokens" => Dialect.Anthropic,
        // Both providers serve /v1/models (and everything unknown): the credential's header says which one is asked.
        _ => bearerOnly ? Dialect.OpenAI : Dialect.Anthropic,
    };

    private static bool NeedsBody(string path)
        => path is "/v1/messages" or "/v1/chat/completions" or "/v1/completions" or "/v1/embeddings" or "/v1/responses";

    /// <summary>Reads the whole body, records the request (with what arrived, even if the caller left half-way) and sizes it up.</summary>
    private async Task<RequestShape> ReadAndRecordAsync(HttpContext context, string? key, bool parse)
    {
        var request = context.Request;
        var keep = RecordBodies;
        var declared = context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody == false ? 0 : request.ContentLength;
        byte[] buffer = [];
        var length = 0;
        var pooled = false;
        try
        {
            try
            {
                if (keep && declared is > 0 && declared <= Array.MaxLength)
                {
                    // The common case: the exact array the record keeps, filled in place.
                    buffer = GC.AllocateUninitializedArray<byte>((int)declared.Value);
                    length = await request.Body.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, context.RequestAborted);
                }
                else if (declared != 0)
                {
                    pooled = true;
                    buffer = ArrayPool<byte>.Shared.Rent(declared is > 0 and <= 1 << 20 ? (int)declared.Value : 16 * 1024);
                    int read;
                    while ((read = await request.Body.ReadAsync(buffer.AsMemory(length), context.RequestAborted)) > 0)
                    {
                        length += read;
                        if (length == buffer.Length)
                        {
                            var larger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                            buffer.AsSpan(0, length).CopyTo(larger);
                            ArrayPool<byte>.Shared.Return(buffer);
                            buffer = larger;
                        }
                    }
                }
            }
            finally
            {
                var body = !keep || length == 0 ? []
                    : !pooled && length == buffer.Length ? buffer
                    : buffer.AsSpan(0, length).ToArray();
                Record(context, key, body);
            }

            return parse ? RequestShape.Parse(buffer.AsSpan(0, length)) : new RequestShape(true, false, null, length);
        }
        finally
        {
            if (pooled)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    private void Record(HttpContext context, string? key, byte[] body)
    {
        var request = context.Request;
        var headers = new Dictionary<string, string>(request.Headers.Count, StringComparer.OrdinalIgnoreCase);
        foreach (var (name, values) in request.Headers)
        {
            headers[name.ToLowerInvariant()] = values.Count == 1 ? values[0] ?? string.Empty : string.Join(", ", (IEnumerable<string?>)values);
        }

        var target = context.Features.Get<IHttpRequestFeature>()?.RawTarget is { Length: > 0 } raw
            ? raw
            : string.Concat(request.PathBase.Value, request.Path.Value, request.QueryString.Value);
        var recorded = new RecordedRequest(request.Method, target, headers, body, key);
        lock (_requests)
        {
            _requests.Add(recorded);
        }

        Interlocked.Increment(ref _requestCount);
    }

    private UpstreamFault? TakeUpstreamFault()
    {
        if (Volatile.Read(ref _pendingUpstreamFaults) == 0)
        {
            return null;
        }

        lock (_upstreamFaults)
        {
            if (!_upstreamFaults.TryPeek(out var next))
            {
                return null;
            }

            _pendingUpstreamFaults--;
            if (--next.Remaining == 0)
            {
                _upstreamFaults.Dequeue();
            }

            return next.Fault;
        }
    }

    private async Task FailUpstreamAsync(HttpContext context, Dialect dialect, UpstreamFault fault)
    {
        var anthropic = dialect == Dialect.Anthropic;
        switch (fault)
        {
            case UpstreamFault.ResetConnection:
                context.Abort();
                return;
            case UpstreamFault.Hang:
                using (var linked = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _stopping.Token))
                {
                    try
                    {
                        await Task.Delay(Timeout.Infinite, linked.Token);
                    }
                    catch (OperationCanceledException)
                    {
                        // Expected: the only way out.
                    }
                }

                EndAbandoned(context, completed: false);
                return;
            case UpstreamFault.Overloaded:
                WriteError(context, dialect, new ErrorReply(529, anthropic ? "overloaded_error" : "server_error", anthropic ? "Overloaded" : "The server is overloaded. Please try again later.", anthropic ? null : "overloaded"));
                return;
            case UpstreamFault.InternalError:
                WriteError(context, dialect, new ErrorReply(500, anthropic ? "api_error" : "server_error", anthropic ? "Internal server error" : "The server had an error while processing your request. Sorry about that!", null));
                return;
            case UpstreamFault.BadGateway:
                WriteError(context, dialect, new ErrorReply(502, anthropic ? "api_error" : "server_error", "Bad gateway", null));
                return;
            case UpstreamFault.Unavailable:
                WriteError(context, dialect, new ErrorReply(503, anthropic ? "api_error" : "server_error", "Service unavailable", null));
                return;
            case UpstreamFault.GatewayTimeout:
                WriteError(context, dialect, new ErrorReply(504, anthropic ? "timeout_error" : "server_error", "Request timed out", anthropic ? null : "timeout"));
                return;
            default:
                throw new ArgumentOutOfRangeException(nameof(fault), fault, null);
        }
    }

    private void FailKey(HttpContext context, Dialect dialect, string key, KeyFault fault, TimeSpan retryAfter)
    {
        var anthropic = dialect == Dialect.Anthropic;
        var reply = fault switch
        {
            KeyFault.Revoked => anthropic
                ? new ErrorReply(401, "authentication_error", "invalid x-api-key", null)
                : new ErrorReply(401, "invalid_request_error", $"Incorrect API key provided: {MaskLikeOpenAI(key)}. You can find your API key at https://platform.openai.com/account/api-keys.", "invalid_api_key"),
            KeyFault.OAuthRejected => new ErrorReply(403, anthropic ? "permission_error" : "invalid_request_error",
                "OAuth authentication is currently not allowed for this organization.", anthropic ? null : "permission_denied"),
            KeyFault.Billing => anthropic
                ? new ErrorReply(402, "billing_error", "This organization has an unpaid invoice. Please go to Plans & Billing to settle it.", null)
                : new ErrorReply(402, "invalid_request_error", "Your account is not active, please check your billing details on our website.", "billing_not_active"),
            KeyFault.NoCredit => new ErrorReply(400, "invalid_request_error", anthropic
                ? "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."
                : "Your credit balance is too low to access the OpenAI API. Please go to Billing to purchase credits.", null),
            KeyFault.SpendLimit => anthropic
                ? new ErrorReply(429, "rate_limit_error", $"You have reached your specified API usage limits. You will regain access on {FirstOfNextMonth():yyyy-MM-dd} at 00:00 UTC.", "enforced_spend_limit_reached")
                : new ErrorReply(429, "insufficient_quota", "Billing hard limit has been reached.", "billing_hard_limit_reached"),
            KeyFault.InsufficientQuota => new ErrorReply(429, anthropic ? "rate_limit_error" : "insufficient_quota",
                "You exceeded your current quota, please check your plan and billing details.", "insufficient_quota"),
            KeyFault.RateLimited => RateLimited(context, anthropic, retryAfter),
            _ => throw new ArgumentOutOfRangeException(nameof(fault), fault, null),
        };
        WriteError(context, dialect, reply);
    }

    private ErrorReply RateLimited(HttpContext context, bool anthropic, TimeSpan retryAfter)
    {
        var seconds = Math.Max(0, (long)Math.Ceiling(retryAfter.TotalSeconds));
        var secondsText = seconds.ToString(CultureInfo.InvariantCulture);
        var headers = context.Response.Headers;
        headers.RetryAfter = secondsText;
        if (anthropic)
        {
            // RFC 3339 in whole seconds, rounded up so the named reset is never earlier than the real one.
            var reset = _time.GetUtcNow() + retryAfter;
            var wholeSeconds = (reset.UtcTicks + TimeSpan.TicksPerSecond - 1) / TimeSpan.TicksPerSecond * TimeSpan.TicksPerSecond;
            headers["anthropic-ratelimit-requests-limit"] = "50";
            headers["anthropic-ratelimit-requests-remaining"] = "0";
            headers["anthropic-ratelimit-requests-reset"] = new DateTimeOffset(wholeSeconds, TimeSpan.Zero).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
            return new ErrorReply(429, "rate_limit_error",
                "This request would exceed your organization's rate limit of 50 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please try again later.", null);
        }

        headers["x-ratelimit-limit-requests"] = "50";
        headers["x-ratelimit-remaining-requests"] = "0";
        headers["x-ratelimit-reset-requests"] = secondsText + "s";
        return new ErrorReply(429, "requests",
            $"Rate limit reached for requests in organization org-simulated on requests per min (RPM): Limit 50, Used 50, Requested 1. Please try again in {secondsText}s. Visit https://platform.openai.com/account/rate-limits to learn more.",
            "rate_limit_exceeded");
    }

    private DateTimeOffset FirstOfNextMonth()
    {
        var now = _time.GetUtcNow();
        return new DateTimeOffset(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero).AddMonths(1);
    }

    // OpenAI echoes a key as its first characters and last four with stars between.
    private static string MaskLikeOpenAI(string key)
        => key.Length <= 8 ? new string('*', key.Length) : string.Concat(key.AsSpan(0, 3), new string('*', key.Length - 7), key.AsSpan(key.Length - 4));

    private Task MessagesAsync(HttpContext context, RequestShape shape)
    {
        if (!shape.IsValidJson)
        {
            WriteError(context, Dialect.Anthropic, new ErrorReply(400, "invalid_request_error", "There was an error parsing the body of your request: it is not a valid JSON object.", null));
            return Task.CompletedTask;
        }

        if (shape.Stream)
        {
            return StreamAsync(context, Dialect.Anthropic, shape, 6 + Math.Max(0, StreamDeltas));
        }

        WriteJson(context, Dialect.Anthropic, 200, shape, static (json, shape, upstream) =>
        {
            json.WriteString("id"u8, NewId("msg_01", 22));
            json.WriteString("type"u8, "message"u8);
            json.WriteString("role"u8, "assistant"u8);
            json.WriteString("model"u8, shape.Model ?? DefaultAnthropicModel);
            json.WriteStartArray("content"u8);
            json.WriteStartObject();
            json.WriteString("type"u8, "text"u8);
            json.WriteString("text"u8, ReplyText);
            json.WriteEndObject();
            json.WriteEndArray();
            json.WriteString("stop_reason"u8, "end_turn"u8);
            json.WriteNull("stop_sequence"u8);
            json.WriteStartObject("usage"u8);
            json.WriteNumber("input_tokens"u8, shape.InputTokens);
            json.WriteNumber("output_tokens"u8, OutputTokens);
            json.WriteEndObject();
        });
        return Task.CompletedTask;
    }

    private Task ChatCompletionsAsync(HttpContext context, RequestShape shape)
    {
        if (!shape.IsValidJson)
        {
            WriteInvalidOpenAIBody(context);
            return Task.CompletedTask;
        }

        if (shape.Stream)
        {
            return StreamAsync(context, Dialect.OpenAI, shape, 3 + Math.Max(0, StreamDeltas));
        }

        WriteJson(context, Dialect.OpenAI, 200, shape, static (json, shape, upstream) =>
        {
            json.WriteString("id"u8, NewId("chatcmpl-", 24));
            json.WriteString("object"u8, "chat.completion"u8);
            json.WriteNumber("created"u8, upstream._time.GetUtcNow().ToUnixTimeSeconds());
            json.WriteString("model"u8, shape.Model ?? DefaultOpenAIModel);
            json.WriteStartArray("choices"u8);
            json.WriteStartObject();
            json.WriteNumber("index"u8, 0);
            json.WriteStartObject("message"u8);
            json.WriteString("role"u8, "assistant"u8);
            json.WriteString("content"u8, ReplyText);
            json.WriteNull("refusal"u8);
            json.WriteEndObject();
            json.WriteNull("logprobs"u8);
            json.WriteString("finish_reason"u8, "stop"u8);
            json.WriteEndObject();
            json.WriteEndArray();
            WriteOpenAIUsage(json, shape);
        });
        return Task.CompletedTask;
    }

    private Task WithValidBodyAsync(HttpContext context, RequestShape shape, Action<Utf8JsonWriter, RequestShape, SimulatedUpstream> write)
    {
        if (shape.IsValidJson)
        {
            WriteJson(context, Dialect.OpenAI, 200, shape, write);
        }
        else
        {
            WriteInvalidOpenAIBody(context);
        }

        return Task.CompletedTask;
    }

    private static void WriteInvalidOpenAIBody(HttpContext context)
        => WriteError(context, Dialect.OpenAI, new ErrorReply(400, "invalid_request_error",
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)", null));

    private static void WriteTextCompletion(Utf8JsonWriter json, RequestShape shape, SimulatedUpstream upstream)
    {
        json.WriteString("id"u8, NewId("cmpl-", 24));
        json.WriteString("object"u8, "text_completion"u8);
        json.WriteNumber("created"u8, upstream._time.GetUtcNow().ToUnixTimeSeconds());
        json.WriteString("model"u8, shape.Model ?? "gpt-3.5-turbo-instruct");
        json.WriteStartArray("choices"u8);
        json.WriteStartObject();
        json.WriteString("text"u8, ReplyText);
        json.WriteNumber("index"u8, 0);
        json.WriteNull("logprobs"u8);
        json.WriteString("finish_reason"u8, "stop"u8);
        json.WriteEndObject();
        json.WriteEndArray();
        WriteOpenAIUsage(json, shape);
    }

    private static void WriteEmbeddings(Utf8JsonWriter json, RequestShape shape, SimulatedUpstream upstream)
    {
        json.WriteString("object"u8, "list"u8);
        json.WriteStartArray("data"u8);
        json.WriteStartObject();
        json.WriteString("object"u8, "embedding"u8);
        json.WriteNumber("index"u8, 0);
        json.WriteStartArray("embedding"u8);
        for (var i = 0; i < 8; i++)
        {
            json.WriteNumberValue(Math.Round(Math.Sin(i + 1) / 10, 6));
        }

        json.WriteEndArray();
        json.WriteEndObject();
        json.WriteEndArray();
        json.WriteString("model"u8, shape.Model ?? "text-embedding-3-small");
        json.WriteStartObject("usage"u8);
        json.WriteNumber("prompt_tokens"u8, shape.InputTokens);
        json.WriteNumber("total_tokens"u8, shape.InputTokens);
        json.WriteEndObject();
    }

    private static void WriteResponse(Utf8JsonWriter json, RequestShape shape, SimulatedUpstream upstream)
    {
        json.WriteString("id"u8, NewId("resp_", 32));
        json.WriteString("object"u8, "response"u8);
        json.WriteNumber("created_at"u8, upstream._time.GetUtcNow().ToUnixTimeSeconds());
        json.WriteString("status"u8, "completed"u8);
        json.WriteString("model"u8, shape.Model ?? DefaultOpenAIModel);
        json.WriteStartArray("output"u8);
        json.WriteStartObject();
        json.WriteString("type"u8, "message"u8);
        json.WriteString("id"u8, NewId("msg_", 32));
        json.WriteString("status"u8, "completed"u8);
        json.WriteString("role"u8, "assistant"u8);
        json.WriteStartArray("content"u8);
        json.WriteStartObject();
        json.WriteString("type"u8, "output_text"u8);
        json.WriteString("text"u8, ReplyText);
        json.WriteStartArray("annotations"u8);
        json.WriteEndArray();
        json.WriteEndObject();
        json.WriteEndArray();
        json.WriteEndObject();
        json.WriteEndArray();
        json.WriteStartObject("usage"u8);
        json.WriteNumber("input_tokens"u8, shape.InputTokens);
        json.WriteNumber("output_tokens"u8, OutputTokens);
        json.WriteNumber("total_tokens"u8, shape.InputTokens + OutputTokens);
        json.WriteEndObject();
    }

    private static void WriteOpenAIUsage(Utf8JsonWriter json, RequestShape shape)
    {
        json.WriteStartObject("usage"u8);
        json.WriteNumber("prompt_tokens"u8, shape.InputTokens);
        json.WriteNumber("completion_tokens"u8, OutputTokens);
        json.WriteNumber("total_tokens"u8, shape.InputTokens + OutputTokens);
        json.WriteEndObject();
    }

    /// <summary>Streams <paramref name="events"/> SSE events, each flushed on its own so a proxy that buffers shows up in tests.</summary>
    private async Task StreamAsync(HttpContext context, Dialect dialect, RequestShape shape, int events)
    {
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        AddDialectHeaders(context, dialect);
        var deltas = events - (dialect == Dialect.Anthropic ? 6 : 3);
        var id = dialect == Dialect.Anthropic ? NewId("msg_01", 22) : NewId("chatcmpl-", 24);
        var created = _time.GetUtcNow().ToUnixTimeSeconds();
        var gate = BeforeStreamEvent;
        var completed = false;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _stopping.Token);
        var cancellationToken = linked.Token;
        try
        {
            // Headers go out before the first event, so a caller sees the response start even while event 0 is held back.
            await response.StartAsync(cancellationToken);
            await response.BodyWriter.FlushAsync(cancellationToken);
            for (var index = 0; index < events; index++)
            {
                if (gate is not null)
                {
                    await gate(index, cancellationToken);
                }

                var buffer = ReplyBuffer.Rent();
                try
                {
                    if (dialect == Dialect.Anthropic)
                    {
                        WriteAnthropicEvent(buffer, index, deltas, id, shape);
                    }
                    else
                    {
                        WriteChatChunk(buffer, index, deltas, id, created, shape);
                    }

                    response.BodyWriter.Write(buffer.Written);
                }
                finally
                {
                    buffer.Return();
                }

                await response.BodyWriter.FlushAsync(cancellationToken);
                cancellationToken.ThrowIfCancellationRequested();
            }

            completed = true;
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // The caller left or the server is stopping; EndAbandoned tells which.
        }

        EndAbandoned(context, completed);
    }

    private static void WriteAnthropicEvent(ReplyBuffer buffer, int index, int deltas, string id, RequestShape shape)
    {
        switch (index < 3 ? index : index < 3 + deltas ? 3 : index - deltas + 1)
        {
            case 0:
                buffer.Raw("event: message_start\ndata: "u8);
                var json = buffer.BeginJson();
                json.WriteStartObject();
                json.WriteString("type"u8, "message_start"u8);
                json.WriteStartObject("message"u8);
                json.WriteString("id"u8, id);
                json.WriteString("type"u8, "message"u8);
                json.WriteString("role"u8, "assistant"u8);
                json.WriteString("model"u8, shape.Model ?? DefaultAnthropicModel);
                json.WriteStartArray("content"u8);
                json.WriteEndArray();
                json.WriteNull("stop_reason"u8);
                json.WriteNull("stop_sequence"u8);
                json.WriteStartObject("usage"u8);
                json.WriteNumber("input_tokens"u8, shape.InputTokens);
                json.WriteNumber("output_tokens"u8, 1);
                json.WriteEndObject();
                json.WriteEndObject();
                json.WriteEndObject();
                buffer.EndJson();
                buffer.Raw("\n\n"u8);
                break;
            case 1:
                buffer.Raw("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"u8);
                break;
            case 2:
                buffer.Raw("event: ping\ndata: {\"type\":\"ping\"}\n\n"u8);
                break;
            case 3:
                buffer.Raw("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":"u8);
                var text = buffer.BeginJson();
                text.WriteStringValue(DeltaText(index - 3));
                buffer.EndJson();
                buffer.Raw("}}\n\n"u8);
                break;
            case 4:
                buffer.Raw("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"u8);
                break;
            case 5:
                // output_tokens is OutputTokens, as in the non-streaming answer.
                buffer.Raw("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":9}}\n\n"u8);
                break;
            default:
                buffer.Raw("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"u8);
                break;
        }
    }

    private static void WriteChatChunk(ReplyBuffer buffer, int index, int deltas, string id, long created, RequestShape shape)
    {
        if (index == deltas + 2)
        {
            buffer.Raw("data: [DONE]\n\n"u8);
            return;
        }

        buffer.Raw("data: "u8);
        var json = buffer.BeginJson();
        json.WriteStartObject();
        json.WriteString("id"u8, id);
        json.WriteString("object"u8, "chat.completion.chunk"u8);
        json.WriteNumber("created"u8, created);
        json.WriteString("model"u8, shape.Model ?? DefaultOpenAIModel);
        json.WriteStartArray("choices"u8);
        json.WriteStartObject();
        json.WriteNumber("index"u8, 0);
        json.WriteStartObject("delta"u8);
        if (index == 0)
        {
            json.WriteString("role"u8, "assistant"u8);
            json.WriteString("content"u8, ""u8);
        }
        else if (index <= deltas)
        {
            json.WriteString("content"u8, DeltaText(index - 1));
        }

        json.WriteEndObject();
        json.WriteNull("logprobs"u8);
        if (index == deltas + 1)
        {
            json.WriteString("finish_reason"u8, "stop"u8);
        }
        else
        {
            json.WriteNull("finish_reason"u8);
        }

        json.WriteEndObject();
        json.WriteEndArray();
        json.WriteEndObject();
        buffer.EndJson();
        buffer.Raw("\n\n"u8);
    }

    // With the default five deltas the text reassembles to ReplyText.
    private static string DeltaText(int delta) => delta < ReplyWords.Length ? ReplyWords[delta] : " more";

    /// <summary>Settles a request that did not finish normally: a caller that left is counted, a stopping server cuts the connection.</summary>
    private void EndAbandoned(HttpContext context, bool completed)
    {
        if (completed)
        {
            return;
        }

        if (context.RequestAborted.IsCancellationRequested)
        {
            if (Interlocked.Increment(ref _abortedRequests) == 1)
            {
                _firstAbort.TrySetResult();
            }
        }
        else
        {
            context.Abort();
        }
    }

    private static void WriteError(HttpContext context, Dialect dialect, ErrorReply error)
        => WriteJsonBody(context, dialect, error.Status, error, dialect == Dialect.Anthropic ? WriteAnthropicError : WriteOpenAIError);

    private static void WriteAnthropicError(Utf8JsonWriter json, ErrorReply error, string requestId)
    {
        json.WriteString("type"u8, "error"u8);
        json.WriteStartObject("error"u8);
        json.WriteString("type"u8, error.Type);
        json.WriteString("message"u8, error.Message);
        if (error.Code is not null)
        {
            json.WriteStartObject("details"u8);
            json.WriteString("error_code"u8, error.Code);
            json.WriteEndObject();
        }

        json.WriteEndObject();
        json.WriteString("request_id"u8, requestId);
    }

    private static void WriteOpenAIError(Utf8JsonWriter json, ErrorReply error, string requestId)
    {
        json.WriteStartObject("error"u8);
        json.WriteString("message"u8, error.Message);
        json.WriteString("type"u8, error.Type);
        json.WriteNull("param"u8);
        if (error.Code is null)
        {
            json.WriteNull("code"u8);
        }
        else
        {
            json.WriteString("code"u8, error.Code);
        }

        json.WriteEndObject();
    }

    private void WriteJson(HttpContext context, Dialect dialect, int status, RequestShape shape, Action<Utf8JsonWriter, RequestShape, SimulatedUpstream> write)
        => WriteJsonBody(context, dialect, status, (Shape: shape, Self: this, Write: write), static (json, state, _) => state.Write(json, state.Shape, state.Self));

    /// <summary>Writes a whole JSON object body with its Content-Length; Kestrel sends it with the headers when the handler returns.</summary>
    private static void WriteJsonBody<TState>(HttpContext context, Dialect dialect, int status, TState state, Action<Utf8JsonWriter, TState, string> writeMembers)
    {
        var response = context.Response;
        var requestId = AddDialectHeaders(context, dialect);
        var buffer = ReplyBuffer.Rent();
        try
        {
            var json = buffer.BeginJson();
            json.WriteStartObject();
            writeMembers(json, state, requestId);
            json.WriteEndObject();
            buffer.EndJson();
            response.StatusCode = status;
            response.ContentType = "application/json";
            response.ContentLength = buffer.Written.Length;
            response.BodyWriter.Write(buffer.Written);
        }
        finally
        {
            buffer.Return();
        }
    }

    private static void WriteConstant(HttpContext context, Dialect dialect, ReadOnlySpan<byte> body)
    {
        AddDialectHeaders(context, dialect);
        var response = context.Response;
        response.ContentType = "application/json";
        response.ContentLength = body.Length;
        response.BodyWriter.Write(body);
    }

    private static string AddDialectHeaders(HttpContext context, Dialect dialect)
    {
        var requestId = NewId("req_011C", 20);
        var headers = context.Response.Headers;
        if (dialect == Dialect.Anthropic)
        {
            headers["request-id"] = requestId;
            headers["anthropic-organization-id"] = OrganizationId;
        }
        else
        {
            headers["x-request-id"] = requestId;
        }

        return requestId;
    }

    private static string NewId(string prefix, int randomChars)
        => string.Create(prefix.Length + randomChars, prefix, static (span, prefix) =>
        {
            prefix.AsSpan().CopyTo(span);
            Random.Shared.GetItems("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", span[prefix.Length..]);
        });

    /// <summary>One <see cref="FailNext"/> call: a fault and how many more requests it takes.</summary>
    private sealed class FaultBatch(UpstreamFault fault, int count)
    {
        public UpstreamFault Fault => fault;

        public int Remaining { get; set; } = count;
    }

    private readonly record struct ErrorReply(int Status, string Type, string Message, string? Code);

    /// <summary>What the fake needs from a request body: whether it is a JSON object, <c>stream</c>, <c>model</c> and its size.</summary>
    private readonly record struct RequestShape(bool IsValidJson, bool Stream, string? Model, int Length)
    {
        public int InputTokens => Math.Max(1, Length / 4);

        public static RequestShape Parse(ReadOnlySpan<byte> body)
        {
            var stream = false;
            string? model = null;
            try
            {
                var reader = new Utf8JsonReader(body);
                if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                {
                    return new RequestShape(false, false, null, body.Length);
                }

                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var isStream = reader.ValueTextEquals("stream"u8);
                    var isModel = !isStream && reader.ValueTextEquals("model"u8);
                    reader.Read();
                    if (isStream)
                    {
                        stream = reader.TokenType == JsonTokenType.True;
                    }
                    else if (isModel && reader.TokenType == JsonTokenType.String)
                    {
                        model = reader.GetString();
                    }

                    reader.Skip();
                }

                // Reading past the object makes the reader reject trailing garbage.
                while (reader.Read())
                {
                }

                return new RequestShape(true, stream, model, body.Length);
            }
            catch (JsonException)
            {
                return new RequestShape(false, false, null, body.Length);
            }
        }
    }

    /// <summary>A reusable buffer and JSON writer per thread: the hot path builds a reply without allocating one.</summary>
    private sealed class ReplyBuffer : IDisposable
    {
        private const int KeepCapacity = 64 * 1024;
        private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

        [ThreadStatic]
        private static ReplyBuffer? _cached;

        private readonly ArrayBufferWriter<byte> _bytes = new(2048);
        private readonly Utf8JsonWriter _json;

        private ReplyBuffer() => _json = new Utf8JsonWriter(_bytes, WriterOptions);

        public ReadOnlySpan<byte> Written => _bytes.WrittenSpan;

        public static ReplyBuffer Rent()
        {
            var buffer = _cached ?? new ReplyBuffer();
            _cached = null;
            return buffer;
        }

        public void Raw(ReadOnlySpan<byte> bytes) => _bytes.Write(bytes);

        public Utf8JsonWriter BeginJson()
        {
            _json.Reset(_bytes);
            return _json;
        }

        public void EndJson() => _json.Flush();

        public void Return()
        {
            _bytes.ResetWrittenCount();
            if (_bytes.Capacity <= KeepCapacity)
            {
                _cached = this;
            }
            else
            {
                Dispose();
            }
        }

        public void Dispose() => _json.Dispose();
    }
}
