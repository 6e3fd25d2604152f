using System.Globalization;
using System.Net;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Health;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Serilog.Events;

namespace AuthFailoverProxy.Tests.Health;

/// <summary>Keys checked at start, healed without a human, and operators' choices respected. No test sleeps: time is a FakeTimeProvider.</summary>
public sealed class CredentialCheckTests
{
    private static readonly DateTimeOffset Midnight = DateTimeOffset.Parse("2026-03-03T00:00:00Z", CultureInfo.InvariantCulture);

    [Fact]
    public async Task Startup_WithDeadRateLimitedAndGoodKeys_ServesFromTheGoodOne_AndSaysWhy()
    {
        var time = new FakeTimeProvider(Midnight);
        var upstream = await SimulatedProvider.StartAsync(time, cancellationToken: TestContext.Current.CancellationToken);
        await using var _ = upstream;
        var dead = Secrets.AnthropicOAuthToken();
        var limited = Secrets.AnthropicApiKey();
        upstream.SetKeyFault(dead, KeyFault.OAuthRejected);
        upstream.SetKeyFault(limited, KeyFault.RateLimited, TimeSpan.FromSeconds(60));
        var config = new ProxyConfig()
            .Pool("anthropic", upstream, isDefault: true, keys: [("primary", dead), ("second", limited), ("good", Secrets.AnthropicApiKey())])
            .Set("Probes:AtStartup", "true");

        await using var proxy = await ProxyHost.StartAsync(config, time);
        await proxy.Services.GetRequiredService<StartupCredentialCheck>().Completion.WaitAsync(TimeSpan.FromSeconds(20), TestContext.Current.CancellationToken);

        // Every key was checked with the cheapest authenticated call.
        Assert.Equal(3, upstream.Requests.Count(r => r.Method == "GET" && r.PathAndQuery == "/v1/models"));
        var summary = Assert.Single(proxy.Logs.Events, e => e.MessageTemplate.Text.StartsWith("Credential check", StringComparison.Ordinal));
        var text = summary.RenderMessage(CultureInfo.InvariantCulture);
        Assert.Equal(LogEventLevel.Warning, summary.Level);
        Assert.Contains("anthropic: 1 of 3 keys usable.", text, StringComparison.Ordinal);
        Assert.Contains("'primary' rejected: 403 permission_error 'OAuth authentication is currently not allowed for this organization'.", text, StringComparison.Ordinal);
        Assert.Contains("'second' rate limited until 00:01:00Z.", text, StringComparison.Ordinal);
        // The outage's credential is called out before it ever fails.
        Assert.Contains(proxy.Logs.Messages(LogEventLevel.Warning), m => m.Contains("OAuth access token (sk-ant-oat01-…)", StringComparison.Ordinal));

        upstream.ClearRequests();
        using var response = await proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("good", FailoverTests.Header(response, "x-afp-key"));
        Assert.Equal("1", FailoverTests.Header(response, "x-afp-attempts"));
    }

