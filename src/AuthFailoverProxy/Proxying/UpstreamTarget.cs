using System.Buffers;
using AuthFailoverProxy.KeyPool;
using Microsoft.AspNetCore.Http.Features;

namespace AuthFailoverProxy.Proxying;

/// <summary>Why an agent's request cannot be forwarded at all, and what to answer: decided before any upstream call.</summary>
/// <param name="Kind">The error to answer with.</param>
/// <param name="Message">What is wrong and what to do, in plain words.</param>
internal readonly record struct ForwardingRefusal(ProxyErrorKind Kind, string Message);

/// <summary>
/// The path and query an agent's request goes upstream with: exactly the bytes the agent sent (so <c>%2F</c> stays
/// <c>%2F</c> instead of becoming <c>%252F</c>), minus the pool's prefix, after the upstream's own base path. Requests
/// that no upstream could answer (methods a reverse proxy does not forward, targets that are not a path, paths that
/// climb out of the upstream's base path, the <c>/v1/v1/</c> of a doubled version segment) are refused here, before any
/// upstream call, so they cost no key, no retry and nothing on the circuit breaker.
/// </summary>
internal static class UpstreamTarget
{
    private const string DoubledVersionText = "/v1/v1";

    /// <summary>Two <c>v1</c> segments in a row, any case: a vectorised search, where an ignore-case IndexOf walks the path.</summary>
    private static readonly SearchValues<string> DoubledVersion = SearchValues.Create([DoubledVersionText], StringComparison.OrdinalIgnoreCase);

    /// <summary>What a path needs for <see cref="ClimbsOut"/> to look further; the paths agents send have none of them.</summary>
    private static readonly SearchValues<char> DotOrEscape = SearchValues.Create(".%\\");

    private static readonly SearchValues<string> DotSegments = SearchValues.Create(["/./", "/../", "%2e", "%2E"], StringComparison.Ordinal);

    /// <summary>Returns the path and query to append to the pool's upstream, or null with the reason it cannot go.</summary>
    public static string? Resolve(HttpContext context, Pool pool, bool prefixed, out ForwardingRefusal refusal)
    {
        refusal = default;
        var request = context.Request;
        if (!IsForwardable(request.Method))
        {
            refusal = new ForwardingRefusal(ProxyErrorKind.MethodNotAllowed, HttpMethods.IsConnect(request.Method)
                ? "CONNECT is not forwarded: this is a reverse proxy, not an HTTP(S) proxy. Point the agent's base URL at it (ANTHROPIC_BASE_URL, OPENAI_BASE_URL) instead of HTTPS_PROXY."
                : $"{request.Method} requests are not forwarded. The provider's API takes GET, POST, PUT, PATCH, DELETE, HEAD and OPTIONS.");
            return null;
        }

        var raw = context.Features.Get<IHttpRequestFeature>()?.RawTarget;
        if (string.IsNullOrEmpty(raw) || raw[0] != '/')
        {
            refusal = new ForwardingRefusal(ProxyErrorKind.BadRequest,
                "the request target is not a path (an absolute URL, or '*'): the agent is using this reverse proxy as a forward proxy. Point its base URL at the proxy (ANTHROPIC_BASE_URL, OPENAI_BASE_URL) instead of HTTP_PROXY.");
            return null;
        }

        var queryStart = raw.IndexOf('?', StringComparison.Ordinal);
        var path = queryStart < 0 ? raw.AsSpan() : raw.AsSpan(0, queryStart);
        if (ClimbsOut(path))
        {
            refusal = new ForwardingRefusal(ProxyErrorKind.BadRequest,
                "the request path has '.' or '..' segments or a backslash; it is not forwarded, so no path can reach outside the upstream's base path.");
            return null;
        }

        var target = prefixed ? WithoutPrefix(raw, pool.PathPrefix) : raw;
        var remainder = target.AsSpan(0, queryStart < 0 ? target.Length : target.Length - (raw.Length - queryStart));
        if (HasDoubledVersion(remainder) || (pool.BasePathEndsWithVersion && StartsWithVersion(remainder)))
        {
            refusal = new ForwardingRefusal(ProxyErrorKind.NotFound, DoubledVersionMessage(pool, remainder));
            return null;
        }

        return target;
    }

