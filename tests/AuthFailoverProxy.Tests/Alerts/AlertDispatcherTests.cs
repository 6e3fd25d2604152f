using System.Globalization;
using System.Net;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Events;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Serilog.Events;

namespace AuthFailoverProxy.Tests.Alerts;

/// <summary>
/// Alerts follow state changes, not requests: a storm is one alert, a resolve closes what was opened, a dead channel
/// stops no other and is told on the others, replicas sharing Redis tell a change once, and reminders come on the
/// clock. Everything real on loopback: the proxy, the simulated upstream, the receivers, redis-server.
/// </summary>
public sealed class AlertDispatcherTests
{
    private static readonly DateTimeOffset Midnight = DateTimeOffset.Parse("2026-03-03T00:00:00Z", CultureInfo.InvariantCulture);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Storm_IsOneAlertPerChange_AndTheResolvesCloseWhatWasOpened()
    {
        var time = new FakeTimeProvider(Midnight);
        await using var receiver = await WebhookReceiver.StartAsync();
        receiver.Answer("/pd", 202);
        await using var s = await Scenario.StartAsync(
            time: time,
            secretFor: n => n == "primary" ? Secrets.AnthropicOAuthToken() : Secrets.AnthropicApiKey(),
            configure: c => c
                .Channel("hook", "webhook", receiver.Url("/hook"))
                .Channel("pager", "pagerduty", receiver.Url("/pd"), ("RoutingKey", AlertBench.RandomToken(32)))
                .Set("Alerts:ReminderInterval", "00:00:00")
                .PatientAttempts());

        // 220 agent requests meet the revoked primary at once.
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.OAuthRejected);
        await Parallel.ForEachAsync(Enumerable.Range(0, 220), new ParallelOptions { MaxDegreeOfParallelism = 32, CancellationToken = Ct }, async (_, _) =>
        {
            using var response = await s.PostMessageAsync();
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        });
        await receiver.WaitForAsync("/hook", r => r.Kind() == EventKinds.KeyDead);

        // Then the backup: the pool is exhausted. Alerts leave in order, so anything the storm had still queued is in by now.
        s.Upstream.SetKeyFault(s.Secret("backup"), KeyFault.Revoked);
        for (var i = 0; i < 20; i++)
        {
            using var response = await s.PostMessageAsync();
        }

        await receiver.WaitForAsync("/hook", r => r.Kind() == EventKinds.PoolExhausted);
        // The backup's 401 is confirmed by a check before it is told dead: that can come after the pool's exhaustion.
        await receiver.WaitForAsync("/hook", r => r.Kind() == EventKinds.KeyDead && r.Event().GetProperty("key").GetString() == "backup");
        Assert.Single(receiver.Webhooks("/hook", "trigger", EventKinds.KeyDead), r => r.Event().GetProperty("key").GetString() == "primary");
        Assert.Single(receiver.Webhooks("/hook", "trigger", EventKinds.KeyDead), r => r.Event().GetProperty("key").GetString() == "backup");
        Assert.Single(receiver.Webhooks("/hook", "trigger", EventKinds.PoolDegraded));
        // The pool's incident was open (degraded): exhaustion is an update of it, not a new problem.
        Assert.Single(receiver.Webhooks("/hook", "update", EventKinds.PoolExhausted));
        Assert.Equal("critical", receiver.Webhooks("/hook", "update", EventKinds.PoolExhausted)[0].Event().GetProperty("severity").GetString());

