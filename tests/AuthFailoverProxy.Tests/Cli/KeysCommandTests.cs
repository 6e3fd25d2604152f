using System.Net;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.Tests.Audit;
using AuthFailoverProxy.Tests.Fakes;

namespace AuthFailoverProxy.Tests.Cli;

/// <summary>
/// <c>afp keys …</c> as a process against a running proxy in front of the simulated provider: a key added pending with its
/// check result, confirmed, serving; disabled, enabled, removed; the last usable key guarded; every change recorded with
/// who; secrets and tokens never taken from the command line and never shown.
/// </summary>
public sealed class KeysCommandTests
{
    private const string AdminToken = AuditTestBench.AdminToken;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task KeyCommands_EndToEnd_AddPendingConfirmServeDisableEnableRemove()
    {
        await using var s = await StartAsync(["primary"]);
        var environment = Afp.For(s.Proxy, AdminToken);
        var (stdinKey, envKey) = (Secrets.AnthropicApiKey(), Secrets.AnthropicApiKey());
        s.Upstream.SetKeyOrganization(stdinKey, "org-second");
        async Task<ToolResult> OkAsync(params string[] args)
        {
            var result = await Afp.RunAsync(args, environment);
            Assert.True(result.ExitCode == 0, result.ToString());
            return result;
        }

        // Added from standard input: checked at once, pending, no traffic until confirmed.
        var added = await Afp.RunAsync(["keys", "add", "anthropic", "backup-2"], environment, input: stdinKey + "\n");
        Assert.True(added.ExitCode == 0, added.ToString());
        Assert.Contains($"Added key 'backup-2' ({KeyFormats.Fingerprint(stdinKey)}, x-api-key, priority 1) to pool 'anthropic' as ops: it is PENDING", added.Output, StringComparison.Ordinal);
        Assert.Contains("Check: PASSED: the upstream accepted the key", added.Output, StringComparison.Ordinal);
        Assert.Contains("Next: afp keys confirm anthropic backup-2", added.Output, StringComparison.Ordinal);
        Assert.Equal("pending", await s.KeyStateAsync("backup-2"));
        var status = await OkAsync("status");
        Assert.Contains("backup-2: pending: carries no traffic until confirmed (afp keys confirm anthropic backup-2).", status.Output, StringComparison.Ordinal);

        // From an environment variable, as JSON for a script.
        environment["NEW_KEY"] = envKey;
        var fromEnv = await OkAsync("keys", "add", "anthropic", "backup-3", "--secret-env", "NEW_KEY", "--priority", "7", "--json");
        Assert.Equal("passed", fromEnv.Json().GetProperty("check").GetProperty("outcome").GetString());
        Assert.Equal(7, fromEnv.Json().GetProperty("key").GetProperty("priority").GetInt32());

        var confirmed = await OkAsync("keys", "confirm", "anthropic", "backup-2");
        Assert.Contains("'backup-2' is in service. (recorded: confirm by ops", confirmed.Output, StringComparison.Ordinal);

        var disabled = await OkAsync("keys", "disable", "anthropic", "primary");
        Assert.Contains("'primary' is disabled; pool 'anthropic' keeps 1 usable key(s).", disabled.Output, StringComparison.Ordinal);
        using (var served = await s.PostMessageAsync())
        {
            Assert.Equal(HttpStatusCode.OK, served.StatusCode);
            Assert.Equal("backup-2", served.Headers.GetValues("x-afp-key").Single());
        }

        // The last usable key: refused with what would follow, nothing changed; --force does it.
        var guarded = await Afp.RunAsync(["keys", "disable", "anthropic", "backup-2"], environment);
        Assert.True(guarded.ExitCode == 1, guarded.ToString());
        Assert.Contains("refused: disabling 'backup-2' means pool 'anthropic' has no usable key left: every request gets a 503", guarded.Error, StringComparison.Ordinal);
        Assert.Contains("Repeat with --force to do it anyway.", guarded.Error, StringComparison.Ordinal);
        Assert.Equal("usable", await s.KeyStateAsync("backup-2"));
        var forced = await OkAsync("keys", "disable", "anthropic", "backup-2", "--force", "--json");
        Assert.Equal("disabled", forced.Json().GetProperty("state").GetString());

        var enabled = await OkAsync("keys", "enable", "anthropic", "primary");
        Assert.Contains("'primary' is back in service.", enabled.Output, StringComparison.Ordinal);

        var removed = await OkAsync("keys", "remove", "anthropic", "backup-2");
        Assert.Contains("'backup-2' is removed", removed.Output, StringComparison.Ordinal);
        // A key from the configuration is removed there; the answer says how, in afp's words.
        var fromConfiguration = await Afp.RunAsync(["keys", "remove", "anthropic", "primary"], environment);
        Assert.True(fromConfiguration.ExitCode == 1, fromConfiguration.ToString());
        Assert.Contains("or disable it here (afp keys disable anthropic primary)", fromConfiguration.Error, StringComparison.Ordinal);

        var list = await OkAsync("keys", "list", "--json");
        Assert.Equal(["primary", "backup-3"], list.Json().GetProperty("keys").EnumerateArray().Select(k => k.GetProperty("key").GetProperty("name").GetString()));
        var table = await OkAsync("keys", "list");
        Assert.Matches(@"anthropic\s+backup-3\s+PENDING\s+", table.Output);

        // Every change recorded by the proxy, with who.
        await AuditTestBench.WaitForEventAsync(s.Proxy, "key.enabled");
        var events = await OkAsync("events", "--since", "1h", "--kind", "key.*", "--json");
        var changes = events.Json().GetProperty("events").EnumerateArray().Where(e => e.TryGetProperty("actor", out _)).Select(e => (Kind: e.GetProperty("kind").GetString(), Key: e.GetProperty("key").GetString(), By: e.GetProperty("actor").GetString())).ToList();
        Assert.Contains(("key.confirmed", "backup-2", "ops"), changes);
        Assert.Contains(("key.disabled", "primary", "ops"), changes);
        Assert.Contains(("key.enabled", "primary", "ops"), changes);

        foreach (var run in new[] { added, fromEnv, confirmed, disabled, guarded, forced, enabled, removed, list, table, events, status })
        {
            Assert.DoesNotContain(stdinKey[..^4], run.Everything, StringComparison.Ordinal);
            Assert.DoesNotContain(envKey[..^4], run.Everything, StringComparison.Ordinal);
            Assert.DoesNotContain(AdminToken, run.Everything, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task AddedKeyTheProviderRejects_IsShownRejected_StaysPending_AndConfirmNeedsForce()
    {
        await using var s = await StartAsync(["primary"]);
        var environment = Afp.For(s.Proxy, AdminToken);
        var revoked = Secrets.AnthropicApiKey();
        s.Upstream.SetKeyFault(revoked, KeyFault.Revoked);
        var file = Path.Combine(Path.GetTempPath(), $"afp-key-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(file, revoked + "\n", Ct);
        try
        {
            var added = await Afp.RunAsync(["keys", "add", "anthropic", "spare", "--secret-file", file], environment);
            var confirm = await Afp.RunAsync(["keys", "confirm", "anthropic", "spare"], environment);

            Assert.True(added.ExitCode == 0, added.ToString());
            Assert.Contains("Check: REJECTED: 401 authentication_error \"invalid x-api-key\".", added.Output, StringComparison.Ordinal);
            Assert.Contains("Next: fix the key and add it again, or remove it: afp keys remove anthropic spare", added.Output, StringComparison.Ordinal);
            Assert.True(confirm.ExitCode == 1, confirm.ToString());
            Assert.Contains("refused: the check found 'spare' rejected", confirm.Error, StringComparison.Ordinal);
            Assert.Contains("Repeat with --force", confirm.Error, StringComparison.Ordinal);
            Assert.Equal("pending", await s.KeyStateAsync("spare"));
            Assert.DoesNotContain(revoked[..^4], added.Everything + confirm.Everything, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Theory]
    [InlineData("--secret")]
    [InlineData(null)]
    public async Task SecretOnTheCommandLine_IsRefused_AndNotEchoed(string? option)
    {
        var secret = Secrets.AnthropicApiKey();
        string[] args = option is null ? ["keys", "add", "anthropic", "spare", secret] : ["keys", "add", "anthropic", "spare", option, secret];

        // No proxy is needed to say no: nothing is sent.
        var result = await Afp.RunAsync(args, new Dictionary<string, string> { ["AFP_URL"] = "http://127.0.0.1:9", ["AFP_ADMIN_TOKEN"] = AdminToken });

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.DoesNotContain(secret[..^4], result.Everything, StringComparison.Ordinal);
        Assert.Contains(option is null ? "Unrecognized command or argument 'sk-ant-api03-…" : "the secret is never taken from the command line", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WrongOrMissingAdminToken_SaysSoClearly_AndNeverPrintsIt()
    {
        await using var s = await StartAsync(["primary"]);
        const string wrong = "not-the-admin-token-0123456789";
        var tokenFile = Path.Combine(Path.GetTempPath(), $"afp-token-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(tokenFile, wrong + "\n", Ct);
        try
        {
            var fromEnvironment = await Afp.RunAsync(["keys", "disable", "anthropic", "primary"], Afp.For(s.Proxy, wrong));
            var fromFile = await Afp.RunAsync(["keys", "list", "--token-file", tokenFile, "--json"], Afp.For(s.Proxy));
            var fromStdin = await Afp.RunAsync(["keys", "list", "--token-file", "-"], Afp.For(s.Proxy), input: wrong + "\n");
            var none = await Afp.RunAsync(["keys", "list"], Afp.For(s.Proxy));

            Assert.True(fromEnvironment.ExitCode == 1, fromEnvironment.ToString());
            Assert.Contains("the proxy refused the admin token (401)", fromEnvironment.Error, StringComparison.Ordinal);
            Assert.True(fromFile.ExitCode == 1, fromFile.ToString());
            Assert.Equal(401, fromFile.Json().GetProperty("status").GetInt32());
            Assert.StartsWith("the proxy refused the admin token", fromFile.Json().GetProperty("error").GetString(), StringComparison.Ordinal);
            Assert.True(fromStdin.ExitCode == 1, fromStdin.ToString());
            Assert.True(none.ExitCode == 2, none.ToString());
            Assert.Contains("needs the admin token: set AFP_ADMIN_TOKEN", none.Error, StringComparison.Ordinal);
            foreach (var run in new[] { fromEnvironment, fromFile, fromStdin, none })
            {
                Assert.DoesNotContain(wrong, run.Everything, StringComparison.Ordinal);
                Assert.DoesNotContain(AdminToken, run.Everything, StringComparison.Ordinal);
            }

            Assert.Equal("usable", await s.KeyStateAsync("primary"));
        }
        finally
        {
            File.Delete(tokenFile);
        }
    }

    [Fact]
    public async Task ProxyNotThere_OrTheAgentPort_SaysWhatToPointAt()
    {
        await using var s = await StartAsync(["primary"]);
        var free = Container.AppProcess.FreePort();

        var unreachable = await Afp.RunAsync(["status", "--url", $"http://127.0.0.1:{free}"]);
        var agentPort = await Afp.RunAsync(["status", "--url", s.Proxy.AgentAddress.ToString()]);
        var notAUrl = await Afp.RunAsync(["status", "--url", "127.0.0.1:9090"]);

        Assert.True(unreachable.ExitCode == 1, unreachable.ToString());
        Assert.Contains($"cannot reach the proxy at http://127.0.0.1:{free}", unreachable.Error, StringComparison.Ordinal);
        Assert.True(agentPort.ExitCode == 1, agentPort.ToString());
        Assert.Contains("not like the proxy's management listener: point --url (or AFP_URL) at the management port", agentPort.Error, StringComparison.Ordinal);
        Assert.True(notAUrl.ExitCode == 2, notAUrl.ToString());
    }

    private static Task<Scenario> StartAsync(string[] keys) => Scenario.StartAsync(keyNames: keys, configure: c => c
        .WithAdmin());
}
