using System.Globalization;
using System.Text.Json;

namespace AuthFailoverProxy.Demo.Provider;

// Failures on demand, of the upstream or of one key, and the error bodies of each dialect.
internal sealed partial class SimulatedProvider
{
    private async Task FailUpstreamAsync(HttpContext context, Dialect dialect, UpstreamFault fault, bool stream)
    {
        var anthropic = dialect == Dialect.Anthropic;
        switch (fault)
        {
            case UpstreamFault.OverloadedInStream when stream:
                // 200 and the stream's headers, then an error as the first event, before any content.
                var response = context.Response;
                response.StatusCode = StatusCodes.Status200OK;
                response.ContentType = "text/event-stream";
                response.Headers.CacheControl = "no-cache";
                AddDialectHeaders(context, dialect);
                await response.WriteAsync(anthropic
                    ? "event: error\ndata: {\"type\":\"error\",\"error\":{\"details\":null,\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
                    : "data: {\"error\":{\"message\":\"The server is overloaded. Please try again later.\",\"type\":\"server_error\",\"param\":null,\"code\":\"overloaded\"}}\n\n");
                return;
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
            case UpstreamFault.Overloaded or UpstreamFault.OverloadedInStream:
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
            KeyFault.ClaudeCodeOnly => new ErrorReply(400, "invalid_request_error", "This credential is only authorized for use with Claude Code and cannot be used for other API requests.", null),
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
        if (error.Param is null)
        {
            json.WriteNull("param"u8);
        }
        else
        {
            json.WriteString("param"u8, error.Param);
        }

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

    private readonly record struct ErrorReply(int Status, string Type, string Message, string? Code)
    {
        /// <summary>Gets the request field an OpenAI error is about, if any.</summary>
        public string? Param { get; init; }
    }
}
