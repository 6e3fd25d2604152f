using System.Globalization;
using System.Net;
using System.Text.Json;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Health;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;
using AuthFailoverProxy.Tests.Audit;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Serilog.Events;

namespace AuthFailoverProxy.Tests.Health;

/// <summary>
/// An incident is not N key deaths: keys that cannot share a cause (other organizations, other kinds of credential)
/// refused alike at once are the provider's incident, told once, and back as soon as a check passes. Time is a
/// FakeTimeProvider where the test waits for re-checks.
/// </summary>
public sealed class IncidentTests
{
    private static readonly DateTimeOffset Midnight = DateTimeOffset.Parse("2026-03-03T00:00:00Z", CultureInfo.InvariantCulture);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ProviderWideAuthFailure_AcrossOrganizationsAndKinds_IsOneIncident_BackAsSoonAsAChecksPasses()
    {
        var time = new FakeTimeProvider(Midnight);
        await using var s = await Scenario.StartAsync(keyNames: ["oauth", "team", "other"], time: time,
            secretFor: name => name == "oauth" ? Secrets.AnthropicOAuthToken() : Secrets.AnthropicApiKey(),
            configure: c => c.WithAdmin());
        foreach (var name in new[] { "oauth", "team", "other" })
        {
            s.Upstream.SetKeyFault(s.Secret(name), KeyFault.Revoked);
        }

        using (var refused = await s.PostMessageAsync())
        {
            // The agent is told to retry shortly, never not to.
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.Null(FailoverTests.Header(refused, "x-should-retry"));
            Assert.Equal("5", FailoverTests.Header(refused, "retry-after"));
            var message = (await refused.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error").GetProperty("message").GetString()!;
            Assert.Contains("an incident at the provider, not the keys", message, StringComparison.Ordinal);
        }

        await FailoverTests.WaitUntilAsync(() => Keys(s).All(k => k.Health.State == KeyState.Dead));
        // The trail is read up to now, exclusive: the fake clock moves on a little, as a real one always has.
        time.Advance(TimeSpan.FromMilliseconds(10));
        await AuditTestBench.WaitForEventAsync(s.Proxy, "upstream.incident");
        var events = await AuditTestBench.WaitForEventsAsync(s.Proxy, "key.dead", 3);
        var incident = Assert.Single(events, e => e.GetProperty("kind").GetString() == "upstream.incident");
        Assert.Equal("error", incident.GetProperty("severity").GetString());
        Assert.Equal($"upstream:{s.Upstream.BaseAddress.Authority}", incident.GetProperty("incident").GetString());
        // Each key's death is on record, but none is an alert of its own.
        Assert.Equal(3, events.Count(e => e.GetProperty("kind").GetString() == "key.dead"));
        Assert.All(events.Where(e => e.GetProperty("kind").GetString() == "key.dead"), e => Assert.Equal("info", e.GetProperty("severity").GetString()));
        Assert.DoesNotContain(s.Proxy.Logs.Messages(LogEventLevel.Error), m => m.Contains("is out of service:", StringComparison.Ordinal));
        Assert.Single(s.Proxy.Logs.Messages(LogEventLevel.Error), m => m.Contains("has an incident", StringComparison.Ordinal));

        // The provider recovers: the keys are checked every 5 s, not on the slow backoff of dead keys.
        foreach (var name in new[] { "oauth", "team", "other" })
        {
            s.Upstream.SetKeyFault(s.Secret(name), KeyFault.None);
        }

        // One re-check period (5 s, ±25 % jitter) later every key is back: a dead key's first re-check would wait 30 s.
        for (var second = 0; second < 7; second++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            await Task.Delay(5, Ct);
        }

        await FailoverTests.WaitUntilAsync(() => Keys(s).All(k => k.Health.IsUsable));
        time.Advance(TimeSpan.FromMilliseconds(10));
        var ended = await AuditTestBench.WaitForEventAsync(s.Proxy, "upstream.recovered");
        Assert.Contains(ended, e => e.GetProperty("kind").GetString() == "upstream.recovered" && e.GetProperty("incident").GetString() == $"upstream:{s.Upstream.BaseAddress.Authority}");
        Assert.Null(s.Proxy.Services.GetRequiredService<UpstreamIncidents>().Of(Keys(s)[0]));
    }

    [Fact]
    public async Task KeysThatCanShareACause_RefusedTogether_AreKeyDeaths()
    {
        // Two API keys of one organization: the organization itself may be gone. Each is a dead key, told as such.
        await using var s = await Scenario.StartAsync(organizationOf: _ => "org-team", configure: c => c.WithAdmin().Set("Probes:AtStartup", "true"));
        await FailoverTests.WaitUntilAsync(() => Keys(s).All(k => k.Organization is not null));
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.Revoked);
        s.Upstream.SetKeyFault(s.Secret("backup"), KeyFault.Revoked);
        using (await s.PostMessageAsync())
        {
        }

        await FailoverTests.WaitUntilAsync(() => Keys(s).All(k => k.Health.State == KeyState.Dead));
        await AuditTestBench.WaitForEventAsync(s.Proxy, "pool.exhausted");
        var events = await AuditTestBench.WaitForEventsAsync(s.Proxy, "key.dead", 2);
        Assert.DoesNotContain(events, e => e.GetProperty("kind").GetString() == "upstream.incident");
        Assert.Equal(2, events.Count(e => e.GetProperty("kind").GetString() == "key.dead" && e.GetProperty("severity").GetString() == "error"));
        Assert.Null(s.Proxy.Services.GetRequiredService<UpstreamIncidents>().Of(Keys(s)[0]));
    }

    [Fact]
    public async Task AnOrganizationsPolicyRefusal_NeverCountsTowardAnIncident()
    {
        // The outage: OAuth tokens of two organizations refused by policy at once are two dead keys, and the API key
        // behind them serves.
        await using var s = await Scenario.StartAsync(keyNames: ["oauth-a", "oauth-b", "api"],
            secretFor: name => name == "api" ? Secrets.AnthropicApiKey() : Secrets.AnthropicOAuthToken(), configure: c => c.WithAdmin());
        s.Upstream.SetKeyFault(s.Secret("oauth-a"), KeyFault.OAuthRejected);
        s.Upstream.SetKeyFault(s.Secret("oauth-b"), KeyFault.OAuthRejected);

        using (var served = await s.PostMessageAsync())
        {
            Assert.Equal(("api", "3"), (FailoverTests.Header(served, "x-afp-key"), FailoverTests.Header(served, "x-afp-attempts")));
        }

        await FailoverTests.WaitUntilAsync(() => Keys(s).Count(k => k.Health.State == KeyState.Dead) == 2);
        var events = await AuditTestBench.WaitForEventAsync(s.Proxy, "key.dead");
        Assert.DoesNotContain(events, e => e.GetProperty("kind").GetString() == "upstream.incident");
        var outage = new KeyFailure(401, "authentication_error", null, "OAuth authentication is currently not allowed for this organization.", null, Midnight);
        Assert.False(UpstreamIncidents.CanBePartOfIncident(outage));
        Assert.True(UpstreamIncidents.CanBePartOfIncident(outage with { Message = "invalid x-api-key" }));
    }

    private static IReadOnlyList<PoolKey> Keys(Scenario s) => s.Proxy.Services.GetRequiredService<PoolRegistry>().Pools.Single().Keys;
}
