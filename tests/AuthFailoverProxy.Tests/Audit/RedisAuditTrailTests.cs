using System.Net;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.State;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;
using static AuthFailoverProxy.Tests.Audit.AuditTestBench;

namespace AuthFailoverProxy.Tests.Audit;

/// <summary>The audit trail with Redis: one capped stream for the deployment, kept across replicas and across Redis outages.</summary>
public sealed class RedisAuditTrailTests
{
    private const string Stream = "afp:audit";

    [Fact]
    public async Task Trail_SurvivesTheReplica_ANewReplicaReadsIt_AndTheStreamHoldsNoSecretBytes()
    {
        await using var d = await Deployment.StartAsync(configure: c => c.WithAdmin());
        d.Upstream.SetKeyFault(d.Primary, KeyFault.Revoked);
        var config = new ProxyConfig()
            .Pool("anthropic", d.Upstream, isDefault: true, keys: [("primary", d.Primary), ("backup", d.Backup)])
            .Set("Redis:Configuration", d.Redis.Configuration)
            .WithAdmin();
        await using (var gone = await ProxyHost.StartAsync(config))
        {
            await FailoverTests.WaitUntilAsync(() => gone.Services.GetRequiredService<IKeyStateStore>().Status.Connected);
            using (var response = await gone.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }

            await WaitForEventAsync(gone, "pool.degraded");
        }

        var replica = await d.AddReplicaAsync();
        var events = await EventsAsync(replica);

        Assert.Contains(events, e => e.GetProperty("kind").GetString() == "key.dead" && e.GetProperty("key").GetString() == "primary" && e.GetProperty("status").GetInt32() == 401);
        Assert.Contains(events, e => e.GetProperty("kind").GetString() == "key.failover");
        var everything = await DumpAsync(d.Redis);
        Assert.Contains("invalid x-api-key", everything, StringComparison.Ordinal);
        foreach (var secret in new[] { d.Primary[..^4], d.Backup[..^4], config.ClientToken, AdminToken })
        {
            Assert.DoesNotContain(secret, everything, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task RedisDown_EventsSeenMeanwhile_AreWrittenInOrder_WhenItReturns()
    {
        await using var d = await Deployment.StartAsync(configure: c => c.WithAdmin().Set("Audit:RetryInterval", "00:00:00.2"));
        var replica = await d.AddReplicaAsync();
        var store = replica.Services.GetRequiredService<IKeyStateStore>();

        await d.Redis.KillAsync();
        await FailoverTests.WaitUntilAsync(() => !store.Status.Connected);
        d.Upstream.SetKeyFault(d.Primary, KeyFault.Revoked);
        using (var response = await replica.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        using (var admin = AdminClient(replica))
        using (var meanwhile = await admin.GetAsync("/admin/events", Ct))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, meanwhile.StatusCode);
            Assert.Contains("Redis is not reachable", await meanwhile.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        }

        // The restarted server starts empty: whatever the stream holds afterwards was written after it returned.
        await d.Redis.RestartAsync();
        await WaitForEventAsync(replica, "store.restored");

        await using var client = await ConnectionMultiplexer.ConnectAsync(d.Redis.Configuration);
        var kinds = (await client.GetDatabase().StreamRangeAsync(Stream)).Select(e => Kind(e["event"].ToString())).ToList();
        Assert.Equal(["store.lost", "key.dead", "key.failover", "pool.degraded", "store.restored"], kinds);
        Assert.Equal(1, replica.Logs.CountEventId(8002));
        Assert.Equal(1, replica.Logs.CountEventId(8003));
    }

    [Fact]
    public async Task Stream_IsTrimmedToAboutMaxEvents_KeepingTheNewest()
    {
        await using var d = await Deployment.StartAsync(configure: c => c.WithAdmin().Set("Audit:MaxEvents", 10));
        var replica = await d.AddReplicaAsync();

        await TellAsync(replica, 500, TimeProvider.System.GetUtcNow());

        await using var client = await ConnectionMultiplexer.ConnectAsync(d.Redis.Configuration);
        // MAXLEN ~ trims whole blocks of (by default) 100 entries: about 10, never 500.
        Assert.InRange(await client.GetDatabase().StreamLengthAsync(Stream), 10, 110);
        var kept = (await EventsAsync(replica)).Select(Number).ToList();
        Assert.Equal(499, kept[^1]);
        Assert.Equal(Enumerable.Range(kept[0], kept.Count), kept);
    }

    private static async Task<string> DumpAsync(RedisServer redis)
    {
        await using var client = await ConnectionMultiplexer.ConnectAsync(redis.Configuration);
        var entries = await client.GetDatabase().StreamRangeAsync(Stream);
        Assert.NotEmpty(entries);
        return string.Join('\n', entries.SelectMany(e => e.Values).Select(v => $"{v.Name}={v.Value}"));
    }

    private static string Kind(string json) => System.Text.Json.JsonDocument.Parse(json).RootElement.GetProperty("kind").GetString()!;
}
