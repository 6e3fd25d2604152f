using System.Globalization;
using System.Net;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.Time.Testing;

namespace AuthFailoverProxy.Tests.Failover;

/// <summary>
/// Time limits that mean what they say: a stream's response headers come at once, so a stream that gets none is hung
/// and the next key is tried within the deadline; a non-streaming answer may take its time; and the failover deadline
/// bounds every new try, on the same key as on the next.
/// </summary>
public sealed class TimeLimitTests
{
    private static readonly DateTimeOffset Midnight = DateTimeOffset.Parse("2026-03-03T00:00:00Z", CultureInfo.InvariantCulture);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task HungStream_TheNextKeyAnswers_WithinTheDeadline_AndNoKeyIsBlamed()
    {
        var time = new FakeTimeProvider(Midnight);
        await using var s = await Scenario.StartAsync(time: time, configure: c => c.Set("Failover:StreamHeadersTimeout", "00:00:15"));
        s.Upstream.FailNext(1, UpstreamFault.Hang);

        var sending = s.Proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(stream: true), Ct);
        await FailoverTests.WaitUntilAsync(() => s.Upstream.RequestCount == 1);
        time.Advance(TimeSpan.FromSeconds(15));
        using var response = await sending;

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("backup", FailoverTests.Header(response, "x-afp-key"));
        Assert.Equal("2", FailoverTests.Header(response, "x-afp-attempts"));
        Assert.Contains("event: message_stop", await response.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        Assert.Equal("usable", await s.KeyStateAsync("primary"));
        await FailoverTests.WaitUntilAsync(() => s.Upstream.AbortedRequests == 1);
    }

    [Fact]
    public async Task EveryKeyHungForAStream_Gets504SayingWhich_NotNoKeyCanServe()
    {
        var time = new FakeTimeProvider(Midnight);
        await using var s = await Scenario.StartAsync(time: time, configure: c => c.Set("Failover:StreamHeadersTimeout", "00:00:15"));
        s.Upstream.FailNext(2, UpstreamFault.Hang);

        var sending = s.Proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(stream: true), Ct);
        for (var calls = 1; calls <= 2; calls++)
        {
            var expected = calls;
            await FailoverTests.WaitUntilAsync(() => s.Upstream.RequestCount == expected);
            time.Advance(TimeSpan.FromSeconds(15));
        }

        using var response = await sending;

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Contains("no response headers within 15 s for a stream (Failover:StreamHeadersTimeout) on any key", await response.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        Assert.Equal("usable", await s.KeyStateAsync("primary"));
        Assert.Equal("usable", await s.KeyStateAsync("backup"));
    }

    [Fact]
    public async Task NonStreamingAnswer_MayTakeLongerThanAStreamsHeaders()
    {
        var time = new FakeTimeProvider(Midnight);
        await using var s = await Scenario.StartAsync(time: time, configure: c => c.Set("Failover:StreamHeadersTimeout", "00:00:15"));
        s.Upstream.FailNext(1, UpstreamFault.Hang);
        using var waiting = CancellationTokenSource.CreateLinkedTokenSource(Ct);

        var sending = s.Proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(stream: false), waiting.Token);
        await FailoverTests.WaitUntilAsync(() => s.Upstream.RequestCount == 1);
        time.Advance(TimeSpan.FromMinutes(2));
        await Task.Delay(50, Ct);

        // Still waiting for its one call: a long generation is not a hang.
        Assert.False(sending.IsCompleted);
        Assert.Equal(1, s.Upstream.RequestCount);
        await waiting.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sending);
    }

    [Fact]
    public async Task TheDeadline_BoundsRetriesOnTheSameKey()
    {
        var time = new FakeTimeProvider(Midnight);
        await using var s = await Scenario.StartAsync(time: time, configure: c => c
            .Set("Failover:RetryDelay", "00:00:40").Set("Failover:MaxRetryDelay", "00:00:40").Set("Failover:UpstreamRetries", 5)
            .Set("CircuitBreaker:Enabled", "false"));
        s.Upstream.FailNext(10, UpstreamFault.InternalError);

        var sending = s.Proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);
        await FailoverTests.WaitUntilAsync(() => s.Upstream.RequestCount == 1);
        for (var i = 0; i < 300 && !sending.IsCompleted; i++)
        {
            // Small steps, with room for the retry's continuation to run before the clock moves on.
            time.Advance(TimeSpan.FromSeconds(1));
            await Task.Delay(10, Ct);
        }

        using var response = await sending;

        // Five retries were allowed, with backoff of about 40 s and more: no call starts after the 60 s deadline.
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.InRange(s.Upstream.RequestCount, 2, 3);
        // (The fake clock moves in 1 s steps while a call travels: a little slack.)
        Assert.All(s.Upstream.Requests, r => Assert.True(r.At < Midnight.AddSeconds(62), $"a call started at {r.At:HH:mm:ss}, after the deadline"));
    }
}
