using AuthFailoverProxy.Health;
using AuthFailoverProxy.KeyPool;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Failover;

/// <summary>Gives every pool its circuit breaker (<see cref="UpstreamCircuit"/>) when circuit breaking is on.</summary>
internal sealed class UpstreamCircuits
{
    public UpstreamCircuits(
        PoolRegistry registry,
        IOptions<CircuitBreakerOptions> options,
        KeyProber prober,
        TimeProvider time,
        ILogger<UpstreamCircuit> logger,
        Events.ProxyEvents events,
        IHostApplicationLifetime lifetime)
    {
        if (!options.Value.Enabled)
        {
            return;
        }

        foreach (var pool in registry.Pools)
        {
            pool.Circuit = new UpstreamCircuit(pool, options.Value, (p, ct) => UpstreamAnswersAsync(prober, p, ct), time, logger, events, lifetime.ApplicationStopping);
        }
    }

    /// <summary>
    /// Whether the upstream answers at all: any answer to a key check (even a 401) means it is up again; only no
    /// connection, no answer or a 5xx keeps the circuit open.
    /// </summary>
    private static async Task<bool> UpstreamAnswersAsync(KeyProber prober, Pool pool, CancellationToken cancellationToken)
    {
        var key = pool.Keys.FirstOrDefault(k => k.Health.IsUsable) ?? (pool.Keys.Count > 0 ? pool.Keys[0] : null);
        return key is not null && (await prober.ProbeAsync(pool, key, cancellationToken)).Outcome != ProbeOutcome.Unknown;
    }
}
