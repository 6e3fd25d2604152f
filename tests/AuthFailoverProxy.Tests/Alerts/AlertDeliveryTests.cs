using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using AuthFailoverProxy.Alerts;
using AuthFailoverProxy.Events;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace AuthFailoverProxy.Tests.Alerts;

/// <summary>How one delivery is attempted: each attempt signed when it is sent, and each failed attempt one plain log line.</summary>
public sealed class AlertDeliveryTests
{
    private static readonly DateTimeOffset Midnight = DateTimeOffset.Parse("2026-03-03T00:00:00Z", CultureInfo.InvariantCulture);

    [Fact]
    public async Task Retry_SignsEachAttemptAfresh_WithTheTimeItIsSent()
    {
        var time = new FakeTimeProvider(Midnight);
        var secret = AlertBench.WebhookSecret();
        await using var receiver = await WebhookReceiver.StartAsync();
        receiver.Answer("/hook", 503);
        await using var s = await Scenario.StartAsync(time: time, configure: c => c
            .Channel("hook", "webhook", receiver.Url("/hook"), ("Secret", secret))
            .Set("Alerts:Retries", 2).Set("Alerts:RetryDelay", "00:00:10").Set("Alerts:MaxRetryDelay", "00:01:00")
            .PatientAttempts());

        Publish(s, Midnight);
        await FailoverTests.WaitUntilAsync(() => receiver.At("/hook").Count == 1);
        await time.AdvanceUntilAsync(() => receiver.At("/hook").Count == 2, TimeSpan.FromSeconds(1));
        receiver.Answer("/hook", 200);
        await time.AdvanceUntilAsync(() => receiver.At("/hook").Count == 3, TimeSpan.FromSeconds(1));

        var attempts = receiver.At("/hook");
        var timestamps = attempts.Select(a => long.Parse(a.Headers["webhook-timestamp"], CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(Midnight.ToUnixTimeSeconds(), timestamps[0]);
        // A receiver refuses a timestamp older than a few minutes: a retry carries the time it is sent, not the first attempt's.
        Assert.True(timestamps[0] < timestamps[1] && timestamps[1] < timestamps[2], $"timestamps {string.Join(", ", timestamps)}");
        Assert.InRange(timestamps[2], timestamps[1], time.GetUtcNow().ToUnixTimeSeconds());
        // One message, the same id and body on every attempt (receivers deduplicate on the id); each signature is over its own timestamp.
        Assert.Single(attempts.Select(a => a.Headers["webhook-id"]).Distinct());
        Assert.Single(attempts.Select(a => a.Text).Distinct());
        var key = Convert.FromBase64String(secret["whsec_".Length..]);
        Assert.All(attempts, a => Assert.Equal(
            "v1," + Convert.ToBase64String(HMACSHA256.HashData(key, (byte[])[.. Encoding.UTF8.GetBytes($"{a.Headers["webhook-id"]}.{a.Headers["webhook-timestamp"]}."), .. a.Body])),
            a.Headers["webhook-signature"]));
    }

    [Fact]
    public async Task FailedAttempts_AreOneLineEach_ByChannelAndAttempt_WithoutPollysWarningsOrStackTraces()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        receiver.Answer("/busy", 503, "over capacity");
        var closed = AlertBench.ClosedPort();
        await using var s = await Scenario.StartAsync(configure: c => c
            .Channel("busy", "webhook", receiver.Url("/busy"))
            .Channel("gone", "slack", $"http://127.0.0.1:{closed}/services/T0AFP/B0AFP/{AlertBench.RandomToken()}")
            .FastRetries());

        Publish(s, DateTimeOffset.UtcNow);
        var dispatcher = s.Proxy.Services.GetRequiredService<AlertDispatcher>();
        await FailoverTests.WaitUntilAsync(() => dispatcher.Status().Channels.All(c => c.Failed >= 1));

        var alertLines = s.Proxy.Logs.Events.Where(e => LogCapture.Property(e, "SourceContext")?.StartsWith("AuthFailoverProxy.Alerts", StringComparison.Ordinal) == true).ToList();
        // Each channel's failure is told to the other, whose attempts at that are lines of their own: these are the reload's.
        var attempts = alertLines.Where(e => e.Properties.ContainsKey("Attempt") && LogCapture.Property(e, "Kind") == EventKinds.ConfigurationReloaded).ToList();
        string Line(string channel, int attempt) => Assert.Single(attempts, e => LogCapture.Property(e, "Channel") == channel && LogCapture.Property(e, "Attempt") == $"{attempt}").RenderMessage(CultureInfo.InvariantCulture);

        // Alerts:Retries = 1: two attempts per delivery, each one line saying which channel, which attempt and what went wrong.
        Assert.Equal(4, attempts.Count);
        Assert.Equal("Alert channel 'busy' (webhook): attempt 1 of 2 to deliver config.reloaded failed: HTTP 503: over capacity; it is retried.", Line("busy", 1));
        Assert.Equal("Alert channel 'busy' (webhook): attempt 2 of 2 to deliver config.reloaded failed: HTTP 503: over capacity; it is not retried.", Line("busy", 2));
        Assert.Equal("Alert channel 'gone' (slack): attempt 1 of 2 to deliver config.reloaded failed: the receiver could not be reached (ConnectionError); it is retried.", Line("gone", 1));
        Assert.Contains("attempt 2 of 2", Line("gone", 2), StringComparison.Ordinal);
        // No exception, no stack trace, and nothing from Polly's own telemetry about these pipelines.
        Assert.All(alertLines, e => Assert.Null(e.Exception));
        Assert.DoesNotContain(s.Proxy.Logs.Events, e => LogCapture.Property(e, "SourceContext")?.StartsWith("Polly", StringComparison.Ordinal) == true);
        Assert.DoesNotContain(" at System.", s.Proxy.Logs.AllText, StringComparison.Ordinal);
    }

    private static void Publish(Scenario s, DateTimeOffset at)
        => s.Proxy.Services.GetRequiredService<ProxyEvents>().Publish(new ProxyEvent { Kind = EventKinds.ConfigurationReloaded, Severity = EventSeverity.Warning, At = at, Message = "reloaded" });
}
