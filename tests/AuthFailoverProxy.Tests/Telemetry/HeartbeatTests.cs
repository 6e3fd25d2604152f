using System.Globalization;
using System.Net;
using System.Text.Json;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Hosting;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.Time.Testing;

namespace AuthFailoverProxy.Tests.Telemetry;

/// <summary>
/// The dead man's switch: a real monitor on loopback receives a ping every interval of the proxy's clock while every
/// pool can serve; the pings stop when a pool goes dark and come back when it heals.
/// </summary>
public sealed class HeartbeatTests
{
    private const string Token = "hc-token-5f1e2d";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Pings_StopWhenThePoolGoesDark_AndResumeOnceAKeyHeals()
    {
        var time = NewClock();
        await using var monitor = await PingReceiver.StartAsync();
        await using var s = await Scenario.StartAsync(time: time, configure: c => c.Set("Heartbeat:Url", PingUrl(monitor)));
        await FailoverTests.WaitUntilAsync(() => monitor.Count == 1);
        time.Advance(TimeSpan.FromMinutes(1));
        await FailoverTests.WaitUntilAsync(() => monitor.Count == 2);

        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.Revoked);
        s.Upstream.SetKeyFault(s.Secret("backup"), KeyFault.Revoked);
        using (var refused = await s.PostMessageAsync())
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        }

        time.Advance(TimeSpan.FromMinutes(1));
        var paused = await HeartbeatUntilAsync(s, h => h.TryGetProperty("pausedBecause", out _));
        Assert.Equal("pool 'anthropic' has no usable key", paused.GetProperty("pausedBecause").GetString());
        Assert.Equal(2, monitor.Count);
        Assert.Equal(1, s.Proxy.Logs.CountEventId(9013));

        // The backup answers again; the healer's background check (on the same clock) puts it back in service.
        s.Upstream.SetKeyFault(s.Secret("backup"), KeyFault.None);
        await AdvanceUntilAsync(time, () => monitor.Count == 3);

        var resumed = await HeartbeatUntilAsync(s, h => !h.TryGetProperty("pausedBecause", out _));
        Assert.Equal("ok (200)", resumed.GetProperty("lastOutcome").GetString());
        Assert.Equal(time.GetUtcNow(), resumed.GetProperty("lastSuccess").GetDateTimeOffset());
        Assert.Equal(1, s.Proxy.Logs.CountEventId(9014));
        Assert.All(monitor.Pings, p => Assert.Equal(("GET", "/ping/" + Token), p));
        Assert.DoesNotContain(Token, s.Proxy.Logs.AllText, StringComparison.Ordinal);
        Assert.DoesNotContain(Token, (await s.StatusAsync()).ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task FailedPings_AreLoggedOncePerStreak_AndShownInStatus()
    {
        var time = NewClock();
        await using var monitor = await PingReceiver.StartAsync();
        monitor.AnswerWith(500);
        await using var s = await Scenario.StartAsync(time: time, configure: c => c.Set("Heartbeat:Url", PingUrl(monitor)).Set("Heartbeat:Method", "post"));
        await FailoverTests.WaitUntilAsync(() => monitor.Count == 1);
        for (var expected = 2; expected <= 3; expected++)
        {
            time.Advance(TimeSpan.FromMinutes(1));
            await FailoverTests.WaitUntilAsync(() => monitor.Count == expected);
        }

        var failing = await HeartbeatUntilAsync(s, h => h.GetProperty("consecutiveFailures").GetInt32() == 3);
        Assert.Equal("failed: answered 500", failing.GetProperty("lastOutcome").GetString());
        Assert.Equal("POST", failing.GetProperty("method").GetString());
        Assert.False(failing.TryGetProperty("lastSuccess", out _));
        Assert.Equal(1, s.Proxy.Logs.CountEventId(9011));

        monitor.AnswerWith(200);
        time.Advance(TimeSpan.FromMinutes(1));
        var recovered = await HeartbeatUntilAsync(s, h => h.GetProperty("consecutiveFailures").GetInt32() == 0);
        Assert.Equal("ok (200)", recovered.GetProperty("lastOutcome").GetString());
        Assert.Equal(1, s.Proxy.Logs.CountEventId(9011));
        Assert.Equal(1, s.Proxy.Logs.CountEventId(9012));
        Assert.All(monitor.Pings, p => Assert.Equal("POST", p.Method));
    }

    [Fact]
    public async Task PoolServedByItsFallback_CountsAsServing()
    {
        var time = NewClock();
        await using var monitor = await PingReceiver.StartAsync();
        await using var upstream = await SimulatedProvider.StartAsync(time, cancellationToken: Ct);
        var primary = Secrets.AnthropicApiKey();
        var config = new ProxyConfig()
            .Pool("anthropic", upstream, isDefault: true, keys: [("primary", primary)])
            .Pool("second-org", upstream, keys: [("reserve", Secrets.AnthropicApiKey())])
            .Set("Pools:anthropic:Fallback", "second-org")
            .Set("Heartbeat:Url", PingUrl(monitor));
        await using var proxy = await ProxyHost.StartAsync(config, time);
        await FailoverTests.WaitUntilAsync(() => monitor.Count == 1);

        upstream.SetKeyFault(primary, KeyFault.Revoked);
        using (var response = await proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("second-org", response.Headers.GetValues("x-afp-safe-mode").Single());
        }

        time.Advance(TimeSpan.FromMinutes(1));
        await FailoverTests.WaitUntilAsync(() => monitor.Count == 2);
        var status = await proxy.Management.GetFromJsonAsync<JsonElement>("/status", Ct);
        Assert.False(status.GetProperty("heartbeat").TryGetProperty("pausedBecause", out _));
    }

    [Fact]
    public async Task NoUrl_NoHeartbeat()
    {
        await using var s = await Scenario.StartAsync();

        Assert.False((await s.StatusAsync()).TryGetProperty("heartbeat", out _));
    }

    [Fact]
    public async Task BadUrl_StopsTheStart_NamingTheKey_WithoutShowingTheUrl()
    {
        var config = new ProxyConfig()
            .Pool("anthropic", new Uri("http://127.0.0.1:9"), isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())])
            .Set("Heartbeat:Url", "ftp://monitor.example/" + Token)
            .Set("Heartbeat:Interval", "00:00:00.100");

        var exception = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await using var proxy = await ProxyHost.StartAsync(config);
        });
        var problems = ProxyApplication.ConfigurationProblems(exception);

        Assert.Contains(problems, p => p.StartsWith("Heartbeat:Url (AFP_HEARTBEAT_URL) is not an absolute http:// or https:// URL", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Heartbeat:Interval must be at least 1 second", StringComparison.Ordinal));
        Assert.DoesNotContain(problems, p => p.Contains(Token, StringComparison.Ordinal));
    }

    private static FakeTimeProvider NewClock() => new(DateTimeOffset.Parse("2026-03-03T00:00:00Z", CultureInfo.InvariantCulture));

    private static string PingUrl(PingReceiver monitor) => new Uri(monitor.BaseAddress, "ping/" + Token).ToString();

    /// <summary>Reads <c>/status</c>'s heartbeat until <paramref name="condition"/> holds (bounded).</summary>
    private static async Task<JsonElement> HeartbeatUntilAsync(Scenario s, Func<JsonElement, bool> condition)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(20));
        while (true)
        {
            var heartbeat = (await s.StatusAsync()).GetProperty("heartbeat");
            if (condition(heartbeat))
            {
                return heartbeat;
            }

            await Task.Delay(20, timeout.Token);
        }
    }

    /// <summary>Moves the proxy's clock on in steps until <paramref name="condition"/> holds (bounded).</summary>
    private static async Task AdvanceUntilAsync(FakeTimeProvider time, Func<bool> condition)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(20));
        while (!condition())
        {
            time.Advance(TimeSpan.FromSeconds(15));
            await Task.Delay(20, timeout.Token);
        }
    }
}
