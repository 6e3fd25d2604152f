using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.Proxying;

namespace AuthFailoverProxy.Hosting;

/// <summary>Says at start, in a few plain lines, where the proxy listens and what it serves, and warns about an open relay.</summary>
/// <remarks>
/// Hosted services are constructed before the host validates options, so this one resolves the pools only once the
/// application has started: a configuration mistake is then reported whole, not as whichever option was touched first.
/// </remarks>
internal sealed partial class StartupReport(IHostApplicationLifetime lifetime, IServiceProvider services, ILogger<StartupReport> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStarted.Register(Report);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private void Report()
    {
        var registry = services.GetRequiredService<PoolRegistry>();
        var listeners = services.GetRequiredService<ProxyListeners>();
        var authenticator = services.GetRequiredService<ClientAuthenticator>();
        if (authenticator.AllowsAnonymous)
        {
            LogAnonymous(logger);
        }

        var shortTokens = string.Join(", ", Admin.TokenStrength.ShortTokens(
            services.GetRequiredService<Microsoft.Extensions.Options.IOptions<ClientOptions>>().Value,
            services.GetRequiredService<Microsoft.Extensions.Options.IOptions<Admin.AdminOptions>>().Value,
            services.GetRequiredService<Microsoft.Extensions.Options.IOptions<ManagementOptions>>().Value));
        if (shortTokens.Length > 0)
        {
            LogShortTokens(logger, shortTokens, Admin.AdminOptionsValidator.ShortestSafeToken);
        }

        foreach (var pool in registry.Pools)
        {
            if (UpstreamTarget.BasePathWarning(pool) is { } warning)
            {
                LogBasePath(logger, warning);
            }
        }

        if (logger.IsEnabled(LogLevel.Information))
        {
            var agent = string.Join(", ", listeners.AgentEndpoints.Select(e => $"http://{e}"));
            var management = string.Join(", ", listeners.ManagementEndpoints.Select(e => $"http://{e}"));
            LogListening(logger, agent, management);
            foreach (var pool in registry.Pools.OrderBy(p => p.Name, StringComparer.Ordinal))
            {
                var keys = string.Join(", ", pool.Keys.Select(k => $"{k.Name} {k.Fingerprint}"));
                var paths = pool.IsDefault ? $"{pool.PathPrefix} and /" : pool.PathPrefix.Value!;
                var kind = pool.Kind.ToString().ToLowerInvariant();
                LogPool(logger, pool.Name, kind, paths, pool.DestinationPrefix, pool.Keys.Count, keys);
            }
        }
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "AuthFailoverProxy is serving agents on {AgentUrls:l}; management (/status, /healthz, /readyz) on {ManagementUrls:l}.")]
    private static partial void LogListening(ILogger logger, string agentUrls, string managementUrls);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "Pool '{Pool:l}' ({Kind:l}) answers on {Paths:l} and forwards to {Upstream:l} with {KeyCount} key(s) in priority order: {Keys:l}.")]
    private static partial void LogPool(ILogger logger, string pool, string kind, string paths, string upstream, int keyCount, string keys);

    [LoggerMessage(EventId = 104, Level = LogLevel.Warning, Message = "These tokens are shorter than {Length} characters and can be guessed: {Tokens:l}. Use long random ones, e.g. openssl rand -hex 24.")]
    private static partial void LogShortTokens(ILogger logger, string tokens, int length);

    [LoggerMessage(EventId = 103, Level = LogLevel.Warning, Message = "{Warning:l}")]
    private static partial void LogBasePath(ILogger logger, string warning);

    [LoggerMessage(EventId = 102, Level = LogLevel.Warning, Message = "Clients:AllowAnonymous is on: anyone who can reach the agent port spends your keys. Set client tokens (AFP_CLIENT_TOKENS or Clients:Tokens) and turn it off unless this network is trusted.")]
    private static partial void LogAnonymous(ILogger logger);
}
