using System.Diagnostics;
using System.Diagnostics.Metrics;
using AuthFailoverProxy.Failover;
using AuthFailoverProxy.Proxying;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Forwarder;

namespace AuthFailoverProxy.KeyPool;

/// <summary>The pools in service and the path each one answers on.</summary>
internal sealed class PoolRegistry : IDisposable
{
    private readonly Pool[] _pools;
    private readonly Pool? _default;

    public PoolRegistry(IOptions<PoolsOptions> pools, IOptions<FailoverOptions> failover, IOptions<Usage.UsageOptions> usage, IConfiguration configuration, TimeProvider time, IMeterFactory meterFactory)
    {
        var now = time.GetUtcNow();
        var traces = Telemetry.TelemetryServiceCollectionExtensions.Traces(configuration);
        var built = new List<Pool>();
        foreach (var (name, options) in pools.Value.Pools.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            var errors = new List<string>();
            var keys = KeySource.Load(name, options, configuration, errors)
                .Select(k => new PoolKey(name, k.Name, k.Secret, k.Priority, k.Source, k.Scheme, now) { Account = k.Account })
                .ToList();
            // The validator ran first, at start; errors here mean the configuration changed underneath.
            Debug.Assert(errors.Count == 0, string.Join("; ", errors));

            var upstream = new Uri(options.Upstream ?? PoolsOptions.DefaultUpstream(options.Kind));
            // The validator read the same files at start; failing now means they changed underneath.
            var transport = UpstreamTransport.Load(name, options.Transport, upstream, errors)
                ?? throw new InvalidOperationException(string.Join(" ", errors));
            var isDefault = options.Default || pools.Value.Pools.Count == 1;
            built.Add(new Pool(
                name,
                options.Kind,
                upstream,
                new PathString(PoolsOptionsValidator.PathPrefixOf(name, options)),
                isDefault,
                options.Selection,
                keys,
                transport.CreateClient(failover.Value.ConnectTimeout, meterFactory, traces),
                new ForwarderRequestConfig
                {
                    ActivityTimeout = failover.Value.ActivityTimeout,
                    Version = transport.Version,
                    VersionPolicy = transport.VersionPolicy,
                })
            {
                ProbePath = options.ProbePath,
                // Usage not read, nothing to ask for: the agent's request goes as it was sent.
                AsksForStreamUsage = options.Kind == ProviderKind.OpenAI && options.AskForStreamUsage && usage.Value.Enabled,
            });
        }

        foreach (var pool in built)
        {
            if (pools.Value.Pools[pool.Name] is { Fallback: { } fallback } options)
            {
                pool.UseFallback(built.Single(p => string.Equals(p.Name, fallback, StringComparison.OrdinalIgnoreCase)), options.FallbackModel);
            }
        }

        // Longest prefix first, so "/openai/azure" wins over "/openai".
        _pools = [.. built.OrderByDescending(p => p.PathPrefix.Value!.Length)];
        _default = _pools.FirstOrDefault(p => p.IsDefault);
    }

    public IReadOnlyList<Pool> Pools => _pools;

    public Pool? Default => _default;

    /// <summary>Finds a pool by name.</summary>
    public Pool? Find(string name) => Array.Find(_pools, p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase));

    /// <summary>
    /// Finds the pool for <paramref name="path"/>. When a prefix matched, <paramref name="remainder"/> is the path to send
    /// upstream and <paramref name="prefixed"/> is true; the default pool gets the path unchanged.
    /// </summary>
    public Pool? Match(PathString path, out PathString remainder, out bool prefixed)
    {
        foreach (var pool in _pools)
        {
            if (path.StartsWithSegments(pool.PathPrefix, StringComparison.OrdinalIgnoreCase, out remainder))
            {
                prefixed = true;
                return pool;
            }
        }

        remainder = path;
        prefixed = false;
        return _default;
    }

    public void Dispose()
    {
        foreach (var pool in _pools)
        {
            pool.Client.Dispose();
        }
    }
}
