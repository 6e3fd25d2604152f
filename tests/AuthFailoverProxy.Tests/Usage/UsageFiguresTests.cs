using System.Net;
using System.Text.Json;
using AuthFailoverProxy.Tests.Audit;
using AuthFailoverProxy.Tests.Fakes;
using AuthFailoverProxy.Usage;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace AuthFailoverProxy.Tests.Usage;

/// <summary>
/// Tokens per key and client over the last hour and day in <c>/status</c>, the deployment's through Redis (or this
/// replica's, said so), priced where there is a price table, and each hour's summary in the audit trail.
/// </summary>
public sealed class UsageFiguresTests
{
    private static readonly DateTimeOffset Start = DateTimeOffset.Parse("2026-03-03T09:58:10Z", System.Globalization.CultureInfo.InvariantCulture);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    // What the simulated provider answers for Scenario.MessageBody(): input is the body's length / 4, output 9.
    private static readonly long Input = Scenario.MessageBody().ReadAsStringAsync().Result.Length / 4;

    [Fact]
    public async Task TwoReplicas_StatusShowsTheDeploymentsTokens_PerKeyAndClient_Priced()
    {
        var time = new FakeTimeProvider(Start);
        await using var deployment = await Deployment.StartAsync(time, configure: c => BudgetTests.WithRunaway(c)
            .Set("Usage:Prices:0:Model", "claude-sonnet-4").Set("Usage:Prices:0:Input", "3").Set("Usage:Prices:0:Output", "15"));
        var a = await deployment.AddReplicaAsync();
        var b = await deployment.AddReplicaAsync();
        await SendAsync(a, a.ClientToken, 2);
        await SendAsync(b, BudgetTests.RunawayToken, 3);

        var usage = await WaitForUsageAsync(time, a, u => u.GetProperty("lastHour").GetProperty("total").GetProperty("requests").GetInt64() == 5);

        Assert.Equal("deployment", usage.GetProperty("scope").GetString());
        Assert.False(usage.TryGetProperty("note", out _));
        Assert.Equal("USD", usage.GetProperty("currency").GetString());
        foreach (var window in new[] { "lastHour", "lastDay" })
        {
            var figures = usage.GetProperty(window);
            var primary = Assert.Single(figures.GetProperty("keys").EnumerateArray());
            Assert.Equal("primary", primary.GetProperty("key").GetString());
            Assert.Equal(5 * Input, primary.GetProperty("inputTokens").GetInt64());
            Assert.Equal(5 * 9, primary.GetProperty("outputTokens").GetInt64());
            // claude-sonnet-4-5 is priced by the entry it starts with.
            Assert.Equal(((5 * Input * 3m) + (45 * 15m)) / 1_000_000m, primary.GetProperty("cost").GetDecimal());
            Assert.Equal(0, primary.GetProperty("unpricedTokens").GetInt64());
            Assert.Equal("claude-sonnet-4-5", Assert.Single(primary.GetProperty("models").EnumerateArray()).GetProperty("model").GetString());
            var clients = figures.GetProperty("clients").EnumerateArray().ToDictionary(c => c.GetProperty("client").GetString()!, c => c.GetProperty("requests").GetInt64());
            Assert.Equal(new Dictionary<string, long> { ["runaway"] = 3, ["test-agent"] = 2 }, clients);
        }

        var status = await a.Management.GetStringAsync("/status", Ct);
        foreach (var secret in new[] { deployment.Primary, deployment.Backup, a.ClientToken, BudgetTests.RunawayToken })
        {
            Assert.DoesNotContain(secret, status, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task WithoutRedis_TheFiguresAreThisProcesss_AndSaySo_NoPriceTableNoCost()
    {
        var time = new FakeTimeProvider(Start);
        await using var s = await Scenario.StartAsync(time: time);
        await SendAsync(s.Proxy, s.Proxy.ClientToken, 1);

        var usage = await WaitForUsageAsync(time, s.Proxy, u => u.GetProperty("lastHour").GetProperty("total").GetProperty("requests").GetInt64() == 1);

        Assert.Equal("replica", usage.GetProperty("scope").GetString());
        Assert.Contains("No shared store", usage.GetProperty("note").GetString(), StringComparison.Ordinal);
        Assert.False(usage.TryGetProperty("currency", out _));
        Assert.False(usage.GetProperty("lastHour").GetProperty("total").TryGetProperty("cost", out _));
    }

    [Fact]
    public async Task RedisAway_StatusFallsBackToThisReplica_AndTheCountsReachRedisWhenItReturns()
    {
        var time = new FakeTimeProvider(Start);
        await using var deployment = await Deployment.StartAsync(time);
        var a = await deployment.AddReplicaAsync();
        await deployment.Redis.KillAsync();
        await SendAsync(a, a.ClientToken, 2);

        var usage = await WaitForUsageAsync(time, a, u => u.GetProperty("lastHour").GetProperty("total").GetProperty("requests").GetInt64() == 2);
        Assert.Equal("replica", usage.GetProperty("scope").GetString());
        Assert.Contains("Redis is unreachable", usage.GetProperty("note").GetString(), StringComparison.Ordinal);

        await deployment.Redis.RestartAsync();
        var b = await deployment.AddReplicaAsync();
        usage = await WaitForUsageAsync(time, b, u => u.GetProperty("scope").GetString() == "deployment" && u.GetProperty("lastHour").GetProperty("total").GetProperty("requests").GetInt64() == 2);
        Assert.Equal(2 * Input, usage.GetProperty("lastHour").GetProperty("total").GetProperty("inputTokens").GetInt64());
    }

    [Fact]
    public async Task EachHour_OneSummaryInTheAuditTrail_ForTheWholeDeployment()
    {
        var time = new FakeTimeProvider(Start);
        await using var deployment = await Deployment.StartAsync(time, configure: c => BudgetTests.WithRunaway(c).WithAdmin());
        var a = await deployment.AddReplicaAsync();
        var b = await deployment.AddReplicaAsync();
        await SendAsync(a, a.ClientToken, 2);
        await SendAsync(b, BudgetTests.RunawayToken, 1);
        await WaitForUsageAsync(time, a, u => u.GetProperty("lastHour").GetProperty("total").GetProperty("requests").GetInt64() == 3);

        // Past 10:00 and the few seconds every replica's last counts take to arrive.
        var events = await Task.Run(async () =>
        {
            while (true)
            {
                time.Advance(TimeSpan.FromSeconds(1));
                var trail = await AuditTestBench.EventsAsync(a);
                if (trail.Any(e => e.GetProperty("kind").GetString() == "usage.summary"))
                {
                    return trail;
                }

                Assert.True(time.GetUtcNow() < Start.AddMinutes(3), "no usage summary two minutes after the hour");
                await Task.Delay(20, Ct);
            }
        }, Ct);

        var summary = Assert.Single(events, e => e.GetProperty("kind").GetString() == "usage.summary");
        var message = summary.GetProperty("message").GetString()!;
        Assert.StartsWith("From 09:00 to 10:00 UTC the deployment spent", message, StringComparison.Ordinal);
        Assert.Contains($"in 3 answers (input {3 * Input:N0}; output 27)", message, StringComparison.Ordinal);
        Assert.Contains($"By key: anthropic/primary {3 * (Input + 9):N0}.", message, StringComparison.Ordinal);
        Assert.Contains($"By client: test-agent {2 * (Input + 9):N0}, runaway {Input + 9:N0}.", message, StringComparison.Ordinal);
    }

    [Fact]
    public void Prices_TheLongestEntryAModelStartsWith_CacheAtItsOwnRate()
    {
        var prices = new PriceTable(Options.Create(new UsageOptions
        {
            Prices =
            [
                new ModelPrice { Model = "claude", Input = 1, Output = 1 },
                new ModelPrice { Model = "claude-sonnet-4-5", Input = 3, Output = 15, CacheRead = 0.3m, CacheWrite = 3.75m },
            ],
        }));

        // 1,000,000 input of which 600,000 read from and 100,000 written to the cache, 10,000 output.
        var counts = new UsageCounts(1, 1_000_000, 10_000, 600_000, 100_000);
        Assert.Equal((300_000 * 3m + (600_000 * 0.3m) + (100_000 * 3.75m) + (10_000 * 15m)) / 1_000_000m, prices.Cost("claude-sonnet-4-5-20250929", counts));
        Assert.Equal(1.01m, prices.Cost("claude-haiku-4-5", counts));
        Assert.Null(prices.Cost("gpt-4o", counts));
        Assert.Null(new PriceTable(Options.Create(new UsageOptions())).Currency);
    }

    private static async Task SendAsync(ProxyHost proxy, string token, int count)
    {
        using var agent = proxy.CreateAgentClient(token);
        for (var i = 0; i < count; i++)
        {
            using var answer = await agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);
            Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
            await answer.Content.ReadAsStringAsync(Ct);
        }
    }

    /// <summary>Moves time on a sync at a time until <paramref name="proxy"/>'s <c>/status</c> usage fits.</summary>
    private static async Task<JsonElement> WaitForUsageAsync(FakeTimeProvider time, ProxyHost proxy, Func<JsonElement, bool> fits)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(20));
        while (true)
        {
            time.Advance(TimeSpan.FromMilliseconds(500));
            var usage = (await proxy.Management.GetFromJsonAsync<JsonElement>("/status", timeout.Token)).GetProperty("usage");
            if (fits(usage))
            {
                return usage;
            }

            await Task.Delay(20, timeout.Token);
        }
    }
}
