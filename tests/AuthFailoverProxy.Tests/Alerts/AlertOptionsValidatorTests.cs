using AuthFailoverProxy.Hosting;
using AuthFailoverProxy.Tests.Fakes;

namespace AuthFailoverProxy.Tests.Alerts;

/// <summary>A mistake in an alert channel stops the start, named by the key to fix, without quoting a URL or a secret.</summary>
public sealed class AlertOptionsValidatorTests
{
    [Fact]
    public async Task EveryChannelMistake_IsReportedByKey_WithoutQuotingUrlsOrSecrets()
    {
        var slackUrl = "hooks.slack.com/services/T0AFP/B0AFP/" + AlertBench.RandomToken();
        var badSecret = "whsec_" + AlertBench.RandomToken(10) + "!";
        var config = new ProxyConfig()
            .Pool("anthropic", new Uri("http://127.0.0.1:9"), isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())])
            .Channel("chat", "slack", slackUrl)
            .Channel("hook", "webhook", "https://example.com/hook", ("Secret", badSecret), ("Events:0", "key.*"), ("Events:1", "key.deadd"), ("MinSeverity", "Fatal"))
            .Channel("pager", "pagerduty", null)
            .Channel("mail", "email", null, ("Host", "smtp.example.com"), ("Username", "afp"), ("From", "not an address"), ("Security", "Tls"))
            .Channel("teams", "teams", null)
            .Channel("sms", "sms", "https://example.com/sms")
            .Channel("nothing", "", null)
            .Set("Alerts:Retries", 20);

        var exception = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await using var proxy = await ProxyHost.StartAsync(config);
        });
        var problems = ProxyApplication.ConfigurationProblems(exception);

        Assert.Contains("Alerts:Channels:chat:Url is not an absolute http:// or https:// URL (the value is not shown).", problems);
        Assert.Contains("Alerts:Channels:hook:Secret is not a Standard Webhooks secret: it must be 'whsec_' followed by base64 (the value is not shown).", problems);
        Assert.Contains(problems, p => p.StartsWith("Alerts:Channels:hook:Events:1 'key.deadd' is not an event kind", StringComparison.Ordinal));
        Assert.DoesNotContain(problems, p => p.StartsWith("Alerts:Channels:hook:Events:0", StringComparison.Ordinal));
        Assert.Contains("Alerts:Channels:hook:MinSeverity 'Fatal' is not a severity: use Info, Warning, Error or Critical.", problems);
        Assert.Contains("Alerts:Channels:pager:RoutingKey is missing: the integration key of a PagerDuty Events API v2 integration.", problems);
        Assert.Contains("Alerts:Channels:mail:Password is missing while Alerts:Channels:mail:Username is set.", problems);
        Assert.Contains("Alerts:Channels:mail:From is not an email address.", problems);
        Assert.Contains(problems, p => p.StartsWith("Alerts:Channels:mail:To is missing", StringComparison.Ordinal));
        Assert.Contains("Alerts:Channels:mail:Security 'Tls' is not a choice: use None, StartTls or SslOnConnect.", problems);
        Assert.Contains("Alerts:Channels:teams:Url is missing: the teams channel needs the URL to post to.", problems);
        Assert.Contains(problems, p => p.StartsWith("Alerts:Channels:sms:Type 'sms' is not a channel type", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Alerts:Channels:nothing:Type is missing", StringComparison.Ordinal));
        Assert.Contains("Alerts:Retries is 20: use 0 to 10.", problems);
        // PagerDuty's URL has a default; only its routing key is missing.
        Assert.DoesNotContain(problems, p => p.StartsWith("Alerts:Channels:pager:Url", StringComparison.Ordinal));
        var all = string.Join('\n', problems);
        Assert.DoesNotContain("T0AFP", all, StringComparison.Ordinal);
        Assert.DoesNotContain(badSecret[6..], all, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AWebhookSecretShorterThan24Bytes_StopsTheStart_WithExit2_NamingTheKey()
    {
        // 16 random bytes: valid base64, but guessable sooner than Standard Webhooks allows (24 to 64 bytes).
        var shortSecret = "whsec_" + Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        var config = new ProxyConfig()
            .Pool("anthropic", new Uri("http://127.0.0.1:9"), isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())])
            .Channel("hook", "webhook", "https://example.com/hook", ("Secret", shortSecret))
            // What AFP_ALERT_WEBHOOK and AFP_ALERT_WEBHOOK_SECRET make.
            .Channel("webhook", "webhook", "https://example.com/quick", ("Secret", "whsec_" + Convert.ToBase64String(new byte[23])))
            .Channel("long", "webhook", "https://example.com/long", ("Secret", AlertBench.WebhookSecret()));

        var exception = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await using var proxy = await ProxyHost.StartAsync(config);
        });
        using var output = new StringWriter();
        var exitCode = await ProxyApplication.ReportStartFailureAsync(exception, output);

        Assert.Equal(2, exitCode);
        var problems = ProxyApplication.ConfigurationProblems(exception);
        Assert.Contains("Alerts:Channels:hook:Secret is too short: a Standard Webhooks secret holds 24 to 64 bytes after 'whsec_' (make one with: echo whsec_$(openssl rand -base64 32)); the value is not shown.", problems);
        Assert.Contains(problems, p => p.StartsWith("Alerts:Channels:webhook:Secret (AFP_ALERT_WEBHOOK_SECRET) is too short", StringComparison.Ordinal));
        Assert.DoesNotContain(problems, p => p.StartsWith("Alerts:Channels:long", StringComparison.Ordinal));
        Assert.DoesNotContain(shortSecret[6..], output.ToString(), StringComparison.Ordinal);
    }
}
