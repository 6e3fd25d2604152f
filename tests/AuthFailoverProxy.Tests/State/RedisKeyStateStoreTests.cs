using System.Diagnostics;
using System.Net;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;

namespace AuthFailoverProxy.Tests.State;

/// <summary>Replicas sharing key health through a real redis-server on loopback.</summary>
public sealed class RedisKeyStateStoreTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task KeyRevokedBehindReplicaA_IsNeverUsedByReplicaB_AfterPropagation()
    {
        await using var d = await Deployment.StartAsync();
        var (redis, upstream, primary, backup) = (d.Redis, d.Upstream, d.Primary, d.Backup);
        var a = await d.AddReplicaAsync();
        var b = await d.AddReplicaAsync();
        upstream.SetKeyFault(primary, KeyFault.OAuthRejected);

        using (var viaA = await a.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
        {
            Assert.Equal("backup", FailoverTests.Header(viaA, "x-afp-key"));
        }

        var clock = Stopwatch.StartNew();
        var primaryOnB = Key(b, "primary");
        await FailoverTests.WaitUntilAsync(() => primaryOnB.Health.State == KeyState.Dead);
        TestContext.Current.SendDiagnosticMessage($"propagation A -> B: {clock.Elapsed.TotalMilliseconds:0.0} ms");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"propagation took {clock.Elapsed}");
        Assert.Equal(403, primaryOnB.Health.LastFailure?.Status);

        for (var i = 0; i < 5; i++)
        {
            using var viaB = await b.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);
            Assert.Equal("backup", FailoverTests.Header(viaB, "x-afp-key"));
            Assert.Equal("1", FailoverTests.Header(viaB, "x-afp-attempts"));
        }

        // The dead key cost one upstream call in the whole deployment.
        Assert.Equal(1, upstream.Requests.Count(r => r.Key == primary && r.PathAndQuery == "/v1/messages"));
    }

    [Fact]
    public async Task RacingTransitions_LaterDeadlineWins_AndDeadStaysDead()
    {
        await using var d = await Deployment.StartAsync();
        var (redis, upstream, primary, backup) = (d.Redis, d.Upstream, d.Primary, d.Backup);
        var a = await d.AddReplicaAsync();
        var b = await d.AddReplicaAsync();
        var (onA, onB) = (Key(a, "primary"), Key(b, "primary"));
        // The shared record keeps milliseconds.
        var now = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        var limited = new KeyFailure(429, "rate_limit_error", null, "slow down", null, now);

        // Both replicas learn of a rate limit at once, with different deadlines.
        await Task.WhenAll(
            Task.Run(() => Board(a).ReportCooling(onA, limited, now.AddSeconds(90)), Ct),
            Task.Run(() => Board(b).ReportCooling(onB, limited, now.AddSeconds(30)), Ct));
        await FailoverTests.WaitUntilAsync(() => onA.Health.Until == now.AddSeconds(90) && onB.Health.Until == now.AddSeconds(90));

        // A finds it dead; B's later, longer cooldown must not bring it back to "cooling".
        Board(a).ReportDead(onA, new KeyFailure(403, "permission_error", null, "no", null, now));
        await FailoverTests.WaitUntilAsync(() => onB.Health.State == KeyState.Dead);
        Board(b).ReportCooling(onB, limited with { At = now.AddSeconds(1) }, now.AddSeconds(600));
        await FailoverTests.WaitUntilAsync(() => Store(b).Status.Pending == 0);
        Assert.Equal(KeyState.Dead, onA.Health.State);
        Assert.Equal(KeyState.Dead, onB.Health.State);
        Assert.Equal(KeyState.Dead, await SharedStateAsync(redis, "primary"));
    }

    [Fact]
    public async Task RedisKilledMidTraffic_NoClientFails_AndWhatWasLearnedMeanwhileReachesTheOthers()
    {
        await using var d = await Deployment.StartAsync();
        var (redis, upstream, primary, backup) = (d.Redis, d.Upstream, d.Primary, d.Backup);
        var a = await d.AddReplicaAsync();

        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 60; i++)
        {
            if (i == 20)
            {
                await redis.KillAsync();
            }

            if (i == 30)
            {
                // Learned while Redis is away: the primary dies.
                upstream.SetKeyFault(primary, KeyFault.Revoked);
            }

            using var response = await a.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);
            statuses.Add(response.StatusCode);
        }

        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));
        Assert.False(Store(a).Status.Connected);
        Assert.True(Store(a).Status.Pending >= 1);

        await redis.RestartAsync();
        await FailoverTests.WaitUntilAsync(() => Store(a).Status is { Connected: true, Pending: 0 });
        Assert.Equal(KeyState.Dead, await SharedStateAsync(redis, "primary"));

        // A replica started afterwards knows at once, without spending a call on the dead key.
        var b = await d.AddReplicaAsync();
        await FailoverTests.WaitUntilAsync(() => Key(b, "primary").Health.State == KeyState.Dead);
        Assert.Equal(KeyState.Dead, Key(a, "primary").Health.State);
    }

    [Fact]
    public async Task RedisRestartedEmpty_TheReplicasRecordWhatTheyKnowAgain_AndLaterChangesStillPropagate()
    {
        await using var d = await Deployment.StartAsync();
        var (redis, upstream, primary, backup) = (d.Redis, d.Upstream, d.Primary, d.Backup);
        var a = await d.AddReplicaAsync();
        var b = await d.AddReplicaAsync();
        // Some history first, so the shared record's version has moved well past 1.
        var forbidden = new KeyFailure(403, "permission_error", null, "no", null, DateTimeOffset.UtcNow);
        Board(a).ReportDead(Key(a, "primary"), forbidden);
        await FailoverTests.WaitUntilAsync(() => Key(b, "primary").Health.State == KeyState.Dead);
        Board(b).Heal(Key(b, "primary"), "test");
        await FailoverTests.WaitUntilAsync(() => Key(a, "primary").Health.IsUsable);
        Board(a).ReportDead(Key(a, "primary"), forbidden with { At = DateTimeOffset.UtcNow });
        await FailoverTests.WaitUntilAsync(() => Key(b, "primary").Health.State == KeyState.Dead);

        // No persistence: the restarted Redis is empty.
        await redis.KillAsync();
        await redis.RestartAsync();
        for (var i = 0; i < 500 && await SharedStateAsync(redis, "primary") != KeyState.Dead; i++)
        {
            await Task.Delay(20, Ct);
        }

        Assert.Equal(KeyState.Dead, await SharedStateAsync(redis, "primary"));

        var c = await d.AddReplicaAsync();
        await FailoverTests.WaitUntilAsync(() => Key(c, "primary").Health.State == KeyState.Dead);

        // Versions after the reset still read as newer than what the replicas held before it.
        Board(a).Heal(Key(a, "primary"), "test");
        await FailoverTests.WaitUntilAsync(() => Key(b, "primary").Health.IsUsable && Key(c, "primary").Health.IsUsable);
    }

    [Fact]
    public async Task RedisDownAtStart_TheProxyStartsAndServes_AndSaysSo()
    {
        await using var d = await Deployment.StartAsync();
        await d.Redis.KillAsync();
        var a = await d.AddReplicaAsync(waitConnected: false);

        using var response = await a.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var store = (await a.Management.GetFromJsonAsync<System.Text.Json.JsonElement>("/status", Ct)).GetProperty("store");
        Assert.Equal("redis", store.GetProperty("kind").GetString());
        Assert.False(store.GetProperty("connected").GetBoolean());
    }

    [Fact]
    public async Task DeadKey_IsCheckedAboutOncePerIntervalInTotal_AndOneReplicasCheckHealsItEverywhere()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.Parse("2026-03-03T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        // The probe lease lasts one HealDelay on Redis's own clock (real time): a few real seconds cover many fake rounds.
        await using var d = await Deployment.StartAsync(time, c => c.Set("Probes:HealDelay", "00:00:03").Set("Probes:MaxHealDelay", "00:00:03"));
        var (upstream, primary) = (d.Upstream, d.Primary);
        var a = await d.AddReplicaAsync();
        var b = await d.AddReplicaAsync();
        upstream.SetKeyFault(primary, KeyFault.Revoked);
        using (await a.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
        {
        }

        await FailoverTests.WaitUntilAsync(() => Key(b, "primary").Health.State == KeyState.Dead);
        int Checks() => upstream.Requests.Count(r => r.Method == "GET" && r.Key == primary);
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < 20; i++)
        {
            time.Advance(TimeSpan.FromSeconds(3));
            await Task.Delay(10, Ct);
        }

        // Two replicas, ~20 rounds each: independent healers would have checked ~40 times.
        var checks = Checks();
        TestContext.Current.SendDiagnosticMessage($"{checks} check(s) in {clock.Elapsed.TotalSeconds:0.0} s real time");
        Assert.InRange(checks, 1, 1 + (int)(clock.Elapsed.TotalSeconds / 3) + 1);

        // Restored: one replica's passing check heals the key on both.
        upstream.SetKeyFault(primary, KeyFault.None);
        for (var i = 0; i < 2000 && !(Key(a, "primary").Health.IsUsable && Key(b, "primary").Health.IsUsable); i++)
        {
            time.Advance(TimeSpan.FromSeconds(3));
            await Task.Delay(10, Ct);
        }

        Assert.True(Key(a, "primary").Health.IsUsable && Key(b, "primary").Health.IsUsable);
    }

    [Fact]
    public async Task RedisHoldsNoSecretBytes()
    {
        await using var d = await Deployment.StartAsync();
        var (redis, upstream, primary, backup) = (d.Redis, d.Upstream, d.Primary, d.Backup);
        var a = await d.AddReplicaAsync();
        upstream.SetKeyFault(primary, KeyFault.Revoked);
        using (await a.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
        {
        }

        // A 401 is confirmed by a check before the key is marked: wait for the mark, then for its write.
        await FailoverTests.WaitUntilAsync(() => !Key(a, "primary").Health.IsUsable);
        await FailoverTests.WaitUntilAsync(() => Store(a).Status.Pending == 0);
        await using var client = await ConnectionMultiplexer.ConnectAsync(redis.Configuration);
        var server = client.GetServer(client.GetEndPoints()[0]);
        await FailoverTests.WaitUntilAsync(() => server.Keys(pattern: "*").Any());
        var dump = new List<string>();
        await foreach (var key in server.KeysAsync(pattern: "*"))
        {
            // DUMP serializes any type (hashes, the audit stream, sets): whatever a backup of Redis would hold.
            dump.Add(key.ToString());
            dump.Add(System.Text.Encoding.Latin1.GetString((byte[])(await client.GetDatabase().KeyDumpAsync(key))!));
        }

        Assert.NotEmpty(dump);
        var everything = string.Join('\n', dump);
        Assert.DoesNotContain(primary[..^4], everything, StringComparison.Ordinal);
        Assert.DoesNotContain(backup[..^4], everything, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MalformedRecord_IsSkippedWithOneWarning_AndRewritten_WhileEveryOtherKeyKeepsSyncing()
    {
        await using var d = await Deployment.StartAsync(configure: c => c.Set("Redis:ReconcileInterval", "00:00:00.05"));
        await using var client = await ConnectionMultiplexer.ConnectAsync(d.Redis.Configuration);
        var db = client.GetDatabase();
        // A string where a hash belongs.
        await db.StringSetAsync("afp:key:anthropic:backup", "not a record");
        var b = await d.AddReplicaAsync();

        // Another replica's change that only the re-read carries (no pub/sub message): B must still adopt it.
        await db.HashSetAsync("afp:key:anthropic:primary", [new("v", long.MaxValue / 2), new("s", (int)KeyState.Disabled), new("since", 1), new("n", 0)]);
        await FailoverTests.WaitUntilAsync(() => Key(b, "primary").Health.State == KeyState.Disabled);
        await WaitUntilGoneAsync();

        // A hash with a state that is no number: dropped too, without another warning about the same record.
        await db.HashSetAsync("afp:key:anthropic:backup", [new("v", 1), new("s", "bogus"), new("since", 0), new("n", 0)]);
        await WaitUntilGoneAsync();

        Assert.Equal(1, b.Logs.CountEventId(5007));
        Assert.Contains("'backup'", b.Logs.AllText, StringComparison.Ordinal);
        Assert.Equal(KeyState.Usable, Key(b, "backup").Health.State);

        async Task WaitUntilGoneAsync()
        {
            for (var i = 0; i < 500 && await db.KeyExistsAsync("afp:key:anthropic:backup"); i++)
            {
                await Task.Delay(20, Ct);
            }

            Assert.False(await db.KeyExistsAsync("afp:key:anthropic:backup"));
        }
    }

    [Fact]
    public async Task WrongPassword_IsReportedAsAnAuthenticationFailure_NotAsUnreachable()
    {
        const string Wrong = "wrong-password-4f1c9a";
        var redis = await RedisServer.StartAsync(password: "right-password-7d2e0b");
        await using var d = await Deployment.StartOnAsync($"127.0.0.1:{redis.Port},password={Wrong}", redis);
        var a = await d.AddReplicaAsync(waitConnected: false);

        await FailoverTests.WaitUntilAsync(() => Store(a).Status.Problem == "authentication failed");
        Assert.False(Store(a).Status.Connected);
        var status = await a.Management.GetStringAsync("/status", Ct);
        Assert.Contains("authentication failed", status, StringComparison.Ordinal);
        Assert.Contains("refused this replica's credentials", a.Logs.AllText, StringComparison.Ordinal);
        Assert.DoesNotContain(Wrong, a.Logs.AllText + status, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TlsAndPassword_KeyDeathPropagates()
    {
        const string Password = "tls-password-8c3f1e";
        var redis = await RedisServer.StartTlsAsync(Password);
        await using var d = await Deployment.StartOnAsync($"localhost:{redis.Port},ssl=true,sslHost=localhost,password={Password}", redis,
            c => c.Set("Redis:CaCertificateFile", redis.CaFile));
        var a = await d.AddReplicaAsync();
        var b = await d.AddReplicaAsync();

        d.Upstream.SetKeyFault(d.Primary, KeyFault.OAuthRejected);
        using (var viaA = await a.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
        {
            Assert.Equal("backup", FailoverTests.Header(viaA, "x-afp-key"));
        }

        await FailoverTests.WaitUntilAsync(() => Key(b, "primary").Health.State == KeyState.Dead);
        Assert.DoesNotContain(Password, a.Logs.AllText + b.Logs.AllText, StringComparison.Ordinal);
    }

    private static IKeyStateStore Store(ProxyHost proxy) => proxy.Services.GetRequiredService<IKeyStateStore>();

    private static KeyStateBoard Board(ProxyHost proxy) => proxy.Services.GetRequiredService<KeyStateBoard>();

    private static PoolKey Key(ProxyHost proxy, string name) => proxy.Services.GetRequiredService<PoolRegistry>().Pools[0].Keys.Single(k => k.Name == name);

    private static async Task<KeyState?> SharedStateAsync(RedisServer redis, string key)
    {
        await using var client = await ConnectionMultiplexer.ConnectAsync(redis.Configuration);
        var state = await client.GetDatabase().HashGetAsync($"afp:key:anthropic:{key}", "s");
        return state.IsNull ? null : (KeyState)(int)state;
    }
}
