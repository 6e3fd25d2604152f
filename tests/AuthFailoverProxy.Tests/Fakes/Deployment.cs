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

    private Deployment(RedisServer redis, SimulatedProvider upstream, TimeProvider? time, Action<ProxyConfig>? configure)
    {
        Redis = redis;
        Upstream = upstream;
        // Two organizations, as a pool meant to fail over is made: keys of one organization share its rate limits.
        Upstream.SetKeyOrganization(Primary, "org-primary");
        Upstream.SetKeyOrganization(Backup, "org-backup");
        _time = time;
        _configure = configure;
    }

    public RedisServer Redis { get; }

    public SimulatedProvider Upstream { get; }

    public string Primary { get; } = Secrets.AnthropicApiKey();

    public string Backup { get; } = Secrets.AnthropicApiKey();

    public static async Task<Deployment> StartAsync(TimeProvider? time = null, Action<ProxyConfig>? configure = null, SimulatedProviderOptions? provider = null)
    {
        var redis = await RedisServer.StartAsync();
        var upstream = await SimulatedProvider.StartAsync(time, options: provider, cancellationToken: TestContext.Current.CancellationToken);
        return new Deployment(redis, upstream, time, configure);
    }

    /// <summary>Starts one more replica; by default waits until it is connected to Redis.</summary>
    public async Task<ProxyHost> AddReplicaAsync(bool waitConnected = true, Action<ProxyConfig>? configure = null)
    {
        var config = new ProxyConfig()
            .Pool("anthropic", Upstream, isDefault: true, keys: [("primary", Primary), ("backup", Backup)])
            .Set("Redis:Configuration", Redis.Configuration)
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
        await Redis.DisposeAsync();
    }
}
