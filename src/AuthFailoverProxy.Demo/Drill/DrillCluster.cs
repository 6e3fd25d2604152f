using System.Globalization;
using AuthFailoverProxy.Demo.Provider;

namespace AuthFailoverProxy.Demo.Drill;

/// <summary>
/// What the drill runs against: a real redis-server, the simulated provider (in this process, a real HTTP server on
/// loopback), and proxy replicas as real processes (<c>dotnet AuthFailoverProxy.dll</c>, configured only by
/// <c>AFP_*</c> variables as in production) sharing that Redis, all on 127.0.0.1.
/// </summary>
internal sealed class DrillCluster : IAsyncDisposable
{
    public const string ClientToken = "afp-drill-client-token-0000000000000001";

    private const string RedisBinary = "/usr/bin/redis-server";
    private static readonly TimeSpan StartBound = TimeSpan.FromSeconds(30);

    private readonly string _directory = Directory.CreateTempSubdirectory("afp-drill-").FullName;
    private readonly HttpClient _probe = new(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(3) };
    private readonly List<Replica> _replicas = [];
    private DrillProcess? _redis;
    private int _redisStarts;

    private DrillCluster(SimulatedProvider upstream, DrillAlertReceiver alerts, int redisPort)
    {
        Upstream = upstream;
        Alerts = alerts;
        RedisPort = redisPort;
    }

    /// <summary>Gets the keys in priority order: name and fake secret in the real formats (the first is the outage's OAuth token).</summary>
    public static IReadOnlyList<(string Name, string Secret)> Keys { get; } =
    [
        ("primary", "sk-ant-oat01-DRILL-p7Kq2Lx9Vb4Nw1Rt6Yp3Zc8Hm0Jd5Gs2Ua7Ee4Wo9Qi1Tn"),
        ("backup", "sk-ant-api03-DRILL-b3Xr8Tb1Nq6Wm2Kc5Vz9Lp0Hy4Jf7Gd3Sa8Ue1Ro6Ci2Mv"),
        ("spare", "sk-ant-api03-DRILL-s9Fh4Qw7Ep2Rt5Yu8Io1Pa3Sd6Fg0Hj4Kl7Zx2Cv5Bn8Mq"),
    ];

    public SimulatedProvider Upstream { get; }

    public DrillAlertReceiver Alerts { get; }

    public int RedisPort { get; }

    public string LogDirectory => _directory;

    public IReadOnlyList<Replica> Replicas => _replicas;

    public static string Secret(string key) => Keys.Single(k => k.Name == key).Secret;

