using System.Collections.Frozen;
using System.Net.Http.Headers;

namespace AuthFailoverProxy.Proxying;

/// <summary>
/// Which of the agent's headers never go upstream, beyond the hop-by-hop ones YARP already drops. The provider gets
/// what it needs to answer (the body, <c>content-type</c>, <c>anthropic-version</c>, <c>anthropic-beta</c>,
/// <c>user-agent</c>…) and nothing about the agent's network or tracing:
/// <list type="bullet">
/// <item><c>Host</c>: the request carries the upstream's own name, so TLS and a name-routed front see the upstream
/// (removed on every try by <see cref="Failover.FailoverAttempt"/>, not here, since every request has one).</item>
/// <item>forwarding headers (<c>X-Forwarded-*</c>, <c>Forwarded</c>, <c>Via</c>, <c>X-Real-IP</c> and their kin): a
/// provider has no use for an agent's internal addresses; the proxy adds none of its own.</item>
/// <item>trace context (<c>traceparent</c>, <c>tracestate</c>, <c>baggage</c>, the legacy <c>Request-Id</c> and
/// <c>Correlation-Context</c>): only the proxy's own attempt span goes, and only while it traces.</item>
/// <item>credentials other than the pool key's (<c>api-key</c>; <c>x-api-key</c> and <c>Authorization</c> are replaced
/// by <see cref="KeyPool.Pool.Authorize"/>), and the headers that pick the account a key spends
/// (<c>OpenAI-Organization</c>, <c>OpenAI-Project</c>): they belong to the key and are pinned per key when set
/// (<see cref="KeyPool.KeyOptions.OpenAIOrganization"/>), so an agent configured for another organization cannot turn
/// every key's answer into a 401.</item>
/// </list>
/// </summary>
internal static class UpstreamHeaders
{
    private const string ForwardedPrefix = "X-Forwarded-";

    private static readonly FrozenSet<string> NotForwarded = new[]
    {
        "Forwarded",
        "Via",
        "X-Real-IP",
        "X-Original-For",
        "X-Original-Host",
        "X-Original-Proto",
        "X-Client-IP",
        "True-Client-IP",
        "CF-Connecting-IP",
        "traceparent",
        "tracestate",
        "baggage",
        "Request-Id",
        "Correlation-Context",
        "api-key",
        // They choose the account a key spends (OpenAI SDKs send them when configured): the key's, never the agent's.
        "OpenAI-Organization",
        "OpenAI-Project",
    }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Returns the names of the agent's headers that must not go upstream, or null when there are none (the usual
    /// case, which allocates nothing). Read once per request; every try then drops the same names.
    /// </summary>
    public static string[]? FindNotForwarded(IHeaderDictionary headers)
    {
        List<string>? found = null;
        foreach (var (name, _) in headers)
        {
            if (NotForwarded.Contains(name) || name.StartsWith(ForwardedPrefix, StringComparison.OrdinalIgnoreCase))
            {
                (found ??= []).Add(name);
            }
        }

        return found?.ToArray();
    }

    /// <summary>Drops <paramref name="names"/> from an outgoing request.</summary>
    public static void Remove(HttpRequestHeaders headers, string[] names)
    {
        foreach (var name in names)
        {
            headers.Remove(name);
        }
    }
}
