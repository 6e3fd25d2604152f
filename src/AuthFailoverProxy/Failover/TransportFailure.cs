using System.Security.Authentication;

namespace AuthFailoverProxy.Failover;

/// <summary>
/// Says in plain words why a call to the upstream failed before it had an answer, for the agent's 502 and the log: an
/// operator reading "the TLS handshake failed: … UntrustedRoot" knows to set <c>Transport:CaBundle</c>, where "could
/// not be reached" would send them looking at the network. Exception messages from the HTTP stack name hosts and TLS
/// errors, never headers, so no credential can appear here.
/// </summary>
internal static class TransportFailure
{
    /// <summary>Describes the failure, with the setting of <paramref name="pool"/> that most likely fixes it, if one does.</summary>
    public static string Describe(Exception? exception, string? pool = null)
    {
        var http = Find<HttpRequestException>(exception);
        var setting = pool is null ? "Transport" : $"Pools:{pool}:Transport";
        return http?.HttpRequestError switch
        {
            HttpRequestError.SecureConnectionError when Find<AuthenticationException>(http) is { } tls && tls.Message.Contains("certificate chain", StringComparison.Ordinal)
                => $"the TLS handshake failed ({Detail(tls)}): the upstream's certificate is not trusted; if it comes from a private or corporate CA, set {setting}:CaBundle",
            HttpRequestError.SecureConnectionError => $"the TLS handshake failed ({Detail(Find<AuthenticationException>(http) ?? (Exception)http)}); " +
                $"check the upstream's name and, for a gateway, {setting}:ClientCertificate and {setting}:HttpVersion",
            HttpRequestError.NameResolutionError => $"its name could not be resolved ({Detail(http)})",
            HttpRequestError.ConnectionError => $"the connection failed ({Detail(http.InnerException ?? http)})",
            HttpRequestError.VersionNegotiationError => $"it does not speak the HTTP version asked for ({Detail(http)}; see Transport:HttpVersion)",
            HttpRequestError.HttpProtocolError or HttpRequestError.InvalidResponse or HttpRequestError.ResponseEnded => $"it broke off the HTTP exchange ({Detail(http)})",
            _ when exception is not null => $"the call failed ({Detail(http ?? exception)})",
            _ => "the call failed",
        };
    }

    private static T? Find<T>(Exception? exception)
        where T : Exception
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is T found)
            {
                return found;
            }
        }

        return null;
    }

    /// <summary>The message of <paramref name="exception"/> and of the causes it only points to ("see inner exception").</summary>
    private static string Detail(Exception exception)
    {
        var text = exception.Message.TrimEnd('.');
        for (var e = exception; e.InnerException is { } inner && e.Message.Contains("inner exception", StringComparison.OrdinalIgnoreCase); e = inner)
        {
            text = inner.Message.TrimEnd('.');
        }

        return text;
    }
}
