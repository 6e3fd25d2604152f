using AuthFailoverProxy.Failover;
using AuthFailoverProxy.KeyPool;

namespace AuthFailoverProxy.Proxying;

/// <summary>
/// The agent listener: every path is proxied. The pool is chosen by path prefix (<c>/anthropic/v1/messages</c>), and a
/// path no prefix claims goes to the default pool, so <c>ANTHROPIC_BASE_URL=http://proxy:8080</c> just works.
/// </summary>
internal sealed class AgentProxyMiddleware(RequestDelegate next, PoolRegistry registry, FailoverForwarder forwarder, ClientAuthenticator authenticator)
{
    public Task InvokeAsync(HttpContext context)
    {
        _ = next; // Terminal: nothing runs after the proxy.
        var request = context.Request;
        var pool = registry.Match(request.Path, out var remainder, out var prefixed);
        if (pool is null)
        {
            // The pools' paths are told only to a client with a token: to anyone else they map the deployment.
            var known = authenticator.Authenticate(request) is null ? null : string.Join(", ", registry.Pools.Select(p => p.PathPrefix.Value));
            return ProviderErrorResponse.WriteAsync(context, registry.Pools[0].Kind, ProxyErrorKind.NotFound, known is null
                ? $"no pool serves {request.Path}."
                : $"no pool serves {request.Path}. Pools answer under {known}; none is the default (Pools:{{name}}:Default=true).");
        }

        // Decided before anything else (the client token included), and before any upstream call: a request no upstream
        // could answer costs no key, no retry and nothing on the circuit breaker.
        if (UpstreamTarget.Resolve(context, pool, prefixed, out var refusal) is not { } target)
        {
            if (refusal.Kind == ProxyErrorKind.MethodNotAllowed)
            {
                context.Response.Headers.Allow = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
            }

            return ProviderErrorResponse.WriteAsync(context, pool.Kind, refusal.Kind, refusal.Message);
        }

        if (prefixed)
        {
            request.PathBase = request.PathBase.Add(pool.PathPrefix);
            request.Path = remainder;
        }

        return forwarder.ForwardAsync(context, pool, target);
    }
}

/// <summary>Maps the agent listener.</summary>
internal static class AgentProxy
{
    public static WebApplication MapAgentProxy(this WebApplication app)
    {
        app.UseMiddleware<AgentProxyMiddleware>();
        return app;
    }
}
