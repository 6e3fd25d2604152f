using System.Globalization;
using AuthFailoverProxy.Cli;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Events;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.Tests.Audit;
using AuthFailoverProxy.Tests.Fakes;

namespace AuthFailoverProxy.Tests.Cli;

/// <summary>
/// <c>afp status</c> and <c>afp events</c> as processes, over an outage replayed here: a key revoked at the simulated
/// provider while agents call, the proxy confirming it dead; what an operator reads afterwards.
/// </summary>
public sealed class StatusAndEventsCommandTests
{
    private const string AdminToken = AuditTestBench.AdminToken;
    private const string ManagementToken = "mgmt-token-cli-0123456789abcdef";

    [Fact]
    public async Task AfterAKeyIsRevoked_StatusAndEvents_TellTheStoryInPlainWords()
    {
        await using var s = await Scenario.StartAsync(configure: c => c
            .WithAdmin()
            .Set("Management:Token", ManagementToken));
        var primary = ((PoolRegistry)s.Proxy.Services.GetService(typeof(PoolRegistry))!).Pools[0].FindKey("primary")!.Fingerprint;

        // The outage: the provider revokes the primary key while agents keep calling; they are served by the backup.
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.Revoked);
        for (var i = 0; i < 3; i++)
        {
            using var response = await s.PostMessageAsync();
            Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        }

        await AuditTestBench.WaitForEventAsync(s.Proxy, "key.dead");
        await AuditTestBench.WaitForEventAsync(s.Proxy, "pool.degraded");
        var reader = Afp.For(s.Proxy, managementToken: ManagementToken);

        var story = await Afp.RunAsync(["events", "--since", "1h", "--until", "now"], reader);
        var events = await Afp.RunAsync(["events", "--since", "30m", "--json"], reader);
        var status = await Afp.RunAsync(["status"], reader);
        var statusJson = await Afp.RunAsync(["status", "--json"], Afp.For(s.Proxy, adminToken: AdminToken));

        Assert.True(story.ExitCode == 0, story.ToString());
        Assert.StartsWith("What happened between ", story.Output, StringComparison.Ordinal);
        Assert.Contains($"ERROR     Key 'primary' ({primary}) in pool 'anthropic' is out of service: 401 authentication_error \"invalid x-api-key\"", story.Output, StringComparison.Ordinal);
        Assert.Contains("To fix: the key is malformed, revoked or expired: create a new key in the Anthropic Console and replace it.", story.Output, StringComparison.Ordinal);
        Assert.Contains("Pool 'anthropic' is degraded: 1 of 2 keys usable.", story.Output, StringComparison.Ordinal);

        Assert.True(events.ExitCode == 0, events.ToString());
        Assert.Contains(events.Json().GetProperty("events").EnumerateArray(), e => e.GetProperty("kind").GetString() == "key.dead" && e.GetProperty("key").GetString() == "primary");

        Assert.True(status.ExitCode == 0, status.ToString());
        Assert.Matches(@"AuthFailoverProxy at http://127\.0\.0\.1:\d+: DEGRADED \(replica \S+:\d+, ", status.Output);
        Assert.Contains("Pool 'anthropic' (anthropic, https://", status.Output, StringComparison.Ordinal);
        Assert.Contains("1 of 2 key(s) usable; circuit closed.", status.Output, StringComparison.Ordinal);
        Assert.Matches($@"  primary\s+DEAD\s+\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\dZ \([^)]*ago\)\s+{System.Text.RegularExpressions.Regex.Escape(primary)}\s+x-api-key\s+0\s+configuration", status.Output);
        Assert.Contains("  primary: why: 401 authentication_error \"invalid x-api-key\"", status.Output, StringComparison.Ordinal);
        Assert.Contains("  primary: to fix: the key is malformed, revoked or expired", status.Output, StringComparison.Ordinal);
        Assert.Matches(@"  backup\s+usable\s+", status.Output);
        Assert.Contains("Store: memory", status.Output, StringComparison.Ordinal);

        Assert.True(statusJson.ExitCode == 0, statusJson.ToString());
        Assert.Equal(ProxyEvent.ThisReplica, statusJson.Json().GetProperty("replica").GetString());

        foreach (var run in new[] { story, events, status, statusJson })
        {
            Assert.DoesNotContain(s.Secret("primary")[..^4], run.Everything, StringComparison.Ordinal);
            Assert.DoesNotContain(ManagementToken, run.Everything, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task WithAManagementToken_ReadingNeedsIt_AndTheAdminTokenWillDo()
    {
        await using var s = await Scenario.StartAsync(configure: c => c
            .WithAdmin()
            .Set("Management:Token", ManagementToken));

        var none = await Afp.RunAsync(["status"], Afp.For(s.Proxy));
        var wrong = await Afp.RunAsync(["events"], Afp.For(s.Proxy, managementToken: "wrong-token-0123456789abcdef"));
        var admin = await Afp.RunAsync(["status"], Afp.For(s.Proxy, adminToken: AdminToken));
        var badTime = await Afp.RunAsync(["events", "--since", "yesterday-ish"], Afp.For(s.Proxy, managementToken: ManagementToken));

        Assert.True(none.ExitCode == 1, none.ToString());
        Assert.Contains("the proxy wants a token for this (401): set AFP_MANAGEMENT_TOKEN", none.Error, StringComparison.Ordinal);
        Assert.True(wrong.ExitCode == 1, wrong.ToString());
        Assert.Contains("the proxy refused the token (401)", wrong.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("wrong-token-0123456789abcdef", wrong.Everything, StringComparison.Ordinal);
        Assert.True(admin.ExitCode == 0, admin.ToString());
        Assert.True(badTime.ExitCode == 2, badTime.ToString());
        Assert.Contains("--since 'yesterday-ish' is not a time ago (9h, 30m, 2d, 1h30m)", badTime.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("9h", "-32400s")]
    [InlineData("-30m", "-1800s")]
    [InlineData("1h30m", "-5400s")]
    [InlineData("2d", "-172800s")]
    [InlineData("now", "now")]
    [InlineData("00:00", "2026-03-03T00:00:00Z")]
    [InlineData("08:30:15", "2026-03-03T08:30:15Z")]
    [InlineData("23:30", "2026-03-02T23:30:00Z")]
    [InlineData("00:00+01:00", "2026-03-02T23:00:00Z")]
    [InlineData("2026-03-01T12:00:00Z", "2026-03-01T12:00:00Z")]
    [InlineData("2026-03-01T12:00", "2026-03-01T12:00:00Z")]
    [InlineData("2026-03-01 13:00+01:00", "2026-03-01T12:00:00Z")]
    [InlineData("2026-03-01", "2026-03-01T00:00:00Z")]
    public void When_TakesTimesAgoClockTimesAndIsoTimes(string typed, string sent)
    {
        var now = DateTimeOffset.Parse("2026-03-03T09:10:00Z", CultureInfo.InvariantCulture);

        Assert.Equal(sent, EventsCommand.When(typed, "--since", now));
    }

    [Theory]
    [InlineData("25:00")]
    [InlineData("400d")]
    [InlineData("nine hours")]
    public void When_SomethingElse_IsAUsageError(string typed)
    {
        var failure = Assert.Throws<CliException>(() => EventsCommand.When(typed, "--since", DateTimeOffset.UnixEpoch));

        Assert.Equal(ExitCodes.Usage, failure.ExitCode);
        Assert.StartsWith($"--since '{typed}' is ", failure.Message, StringComparison.Ordinal);
    }
}
