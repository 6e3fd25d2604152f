using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using AuthFailoverProxy.Alerts;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Events;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using Serilog.Events;

namespace AuthFailoverProxy.Tests.Alerts;

/// <summary>Each channel type's payload, as its receiver (a real HTTP server on loopback) gets it, and no secret anywhere it does not belong.</summary>
public sealed class AlertChannelsTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task DeadKey_ReachesEveryChannelType_InItsOwnShape_AndNoSecretLeaks()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var webhookSecret = AlertBench.WebhookSecret();
        var slackPath = $"/services/T0AFP/B0AFP/{AlertBench.RandomToken()}";
        var discordPath = $"/api/webhooks/1234567890/{AlertBench.RandomToken(60)}";
        var routingKey = AlertBench.RandomToken(32);
        receiver.Answer(slackPath, 200, "ok");
        receiver.Answer(discordPath, 204);
        receiver.Answer("/teams", 202);
        receiver.Answer("/pd/v2/enqueue", 202, """{"status":"success","message":"Event processed"}""");
        await using var s = await Scenario.StartAsync(
            secretFor: n => n == "primary" ? Secrets.AnthropicOAuthToken() : Secrets.AnthropicApiKey(),
            configure: c => c
                .Channel("hook", "webhook", receiver.Url("/hook"), ("Secret", webhookSecret))
                .Channel("chat", "slack", receiver.Url(slackPath))
                .Channel("gaming", "discord", receiver.Url(discordPath))
                .Channel("office", "teams", receiver.Url("/teams"))
                .Channel("pager", "pagerduty", receiver.Url("/pd/v2/enqueue"), ("RoutingKey", routingKey))
                .Set("Alerts:TestAtStartup", "true"));
        var events = s.Proxy.Services.GetRequiredService<ProxyEvents>().Subscribe();

        // The test alert at start reaches every channel, and the start-up log and /status say so.
        await FailoverTests.WaitUntilAsync(() => s.Proxy.Logs.CountEventId(7002) == 1);
        var testLine = Assert.Single(s.Proxy.Logs.Messages(LogEventLevel.Information), m => m.StartsWith("Alert test at start", StringComparison.Ordinal));
        Assert.Contains("'pager' (pagerduty) delivered", testLine, StringComparison.Ordinal);
        Assert.Equal(["trigger", "resolve"], receiver.At("/pd/v2/enqueue").Select(r => r.Json.GetProperty("event_action").GetString()));

        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.OAuthRejected);
        using (await s.PostMessageAsync())
        {
        }

        var deadTitle = "[ERROR] key.dead";
        await receiver.WaitForAsync("/hook", r => r.Type() == "trigger" && r.Kind() == EventKinds.KeyDead);
        await receiver.WaitForAsync(slackPath, r => r.Json.GetProperty("blocks")[0].GetProperty("text").GetProperty("text").GetString() == deadTitle);
        await receiver.WaitForAsync(discordPath, r => r.Json.GetProperty("embeds")[0].GetProperty("title").GetString() == deadTitle);
        await receiver.WaitForAsync("/teams", r => r.Text.Contains(deadTitle, StringComparison.Ordinal));
        await receiver.WaitForAsync("/pd/v2/enqueue", r => r.Json.TryGetProperty("payload", out var p) && p.GetProperty("class").GetString() == EventKinds.KeyDead);
        var seen = new List<ProxyEvent>();
        await FailoverTests.WaitUntilAsync(() =>
        {
            while (events.TryRead(out var e))
            {
                seen.Add(e);
            }

            return seen.Any(e => e.Kind == EventKinds.KeyDead);
        });
        var dead = seen.Single(e => e.Kind == EventKinds.KeyDead);

        // Generic webhook: the event's fields, signed per Standard Webhooks (checked here independently of the proxy's code).
        var hook = receiver.Webhooks("/hook", "trigger", EventKinds.KeyDead).Single();
        Assert.Equal(dead.Message, hook.Event().GetProperty("message").GetString());
        Assert.Equal(dead.Remediation, hook.Event().GetProperty("remediation").GetString());
        Assert.Equal("error", hook.Event().GetProperty("severity").GetString());
        Assert.Equal("key:anthropic:primary", hook.Event().GetProperty("incident").GetString());
        Assert.Equal(403, hook.Event().GetProperty("status").GetInt32());
        var id = hook.Headers["webhook-id"];
        var timestamp = long.Parse(hook.Headers["webhook-timestamp"], CultureInfo.InvariantCulture);
        Assert.Equal(hook.Json.GetProperty("id").GetString(), id);
        Assert.InRange(timestamp, DateTimeOffset.UtcNow.AddMinutes(-5).ToUnixTimeSeconds(), DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        var signed = Encoding.UTF8.GetBytes($"{id}.{timestamp}.").Concat(hook.Body).ToArray();
        var expected = "v1," + Convert.ToBase64String(HMACSHA256.HashData(Convert.FromBase64String(webhookSecret["whsec_".Length..]), signed));
        Assert.Equal(expected, hook.Headers["webhook-signature"]);

        // Slack: text plus blocks; the sentence and what to do, escaped for mrkdwn.
        var slack = receiver.At(slackPath).Single(r => r.Text.Contains(deadTitle, StringComparison.Ordinal)).Json;
        Assert.StartsWith(deadTitle, slack.GetProperty("text").GetString(), StringComparison.Ordinal);
        var slackText = string.Join('\n', slack.GetProperty("blocks").EnumerateArray().Skip(1).Select(b => b.TryGetProperty("text", out var t) ? t.GetProperty("text").GetString() : b.GetProperty("elements")[0].GetProperty("text").GetString()));
        Assert.Contains(dead.Message, slackText, StringComparison.Ordinal);
        Assert.Contains("*What to do:* " + dead.Remediation, slackText, StringComparison.Ordinal);

        // Discord: one embed, mentions off.
        var discord = receiver.At(discordPath).Single(r => r.Text.Contains(deadTitle, StringComparison.Ordinal)).Json;
        var embed = discord.GetProperty("embeds")[0];
        Assert.StartsWith(dead.Message, embed.GetProperty("description").GetString(), StringComparison.Ordinal);
        Assert.Equal(0xE74C3C, embed.GetProperty("color").GetInt32());
        Assert.Contains(embed.GetProperty("fields").EnumerateArray(), f => f.GetProperty("name").GetString() == "Pool" && f.GetProperty("value").GetString() == "anthropic");
        Assert.Equal(dead.At, embed.GetProperty("timestamp").GetDateTimeOffset());
        Assert.Equal(0, discord.GetProperty("allowed_mentions").GetProperty("parse").GetArrayLength());

        // Teams: a Workflows message carrying an Adaptive Card 1.2.
        var teams = receiver.At("/teams").Single(r => r.Text.Contains(deadTitle, StringComparison.Ordinal)).Json;
        Assert.Equal("message", teams.GetProperty("type").GetString());
        var attachment = teams.GetProperty("attachments")[0];
        Assert.Equal("application/vnd.microsoft.card.adaptive", attachment.GetProperty("contentType").GetString());
        var card = attachment.GetProperty("content");
        Assert.Equal("AdaptiveCard", card.GetProperty("type").GetString());
        Assert.Equal("1.2", card.GetProperty("version").GetString());
        Assert.Contains(card.GetProperty("body").EnumerateArray(), b => b.GetProperty("type").GetString() == "TextBlock" && b.GetProperty("text").GetString() == dead.Message && b.GetProperty("wrap").GetBoolean());

        // PagerDuty: Events v2 trigger, deduplicated on the deployment (unnamed here: afp) and the incident.
        var page = receiver.At("/pd/v2/enqueue").Single(r => r.Text.Contains(EventKinds.KeyDead, StringComparison.Ordinal)).Json;
        Assert.Equal(routingKey, page.GetProperty("routing_key").GetString());
        Assert.Equal("trigger", page.GetProperty("event_action").GetString());
        Assert.Equal("afp:key:anthropic:primary", page.GetProperty("dedup_key").GetString());
        var payload = page.GetProperty("payload");
        Assert.Equal("error", payload.GetProperty("severity").GetString());
        Assert.Equal(dead.Message, payload.GetProperty("summary").GetString());
        Assert.Equal("anthropic", payload.GetProperty("component").GetString());
        Assert.Equal(dead.Replica, payload.GetProperty("source").GetString());
        Assert.Equal(dead.Remediation, payload.GetProperty("custom_details").GetProperty("remediation").GetString());

        // /status: every channel by name and type, delivering, tested. A delivery is counted once the receiver's answer is
        // in, a moment after the receiver saw the request.
        var status = await s.StatusAsync();
        for (var wait = 0; wait < 200 && !status.GetProperty("alerts").GetProperty("channels").EnumerateArray().All(c => c.GetProperty("sent").GetInt64() >= 2); wait++)
        {
            await Task.Delay(25, Ct);
            status = await s.StatusAsync();
        }

        var alerts = status.GetProperty("alerts");
        Assert.True(alerts.GetProperty("openIncidents").GetInt32() >= 1);
        var channels = alerts.GetProperty("channels").EnumerateArray().ToList();
        Assert.Equal(["chat", "gaming", "hook", "office", "pager"], channels.Select(c => c.GetProperty("name").GetString()));
        Assert.All(channels, c =>
        {
            Assert.Equal("ok", c.GetProperty("state").GetString());
            Assert.Equal("delivered", c.GetProperty("test").GetString());
            Assert.True(c.GetProperty("sent").GetInt64() >= 2);
        });

        // Secrets: pool keys nowhere; the webhook secret and the Slack and Discord tokens in no log, status or body; the
        // routing key only in PagerDuty's bodies.
        var statusText = await s.Proxy.Management.GetStringAsync("/status", Ct);
        var logs = s.Proxy.Logs.AllText;
        var bodies = receiver.Requests.Where(r => r.Path != "/pd/v2/enqueue").Select(r => r.Text + string.Join(' ', r.Headers.Values)).ToList();
        var everything = string.Join('\n', [logs, statusText, .. bodies]);
        foreach (var secret in s.SecretsByName.Values)
        {
            Assert.DoesNotContain(secret[..^4], everything + string.Join('\n', receiver.Requests.Select(r => r.Text)), StringComparison.Ordinal);
        }

        Assert.DoesNotContain(webhookSecret["whsec_".Length..], everything, StringComparison.Ordinal);
        Assert.DoesNotContain(slackPath.Split('/')[^1], everything, StringComparison.Ordinal);
        Assert.DoesNotContain(discordPath.Split('/')[^1], everything, StringComparison.Ordinal);
        Assert.DoesNotContain(routingKey, everything, StringComparison.Ordinal);
        Assert.All(receiver.At("/pd/v2/enqueue"), r => Assert.Equal(routingKey, r.Json.GetProperty("routing_key").GetString()));
    }

    [Fact]
    public async Task Retry_WaitsOnTheInjectedClock_HonouringRetryAfter_UpToMaxRetryDelay()
    {
        var start = DateTimeOffset.Parse("2026-03-03T00:00:00Z", CultureInfo.InvariantCulture);
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(start);
        await using var receiver = await WebhookReceiver.StartAsync();
        receiver.Answer("/hook", 429, "slow down", retryAfter: TimeSpan.FromHours(1));
        await using var s = await Scenario.StartAsync(time: time, configure: c => c
            .Channel("hook", "webhook", receiver.Url("/hook"))
            .Set("Alerts:Retries", 2).Set("Alerts:RetryDelay", "00:00:01").Set("Alerts:MaxRetryDelay", "00:01:00")
            .PatientAttempts());

        s.Proxy.Services.GetRequiredService<ProxyEvents>().Publish(new ProxyEvent { Kind = EventKinds.ConfigurationReloaded, Severity = EventSeverity.Warning, At = start, Message = "reloaded" });
        await FailoverTests.WaitUntilAsync(() => receiver.At("/hook").Count == 1);
        // The receiver asks for an hour; the proxy waits MaxRetryDelay, on its own clock, not the wall clock.
        await time.AdvanceUntilAsync(() => receiver.At("/hook").Count == 2, TimeSpan.FromSeconds(1));
        // Not before MaxRetryDelay, and nowhere near the hour asked for. The clock moves a second per step while the
        // delivery runs on real threads, so on a busy machine the step that sees it lands some seconds later.
        Assert.InRange(time.GetUtcNow() - start, TimeSpan.FromSeconds(60), TimeSpan.FromMinutes(5));

        receiver.Answer("/hook", 200);
        await time.AdvanceUntilAsync(() => receiver.At("/hook").Count == 3, TimeSpan.FromSeconds(1));
        var dispatcher = s.Proxy.Services.GetRequiredService<AlertDispatcher>();
        await FailoverTests.WaitUntilAsync(() => dispatcher.Status().Channels[0] is { State: "ok", Sent: 1, Failed: 0 });
        Assert.Single(receiver.At("/hook").Select(r => r.Headers["webhook-id"]).Distinct());
    }

    [Fact]
    public void DiscordPayload_LongEvent_StaysWithinDiscordsLimits_AndPingsNoOne()
    {
        var e = new ProxyEvent
        {
            Kind = EventKinds.KeyDead,
            Severity = EventSeverity.Error,
            At = DateTimeOffset.UnixEpoch,
            Message = "@everyone " + new string('m', 9000),
            Remediation = new string('r', 3000),
            Pool = new string('p', 300),
            Key = "primary",
            ProviderMessage = new string('x', 5000),
            Incident = "key:p:primary",
        };

        var discord = DiscordAlertChannel.Payload(new Alert(AlertAction.Trigger, e));

        var content = discord["content"]!.GetValue<string>();
        var embed = discord["embeds"]![0]!;
        var title = embed["title"]!.GetValue<string>();
        var description = embed["description"]!.GetValue<string>();
        var fields = embed["fields"]!.AsArray().Select(f => (Name: f!["name"]!.GetValue<string>(), Value: f["value"]!.GetValue<string>())).ToList();
        Assert.InRange(content.Length, 1, 2000);
        Assert.InRange(title.Length, 1, 256);
        Assert.InRange(description.Length, 1, 4096);
        Assert.EndsWith("…", description, StringComparison.Ordinal);
        Assert.InRange(fields.Count, 1, 25);
        Assert.All(fields, f => Assert.True(f.Name.Length <= 256 && f.Value.Length <= 1024));
        Assert.True(title.Length + description.Length + fields.Sum(f => f.Name.Length + f.Value.Length) <= 6000);
        Assert.Empty(discord["allowed_mentions"]!["parse"]!.AsArray());
        Assert.Equal(JsonValueKind.Array, JsonDocument.Parse(HttpAlertChannel.Serialize(discord)).RootElement.GetProperty("embeds").ValueKind);
    }
}
