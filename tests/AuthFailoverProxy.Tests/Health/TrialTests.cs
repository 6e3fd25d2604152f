using System.Globalization;
using System.Net;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Serilog.Events;

namespace AuthFailoverProxy.Tests.Health;

/// <summary>
/// Healing that works with any upstream: where no check can judge a key (a gateway that serves no <c>/v1/models</c>), a
/// dead or suspect key gets a trial after its backoff (one real request, whose agent is answered by the next key if the
/// key fails it). Time is a FakeTimeProvider: no test sleeps through a backoff.
/// </summary>
public sealed class TrialTests
{
    private static readonly DateTimeOffset Midnight = DateTimeOffset.Parse("2026-03-03T00:00:00Z", CultureInfo.InvariantCulture);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task RevokedKey_OnAGatewayWithoutAModelList_ReturnsThroughATrialRequest_OnceRestored()
    {
        var time = new FakeTimeProvider(Midnight);
        await using var s = await Scenario.StartAsync(time: time, provider: new SimulatedProviderOptions { ServesModels = false });
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.Revoked);
        using (var first = await s.PostMessageAsync())
        {
            Assert.Equal("backup", FailoverTests.Header(first, "x-afp-key"));
        }

        var primary = Key(s, "primary");
        await FailoverTests.WaitUntilAsync(() => primary.Suspicion is { Unjudged: true });
        // Said once, at Warning, naming what to configure.
        Assert.Contains(s.Proxy.Logs.Messages(LogEventLevel.Warning), m => m.Contains("key checks cannot tell whether a key works here: the upstream answered 404 to GET /v1/models. Set Pools:anthropic:ProbePath", StringComparison.Ordinal));

        // Meanwhile the suspect is tried last: nobody pays for it.
        using (var meanwhile = await s.PostMessageAsync())
        {
            Assert.Equal(("backup", "1"), (FailoverTests.Header(meanwhile, "x-afp-key"), FailoverTests.Header(meanwhile, "x-afp-attempts")));
        }

        // After its backoff, a trial: the next request goes to the key first and, still revoked, the backup answers it.
        await AdvanceUntilAsync(time, () => primary.TrialUntil is not null);
        var trial = await AgentStatusAsync(s);
        Assert.Equal((HttpStatusCode.OK, "backup", "2"), trial);
        Assert.Equal(2, s.UpstreamCallsWith("primary"));
        Assert.NotNull(primary.Suspicion);
        using (var after = await s.PostMessageAsync())
        {
            Assert.Equal("1", FailoverTests.Header(after, "x-afp-attempts"));
        }

