using System.Globalization;
using AuthFailoverProxy.Alerts;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Events;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;

namespace AuthFailoverProxy.Tests.Alerts;

/// <summary>Alerts by mail through a real SMTP server on loopback.</summary>
public sealed class EmailAlertChannelTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task DeadKey_ArrivesByMail_WithTheSentenceAndWhatToDo_AndThePasswordStaysSecret()
    {
        var password = AlertBench.RandomToken(20);
        await using var smtp = await SmtpReceiver.StartAsync("afp-alerts", password);
        var port = smtp.Port.ToString(CultureInfo.InvariantCulture);
        await using var s = await Scenario.StartAsync(
            secretFor: n => n == "primary" ? Secrets.AnthropicOAuthToken() : Secrets.AnthropicApiKey(),
            configure: c => c
                .Channel("mail", "email", null, ("Host", "127.0.0.1"), ("Port", port), ("Security", "None"), ("Username", "afp-alerts"), ("Password", password),
                    ("From", "AuthFailoverProxy <afp@example.com>"), ("To:0", "oncall@example.com"), ("To:1", "lead@example.com"))
                .Channel("badmail", "email", null, ("Host", "127.0.0.1"), ("Port", port), ("Security", "None"), ("Username", "intruder"), ("Password", "wrong-password"),
                    ("From", "afp@example.com"), ("To:0", "oncall@example.com"))
                // A generous attempt timeout: an SMTP session on a busy machine may outlast FastRetries' 300 ms, and a
                // timed-out attempt is retried, which would blur what this test checks (a refused login is not).
                .FastRetries().Set("Alerts:Retries", 2).Set("Alerts:AttemptTimeout", "00:00:10"));
        var events = s.Proxy.Services.GetRequiredService<ProxyEvents>().Subscribe();

        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.OAuthRejected);
        using (await s.PostMessageAsync())
        {
        }

        await FailoverTests.WaitUntilAsync(() => smtp.Messages.Any(m => (m.Subject ?? string.Empty).StartsWith("[ERROR] key.dead", StringComparison.Ordinal)));
        var dead = ReadUntil(events, EventKinds.KeyDead);
        var mail = smtp.Messages.Single(m => (m.Subject ?? string.Empty).StartsWith("[ERROR] key.dead", StringComparison.Ordinal));
        Assert.StartsWith("[ERROR] key.dead: Key 'primary'", mail.Subject, StringComparison.Ordinal);
        Assert.True(mail.Subject!.Length <= 200);
        var body = mail.TextBody ?? string.Empty;
        Assert.Contains(dead.Message, body, StringComparison.Ordinal);
        Assert.Contains("What to do: " + dead.Remediation, body, StringComparison.Ordinal);
        Assert.Contains("Incident: key:anthropic:primary", body, StringComparison.Ordinal);
        Assert.Equal(["oncall@example.com", "lead@example.com"], mail.To.Mailboxes.Select(m => m.Address));
        Assert.Equal("afp@example.com", mail.From.Mailboxes.Single().Address);
        Assert.Contains("afp-alerts", smtp.Logins);

        // A refused login is not retried (it will not change by itself) and is told without the password.
        var dispatcher = s.Proxy.Services.GetRequiredService<AlertDispatcher>();
        // One refused session per failed delivery (key.dead, pool.degraded, perhaps more as the story goes on): none retried.
        int Failed() => (int)dispatcher.Status().Channels.Single(c => c.Name == "badmail").Failed;
        await FailoverTests.WaitUntilAsync(() => Failed() >= 2 && Failed() == smtp.RefusedSessions);
        var badStatus = (await s.StatusAsync()).GetProperty("alerts").GetProperty("channels").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "badmail");
        Assert.Equal("failing", badStatus.GetProperty("state").GetString());
        Assert.Equal("the SMTP server refused the login (Username/Password)", badStatus.GetProperty("lastError").GetProperty("message").GetString());
        await FailoverTests.WaitUntilAsync(() => smtp.Messages.Any(m => (m.Subject ?? string.Empty).Contains("alert.failed", StringComparison.Ordinal)));
        Assert.Contains("Alert channel 'badmail' (email) cannot deliver", smtp.Messages.Single(m => (m.Subject ?? string.Empty).Contains("alert.failed", StringComparison.Ordinal)).TextBody ?? string.Empty, StringComparison.Ordinal);

        var everything = string.Join('\n', s.Proxy.Logs.AllText, await s.Proxy.Management.GetStringAsync("/status", Ct), string.Join('\n', smtp.Messages.Select(m => m.ToString())));
        Assert.DoesNotContain(password, everything, StringComparison.Ordinal);
        Assert.DoesNotContain("wrong-password", everything, StringComparison.Ordinal);
        Assert.DoesNotContain(s.Secret("primary")[..^4], everything, StringComparison.Ordinal);
    }

    private static ProxyEvent ReadUntil(System.Threading.Channels.ChannelReader<ProxyEvent> events, string kind)
    {
        while (events.TryRead(out var e))
        {
            if (e.Kind == kind)
            {
                return e;
            }
        }

        throw new InvalidOperationException($"no {kind} event");
    }
}
