using System.Globalization;
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

    /// <summary>404: no pool serves this path.</summary>
    NoPool,

    /// <summary>400 (or the server's own 4xx): the request could not be read.</summary>
    BadRequest,

    /// <summary>503: the pool's upstream is down and its circuit breaker is open.</summary>
    CircuitOpen,
}

/// <summary>
/// Writes an error body the agent's SDK already understands: Anthropic's
/// <c>{"type":"error","error":{"type","message"}}</c> or OpenAI's <c>{"error":{"message","type","param","code"}}</c>.
/// Messages start with "AuthFailoverProxy:" so a human can tell the proxy's voice from the provider's.
/// </summary>
internal static class ProviderErrorResponse
{
    private const string Voice = "AuthFailoverProxy: ";

    public static Task WriteAsync(HttpContext context, ProviderKind kind, ProxyErrorKind error, string message, TimeSpan? retryAfter = null, int? statusCode = null)
    {
        var (status, anthropicType, openAIType, openAICode) = error switch
        {
            ProxyErrorKind.ClientUnauthorized => (401, "authentication_error", "invalid_request_error", "invalid_api_key"),
            ProxyErrorKind.RequestTooLarge => (413, "request_too_large", "invalid_request_error", "request_too_large"),
            ProxyErrorKind.NoUsableKey => (503, "api_error", "server_error", "no_usable_key"),
            ProxyErrorKind.UpstreamUnreachable => (502, "api_error", "server_error", "upstream_unreachable"),
            ProxyErrorKind.UpstreamTimeout => (504, "timeout_error", "server_error", "upstream_timeout"),
            ProxyErrorKind.NoPool => (404, "not_found_error", "invalid_request_error", "not_found"),
            ProxyErrorKind.CircuitOpen => (503, "api_error", "server_error", "upstream_circuit_open"),
            ProxyErrorKind.BadRequest => (statusCode ?? 400, "invalid_request_error", "invalid_request_error", "invalid_request"),
            _ => throw new ArgumentOutOfRangeException(nameof(error), error, null),
        };

        var response = context.Response;
        response.StatusCode = status;
        response.ContentType = "application/json";
        if (retryAfter is { } wait)
        {
            response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        }

        var body = Render(kind, anthropicType, openAIType, openAICode, Voice + message);
        response.ContentLength = body.Length;
        return response.Body.WriteAsync(body, context.RequestAborted).AsTask();
    }

    internal static byte[] Render(ProviderKind kind, string anthropicType, string openAIType, string openAICode, string message)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
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