    [Fact]
    public async Task Startup_UnreachableUpstream_KeepsKeysInService()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var config = new ProxyConfig()
            .Pool("anthropic", new Uri($"http://127.0.0.1:{port}"), isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())])
            .Set("Probes:AtStartup", "true");

        await using var proxy = await ProxyHost.StartAsync(config);
        await proxy.Services.GetRequiredService<StartupCredentialCheck>().Completion.WaitAsync(TimeSpan.FromSeconds(20), TestContext.Current.CancellationToken);

        var key = Registry(proxy).Pools[0].Keys[0];
        Assert.Equal(KeyState.Usable, key.Health.State);
        Assert.Contains(proxy.Logs.Messages(LogEventLevel.Information), m => m.Contains("1 of 1 keys usable. 'primary' could not be checked (the upstream could not be reached", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RevokedKey_RestoredAtTheProvider_ReturnsWithoutARestart_OnlyAfterASuccessfulCheck()
    {
        var time = new FakeTimeProvider(Midnight);
        await using var s = await Scenario.StartAsync(time: time);
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.Revoked);
        using (var failedOver = await s.PostMessageAsync())
        {
            Assert.Equal("backup", FailoverTests.Header(failedOver, "x-afp-key"));
        }

        // Still revoked: checks come (with backoff) and fail; the key stays out.
        var primary = Registry(s.Proxy).Pools[0].Keys.Single(k => k.Name == "primary");
        await AdvanceUntilAsync(time, () => ProbesOf(s, "primary") >= 2, TimeSpan.FromSeconds(15));
        Assert.Equal(KeyState.Dead, primary.Health.State);

        // Restored at the provider: the key is back only once a check has passed.
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.None);
        Assert.Equal(KeyState.Dead, primary.Health.State);
        var checksBefore = ProbesOf(s, "primary");
        await AdvanceUntilAsync(time, () => primary.Health.State == KeyState.Usable, TimeSpan.FromMinutes(1));
        Assert.True(ProbesOf(s, "primary") > checksBefore);
        // The check's thread writes the line just after it changes the state.
        await FailoverTests.WaitUntilAsync(() => s.Proxy.Logs.Messages(LogEventLevel.Information).Any(m => m.Contains("'primary'", StringComparison.Ordinal) && m.Contains("back in service: a background check passed", StringComparison.Ordinal)));

        using var back = await s.PostMessageAsync();
        Assert.Equal("primary", FailoverTests.Header(back, "x-afp-key"));
    }

    [Fact]
    public async Task APoolsOwnProbePath_IsWhatItsChecksCall()
    {
        await using var s = await Scenario.StartAsync(configure: c => c.Set("Pools:anthropic:ProbePath", "/v1/models/claude-haiku-4-5"));
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.Revoked);
        using (await s.PostMessageAsync())
        {
        }

        await s.WaitForKeyStateAsync("primary", "dead");
        Assert.Contains(s.Upstream.Requests, r => Scenario.IsKeyCheck(r) && r.Key == s.Secret("primary") && r.PathAndQuery == "/v1/models/claude-haiku-4-5");
        Assert.DoesNotContain(s.Upstream.Requests, r => Scenario.IsKeyCheck(r) && r.PathAndQuery == "/v1/models");
    }

    [Fact]
    public async Task AnthropicKeyOutOfCredit_IsCheckedWithCountTokens_AndReturnsOnceCreditIsBack()
    {
        var time = new FakeTimeProvider(Midnight);
        await using var s = await Scenario.StartAsync(time: time);
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.NoCredit);
        using (await s.PostMessageAsync())
        {
        }

        // Confirmed by the free count_tokens, which answers the credit-balance 400 (GET /v1/models would have passed).
        await s.WaitForKeyStateAsync("primary", "dead");
        Assert.Equal(1, CreditChecksOf(s, "primary"));
        await AdvanceUntilAsync(time, () => CreditChecksOf(s, "primary") >= 2, TimeSpan.FromSeconds(5));
        Assert.Equal("dead", await s.KeyStateAsync("primary"));

        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.None);
        await AdvanceUntilAsync(time, () => Registry(s.Proxy).Pools[0].FindKey("primary")!.Health.IsUsable, TimeSpan.FromSeconds(10));
        Assert.Equal(0, ProbesOf(s, "primary"));
    }

    [Fact]
    public async Task OpenAIKeyOutOfQuota_IsRecheckedOnlyAtTheSlowEnd_BecauseNoCheckCanProveCredit()
    {
        var time = new FakeTimeProvider(Midnight);
        await using var s = await Scenario.StartAsync(kind: "openai", time: time, configure: c => c.Set("Probes:MaxHealDelay", "00:30:00"));
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.InsufficientQuota);
        using (await s.Proxy.Agent.PostAsync("/openai/v1/chat/completions",
            new StringContent("""{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}""", System.Text.Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken))
        {
        }

        // The confirming check authenticates the key; the provider's quota code stands, since no request makes it up.
        await s.WaitForKeyStateAsync("primary", "dead");
        var afterConfirmation = ProbesOf(s, "primary");
        for (var i = 0; i < 20; i++)
        {
            time.Advance(TimeSpan.FromMinutes(1));
            await Task.Delay(5, TestContext.Current.CancellationToken);
        }

        // Twenty minutes: a revoked key would have had several checks by now; this one has had none.
        Assert.Equal(afterConfirmation, ProbesOf(s, "primary"));
        await AdvanceUntilAsync(time, () => ProbesOf(s, "primary") > afterConfirmation, TimeSpan.FromMinutes(1));
        Assert.True(time.GetUtcNow() >= Midnight.AddMinutes(22), "the first check waits about MaxHealDelay (with jitter)");
    }

    [Fact]
    public async Task DisabledKey_IsNeverReEnabledAutomatically()
    {
        var time = new FakeTimeProvider(Midnight);
        await using var s = await Scenario.StartAsync(time: time);
        var primary = Registry(s.Proxy).Pools[0].Keys.Single(k => k.Name == "primary");
        var board = s.Proxy.Services.GetRequiredService<KeyStateBoard>();
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.Revoked);
        using (await s.PostMessageAsync())
        {
        }

        Assert.True(board.Disable(primary, "test-operator"));
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.None);
        for (var i = 0; i < 40; i++)
        {
            time.Advance(TimeSpan.FromMinutes(5));
            await Task.Yield();
        }

        Assert.Equal(KeyState.Disabled, primary.Health.State);
        using var response = await s.PostMessageAsync();
        Assert.Equal("backup", FailoverTests.Header(response, "x-afp-key"));
        Assert.True(board.Enable(primary, "test-operator"));
        using var enabled = await s.PostMessageAsync();
        Assert.Equal("primary", FailoverTests.Header(enabled, "x-afp-key"));
    }

    [Fact]
    public async Task CoolingKey_ReturnsAtItsDeadline_WithoutACheck()
    {
        var time = new FakeTimeProvider(Midnight);
        await using var s = await Scenario.StartAsync(time: time);
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.RateLimited, TimeSpan.FromSeconds(20));
        // A request that names no model: the whole key rests.
        using (await s.Proxy.Agent.GetAsync("/v1/models", TestContext.Current.CancellationToken))
        {
        }

        var primary = Registry(s.Proxy).Pools[0].Keys.Single(k => k.Name == "primary");
        Assert.Equal(KeyState.Cooling, primary.Health.State);
        await AdvanceUntilAsync(time, () => primary.Health.State == KeyState.Usable, TimeSpan.FromSeconds(5));

        Assert.True(time.GetUtcNow() >= Midnight.AddSeconds(20));
        Assert.Equal(0, ProbesOf(s, "primary"));
        Assert.Contains(s.Proxy.Logs.Messages(LogEventLevel.Information), m => m.Contains("its rate-limit window ended", StringComparison.Ordinal));
    }

    private static PoolRegistry Registry(ProxyHost proxy) => proxy.Services.GetRequiredService<PoolRegistry>();

    private static int ProbesOf(Scenario s, string key)
        => s.Upstream.Requests.Count(r => Scenario.IsKeyCheck(r) && r.Method == "GET" && r.PathAndQuery == "/v1/models" && r.Key == s.Secret(key));

    private static int CreditChecksOf(Scenario s, string key)
        => s.Upstream.Requests.Count(r => Scenario.IsKeyCheck(r) && r.PathAndQuery == "/v1/messages/count_tokens" && r.Key == s.Secret(key));

    /// <summary>Moves the fake clock in steps, giving background work a moment between steps, until the condition holds.</summary>
    internal static async Task AdvanceUntilAsync(FakeTimeProvider time, Func<bool> condition, TimeSpan step)
    {
        for (var i = 0; i < 400 && !condition(); i++)
        {
            time.Advance(step);
            await Task.Delay(5, TestContext.Current.CancellationToken);
        }

        Assert.True(condition(), "the condition never held while time advanced");
    }
}
