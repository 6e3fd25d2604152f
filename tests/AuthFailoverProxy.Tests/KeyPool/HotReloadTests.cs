using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using System.Text.Json;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Health;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Serilog.Events;

namespace AuthFailoverProxy.Tests.KeyPool;

/// <summary>
/// Keys change without a restart: real files in a temporary directory (and a real JSON file), the real proxy and a
/// simulated upstream on loopback. No test sleeps: each waits, bounded, for what it expects to see.
/// </summary>
public sealed class HotReloadTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task KeysDirectory_FileAdded_KeyJoinsAndCarriesTraffic()
    {
        await using var b = await Bench.StartAsync(("primary", Secrets.AnthropicApiKey()));
        var standby = Secrets.AnthropicApiKey();

        b.WriteKey("standby", standby);
        await FailoverTests.WaitUntilAsync(() => b.Pool.FindKey("standby") is not null);

        Assert.Equal(["primary", "standby"], await b.KeysInStatusAsync());
        Assert.Equal("Configuration reload: pool 'anthropic': added 'standby' (usable).", await ReloadSummaryAsync(b.Proxy, LogEventLevel.Information));
        b.Upstream.SetKeyFault(b.Secret("primary"), KeyFault.Revoked);
        using var response = await b.PostMessageAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("standby", FailoverTests.Header(response, "x-afp-key"));
        Assert.Equal(standby, b.Upstream.Requests.Last(r => !Scenario.IsKeyCheck(r)).Key);
    }

    [Fact]
    public async Task KeysDirectory_FileRemoved_KeyLeavesServiceAndCarriesNoMoreTraffic()
    {
        await using var b = await Bench.StartAsync(("primary", Secrets.AnthropicApiKey()), ("standby", Secrets.AnthropicApiKey()));
        using (var before = await b.PostMessageAsync())
        {
            Assert.Equal("primary", FailoverTests.Header(before, "x-afp-key"));
        }

        var primary = b.Pool.FindKey("primary")!;
        File.Delete(Path.Combine(b.Directory, "primary"));
        // Out of the ring first, then retired (Pool.ChangeKeys): both, or the wait times out.
        await FailoverTests.WaitUntilAsync(() => b.Pool.FindKey("primary") is null && primary.Retired);

        Assert.Equal(["standby"], await b.KeysInStatusAsync());
        var callsWithPrimary = b.Upstream.Requests.Count(r => r.Key == b.Secret("primary"));
        for (var i = 0; i < 3; i++)
        {
            using var response = await b.PostMessageAsync();
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("standby", FailoverTests.Header(response, "x-afp-key"));
        }

        Assert.Equal(callsWithPrimary, b.Upstream.Requests.Count(r => r.Key == b.Secret("primary")));
        // The files left follow in name order: the standby key moves up a rank, keeping its health.
        Assert.Equal(
            "Configuration reload: pool 'anthropic': re-ranked 'standby' (priority 1 to 0, usable), removed 'primary'.",
            await ReloadSummaryAsync(b.Proxy, LogEventLevel.Information));
    }

    [Fact]
    public async Task KeysDirectory_FileContentChanged_TheNewSecretGoesUpstream()
    {
        await using var b = await Bench.StartAsync(("primary", Secrets.AnthropicApiKey()), ("standby", Secrets.AnthropicApiKey()));
        var standby = b.Pool.FindKey("standby")!;
        var rotated = Secrets.AnthropicApiKey();

        b.WriteKey("primary", rotated);
        await FailoverTests.WaitUntilAsync(() => b.Pool.FindKey("primary")?.Secret == rotated);

        using var response = await b.PostMessageAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("primary", FailoverTests.Header(response, "x-afp-key"));
        Assert.Equal(rotated, b.Upstream.Requests.Last(r => !Scenario.IsKeyCheck(r)).Key);
        Assert.DoesNotContain(b.Upstream.Requests, r => r.Key == b.Secret("primary"));
        // The unchanged key was left alone.
        Assert.Same(standby, b.Pool.FindKey("standby"));
        Assert.Equal("Configuration reload: pool 'anthropic': replaced 'primary' (new secret, usable).", await ReloadSummaryAsync(b.Proxy, LogEventLevel.Information));
        Assert.DoesNotContain(rotated, b.Proxy.Logs.AllText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task KeysDirectory_KubernetesAtomicSwapOfDataLink_IsPickedUp()
    {
        // The layout the kubelet mounts a Secret with: the files in a timestamped hidden directory, a hidden ..data link
        // to it, and one visible link per key through ..data. An update writes a new directory and renames a new link
        // over ..data: the visible links never change, so only hidden names change in the watched directory.
        var v1 = new Dictionary<string, string> { ["primary"] = Secrets.AnthropicApiKey(), ["standby"] = Secrets.AnthropicApiKey() };
        var rotated = Secrets.AnthropicApiKey();
        await using var b = await Bench.StartAsync();
        WriteVersion(b.Directory, "..2026_11_26_v1", v1);
        File.CreateSymbolicLink(Path.Combine(b.Directory, "..data"), "..2026_11_26_v1");
        foreach (var name in v1.Keys)
        {
            File.CreateSymbolicLink(Path.Combine(b.Directory, name), Path.Combine("..data", name));
        }

        // The next version is staged before the proxy watches, so the only change it can see is the swap itself: the
        // rename of one hidden name over another.
        WriteVersion(b.Directory, "..2026_11_26_v2", new() { ["primary"] = rotated, ["standby"] = v1["standby"] });
        await b.StartProxyAsync();
        // Read through the links at start.
        Assert.Equal(v1["primary"], b.Pool.FindKey("primary")!.Secret);
        Assert.Equal(["primary", "standby"], b.Pool.Keys.Select(k => k.Name));
        var standby = b.Pool.FindKey("standby")!;

        File.CreateSymbolicLink(Path.Combine(b.Directory, "..data_tmp"), "..2026_11_26_v2");
        Assert.Equal(0, Native.Rename(Path.Combine(b.Directory, "..data_tmp"), Path.Combine(b.Directory, "..data")));

        await FailoverTests.WaitUntilAsync(() => b.Pool.FindKey("primary")?.Secret == rotated);
        Assert.Same(standby, b.Pool.FindKey("standby"));
        Assert.Equal("file", b.Pool.FindKey("primary")!.Source);
        using var response = await b.PostMessageAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(rotated, b.Upstream.Requests.Last(r => !Scenario.IsKeyCheck(r)).Key);
    }

    [Fact]
    public async Task ProbesOn_NewKeyTheUpstreamRejects_EntersDead_AndNeverCarriesARequest()
    {
        await using var b = await Bench.StartAsync(
            c => c.Set("Probes:AtStartup", "true").Set("Probes:HealDelay", "01:00:00").Set("Probes:MaxHealDelay", "02:00:00"),
            ("primary", Secrets.AnthropicApiKey()));
        await b.Proxy.Services.GetRequiredService<StartupCredentialCheck>().Completion.WaitAsync(TimeSpan.FromSeconds(20), Ct);
        var primary = b.Pool.FindKey("primary")!;
        var bad = Secrets.AnthropicApiKey();
        b.Upstream.SetKeyFault(bad, KeyFault.Revoked);

        // "a-bad" sorts before "primary": had it joined usable, it would have been every request's first choice.
        b.WriteKey("a-bad", bad);
        await FailoverTests.WaitUntilAsync(() => b.Pool.FindKey("a-bad") is not null);

        var joined = b.Pool.FindKey("a-bad")!;
        Assert.Equal(KeyState.Dead, joined.Health.State);
        Assert.Equal(0, joined.Priority);
        Assert.Equal("dead", await b.KeyStateAsync("a-bad"));
        for (var i = 0; i < 3; i++)
        {
            using var response = await b.PostMessageAsync();
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("primary", FailoverTests.Header(response, "x-afp-key"));
            Assert.Equal("1", FailoverTests.Header(response, "x-afp-attempts"));
        }

        // Only the check ever used the bad key.
        var withBad = Assert.Single(b.Upstream.Requests, r => r.Key == bad);
        Assert.Equal(("GET", "/v1/models"), (withBad.Method, withBad.PathAndQuery));
        // The primary key moved down a rank in place: the same key, its health and its history untouched.
        var moved = b.Pool.FindKey("primary")!;
        Assert.Same(primary, moved);
        Assert.Equal(1, moved.Priority);
        Assert.False(moved.Retired);
        Assert.Equal(
            "Configuration reload: pool 'anthropic': re-ranked 'primary' (priority 0 to 1, usable), added 'a-bad' (dead: 401 authentication_error).",
            await ReloadSummaryAsync(b.Proxy, LogEventLevel.Warning));
    }

    [Fact]
    public async Task InvalidReload_EmptyKeyFile_ChangesNothing_AndLogsTheProblem()
    {
        await using var b = await Bench.StartAsync(("primary", Secrets.AnthropicApiKey()), ("standby", Secrets.AnthropicApiKey()));
        var reloader = b.Proxy.Services.GetRequiredService<KeyReloader>();
        var keys = b.Pool.Keys;

        await File.WriteAllTextAsync(Path.Combine(b.Directory, "third"), string.Empty, Ct);
        await FailoverTests.WaitUntilAsync(() => reloader.Rejected >= 1);

        await FailoverTests.WaitUntilAsync(() => b.Proxy.Logs.At(LogEventLevel.Error).Any());
        var error = Assert.Single(b.Proxy.Logs.At(LogEventLevel.Error)).RenderMessage(CultureInfo.InvariantCulture);
        Assert.Contains("keeps serving with the last good configuration", error, StringComparison.Ordinal);
        Assert.Contains("Pools:anthropic:KeysDirectory file 'third' is empty.", error, StringComparison.Ordinal);
        Assert.Equal(keys, b.Pool.Keys);

        // Still invalid: a valid edit beside the invalid one waits too.
        var rotated = Secrets.AnthropicApiKey();
        b.WriteKey("standby", rotated);
        await FailoverTests.WaitUntilAsync(() => reloader.Rejected >= 2);
        Assert.Equal(keys, b.Pool.Keys);
        using (var response = await b.PostMessageAsync())
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // Fixed: everything waiting is applied.
        File.Delete(Path.Combine(b.Directory, "third"));
        await FailoverTests.WaitUntilAsync(() => b.Pool.FindKey("standby")?.Secret == rotated);
        Assert.Same(keys[0], b.Pool.FindKey("primary"));
        Assert.DoesNotContain(rotated, b.Proxy.Logs.AllText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task JsonConfigurationEdit_KeyRemoved_TakesItOutOfService()
    {
        var directory = System.IO.Directory.CreateTempSubdirectory("afp-json-");
        try
        {
            var upstream = await SimulatedProvider.StartAsync(cancellationToken: Ct);
            await using var _ = upstream;
            var primary = Secrets.AnthropicApiKey();
            var standby = Secrets.AnthropicApiKey();
            var file = Path.Combine(directory.FullName, "pools.json");
            WriteJson(file, upstream, ("primary", primary), ("standby", standby));
            await using var proxy = await ProxyHost.StartAsync(
                new ProxyConfig(),
                customize: builder => builder.Configuration.AddJsonFile(file, optional: false, reloadOnChange: true));
            var pool = proxy.Services.GetRequiredService<PoolRegistry>().Pools.Single();
            Assert.Equal(["primary", "standby"], pool.Keys.Select(k => k.Name));
            Assert.Equal("pools.json", pool.Keys[0].Source);

            WriteJson(file, upstream, ("standby", standby));
            await FailoverTests.WaitUntilAsync(() => pool.FindKey("primary") is null);

            using var response = await proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("standby", FailoverTests.Header(response, "x-afp-key"));
            Assert.DoesNotContain(upstream.Requests, r => r.Key == primary);
            Assert.Equal(
                "Configuration reload: pool 'anthropic': re-ranked 'standby' (priority 1 to 0, usable), removed 'primary'.",
                await ReloadSummaryAsync(proxy, LogEventLevel.Information));
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    /// <summary>Waits for the one summary a reload logs for the pool (it is written once the last change is in) and returns it.</summary>
    private static async Task<string> ReloadSummaryAsync(ProxyHost proxy, LogEventLevel level)
    {
        static bool IsSummary(LogEvent e) => e.MessageTemplate.Text.StartsWith("Configuration reload: pool", StringComparison.Ordinal);
        await FailoverTests.WaitUntilAsync(() => proxy.Logs.Events.Any(IsSummary));
        var summary = Assert.Single(proxy.Logs.Events, IsSummary);
        Assert.Equal(level, summary.Level);
        return summary.RenderMessage(CultureInfo.InvariantCulture);
    }

    private static void WriteVersion(string directory, string version, Dictionary<string, string> secrets)
    {
        var path = System.IO.Directory.CreateDirectory(Path.Combine(directory, version)).FullName;
        foreach (var (name, secret) in secrets)
        {
            File.WriteAllText(Path.Combine(path, name), secret);
        }
    }

    /// <summary>Replaces the JSON file in one step, as an editor that saves atomically does: a reader never sees half of it.</summary>
    private static void WriteJson(string file, SimulatedProvider upstream, params (string Name, string Secret)[] keys)
    {
        var json = JsonSerializer.Serialize(new
        {
            Pools = new
            {
                anthropic = new
                {
                    Kind = "anthropic",
                    Upstream = upstream.BaseAddress.ToString(),
                    Transport = new { CaBundle = upstream.CaBundlePath, ConnectTo = upstream.Endpoint },
                    Default = true,
                    Keys = keys.Select(k => new { k.Name, k.Secret }).ToArray(),
                },
            },
        });
        var temporary = file + ".tmp";
        File.WriteAllText(temporary, json);
        File.Move(temporary, file, overwrite: true);
    }

    /// <summary>A key directory in a temporary folder, the simulated upstream and the proxy reading its keys from the folder.</summary>
    private sealed class Bench : IAsyncDisposable
    {
        private readonly Dictionary<string, string> _secrets = new(StringComparer.Ordinal);
        private readonly Action<ProxyConfig>? _configure;
        private ProxyHost? _proxy;

        private Bench(SimulatedProvider upstream, string directory, Action<ProxyConfig>? configure)
        {
            Upstream = upstream;
            Directory = directory;
            _configure = configure;
        }

        public SimulatedProvider Upstream { get; }

        public string Directory { get; }

        public ProxyHost Proxy => _proxy ?? throw new InvalidOperationException("the proxy is not started");

        public Pool Pool => Proxy.Services.GetRequiredService<PoolRegistry>().Pools.Single();

        public static Task<Bench> StartAsync(params (string Name, string Secret)[] keys) => StartAsync(null, keys);

        /// <summary>Writes <paramref name="keys"/> to a new key directory and starts the proxy on it (when there are any).</summary>
        public static async Task<Bench> StartAsync(Action<ProxyConfig>? configure, params (string Name, string Secret)[] keys)
        {
            var upstream = await SimulatedProvider.StartAsync(cancellationToken: Ct);
            var bench = new Bench(upstream, System.IO.Directory.CreateTempSubdirectory("afp-reload-").FullName, configure);
            foreach (var (name, secret) in keys)
            {
                bench.WriteKey(name, secret);
            }

            if (keys.Length > 0)
            {
                await bench.StartProxyAsync();
            }

            return bench;
        }

        public async Task StartProxyAsync()
        {
            var config = new ProxyConfig()
                .Pool("anthropic", Upstream, isDefault: true)
                .Set("Pools:anthropic:KeysDirectory", Directory);
            _configure?.Invoke(config);
            _proxy = await ProxyHost.StartAsync(config);
        }

        public string Secret(string name) => _secrets[name];

        /// <summary>Writes a key file in one step (a hidden temporary file renamed over it), so no reload reads it half written.</summary>
        public void WriteKey(string name, string secret)
        {
            var temporary = Path.Combine(Directory, "." + name + ".tmp");
            File.WriteAllText(temporary, secret + "\n");
            File.Move(temporary, Path.Combine(Directory, name), overwrite: true);
            _secrets.TryAdd(name, secret);
        }

        public Task<HttpResponseMessage> PostMessageAsync() => Proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);

        public async Task<List<string>> KeysInStatusAsync()
        {
            var status = await Proxy.Management.GetFromJsonAsync<JsonElement>("/status", Ct);
            var pool = Assert.Single(status.GetProperty("pools").EnumerateArray().ToList());
            return [.. pool.GetProperty("keys").EnumerateArray().Select(k => k.GetProperty("name").GetString()!)];
        }

        public async Task<string> KeyStateAsync(string name)
        {
            var status = await Proxy.Management.GetFromJsonAsync<JsonElement>("/status", Ct);
            var pool = Assert.Single(status.GetProperty("pools").EnumerateArray().ToList());
            return pool.GetProperty("keys").EnumerateArray().Single(k => k.GetProperty("name").GetString() == name).GetProperty("state").GetString()!;
        }

        public async ValueTask DisposeAsync()
        {
            if (_proxy is not null)
            {
                await _proxy.DisposeAsync();
            }

            await Upstream.DisposeAsync();
            System.IO.Directory.Delete(Directory, recursive: true);
        }
    }

    private static class Native
    {
        /// <summary>rename(2): replaces a link with another in one step, which no .NET API does for a link to a directory.</summary>
        public static int Rename(string from, string to) => rename(from, to);

        [DllImport("libc", SetLastError = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        private static extern int rename([MarshalAs(UnmanagedType.LPUTF8Str)] string oldpath, [MarshalAs(UnmanagedType.LPUTF8Str)] string newpath);
    }
}
