using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.State;
using Microsoft.Extensions.DependencyInjection;

namespace AuthFailoverProxy.Tests.Fakes;

/// <summary>
/// A deployment as ops run it: one real redis-server, one upstream, and as many proxy replicas as a test adds, all
/// configured alike with two keys, 'primary' and 'backup'. Disposing it stops everything.
/// </summary>
internal sealed class Deployment : IAsyncDisposable
{
    private readonly List<ProxyHost> _replicas = [];
    private readonly TimeProvider? _time;
    private readonly Action<ProxyConfig>? _configure;

    private readonly RedisServer? _redis;
    private readonly IAsyncDisposable _store;

    private Deployment(RedisServer? redis, string configuration, IAsyncDisposable store, SimulatedProvider upstream, TimeProvider? time, Action<ProxyConfig>? configure)
    {
        _redis = redis;
        RedisConfiguration = configuration;
        _store = store;
        Upstream = upstream;
        // Two organizations, as a pool meant to fail over is made: keys of one organization share its rate limits.
        Upstream.SetKeyOrganization(Primary, "org-primary");
        Upstream.SetKeyOrganization(Backup, "org-backup");
        _time = time;
        _configure = configure;
    }

    /// <summary>Gets the single redis-server (not there when the deployment runs on a cluster).</summary>
    public RedisServer Redis => _redis ?? throw new InvalidOperationException("this deployment runs on a Redis Cluster.");

    /// <summary>Gets the Redis configuration string every replica is given.</summary>
    public string RedisConfiguration { get; }

    public SimulatedProvider Upstream { get; }

    public string Primary { get; } = Secrets.AnthropicApiKey();

    public string Backup { get; } = Secrets.AnthropicApiKey();

    public static async Task<Deployment> StartAsync(TimeProvider? time = null, Action<ProxyConfig>? configure = null, SimulatedProviderOptions? provider = null)
    {
        var redis = await RedisServer.StartAsync();
        var upstream = await SimulatedProvider.StartAsync(time, options: provider, cancellationToken: TestContext.Current.CancellationToken);
        return new Deployment(redis, redis.Configuration, redis, upstream, time, configure);
    }

    /// <summary>Starts a deployment whose replicas share a real 3-node Redis Cluster, as on most managed Redis services.</summary>
    public static async Task<Deployment> StartOnClusterAsync(Action<ProxyConfig>? configure = null)
    {
        var cluster = await RedisCluster.StartAsync();
        var upstream = await SimulatedProvider.StartAsync(options: null, cancellationToken: TestContext.Current.CancellationToken);
        return new Deployment(null, cluster.Configuration, cluster, upstream, null, configure);
    }

    /// <summary>Starts a deployment on a Redis of its caller's making (TLS, a password), which it disposes at the end.</summary>
    public static async Task<Deployment> StartOnAsync(string configuration, IAsyncDisposable store, Action<ProxyConfig>? configure = null)
    {
        var upstream = await SimulatedProvider.StartAsync(options: null, cancellationToken: TestContext.Current.CancellationToken);
        return new Deployment(null, configuration, store, upstream, null, configure);
    }

    /// <summary>Starts one more replica; by default waits until it is connected to Redis.</summary>
    public async Task<ProxyHost> AddReplicaAsync(bool waitConnected = true, Action<ProxyConfig>? configure = null)
    {
        var config = new ProxyConfig()
            .Pool("anthropic", Upstream, isDefault: true, keys: [("primary", Primary), ("backup", Backup)])
            .Set("Redis:Configuration", RedisConfiguration)
            .Set("Redis:Timeout", "00:00:00.500");
        _configure?.Invoke(config);
        configure?.Invoke(config);
        var replica = await ProxyHost.StartAsync(config, _time);
        _replicas.Add(replica);
        if (waitConnected)
        {
            await Failover.FailoverTests.WaitUntilAsync(() => replica.Services.GetRequiredService<IKeyStateStore>().Status.Connected);
        }

        return replica;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var replica in _replicas)
        {
            await replica.DisposeAsync();
        }

        await Upstream.DisposeAsync();
        await _store.DisposeAsync();
    }
}
