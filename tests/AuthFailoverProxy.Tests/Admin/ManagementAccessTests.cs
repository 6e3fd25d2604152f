using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using AuthFailoverProxy.Tests.Hosting;
using Serilog.Events;

namespace AuthFailoverProxy.Tests.Admin;

/// <summary>
/// The management surface tells only whom it should: an optional token for the state (probes stay open), no map of
/// pools for a stranger, tokens that cannot be mistaken for one another, and no dead key enabled blind.
/// </summary>
public sealed class ManagementAccessTests
{
    private const string ManagementToken = "mgmt-token-0123456789abcdef";
    private const string AdminToken = "admin-token-0123456789abcdef";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("/status")]
    [InlineData("/metrics")]
    [InlineData("/admin/events?since=2020-01-01T00:00:00Z")]
    [InlineData("/admin/config")]
    public async Task WithAManagementToken_TheStateNeedsIt_AndProbesStayOpen(string path)
    {
        await using var s = await StartAsync(c => c.Set("Management:Token", ManagementToken));

        using var anonymous = await s.Proxy.Management.GetAsync(path, Ct);
        using var wrong = await GetAsync(s, path, "not-the-token-0123456789");
        using var reader = await GetAsync(s, path, ManagementToken);
        using var admin = await GetAsync(s, path, AdminToken);

        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal("Bearer", anonymous.Headers.WwwAuthenticate.Single().Scheme);
        Assert.DoesNotContain("primary", await anonymous.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.Equal(HttpStatusCode.OK, reader.StatusCode);
        Assert.Equal(HttpStatusCode.OK, admin.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await s.Proxy.Management.GetAsync("/healthz", Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await s.Proxy.Management.GetAsync("/readyz", Ct)).StatusCode);
    }

    [Fact]
    public async Task TheManagementToken_ReadsButNeverChangesKeys()
    {
        await using var s = await StartAsync(c => c.Set("Management:Token", ManagementToken));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/admin/pools/anthropic/keys/primary/disable");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ManagementToken);

        using var response = await s.Proxy.Management.SendAsync(request, Ct);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        using var status = await GetAsync(s, "/status", ManagementToken);
        Assert.Equal("usable", JsonDocument.Parse(await status.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("pools")[0].GetProperty("keys")[0].GetProperty("state").GetString());
    }

    [Fact]
    public async Task AStranger_IsNotToldThePoolsPaths_AClientIs()
    {
        await using var s = await StartAsync(c => c
            .Pool("second", new Uri("http://127.0.0.1:9"), keys: [("other", Secrets.AnthropicApiKey())])
            .Set("Pools:anthropic:Default", "false"));
        using var stranger = new HttpClient { BaseAddress = s.Proxy.AgentAddress };

        var toStranger = await (await stranger.PostAsync("/nowhere/v1/messages", Scenario.MessageBody(), Ct)).Content.ReadAsStringAsync(Ct);
        var toClient = await (await s.Proxy.Agent.PostAsync("/nowhere/v1/messages", Scenario.MessageBody(), Ct)).Content.ReadAsStringAsync(Ct);

        Assert.Contains("no pool serves /nowhere/v1/messages.", toStranger, StringComparison.Ordinal);
        Assert.DoesNotContain("/second", toStranger, StringComparison.Ordinal);
        Assert.Contains("/second", toClient, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnAdminOrManagementTokenThatIsAClientToken_StopsTheStart()
    {
        var config = new ProxyConfig().Pool("anthropic", new Uri("http://127.0.0.1:9"), isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())]);
        config.Set("Admin:Tokens:0:Name", "ops").Set("Admin:Tokens:0:Token", config.ClientToken).Set("Management:Token", config.ClientToken);

        var problems = await ConfigurationValidationTests.StartupProblemsAsync(config);

        Assert.Contains("Admin:Tokens:0:Token is also the client token 'test-agent' (Clients:Tokens): every agent could change keys. Give the admin a token of its own.", problems);
        Assert.Contains(problems, p => p.StartsWith("Management:Token is also the client token 'test-agent'", StringComparison.Ordinal));
        Assert.DoesNotContain(problems, p => p.Contains(config.ClientToken, StringComparison.Ordinal));
    }

    [Fact]
    public async Task ShortTokens_AreWarnedAbout_ByKeyNotValue()
    {
        await using var s = await Scenario.StartAsync(configure: c => c
            .Set("Clients:Tokens:1:Name", "short-agent").Set("Clients:Tokens:1:Token", "tok-123")
            .Set("Admin:Tokens:0:Name", "ops").Set("Admin:Tokens:0:Token", "admin1"));

        await FailoverTests.WaitUntilAsync(() => s.Proxy.Logs.CountEventId(104) == 1);

        var warning = Assert.Single(s.Proxy.Logs.At(LogEventLevel.Warning), e => e.MessageTemplate.Text.StartsWith("These tokens are shorter", StringComparison.Ordinal)).RenderMessage(System.Globalization.CultureInfo.InvariantCulture);
        Assert.Contains("Clients:Tokens:1 ('short-agent'), Admin:Tokens:0 ('ops')", warning, StringComparison.Ordinal);
        Assert.DoesNotContain("tok-123", warning, StringComparison.Ordinal);
        Assert.DoesNotContain("admin1", warning, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EnablingAKeyThatDied_ChecksItFirst_AndARejectedOneStaysOut()
    {
        await using var s = await StartAsync();
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.Revoked);
        using (await s.PostMessageAsync())
        {
        }

        await s.WaitForKeyStateAsync("primary", "dead");
        using (await Admin(s).PostAsync("/admin/pools/anthropic/keys/primary/disable?force=true", null, Ct))
        {
        }

        using var refused = await Admin(s).PostAsync("/admin/pools/anthropic/keys/primary/enable", null, Ct);

        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Contains("still rejected", await refused.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        Assert.Equal("disabled", await s.KeyStateAsync("primary"));

        // Restored at the provider: the check passes and the key is back.
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.None);
        using var enabled = await Admin(s).PostAsync("/admin/pools/anthropic/keys/primary/enable", null, Ct);
        Assert.Equal(HttpStatusCode.OK, enabled.StatusCode);
        Assert.Equal("passed", JsonDocument.Parse(await enabled.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("check").GetProperty("outcome").GetString());
        Assert.Equal("usable", await s.KeyStateAsync("primary"));
    }

    [Fact]
    public void TheComposeFile_PublishesTheManagementPortOnThisMachineOnly()
    {
        var compose = File.ReadAllText(Path.Combine(Repository.Root, "docker", "compose.yaml"));

        Assert.Contains("- \"127.0.0.1:9090:9090\"", compose, StringComparison.Ordinal);
        Assert.DoesNotContain("- \"9090:9090\"", compose, StringComparison.Ordinal);
    }

    private static Task<Scenario> StartAsync(Action<ProxyConfig>? configure = null) => Scenario.StartAsync(configure: c =>
    {
        c.Set("Admin:Tokens:0:Name", "ops").Set("Admin:Tokens:0:Token", AdminToken);
        configure?.Invoke(c);
    });

    private static Task<HttpResponseMessage> GetAsync(Scenario s, string path, string token)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return s.Proxy.Management.SendAsync(request, Ct);
    }

    private static HttpClient Admin(Scenario s)
    {
        var client = new HttpClient { BaseAddress = s.Proxy.ManagementAddress };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        return client;
    }
}