        // Restored at the provider; the healer's checks, on the fake clock, bring both keys back.
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.None);
        s.Upstream.SetKeyFault(s.Secret("backup"), KeyFault.None);
        // Each channel delivers on its own: wait until both have told everything the recovery resolves.
        await time.AdvanceUntilAsync(
            () => Resolves(receiver).Count == 3 && receiver.Webhooks("/hook", "resolve", EventKinds.PoolRestored).Count == 1
                && receiver.Webhooks("/hook", "resolve", EventKinds.KeyRecovered).Count == 2,
            TimeSpan.FromSeconds(10));

        Assert.Single(receiver.Webhooks("/hook", "trigger", EventKinds.KeyDead), r => r.Event().GetProperty("key").GetString() == "primary");
        Assert.Single(receiver.Webhooks("/hook", "update", EventKinds.PoolExhausted));
        Assert.Equal(2, receiver.Webhooks("/hook", "resolve", EventKinds.KeyRecovered).Count);
        Assert.Single(receiver.Webhooks("/hook", "resolve", EventKinds.PoolRestored));
        // PagerDuty: every trigger's dedup key is resolved, once.
        var triggered = receiver.At("/pd").Select(r => r.Json).Where(j => j.GetProperty("event_action").GetString() == "trigger").Select(j => j.GetProperty("dedup_key").GetString()).ToHashSet();
        Assert.Equal(["afp:key:anthropic:backup", "afp:key:anthropic:primary", "afp:pool:anthropic"], triggered.Order());
        Assert.Equal(["afp:key:anthropic:backup", "afp:key:anthropic:primary", "afp:pool:anthropic"], Resolves(receiver).Order());
        Assert.Equal(0, (await s.StatusAsync()).GetProperty("alerts").GetProperty("openIncidents").GetInt32());
    }

    [Fact]
    public async Task FailingChannels_StopNoOther_AreToldOnTheOthersByName_AndTheirRecoveryResolvesIt()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        // A Slack URL holds its token; this receiver even echoes it back in its error, as a careless proxy might.
        var token = AlertBench.RandomToken();
        var slackPath = $"/services/T0AFP/B0AFP/{token}";
        receiver.Answer(slackPath, 500, $"no_service for {slackPath}");
        receiver.Hang("/slow");
        var closed = AlertBench.ClosedPort();
        await using var s = await Scenario.StartAsync(configure: c => c
            .Channel("ok", "webhook", receiver.Url("/ok"))
            .Channel("broken", "slack", receiver.Url(slackPath))
            .Channel("gone", "webhook", $"http://127.0.0.1:{closed}/hook")
            .Channel("slow", "teams", receiver.Url("/slow"))
            .FastRetries());

        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.Revoked);
        using (await s.PostMessageAsync())
        {
        }

        await receiver.WaitForAsync("/ok", r => r.Kind() == EventKinds.KeyDead);
        foreach (var failing in new[] { "broken", "gone", "slow" })
        {
            await receiver.WaitForAsync("/ok", r => r.Kind() == EventKinds.AlertFailed && r.Event().GetProperty("actor").GetString() == failing);
        }

        var failed = receiver.Webhooks("/ok", "trigger", EventKinds.AlertFailed).ToDictionary(r => r.Event().GetProperty("actor").GetString()!, r => r.Event().GetProperty("message").GetString()!);
        Assert.Contains("Alert channel 'broken' (slack) cannot deliver: HTTP 500", failed["broken"], StringComparison.Ordinal);
        Assert.Contains("could not be reached (ConnectionError)", failed["gone"], StringComparison.Ordinal);
        Assert.Contains("did not answer in time", failed["slow"], StringComparison.Ordinal);
        Assert.Equal(3, failed.Count);
        // One retry (Alerts:Retries = 1), then the channel counted as failing.
        Assert.Equal(2, receiver.At(slackPath).Count(r => r.Text.Contains("[ERROR] key.dead", StringComparison.Ordinal)));
        // A channel never hears of its own failure.
        Assert.DoesNotContain(receiver.At(slackPath), r => r.Text.Contains("Alert channel 'broken'", StringComparison.Ordinal));
        Assert.DoesNotContain(receiver.At("/slow"), r => r.Text.Contains("Alert channel 'slow'", StringComparison.Ordinal));

        // Slack works again: the next alert gets through and the failure resolves on the others.
        receiver.Answer(slackPath, 200, "ok");
        s.Upstream.SetKeyFault(s.Secret("backup"), KeyFault.Revoked);
        using (await s.PostMessageAsync())
        {
        }

        await receiver.WaitForAsync("/ok", r => r.Type() == "resolve" && r.Kind() == EventKinds.AlertRestored && r.Event().GetProperty("actor").GetString() == "broken");

        var status = await s.StatusAsync();
        var channels = status.GetProperty("alerts").GetProperty("channels").EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!);
        Assert.Equal("ok", channels["broken"].GetProperty("state").GetString());
        Assert.Equal("failing", channels["gone"].GetProperty("state").GetString());
        Assert.Equal("slack", channels["broken"].GetProperty("type").GetString());
        Assert.True(channels["broken"].GetProperty("failed").GetInt64() >= 1);
        Assert.StartsWith("HTTP 500: no_service for", channels["broken"].GetProperty("lastError").GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Contains("could not be reached", channels["gone"].GetProperty("lastError").GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.True(channels["ok"].GetProperty("sent").GetInt64() >= 5);
        Assert.Contains(s.Proxy.Logs.At(LogEventLevel.Warning), e => LogCapture.Property(e, "Channel") == "gone" && e.MessageTemplate.Text.StartsWith("Alert channel", StringComparison.Ordinal));

        // The token and the URLs appear nowhere: not in the log, /status, or what the other channels were told.
        var everything = string.Join('\n', [s.Proxy.Logs.AllText, await s.Proxy.Management.GetStringAsync("/status", Ct), .. receiver.At("/ok").Select(r => r.Text)]);
        Assert.DoesNotContain(token, everything, StringComparison.Ordinal);
        Assert.DoesNotContain($"127.0.0.1:{closed}/hook", everything, StringComparison.Ordinal);
        Assert.DoesNotContain(receiver.BaseAddress.Authority + "/slow", everything, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TwoReplicasSharingRedis_BothSeeTheKeyDie_TheReceiverGetsOneAlert()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var d = await Deployment.StartAsync(configure: c => c.Channel("hook", "webhook", receiver.Url("/hook")));
        var a = await d.AddReplicaAsync();
        var b = await d.AddReplicaAsync();
        var (eventsA, eventsB) = (a.Services.GetRequiredService<ProxyEvents>().Subscribe(), b.Services.GetRequiredService<ProxyEvents>().Subscribe());

        // Both replicas meet the revoked key before either hears from the other, 80 ms apart across a dedup slot's
        // boundary: the case a single "minute of the event" claim would let through twice.
        var window = TimeSpan.FromSeconds(10).Ticks;
        var boundary = new DateTimeOffset(DateTimeOffset.UtcNow.UtcTicks / window * window, TimeSpan.Zero);
        var failure = new KeyFailure(403, "permission_error", null, "OAuth authentication is currently not allowed for this organization.", "req_1", boundary.AddMilliseconds(-40));
        var reported = await Task.WhenAll(
            Task.Run(() => Board(a).ReportDead(Key(a, "primary"), failure), Ct),
            Task.Run(() => Board(b).ReportDead(Key(b, "primary"), failure with { At = boundary.AddMilliseconds(40), RequestId = "req_2" }), Ct));
        Assert.Equal([true, true], reported);

        // Each replica tells its own marker after the change: once both markers are in, each replica's alerts about the key are in too.
        a.Services.GetRequiredService<ProxyEvents>().Publish(Marker("a"));
        b.Services.GetRequiredService<ProxyEvents>().Publish(Marker("b"));
        await receiver.WaitForAsync("/hook", r => r.Event().GetProperty("message").GetString() == "marker a");
        await receiver.WaitForAsync("/hook", r => r.Event().GetProperty("message").GetString() == "marker b");

        Assert.True(Saw(eventsA, EventKinds.KeyDead) && Saw(eventsB, EventKinds.KeyDead), "both replicas raised key.dead: the claim was put to the test");
        Assert.Single(receiver.Webhooks("/hook", "trigger", EventKinds.KeyDead));
        Assert.Single(receiver.Webhooks("/hook", "trigger", EventKinds.PoolDegraded));
    }

    [Fact]
    public async Task APoolThatComesBackFromExhaustedToDegraded_IsToldSo_EvenWithinTheDedupWindow()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var d = await Deployment.StartAsync(configure: c => c.Channel("hook", "webhook", receiver.Url("/hook")));
        var a = await d.AddReplicaAsync();
        var events = a.Services.GetRequiredService<ProxyEvents>();
        var now = DateTimeOffset.UtcNow;
        ProxyEvent Pool(string kind, EventSeverity severity, int seconds) => new() { Kind = kind, Severity = severity, At = now.AddSeconds(seconds), Message = kind, Pool = "anthropic", Incident = "pool:anthropic" };

        // Seconds apart, well inside one dedup window (Redis claims are in play): three changes, three alerts.
        events.Publish(Pool(EventKinds.PoolDegraded, EventSeverity.Warning, 0));
        await receiver.WaitForAsync("/hook", r => r.Kind() == EventKinds.PoolDegraded);
        events.Publish(Pool(EventKinds.PoolExhausted, EventSeverity.Critical, 2));
        await receiver.WaitForAsync("/hook", r => r.Kind() == EventKinds.PoolExhausted);
        events.Publish(Pool(EventKinds.PoolDegraded, EventSeverity.Warning, 4));

        await receiver.WaitForAsync("/hook", r => r.Type() == "update" && r.Kind() == EventKinds.PoolDegraded);
        Assert.Single(receiver.Webhooks("/hook", "trigger", EventKinds.PoolDegraded));
        Assert.Single(receiver.Webhooks("/hook", "update", EventKinds.PoolExhausted));
    }

    [Fact]
    public async Task OpenProblems_AreRemindedEveryInterval_OneDigestPerChannel_NeverToPagerDuty()
    {
        var time = new FakeTimeProvider(Midnight);
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var s = await Scenario.StartAsync(time: time, configure: c => c
            .Channel("hook", "webhook", receiver.Url("/hook"))
            .Channel("office", "teams", receiver.Url("/teams"))
            .Channel("pager", "pagerduty", receiver.Url("/pd"), ("RoutingKey", AlertBench.RandomToken(32)))
            .Set("Alerts:ReminderInterval", "00:10:00")
            .PatientAttempts());
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.Revoked);
        using (await s.PostMessageAsync())
        {
        }

        await receiver.WaitForAsync("/hook", r => r.Kind() == EventKinds.PoolDegraded);
        await time.AdvanceUntilAsync(() => Reminders(receiver, "/hook").Count == 1, TimeSpan.FromMinutes(1));

        Assert.True(time.GetUtcNow() >= Midnight.AddMinutes(10), "no reminder before the interval");
        var first = Reminders(receiver, "/hook")[0];
        Assert.Equal(Midnight.AddMinutes(10), first.Event().GetProperty("at").GetDateTimeOffset());
        Assert.Equal("[REMINDER] 2 problems still open", first.Json.GetProperty("title").GetString());
        Assert.Equal(["key:anthropic:primary", "pool:anthropic"], first.Json.GetProperty("stillOpen").EnumerateArray().Select(i => i.GetProperty("incident").GetString()).Order());

        // At least: the clock moves a minute every few milliseconds, and under load a slow delivery can let the next tick's
        // digest land in the same look. What each digest says, and when, is checked below.
        await time.AdvanceUntilAsync(() => Reminders(receiver, "/hook").Count >= 2, TimeSpan.FromMinutes(1));
        await FailoverTests.WaitUntilAsync(() => receiver.At("/teams").Count(r => r.Text.Contains("[REMINDER]", StringComparison.Ordinal)) >= 2);
        // One digest per tick, on the ticks of the interval, none twice (a tick the loop was too late for is skipped, not
        // caught up: under load that may happen here).
        var ticks = Reminders(receiver, "/hook").Select(r => r.Event().GetProperty("at").GetDateTimeOffset()).ToList();
        Assert.Equal(Midnight.AddMinutes(10), ticks[0]);
        Assert.All(ticks.Zip(ticks.Skip(1)), t => Assert.True(t.Second > t.First, "a digest repeated or out of order"));
        Assert.All(ticks, t => Assert.Equal(TimeSpan.Zero, TimeSpan.FromTicks((t - Midnight).Ticks % TimeSpan.FromMinutes(10).Ticks)));
        Assert.All(
            receiver.At("/teams").Where(r => r.Text.Contains("[REMINDER]", StringComparison.Ordinal)),
            r => Assert.Contains("[REMINDER] 2 problems still open", r.Text, StringComparison.Ordinal));
        Assert.DoesNotContain(receiver.At("/pd"), r => r.Text.Contains("REMINDER", StringComparison.Ordinal) || r.Text.Contains("alert.reminder", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Reminders_OnAClockWhoseTimersFireEarly_ComeOncePerTickPerChannel()
    {
        // Without Redis nothing deduplicates a reminder: each channel gets exactly what the loop sends.
        var fake = new FakeTimeProvider(Midnight);
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var s = await Scenario.StartAsync(time: new EarlyTimeProvider(fake, TimeSpan.FromSeconds(2)), configure: c => c
            .Channel("hook", "webhook", receiver.Url("/hook"))
            .Channel("office", "teams", receiver.Url("/teams"))
            .Set("Alerts:ReminderInterval", "00:01:00")
            .PatientAttempts());
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.Revoked);
        using (await s.PostMessageAsync())
        {
        }

        await receiver.WaitForAsync("/hook", r => r.Kind() == EventKinds.PoolDegraded);

        // Five and a half minutes in one-second steps: each wake-up comes two seconds before its tick, where the clock still reads "not yet".
        for (var second = 0; second < 330; second++)
        {
            fake.Advance(TimeSpan.FromSeconds(1));
            await Task.Delay(5, Ct);
        }

        static int OfficeReminders(WebhookReceiver r) => r.At("/teams").Count(w => w.Text.Contains("[REMINDER]", StringComparison.Ordinal));
        await FailoverTests.WaitUntilAsync(() => Reminders(receiver, "/hook").Count >= 5 && OfficeReminders(receiver) >= 5);
        // Anything sent twice would be on its way by now.
        await Task.Delay(50, Ct);

        Assert.Equal(
            [.. Enumerable.Range(1, 5).Select(m => Midnight.AddMinutes(m))],
            Reminders(receiver, "/hook").Select(r => r.Event().GetProperty("at").GetDateTimeOffset()));
        Assert.Equal(5, OfficeReminders(receiver));
    }

    private static List<ReceivedWebhook> Reminders(WebhookReceiver receiver, string path) => [.. receiver.At(path).Where(r => r.Type() == "reminder")];

    private static HashSet<string> Resolves(WebhookReceiver receiver)
        => [.. receiver.At("/pd").Select(r => r.Json).Where(j => j.GetProperty("event_action").GetString() == "resolve").Select(j => j.GetProperty("dedup_key").GetString()!)];

    private static ProxyEvent Marker(string replica) => new()
    {
        Kind = EventKinds.ConfigurationReloaded,
        Severity = EventSeverity.Warning,
        At = DateTimeOffset.UtcNow,
        Message = $"marker {replica}",
    };

    private static bool Saw(System.Threading.Channels.ChannelReader<ProxyEvent> events, string kind)
    {
        var seen = false;
        while (events.TryRead(out var e))
        {
            seen |= e.Kind == kind;
        }

        return seen;
    }

    private static KeyStateBoard Board(ProxyHost proxy) => proxy.Services.GetRequiredService<KeyStateBoard>();

    private static PoolKey Key(ProxyHost proxy, string name) => proxy.Services.GetRequiredService<PoolRegistry>().Pools[0].Keys.Single(k => k.Name == name);
}
