using System.Net;
using System.Text;
using System.Text.Json;
using AuthFailoverProxy.Tests.Audit;
using AuthFailoverProxy.Tests.Fakes;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Usage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace AuthFailoverProxy.Tests.Usage;

/// <summary>
/// Budgets per client token: a runaway agent is refused in the provider's own 429 format, costs no upstream call, and
/// leaves every other agent served; across replicas through Redis, failing open (counted locally) while Redis is away.
/// </summary>
public sealed class BudgetTests
{
    internal const string Runaway = "runaway";
    internal const string RunawayToken = "runaway-token-0123456789abcdef";

    // Ten seconds into a minute: a minute's window ends 50 s later, within what the SDKs wait.
    private static readonly DateTimeOffset Start = DateTimeOffset.Parse("2026-03-03T09:00:10Z", System.Globalization.CultureInfo.InvariantCulture);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    internal static ProxyConfig WithRunaway(ProxyConfig config, long? rpm = null, long? tpm = null, long? tpd = null)
    {
        config.Set("Clients:Tokens:1:Name", Runaway).Set("Clients:Tokens:1:Token", RunawayToken);
        foreach (var (setting, value) in new[] { ("RequestsPerMinute", rpm), ("TokensPerMinute", tpm), ("TokensPerDay", tpd) })
        {
            if (value is { } limit)
            {
                config.Set($"Clients:Tokens:1:Budget:{setting}", limit);
            }
        }

        return config;
    }

    [Fact]
    public async Task RequestsPerMinute_RefusedLikeTheProvidersRateLimit_WithoutAnUpstreamCall_OthersServed()
    {
        var time = new FakeTimeProvider(Start);
        await using var s = await Scenario.StartAsync(time: time, configure: c => WithRunaway(c, rpm: 3).WithAdmin());
        using var runaway = s.Proxy.CreateAgentClient(RunawayToken);
        for (var i = 0; i < 3; i++)
        {
            using var served = await s.PostMessageAsync(runaway);
            Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        }

        var calls = s.Upstream.RequestCount;
        for (var i = 0; i < 5; i++)
        {
            using var refused = await s.PostMessageAsync(runaway);
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.Equal("50", refused.Headers.GetValues("retry-after").Single());
            Assert.False(refused.Headers.Contains("x-should-retry"));
            var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync(Ct)).RootElement;
            Assert.Equal("error", error.GetProperty("type").GetString());
            Assert.Equal("rate_limit_error", error.GetProperty("error").GetProperty("type").GetString());
            Assert.Contains("'runaway' has spent its budget of 3 requests per minute", error.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        }

        Assert.Equal(calls, s.Upstream.RequestCount);
        // Every other client is served as before.
        using (var other = await s.PostMessageAsync())
        {
            Assert.Equal(HttpStatusCode.OK, other.StatusCode);
        }

        // Told once for the five refusals.
        time.Advance(TimeSpan.FromMilliseconds(5));
        var events = await AuditTestBench.WaitForEventAsync(s.Proxy, "budget.reached");
        var reached = Assert.Single(events, e => e.GetProperty("kind").GetString() == "budget.reached");
        Assert.Equal(Runaway, reached.GetProperty("client").GetString());
        Assert.Contains("Clients:Tokens:1:Budget:RequestsPerMinute", reached.GetProperty("remediation").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain(RunawayToken, reached.ToString(), StringComparison.Ordinal);

        // The next minute starts from nothing.
        time.Advance(TimeSpan.FromSeconds(50));
        using var again = await s.PostMessageAsync(runaway);
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
    }

    [Fact]
    public async Task TokensPerDay_SpentByAnswers_RefusedWithNoRetry_InTheOpenAIFormat()
    {
        var time = new FakeTimeProvider(Start);
        await using var s = await Scenario.StartAsync(kind: "openai", time: time, configure: c => WithRunaway(c, tpd: 20));
        using var runaway = s.Proxy.CreateAgentClient(RunawayToken);
        using (var served = await runaway.PostAsync("/v1/chat/completions", ChatBody(), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, served.StatusCode);
            await served.Content.ReadAsStringAsync(Ct);
        }

        // The answer's tokens are counted once it has passed.
        var budgets = s.Proxy.Services.GetRequiredService<ClientBudgets>();
        await FailoverTests.WaitUntilAsync(() => budgets.Status().Single().TokensPerDay!.Used >= 20);
        var calls = s.Upstream.RequestCount;
        using var refused = await runaway.PostAsync("/v1/chat/completions", ChatBody(), Ct);
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        // The day ends in hours: the SDKs would ignore so long a retry-after, so they are told not to retry.
        Assert.Equal("false", refused.Headers.GetValues("x-should-retry").Single());
        var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("error");
        Assert.Equal("tokens", error.GetProperty("type").GetString());
        Assert.Equal("rate_limit_exceeded", error.GetProperty("code").GetString());
        Assert.Equal(calls, s.Upstream.RequestCount);
    }

    [Fact]
    public async Task TwoReplicas_ShareOneBudgetThroughRedis()
    {
        var time = new FakeTimeProvider(Start);
        await using var deployment = await Deployment.StartAsync(time, configure: c => WithRunaway(c, rpm: 4));
        var a = await deployment.AddReplicaAsync();
        var b = await deployment.AddReplicaAsync();
        using var viaA = a.CreateAgentClient(RunawayToken);
        using var viaB = b.CreateAgentClient(RunawayToken);
        for (var i = 0; i < 3; i++)
        {
            using var served = await viaA.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);
            Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        }

        // One sync later, replica B knows what A admitted.
        await SyncedAsync(time, b, used => used == 3);
        using (var fourth = await viaB.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, fourth.StatusCode);
        }

