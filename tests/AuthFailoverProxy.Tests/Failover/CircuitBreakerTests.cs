using System.Globalization;
using System.Net;
using System.Text.Json;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.Time.Testing;
using Serilog.Events;

namespace AuthFailoverProxy.Tests.Failover;

/// <summary>An upstream outage opens the pool's circuit: agents get a fast 503 and the upstream a rest, until it answers again.</summary>
public sealed class CircuitBreakerTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task UpstreamOutage_OpensTheCircuit_AnswersFast_AndClosesAfterRecovery()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-03-03T00:00:00Z", CultureInfo.InvariantCulture));
        await using var s = await Scenario.StartAsync(time: time, configure: c => c
            .Set("Failover:UpstreamRetries", 0)
            .Set("CircuitBreaker:MinimumThroughput", 4)
            .Set("CircuitBreaker:FailureRatio", "0.5")
            .Set("CircuitBreaker:BreakDuration", "00:01:00")
            .Set("CircuitBreaker:ProbeInterval", "00:00:05"));
        // Five calls fail; the first makes the pool guarded, the next four open the circuit.
        s.Upstream.FailNext(5, UpstreamFault.Unavailable);
        for (var i = 0; i < 5; i++)
        {
            using var failing = await s.PostMessageAsync();
            Assert.Equal(HttpStatusCode.ServiceUnavailable, failing.StatusCode);
        }

        var calls = s.Upstream.RequestCount;

        using (var refused = await s.PostMessageAsync())
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.True(int.Parse(FailoverTests.Header(refused, "retry-after")!, CultureInfo.InvariantCulture) > 0);
            Assert.Null(FailoverTests.Header(refused, "x-should-retry")); // the upstream may be back: the SDK may retry
            var error = (await refused.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error");
            Assert.Contains("circuit breaker open", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }

        // Refused without calling the upstream, and no key was blamed.
        Assert.Equal(calls, s.Upstream.RequestCount);
        Assert.Equal("usable", await s.KeyStateAsync("primary"));
        var pool = (await s.StatusAsync()).GetProperty("pools")[0];
        Assert.Equal("open", pool.GetProperty("circuit").GetString());
        // Polly raises its state-change callbacks asynchronously: the log line may trail the refusal a little.
        await FailoverTests.WaitUntilAsync(() => s.Proxy.Logs.At(LogEventLevel.Warning).Any(e => e.MessageTemplate.Text.Contains("circuit opened", StringComparison.Ordinal)));

        // The upstream is healthy again (its queue of faults is spent): the background check closes the circuit.
        for (var i = 0; i < 200 && !s.Proxy.Logs.Events.Any(e => e.MessageTemplate.Text.Contains("circuit closed", StringComparison.Ordinal)); i++)
        {
            time.Advance(TimeSpan.FromSeconds(5));
            await Task.Delay(5, Ct);
        }

        Assert.Contains(s.Upstream.Requests, r => r.Method == "GET" && r.PathAndQuery == "/v1/models");
        Assert.True(time.GetUtcNow() < DateTimeOffset.Parse("2026-03-03T00:01:00Z", CultureInfo.InvariantCulture), "closed by the check, not by the break running out");
        using var back = await s.PostMessageAsync();
        Assert.Equal(HttpStatusCode.OK, back.StatusCode);
    }

    [Fact]
    public async Task OpenCircuit_WithAFallbackPool_ServesInSafeMode()
    {
        await using var down = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        await using var other = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        var config = new ProxyConfig()
            .Pool("anthropic", down, isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())])
            .Pool("other-region", other, keys: [("reserve", Secrets.AnthropicApiKey())])
            .Set("Pools:anthropic:Fallback", "other-region")
            .Set("Failover:UpstreamRetries", "0")
            .Set("CircuitBreaker:MinimumThroughput", "2")
            .Set("CircuitBreaker:ProbeInterval", "01:00:00");
        await using var proxy = await ProxyHost.StartAsync(config);
        down.FailNext(3, UpstreamFault.ResetConnection);
        for (var i = 0; i < 3; i++)
        {
            using (await proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
            {
            }
        }

        using var response = await proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("other-region", FailoverTests.Header(response, "x-afp-safe-mode"));
        Assert.Equal(3, down.RequestCount);
    }
}