    /// <summary>Returns whether <paramref name="method"/> is one a provider's API takes; CONNECT, TRACE and the rest are not forwarded.</summary>
    public static bool IsForwardable(string method)
        => HttpMethods.IsPost(method) || HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method)
            || HttpMethods.IsPut(method) || HttpMethods.IsPatch(method) || HttpMethods.IsDelete(method);

    /// <summary>Says at start what agents must send when a pool's upstream already ends in a version segment.</summary>
    public static string? BasePathWarning(Pool pool)
        => pool.BasePathEndsWithVersion
            ? $"Pool '{pool.Name}': Pools:{pool.Name}:Upstream {pool.DestinationPrefix} ends in /v1, so agents must send paths without it " +
              $"(an OpenAI SDK with OPENAI_BASE_URL=http://proxy:8080{pool.PathPrefix}, not …{pool.PathPrefix}/v1): a request for /v1/… would go to {pool.DestinationPrefix}/v1/… and is answered 404 here. " +
              $"The Anthropic SDKs and Claude Code always send /v1/…: if this gateway expects /v1/…, remove /v1 from Pools:{pool.Name}:Upstream."
            : null;

    private static string DoubledVersionMessage(Pool pool, ReadOnlySpan<char> remainder)
    {
        var path = remainder.ToString();
        return pool.BasePathEndsWithVersion && StartsWithVersion(remainder)
            ? $"the upstream path would be {pool.DestinationPrefix}{path}, with /v1 twice: Pools:{pool.Name}:Upstream ends in /v1 and the agent's path starts with /v1. " +
              $"Remove /v1 from Pools:{pool.Name}:Upstream, or set the agent's base URL to http://<proxy>{pool.PathPrefix} without /v1. Nothing was sent upstream."
            : $"the path {path} has /v1 twice: the agent's base URL probably ends in /v1 while its SDK adds /v1 itself. " +
              $"Set the agent's base URL to the proxy's address without /v1 (OpenAI SDKs: …{pool.PathPrefix}/v1 with the pool prefix, nothing after it). Nothing was sent upstream.";
    }

    private static bool StartsWithVersion(ReadOnlySpan<char> path)
        => path.StartsWith("/v1", StringComparison.OrdinalIgnoreCase) && (path.Length == 3 || path[3] == '/');

    /// <summary>Returns whether the path has two <c>v1</c> segments in a row.</summary>
    private static bool HasDoubledVersion(ReadOnlySpan<char> path)
    {
        var at = path.IndexOfAny(DoubledVersion);
        while (at >= 0)
        {
            var end = at + DoubledVersionText.Length;
            if (end == path.Length || path[end] == '/')
            {
                return true;
            }

            var next = path[(at + 1)..].IndexOfAny(DoubledVersion);
            at = next < 0 ? -1 : at + 1 + next;
        }

        return false;
    }

    /// <summary>Returns whether a raw path has dot segments (plain or percent-encoded) or a backslash, which URI normalisation would turn into a climb.</summary>
    private static bool ClimbsOut(ReadOnlySpan<char> path)
    {
        if (!path.ContainsAny(DotOrEscape))
        {
            return false;
        }

        if (path.Contains('\\') || path.EndsWith("/.", StringComparison.Ordinal) || path.EndsWith("/..", StringComparison.Ordinal))
        {
            return true;
        }

        if (path.IndexOfAny(DotSegments) < 0)
        {
            return false;
        }

        // Rare: look at each segment with %2E read as '.'.
        foreach (var range in path.Split('/'))
        {
            var segment = path[range];
            if (segment.Length is > 0 and <= 6 && segment.ToString().Replace("%2e", ".", StringComparison.OrdinalIgnoreCase) is "." or "..")
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Drops the pool's prefix from the raw target by segments: the prefix matched the decoded path, and Kestrel never
    /// decodes '/', so the raw target has the same segments. <c>/anthropic/v1/models?x</c> gives <c>/v1/models?x</c>,
    /// <c>/anthropic?x</c> gives <c>?x</c>.
    /// </summary>
    private static string WithoutPrefix(string raw, PathString prefix)
    {
        var segments = prefix.Value!.AsSpan().Count('/');
        var index = 0;
        for (var i = 0; i < segments; i++)
        {
            var next = raw.IndexOfAny(['/', '?'], index + 1);
            if (next < 0 || raw[next] == '?')
            {
                return next < 0 ? string.Empty : raw[next..];
            }

            index = next;
        }

        return raw[index..];
    }
}