        using var refused = await viaB.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        await SyncedAsync(time, a, used => used == 4);
        using var refusedOnA = await viaA.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);
        Assert.Equal(HttpStatusCode.TooManyRequests, refusedOnA.StatusCode);
    }

    [Fact]
    public async Task RedisDown_FailsOpen_EachReplicaCountsItsOwn()
    {
        var time = new FakeTimeProvider(Start);
        await using var deployment = await Deployment.StartAsync(time, configure: c => WithRunaway(c, rpm: 3));
        var a = await deployment.AddReplicaAsync();
        var b = await deployment.AddReplicaAsync();
        await deployment.Redis.KillAsync();
        await FailoverTests.WaitUntilAsync(() => !a.Services.GetRequiredService<AuthFailoverProxy.State.IKeyStateStore>().Status.Connected);

        // Nothing is refused because Redis is away: each replica admits up to the budget on its own count.
        foreach (var replica in new[] { a, b })
        {
            using var agent = replica.CreateAgentClient(RunawayToken);
            for (var i = 0; i < 3; i++)
            {
                time.Advance(TimeSpan.FromMilliseconds(1));
                using var served = await agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);
                Assert.Equal(HttpStatusCode.OK, served.StatusCode);
            }

            using var refused = await agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        }

        // Syncs that fail keep the count.
        time.Advance(TimeSpan.FromSeconds(2));
        await FailoverTests.WaitUntilAsync(() => a.Services.GetRequiredService<ClientBudgets>().Status().Single().RequestsPerMinute!.Used == 3);
    }

    [Fact]
    public async Task BadBudgetsAndPrices_StopTheStart_NamingTheSetting()
    {
        var config = WithRunaway(new ProxyConfig().Pool("anthropic", new Uri("https://api.test.local"), isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())]), tpm: 0)
            .Set("Usage:Prices:0:Model", "claude-sonnet-4-5").Set("Usage:Prices:0:Input", "-3")
            .Set("Usage:Prices:1:Input", "3")
            .Set("Usage:SyncIntervl", "00:00:02");

        var problems = await Hosting.ConfigurationValidationTests.StartupProblemsAsync(config);

        Assert.Contains(problems, p => p.Contains("Usage:SyncIntervl", StringComparison.Ordinal) && p.Contains("SyncInterval", StringComparison.Ordinal));
        config.Remove("Usage:SyncIntervl");
        Assert.Contains("Clients:Tokens:1:Budget:TokensPerMinute must be more than zero, or left out for no limit.", await Hosting.ConfigurationValidationTests.StartupProblemsAsync(config));
        config.Remove("Clients:Tokens:1:Budget:TokensPerMinute");
        problems = await Hosting.ConfigurationValidationTests.StartupProblemsAsync(config);
        Assert.Contains("Usage:Prices:0: a price is negative.", problems);
        Assert.Contains(problems, p => p.StartsWith("Usage:Prices:1:Model is empty", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ATokenBudget_WithUsageNotRead_StopsTheStart_ARequestBudgetDoesNot()
    {
        var config = WithRunaway(new ProxyConfig().Pool("anthropic", new Uri("https://api.test.local"), isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())]), rpm: 10, tpd: 1000)
            .Set("Usage:Enabled", "false");

        var problems = await Hosting.ConfigurationValidationTests.StartupProblemsAsync(config);

        Assert.Equal(
            ["Clients:Tokens:1:Budget:TokensPerDay counts tokens, and Usage:Enabled is false, so no answer's tokens are read: remove the token budget or set Usage:Enabled to true."],
            problems);
        config.Remove("Clients:Tokens:1:Budget:TokensPerDay");
        await using var started = await ProxyHost.StartAsync(config);
        Assert.Equal(10, started.Services.GetRequiredService<ClientBudgets>().Status().Single().RequestsPerMinute!.Limit);
    }

    private static StringContent ChatBody()
        => new("""{"model":"gpt-4o","messages":[{"role":"user","content":"Hello, how are you today?"}]}""", Encoding.UTF8, "application/json");

    /// <summary>Moves time one sync on until <paramref name="replica"/>'s view of the runaway's requests this minute fits.</summary>
    private static async Task SyncedAsync(FakeTimeProvider time, ProxyHost replica, Func<long, bool> used)
    {
        var budgets = replica.Services.GetRequiredService<ClientBudgets>();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(20));
        while (!used(budgets.Status().Single().RequestsPerMinute!.Used))
        {
            time.Advance(TimeSpan.FromMilliseconds(250));
            await Task.Delay(20, timeout.Token);
        }
    }
}