        // Restored at the provider: the next trial serves, and the key is back in its place.
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.None);
        await AdvanceUntilAsync(time, () => primary.TrialUntil is not null);
        Assert.Equal((HttpStatusCode.OK, "primary", "1"), await AgentStatusAsync(s));
        Assert.Null(primary.Suspicion);
        Assert.Equal((HttpStatusCode.OK, "primary", "1"), await AgentStatusAsync(s));
        Assert.Contains(s.Proxy.Logs.Messages(LogEventLevel.Information), m => m.Contains("'primary'", StringComparison.Ordinal) && m.Contains("served the trial request it was given", StringComparison.Ordinal));
        Assert.Single(s.Proxy.Logs.Messages(LogEventLevel.Warning), m => m.Contains("key checks cannot tell", StringComparison.Ordinal));
    }

    [Fact]
    public async Task DeadKey_WhoseChecksCanNoLongerJudgeIt_ReturnsThroughATrialRequest()
    {
        var time = new FakeTimeProvider(Midnight);
        var provider = new SimulatedProviderOptions();
        await using var s = await Scenario.StartAsync(time: time, provider: provider);
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.Revoked);
        using (await s.PostMessageAsync())
        {
        }

        await s.WaitForKeyStateAsync("primary", "dead");

        // The upstream moves behind a gateway that serves no model list; the key is restored meanwhile.
        provider.ServesModels = false;
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.None);
        var primary = Key(s, "primary");
        await AdvanceUntilAsync(time, () => primary.TrialUntil is not null);
        var status = await s.StatusAsync();
        Assert.Equal(JsonValueKindString, status.GetProperty("pools")[0].GetProperty("keys")[0].GetProperty("trialUntil").ValueKind.ToString());
        Assert.Equal("dead", await s.KeyStateAsync("primary"));

        Assert.Equal((HttpStatusCode.OK, "primary", "1"), await AgentStatusAsync(s));
        Assert.Equal(KeyState.Usable, primary.Health.State);
        Assert.Contains(s.Proxy.Logs.Messages(LogEventLevel.Information), m => m.Contains("'primary'", StringComparison.Ordinal) && m.Contains("back in service: a real request given to it as a trial succeeded", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ATrialNobodyTakes_Expires_AndOnlyOneRequestCarriesIt()
    {
        var time = new FakeTimeProvider(Midnight);
        await using var s = await Scenario.StartAsync(time: time, provider: new SimulatedProviderOptions { ServesModels = false });
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.Revoked);
        using (await s.PostMessageAsync())
        {
        }

        var primary = Key(s, "primary");
        await FailoverTests.WaitUntilAsync(() => primary.Suspicion is { Unjudged: true });
        await AdvanceUntilAsync(time, () => primary.TrialUntil is not null);

        // Many requests at once: exactly one carries the trial; all are answered.
        var answers = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => AgentStatusAsync(s)));
        Assert.All(answers, a => Assert.Equal((HttpStatusCode.OK, "backup"), (a.Status, a.Key)));
        Assert.Single(answers, a => a.Attempts == "2");

        // An open trial expires unused once its window has passed.
        await AdvanceUntilAsync(time, () => primary.TrialUntil is not null);
        time.Advance(TimeSpan.FromSeconds(31));
        Assert.Equal((HttpStatusCode.OK, "backup", "1"), await AgentStatusAsync(s));
    }

    [Fact]
    public async Task Trials_AreOneAtATime_AcrossReplicas()
    {
        var time = new FakeTimeProvider(Midnight);
        var provider = new SimulatedProviderOptions();
        await using var d = await Deployment.StartAsync(time: time, provider: provider);
        var a = await d.AddReplicaAsync();
        var b = await d.AddReplicaAsync();
        d.Upstream.SetKeyFault(d.Primary, KeyFault.Revoked);
        using (await a.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
        {
        }

        await FailoverTests.WaitUntilAsync(() => PrimaryOf(a).Health.State == KeyState.Dead && PrimaryOf(b).Health.State == KeyState.Dead);
        provider.ServesModels = false;

        // Both replicas watch the dead key through several backoffs; the shared store lets one trial through.
        for (var step = 0; step < 40; step++)
        {
            time.Advance(TimeSpan.FromSeconds(5));
            await Task.Delay(5, Ct);
            foreach (var replica in new[] { a, b })
            {
                using var response = await replica.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }
        }

        var trials = d.Upstream.Requests.Count(r => r.Key == d.Primary && !Scenario.IsKeyCheck(r)) - 1;
        Assert.Equal(1, trials);
    }

    private const string JsonValueKindString = "String";

    private static PoolKey Key(Scenario s, string name) => s.Proxy.Services.GetRequiredService<PoolRegistry>().Pools.Single().FindKey(name)!;

    private static PoolKey PrimaryOf(ProxyHost replica) => replica.Services.GetRequiredService<PoolRegistry>().Pools.Single().FindKey("primary")!;

    private static async Task<(HttpStatusCode Status, string? Key, string? Attempts)> AgentStatusAsync(Scenario s)
    {
        using var response = await s.PostMessageAsync();
        return (response.StatusCode, FailoverTests.Header(response, "x-afp-key"), FailoverTests.Header(response, "x-afp-attempts"));
    }

    private static Task AdvanceUntilAsync(FakeTimeProvider time, Func<bool> condition)
        => CredentialCheckTests.AdvanceUntilAsync(time, condition, TimeSpan.FromSeconds(5));
}
