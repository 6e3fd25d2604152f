using System.Net;
using System.Security.Cryptography;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using Serilog.Events;
using static AuthFailoverProxy.Tests.Audit.AuditTestBench;

namespace AuthFailoverProxy.Tests.State;

/// <summary>
/// The shared store on a real 3-node Redis Cluster, the mode of most managed Redis services, where a transaction whose
/// keys lie in different hash slots is refused with CROSSSLOT.
/// </summary>
public sealed class RedisClusterTests
{
    private const string Opus = "claude-opus-4-8";

    [Fact]
    public async Task EveryStoreBehaviour_WorksOnACluster()
    {
        var dataKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        await using var d = await Deployment.StartOnClusterAsync(c => c.WithAdmin().Set("Encryption:DataKey", dataKey));
        var a = await d.AddReplicaAsync();
        var b = await d.AddReplicaAsync();

        // Scopes: a rate limit for one model class, learned on A, rests the key on B too.
        d.Upstream.SetModelFault(Opus, ModelFault.RateLimited, TimeSpan.FromSeconds(30), organization: "org-primary");
        using (var viaA = await a.Agent.PostAsync("/v1/messages", Scenario.MessageBody(Opus), Ct))
        {
            Assert.Equal("backup", FailoverTests.Header(viaA, "x-afp-key"));
        }

        await FailoverTests.WaitUntilAsync(() => Key(b, "primary")!.Scopes is [{ Name: "class:opus" }]);

        // Admin disable and enable reach the other replica.
        using (var disabled = await AdminClient(a).PostAsync("/admin/pools/anthropic/keys/primary/disable", null, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, disabled.StatusCode);
        }

        await FailoverTests.WaitUntilAsync(() => Key(b, "primary")!.Health.State == KeyState.Disabled);
        using (var enabled = await AdminClient(b).PostAsync("/admin/pools/anthropic/keys/primary/enable", null, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, enabled.StatusCode);
        }

        await FailoverTests.WaitUntilAsync(() => Key(a, "primary")!.Health.State != KeyState.Disabled);

        // A key dies behind A: B sees it.
        d.Upstream.SetKeyFault(d.Primary, KeyFault.OAuthRejected);
        using (var viaA = await a.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
        {
            Assert.Equal("backup", FailoverTests.Header(viaA, "x-afp-key"));
        }

        await FailoverTests.WaitUntilAsync(() => Key(b, "primary")!.Health.State == KeyState.Dead);

        // A key added at runtime on A reaches B; removed on B, it leaves A.
        using (var added = await AdminClient(a).PostAsJsonAsync("/admin/pools/anthropic/keys", new { name = "spare", secret = Secrets.AnthropicApiKey() }, Ct))
        {
            Assert.Equal(HttpStatusCode.Created, added.StatusCode);
        }

        await FailoverTests.WaitUntilAsync(() => Key(b, "spare") is { Health.State: KeyState.Pending });
        using (var removed = await AdminClient(b).DeleteAsync("/admin/pools/anthropic/keys/spare", Ct))
        {
            Assert.Equal(HttpStatusCode.OK, removed.StatusCode);
        }

        await FailoverTests.WaitUntilAsync(() => Key(a, "spare") is null);

        // Trials and leases: one replica at a time.
        Assert.True(await Store(a).TryLeaseProbeAsync(Key(a, "primary")!, TimeSpan.FromMinutes(1)));
        Assert.False(await Store(b).TryLeaseProbeAsync(Key(b, "primary")!, TimeSpan.FromMinutes(1)));

        // The audit trail, written by A, read by B.
        var events = await WaitForEventAsync(b, "key.dead");
        Assert.Contains(events, e => e.GetProperty("kind").GetString() == "key.dead" && e.GetProperty("key").GetString() == "primary");

        foreach (var replica in new[] { a, b })
        {
            Assert.DoesNotContain("CROSSSLOT", replica.Logs.AllText, StringComparison.Ordinal);
            Assert.DoesNotContain(replica.Logs.Messages(LogEventLevel.Error), m => m.Contains("Redis", StringComparison.Ordinal));
        }
    }

    private static IKeyStateStore Store(ProxyHost proxy) => proxy.Services.GetRequiredService<IKeyStateStore>();

    private static PoolKey? Key(ProxyHost proxy, string name) => proxy.Services.GetRequiredService<PoolRegistry>().Pools[0].FindKey(name);
}
