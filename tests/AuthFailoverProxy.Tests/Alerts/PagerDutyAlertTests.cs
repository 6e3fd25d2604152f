using System.Globalization;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Events;
using AuthFailoverProxy.Health;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace AuthFailoverProxy.Tests.Alerts;

/// <summary>
/// PagerDuty as a service would hold it: an incident per dedup key, opened by a trigger and closed by a resolve with the
/// same key. Every incident the proxy opens is one it can close, and only its own deployment's.
/// </summary>
public sealed class PagerDutyAlertTests
{
    private static readonly DateTimeOffset Midnight = DateTimeOffset.Parse("2026-03-03T00:00:00Z", CultureInfo.InvariantCulture);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task KeyDeadAtStart_ThePagesItOpensAreResolvedWhenItHeals_AndTheStartSummaryOpensNone()
    {
        var time = new FakeTimeProvider(Midnight);
        await using var receiver = await WebhookReceiver.StartAsync();
        receiver.Answer("/pd", 202);
        await using var upstream = await SimulatedProvider.StartAsync(time, cancellationToken: Ct);
        var (primary, backup) = (Secrets.AnthropicOAuthToken(), Secrets.AnthropicApiKey());
        upstream.SetKeyOrganization(primary, "org-primary");
        upstream.SetKeyOrganization(backup, "org-backup");
        upstream.SetKeyFault(primary, KeyFault.OAuthRejected);
        await using var proxy = await ProxyHost.StartAsync(
            new ProxyConfig()
                .Pool("anthropic", upstream, isDefault: true, keys: [("primary", primary), ("backup", backup)])
                .Set("Probes:AtStartup", "true")
                .Channel("pager", "pagerduty", receiver.Url("/pd"), ("RoutingKey", AlertBench.RandomToken(32)))
                .Set("Alerts:Deployment", "prod-eu/afp")
                .Set("Alerts:ReminderInterval", "00:00:00")
                .PatientAttempts(),
            time);
        await proxy.Services.GetRequiredService<StartupCredentialCheck>().Completion.WaitAsync(TimeSpan.FromSeconds(20), Ct);
        // Events are dispatched in order: once a marker published after the start summary is in, the summary went its way.
        proxy.Services.GetRequiredService<ProxyEvents>().Publish(new ProxyEvent { Kind = EventKinds.CircuitOpened, Severity = EventSeverity.Error, At = Midnight, Message = "marker", Incident = "marker" });
        await receiver.WaitForAsync("/pd", r => Page(r) is ("trigger", "prod-eu/afp:marker", _));

        var triggers = receiver.At("/pd").Select(Page).Where(p => p.Action == "trigger").ToList();
        Assert.DoesNotContain(triggers, p => p.Class == EventKinds.StartupSummary);
        Assert.Equal(["prod-eu/afp:key:anthropic:primary", "prod-eu/afp:marker", "prod-eu/afp:pool:anthropic"], triggers.Select(p => p.DedupKey).Order());

        // The provider takes the key back; the healer's checks, on the fake clock, find it and close what was opened.
        upstream.SetKeyFault(primary, KeyFault.None);
        await time.AdvanceUntilAsync(() => Open(receiver).SetEquals(["prod-eu/afp:marker"]), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task TwoDeploymentsOnOnePagerDutyService_EachResolvesOnlyItsOwnIncidents()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        receiver.Answer("/pd", 202);
        var routingKey = AlertBench.RandomToken(32);
        var (euTime, usTime) = (new FakeTimeProvider(Midnight), new FakeTimeProvider(Midnight));
        // The same pool and key names in both clusters, as one chart installed twice makes them.
        await using var eu = await Scenario.StartAsync(time: euTime, configure: c => c
            .Channel("pager", "pagerduty", receiver.Url("/pd"), ("RoutingKey", routingKey)).Set("Alerts:Deployment", "eu/afp").PatientAttempts());
        await using var us = await Scenario.StartAsync(time: usTime, configure: c => c
            .Channel("pager", "pagerduty", receiver.Url("/pd"), ("RoutingKey", routingKey)).Set("Alerts:Deployment", "us/afp").PatientAttempts());
        foreach (var s in new[] { eu, us })
        {
            s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.Revoked);
            using (await s.PostMessageAsync())
            {
            }
        }

        await FailoverTests.WaitUntilAsync(() => receiver.At("/pd").Count(r => Page(r).Action == "trigger") == 4);

        // Europe's key comes back; America's stays dead, and so does its page.
        eu.Upstream.SetKeyFault(eu.Secret("primary"), KeyFault.None);
        await euTime.AdvanceUntilAsync(() => receiver.At("/pd").Select(Page).Count(p => p.Action == "resolve") == 2, TimeSpan.FromSeconds(10));

        Assert.Equal(["us/afp:key:anthropic:primary", "us/afp:pool:anthropic"], Open(receiver).Order());
    }

    private static (string? Action, string? DedupKey, string? Class) Page(ReceivedWebhook request)
    {
        var json = request.Json;
        return (json.GetProperty("event_action").GetString(), json.GetProperty("dedup_key").GetString(), json.TryGetProperty("payload", out var payload) ? payload.GetProperty("class").GetString() : null);
    }

    /// <summary>The incidents open in the PagerDuty service: triggered and not resolved since, by dedup key.</summary>
    private static HashSet<string> Open(WebhookReceiver receiver)
    {
        var open = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (action, dedupKey, _) in receiver.At("/pd").Select(Page))
        {
            _ = action == "resolve" ? open.Remove(dedupKey!) : open.Add(dedupKey!);
        }

        return open;
    }
}
