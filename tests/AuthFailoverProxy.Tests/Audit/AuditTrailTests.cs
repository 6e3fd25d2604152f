using System.Net;
using AuthFailoverProxy.Audit;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Hosting;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using static AuthFailoverProxy.Tests.Audit.AuditTestBench;

namespace AuthFailoverProxy.Tests.Audit;

/// <summary>The audit trail without Redis: "what happened between midnight and 9 a.m.?" in one request, kept on disk, bounded.</summary>
public sealed class AuditTrailTests
{
    [Fact]
    public async Task Timeline_MidnightToNine_TellsTheOutage_InOneRequest()
    {
        var time = new FakeTimeProvider(Midnight);
        await using var s = await Scenario.StartAsync(
            time: time,
            secretFor: n => n == "primary" ? Secrets.AnthropicOAuthToken() : Secrets.AnthropicApiKey(),
            configure: c => c.WithAdmin());
        for (var i = 0; i < 3; i++)
        {
            using var response = await s.PostMessageAsync();
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // 00:00:05: the organization stops accepting OAuth tokens while agents keep calling.
        time.Advance(TimeSpan.FromSeconds(5));
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.OAuthRejected);
        for (var i = 0; i < 5; i++)
        {
            using var response = await s.PostMessageAsync();
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // The pool's health is judged after the key's death, off the request path: the clock waits for it, as it did at
        // 00:00:05 in the night this tells (under load, the judgement can come after the clock has moved on).
        await WaitForEventAsync(s.Proxy, "pool.degraded", "since=2026-03-03T00:00:00Z&until=2026-03-03T09:00:00Z");

        // 08:40: the operator, woken up, takes the dead token out of rotation.
        time.Advance(TimeSpan.FromHours(8) + TimeSpan.FromMinutes(40) - TimeSpan.FromSeconds(5));
        using var admin = AdminClient(s.Proxy);
        using (var disabled = await admin.PostAsync("/admin/pools/anthropic/keys/primary/disable", null, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, disabled.StatusCode);
        }

        await WaitForEventAsync(s.Proxy, "key.disabled", "since=2026-03-03T00:00:00Z&until=2026-03-03T09:00:00Z");
        using var answer = await admin.GetAsync("/admin/events/timeline?since=2026-03-03T00:00:00Z&until=2026-03-03T09:00:00Z", Ct);
        var text = await answer.Content.ReadAsStringAsync(Ct);
        TestContext.Current.SendDiagnosticMessage(text);

        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        Assert.Equal("text/plain", answer.Content.Headers.ContentType?.MediaType);
        var fingerprint = s.Proxy.Services.GetRequiredService<PoolRegistry>().Pools[0].FindKey("primary")!.Fingerprint;
        var lines = text.TrimEnd('\n').Split('\n');
        Assert.Equal("What happened between 2026-03-03 00:00 and 09:00 UTC (4 events):", lines[0]);
        Assert.StartsWith($"00:00:05  ERROR     Key 'primary' ({fingerprint}) in pool 'anthropic' is out of service: 403 permission_error \"OAuth authentication is currently not allowed for this organization.\". Requests now go to 'backup'.", lines[1], StringComparison.Ordinal);
        Assert.StartsWith("                    To fix: this key is an OAuth access token (sk-ant-oat01-…)", lines[2], StringComparison.Ordinal);
        Assert.Contains("create a standard API key (sk-ant-api03-…)", lines[2], StringComparison.Ordinal);
        var rest = lines.Skip(3).SkipWhile(l => l.StartsWith("                    Provider request id: ", StringComparison.Ordinal)).ToList();
        Assert.StartsWith("00:00:05  INFO      Pool 'anthropic' fails over from 'primary' to 'backup' (403 permission_error); agents are not affected.", rest[0], StringComparison.Ordinal);
        Assert.Equal("00:00:05  WARNING   Pool 'anthropic' is degraded: 1 of 2 keys usable. Agents are served, with less to fall back on.", rest[1]);
        Assert.StartsWith("                    To fix: ", rest[2], StringComparison.Ordinal);
        Assert.Equal($"08:40:00  INFO      Key 'primary' ({fingerprint}) in pool 'anthropic' was disabled by ops: pool 'anthropic' keeps 1 usable key(s).", rest[3]);
        Assert.Equal("Still unresolved at 09:00: key:anthropic:primary (since 00:00:05), pool:anthropic (since 00:00:05).", rest[4]);
        Assert.Equal(5, rest.Count);
    }

    [Fact]
    public async Task Trail_SurvivesARestart_AndHoldsNoSecretBytes()
    {
        var directory = Directory.CreateTempSubdirectory("afp-trail-").FullName;
        try
        {
            await using var upstream = await SimulatedProvider.StartAsync(cancellationToken: Ct);
            var (primary, backup) = (Secrets.AnthropicOAuthToken(), Secrets.AnthropicApiKey());
            upstream.SetKeyFault(primary, KeyFault.OAuthRejected);
            ProxyConfig Config() => new ProxyConfig()
                .Pool("anthropic", upstream, isDefault: true, keys: [("primary", primary), ("backup", backup)])
                .WithAdmin()
                .Set("Audit:Directory", directory);
            var first = Config();
            await using (var proxy = await ProxyHost.StartAsync(first))
            {
                using (var response = await proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
                {
                    Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                }

                await WaitForEventAsync(proxy, "pool.degraded");
            }

            await using (var restarted = await ProxyHost.StartAsync(Config()))
            {
                var events = await EventsAsync(restarted);

                Assert.Contains(events, e => e.GetProperty("kind").GetString() == "key.dead" && e.GetProperty("key").GetString() == "primary" && e.GetProperty("status").GetInt32() == 403);
                Assert.Contains(events, e => e.GetProperty("kind").GetString() == "key.failover");
            }

            var everything = string.Concat(Directory.GetFiles(directory).Select(File.ReadAllText));
            Assert.Contains("OAuth authentication is currently not allowed", everything, StringComparison.Ordinal);
            foreach (var secret in new[] { primary[..^4], backup[..^4], first.ClientToken, AdminToken })
            {
                Assert.DoesNotContain(secret, everything, StringComparison.Ordinal);
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Files_StayWithinMaxBytes_AndKeepTheNewestEvents()
    {
        const long maxBytes = 16 * 1024;
        var directory = Directory.CreateTempSubdirectory("afp-trail-").FullName;
        try
        {
            var config = new ProxyConfig().WithAdmin().Set("Audit:Directory", directory).Set("Audit:MaxBytes", maxBytes);
            await using var upstream = await SimulatedProvider.StartAsync(cancellationToken: Ct);
            config.Pool("anthropic", upstream, isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())]);
            await using var proxy = await ProxyHost.StartAsync(config);

            // About 200 bytes a line: ~120 KB told into 16 KB.
            await TellAsync(proxy, 600, TimeProvider.System.GetUtcNow(), padding: new string('.', 40));

            var files = Directory.GetFiles(directory).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
            Assert.Equal([FileAuditTrail.PreviousName, FileAuditTrail.CurrentName], files);
            Assert.InRange(Directory.GetFiles(directory).Sum(f => new FileInfo(f).Length), maxBytes / 2, maxBytes);
            var kept = (await EventsAsync(proxy)).Select(Number).ToList();
            Assert.Equal(599, kept[^1]);
            Assert.Equal(Enumerable.Range(kept[0], kept.Count), kept);
            Assert.InRange(kept.Count, 30, 100);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Start_WithADirectoryThatCannotBeCreated_FailsNamingAuditDirectory()
    {
        // A path through a regular file cannot become a directory, whoever runs the test (root ignores permissions).
        var file = Path.GetTempFileName();
        try
        {
            var config = new ProxyConfig()
                .Pool("anthropic", new Uri("http://127.0.0.1:9"), isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())])
                .Set("Audit:Directory", Path.Combine(file, "audit"));

            var failure = await Assert.ThrowsAnyAsync<Exception>(() => ProxyHost.StartAsync(config));

            var problem = Assert.Single(ProxyApplication.ConfigurationProblems(failure), p => p.StartsWith("Audit:Directory", StringComparison.Ordinal));
            Assert.Contains("cannot be created or written", problem, StringComparison.Ordinal);
            Assert.Contains("Audit:Enabled", problem, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
