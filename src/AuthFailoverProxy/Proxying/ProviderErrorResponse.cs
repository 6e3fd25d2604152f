using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using AuthFailoverProxy.KeyPool;

namespace AuthFailoverProxy.Proxying;

/// <summary>The errors the proxy itself answers with, in the dialect of the pool the agent called.</summary>
internal enum ProxyErrorKind
{
    /// <summary>401: missing or wrong client token.</summary>
    ClientUnauthorized,

    /// <summary>413: the request body is over the limit.</summary>
    RequestTooLarge,

    /// <summary>503: no key in the pool can serve.</summary>
    NoUsableKey,

    /// <summary>502: the upstream could not be reached or broke the connection.</summary>
    UpstreamUnreachable,

    /// <summary>504: the upstream did not answer in time.</summary>
    UpstreamTimeout,

    /// <summary>404: no pool serves this path, or the path cannot be right (a doubled <c>/v1</c>).</summary>
    NotFound,

    /// <summary>405: a method a reverse proxy for a provider's API does not forward (CONNECT, TRACE…).</summary>
    MethodNotAllowed,

    /// <summary>400 (or the server's own 4xx): the request could not be read.</summary>
    BadRequest,

    /// <summary>503: the pool's upstream is down and its circuit breaker is open.</summary>
    CircuitOpen,

    /// <summary>503: the proxy itself has no room for the request right now (its spill for large bodies is full).</summary>
    Busy,

    /// <summary>429: the client has started all the requests its budget allows in this window.</summary>
    RequestBudgetSpent,

    /// <summary>429: the client has spent all the tokens its budget allows in this window.</summary>
    TokenBudgetSpent,
}

/// <summary>
/// Writes an error body the agent's SDK already understands: Anthropic's
/// <c>{"type":"error","error":{"type","message"}}</c> or OpenAI's <c>{"error":{"message","type","param","code"}}</c>.
/// Messages start with "AuthFailoverProxy:" so a human can tell the proxy's voice from the provider's. The headers tell
/// the SDK whether to try again: the SDKs retry 408, 409, 429 and 5xx unless told <c>x-should-retry: false</c>, and obey
/// <c>retry-after</c> only below 60 s, so an answer a retry cannot change says so, and an agent shows it at once instead
/// of after minutes of retries (Claude Code retries 10 times).
/// </summary>
internal static class ProviderErrorResponse
{
    private const string Voice = "AuthFailoverProxy: ";

    /// <summary>The longest <c>retry-after</c> the SDKs obey; past it they fall back to their own short backoff.</summary>
    internal static readonly TimeSpan LongestObeyedRetryAfter = TimeSpan.FromSeconds(60);

    // Readable as written: the default encoder escapes ' and … as \u0027 and \u2026. The body is JSON, never HTML.
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Answers the agent in <paramref name="kind"/>'s error format.</summary>
    /// <param name="context">The agent's request.</param>
    /// <param name="kind">The dialect of the pool the agent called.</param>
    /// <param name="error">What went wrong: sets the status and the error type.</param>
    /// <param name="message">What happened and what to do, in plain words.</param>
    /// <param name="retryAfter">When trying again can succeed, if it can; sent as <c>retry-after</c>.</param>
    /// <param name="statusCode">A status other than the error's usual one.</param>
    /// <param name="upstreamRequestId">The request id of the last upstream answer behind this one, passed back as the provider names it.</param>
    public static Task WriteAsync(HttpContext context, ProviderKind kind, ProxyErrorKind error, string message, TimeSpan? retryAfter = null, int? statusCode = null, string? upstreamRequestId = null)
    {
        var (status, anthropicType, openAIType, openAICode) = error switch
        {
            ProxyErrorKind.ClientUnauthorized => (401, "authentication_error", "invalid_request_error", "invalid_api_key"),
            ProxyErrorKind.RequestTooLarge => (413, "request_too_large", "invalid_request_error", "request_too_large"),
            ProxyErrorKind.NoUsableKey => (503, "api_error", "server_error", "no_usable_key"),
            ProxyErrorKind.UpstreamUnreachable => (502, "api_error", "server_error", "upstream_unreachable"),
            ProxyErrorKind.UpstreamTimeout => (504, "timeout_error", "server_error", "upstream_timeout"),
            ProxyErrorKind.NotFound => (404, "not_found_error", "invalid_request_error", "not_found"),
            ProxyErrorKind.MethodNotAllowed => (405, "invalid_request_error", "invalid_request_error", "method_not_allowed"),
            ProxyErrorKind.CircuitOpen => (503, "api_error", "server_error", "upstream_circuit_open"),
            ProxyErrorKind.Busy => (503, "overloaded_error", "server_error", "proxy_busy"),
            ProxyErrorKind.BadRequest => (statusCode ?? 400, "invalid_request_error", "invalid_request_error", "invalid_request"),
            // Shaped like the provider's own rate limit, so the SDKs back off as they would from it.
            ProxyErrorKind.RequestBudgetSpent => (429, "rate_limit_error", "requests", "rate_limit_exceeded"),
            ProxyErrorKind.TokenBudgetSpent => (429, "rate_limit_error", "tokens", "rate_limit_exceeded"),
            _ => throw new ArgumentOutOfRangeException(nameof(error), error, null),
        };

        var response = context.Response;
        response.StatusCode = status;
        response.ContentType = "application/json";
        if (retryAfter is { } wait)
        {
            response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        }

        if (!WorthRetrying(error, retryAfter))
        {
            response.Headers["x-should-retry"] = "false";
        }

        if (upstreamRequestId is not null)
        {
            response.Headers[kind == ProviderKind.Anthropic ? "request-id" : "x-request-id"] = upstreamRequestId;
        }

        var body = Render(kind, anthropicType, openAIType, openAICode, Voice + message);
        response.ContentLength = body.Length;
        return response.Body.WriteAsync(body, context.RequestAborted).AsTask();
    }

    /// <summary>
    /// Returns whether the agent should try again: when the upstream may be back (it failed, or its circuit is open),
    /// and, when no key can serve or a client's budget is spent, only if that ends within the time the SDKs wait. Never for the agent's own
    /// mistakes (token, size, path, method), which a retry cannot change.
    /// </summary>
    internal static bool WorthRetrying(ProxyErrorKind error, TimeSpan? retryAfter) => error switch
    {
        ProxyErrorKind.NoUsableKey or ProxyErrorKind.RequestBudgetSpent or ProxyErrorKind.TokenBudgetSpent => retryAfter is { } wait && wait <= LongestObeyedRetryAfter,
        ProxyErrorKind.CircuitOpen or ProxyErrorKind.UpstreamUnreachable or ProxyErrorKind.UpstreamTimeout or ProxyErrorKind.Busy => true,
        _ => false,
    };

    internal static byte[] Render(ProviderKind kind, string anthropicType, string openAIType, string openAICode, string message)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, WriterOptions))
        {
            json.WriteStartObject();
            if (kind == ProviderKind.Anthropic)
            {
                json.WriteString("type"u8, "error"u8);
                json.WriteStartObject("error"u8);
                json.WriteString("type"u8, anthropicType);
                json.WriteString("message"u8, message);
                json.WriteEndObject();
            }
            else
            {
                json.WriteStartObject("error"u8);
                json.WriteString("message"u8, message);
                json.WriteString("type"u8, openAIType);
                json.WriteNull("param"u8);
                json.WriteString("code"u8, openAICode);
                json.WriteEndObject();
            }

            json.WriteEndObject();
        }

        return buffer.ToArray();
    }
}