    public static async Task<DrillCluster> StartAsync(DrillAlertReceiver alerts, CancellationToken cancellationToken)
    {
        var upstream = await SimulatedProvider.StartAsync(cancellationToken: cancellationToken);
        upstream.RecordBodies = false;
        // Each key its own organization, as a pool meant to fail over is made: keys of one organization share its rate
        // limits, so a 429 storm on one would rest them all.
        foreach (var (name, secret) in Keys)
        {
            upstream.SetKeyOrganization(secret, "org-" + name);
        }

        var cluster = new DrillCluster(upstream, alerts, DrillProbe.FreePort());
        try
        {
            await cluster.StartRedisAsync(cancellationToken);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    public async Task StartRedisAsync(CancellationToken cancellationToken)
    {
        if (!File.Exists(RedisBinary))
        {
            throw new InvalidOperationException($"{RedisBinary} is missing: install it with 'apt-get install redis-server'.");
        }

        _redisStarts++;
        _redis = DrillProcess.Start(
            "redis-server",
            RedisBinary,
            ["--port", RedisPort.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", _directory, "--protected-mode", "yes"],
            Path.Combine(_directory, $"redis-{_redisStarts}.log"),
            new Dictionary<string, string>());
        if (!await DrillProbe.WaitUntilAsync(() => DrillProbe.RedisAnswersAsync(RedisPort), StartBound, cancellationToken))
        {
            throw new InvalidOperationException($"redis-server did not answer on port {RedisPort}: {_redis.Tail()}");
        }
    }

    public async Task KillRedisAsync()
    {
        if (_redis is not null)
        {
            await _redis.KillAsync();
            _redis.Dispose();
            _redis = null;
        }
    }

    /// <summary>Starts one more replica and waits until it serves and its Redis store is connected.</summary>
    public async Task<Replica> AddReplicaAsync(CancellationToken cancellationToken)
    {
        var name = "replica-" + (char)('a' + _replicas.Count);
        var (agentPort, managementPort) = (DrillProbe.FreePort(), DrillProbe.FreePort());
        // The service itself, as the image runs it: its assembly is copied next to this one by the project reference.
        var dll = typeof(Hosting.ProxyApplication).Assembly.Location;
        var environment = new Dictionary<string, string>
        {
            ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{agentPort}",
            ["AFP_MANAGEMENT_URLS"] = $"http://127.0.0.1:{managementPort}",
            ["AFP_PROVIDER"] = "anthropic",
            ["AFP_UPSTREAM"] = Upstream.BaseAddress.ToString(),
            // HTTPS under the simulated provider's own name, as production reaches the real one.
            ["Pools__anthropic__Transport__CaBundle"] = Upstream.CaBundlePath!,
            ["Pools__anthropic__Transport__ConnectTo"] = Upstream.Endpoint,
            ["AFP_KEYS"] = string.Join(',', Keys.Select(k => $"{k.Name}={k.Secret}")),
            ["AFP_CLIENT_TOKENS"] = ClientToken,
            ["AFP_REDIS"] = $"127.0.0.1:{RedisPort}",
            ["AFP_ALERT_WEBHOOK"] = Alerts.Url.ToString(),
            // Recovery is checked within seconds, not the production 30 s to 30 min: a dead key is re-checked 1 s after
            // it died, then with the usual backoff capped at 3 s; everything else is the production default.
            ["Probes__HealDelay"] = "00:00:01",
            ["Probes__MaxHealDelay"] = "00:00:03",
            ["Redis__Timeout"] = "00:00:00.500",
            ["DOTNET_gcServer"] = "0",
        };
        var process = DrillProcess.Start(name, DrillProbe.DotnetHost(), [dll], Path.Combine(_directory, name + ".log"), environment);
        var replica = new Replica(name, process, new Uri($"http://127.0.0.1:{agentPort}/"), new Uri($"http://127.0.0.1:{managementPort}/"));
        _replicas.Add(replica);
        var ready = await DrillProbe.WaitUntilAsync(
            async () => process.HasExited || await DrillProbe.StoreConnectedAsync(_probe, replica.Management),
            StartBound,
            cancellationToken);
        if (!ready || process.HasExited)
        {
            throw new InvalidOperationException($"{name} did not start with a connected Redis store within {StartBound.TotalSeconds} s:\n{process.Tail()}");
        }

        return replica;
    }

    /// <summary>Whether every replica still running shows its Redis store connected.</summary>
    public async Task<bool> AllStoresConnectedAsync()
    {
        foreach (var replica in _replicas.Where(r => !r.Killed))
        {
            if (!await DrillProbe.StoreConnectedAsync(_probe, replica.Management))
            {
                return false;
            }
        }

        return true;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var replica in _replicas)
        {
            replica.Process.Dispose();
        }

        _redis?.Dispose();
        await Upstream.DisposeAsync();
        _probe.Dispose();
    }

    /// <summary>Deletes the logs; kept when the drill failed, so the reason can be read.</summary>
    public void DeleteLogs()
    {
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A log still open by a dying process: the temporary directory is cleaned by the OS eventually.
        }
    }

    /// <summary>One proxy replica: its process and its two listeners.</summary>
    internal sealed class Replica(string name, DrillProcess process, Uri agent, Uri management)
    {
        public string Name => name;

        public DrillProcess Process => process;

        public Uri Agent => agent;

        public Uri Management => management;

        public bool Killed { get; private set; }

        public async Task KillAsync()
        {
            Killed = true;
            await process.KillAsync();
        }
    }
}
