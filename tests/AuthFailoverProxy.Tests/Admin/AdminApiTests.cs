using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Serilog.Events;

namespace AuthFailoverProxy.Tests.Admin;

/// <summary>Key management on the management listener: token-protected, recorded, and unable to widen an outage by accident.</summary>
public sealed class AdminApiTests
{
    private const string AdminToken = "admin-token-0123456789abcdef";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(null)]
    [InlineData("wrong-token")]
    public async Task NoOrWrongToken_Gets401_AndChangesNothing(string? token)
    {
        await using var s = await StartAsync();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/admin/pools/anthropic/keys/primary/disable");
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        using var response = await s.Proxy.Management.SendAsync(request, Ct);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("usable", await s.KeyStateAsync("primary"));
    }

    [Fact]
    public async Task AdminPathOnTheAgentPort_IsNotTheAdminApi()
    {
        await using var s = await StartAsync();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/admin/pools/anthropic/keys/primary/disable");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);

        using var response = await s.Proxy.Agent.SendAsync(request, Ct);

        // The agent port proxies every path upstream (with a pool key, after checking the client token): no admin here.
        Assert.Equal("usable", await s.KeyStateAsync("primary"));
        Assert.Equal("/admin/pools/anthropic/keys/primary/disable", s.Upstream.Requests.Single().PathAndQuery);
        Assert.DoesNotContain(AdminToken, string.Join(' ', s.Upstream.Requests.Single().Headers.Values), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ListKeys_ShowsNamesFingerprintsAndStates_NeverSecrets()
    {
        await using var s = await StartAsync();

        var body = await Admin(s).GetStringAsync("/admin/keys", Ct);

        var keys = JsonDocument.Parse(body).RootElement.GetProperty("keys");
        Assert.Equal(2, keys.GetArrayLength());
        Assert.Equal("primary", keys[0].GetProperty("key").GetProperty("name").GetString());
        Assert.Equal("configuration", keys[0].GetProperty("key").GetProperty("source").GetString());
        Assert.DoesNotContain(s.Secret("primary")[..^4], body, StringComparison.Ordinal);
        Assert.DoesNotContain(s.Secret("backup")[..^4], body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Disable_MovesTrafficToTheNextKey_IsRecorded_AndEnableBringsItBack()
    {
        await using var s = await StartAsync();
        using var admin = Admin(s);

        using var disabled = await admin.PostAsync("/admin/pools/anthropic/keys/primary/disable", null, Ct);
        var change = await disabled.Content.ReadFromJsonAsync<JsonElement>(Ct);

        Assert.Equal(HttpStatusCode.OK, disabled.StatusCode);
        Assert.Equal("disabled", change.GetProperty("state").GetString());
        Assert.Equal("ops", change.GetProperty("by").GetString());
        Assert.Contains("keeps 1 usable key", change.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Contains(s.Proxy.Logs.At(LogEventLevel.Warning), e => e.MessageTemplate.Text.StartsWith("Admin change by", StringComparison.Ordinal) && LogCapture.Property(e, "Operator") == "ops");
        using (var served = await s.PostMessageAsync())
        {
            Assert.Equal("backup", FailoverTests.Header(served, "x-afp-key"));
        }

        using var enabled = await admin.PostAsync("/admin/pools/anthropic/keys/primary/enable", null, Ct);
        Assert.Equal(HttpStatusCode.OK, enabled.StatusCode);
        using var back = await s.PostMessageAsync();
        Assert.Equal("primary", FailoverTests.Header(back, "x-afp-key"));
    }

    [Fact]
    public async Task DisablingTheLastUsableKey_NeedsForce_AndSaysWhatWillHappen()
    {
        await using var s = await StartAsync();
        using var admin = Admin(s);
        using (await admin.PostAsync("/admin/pools/anthropic/keys/backup/disable", null, Ct))
        {
        }

        using var refused = await admin.PostAsync("/admin/pools/anthropic/keys/primary/disable", null, Ct);
        var error = (await refused.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error").GetString();
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Contains("every request gets a 503", error, StringComparison.Ordinal);
        Assert.Contains("?force=true", error, StringComparison.Ordinal);
        Assert.Equal("usable", await s.KeyStateAsync("primary"));

        using var forced = await admin.PostAsync("/admin/pools/anthropic/keys/primary/disable?force=true", null, Ct);
        Assert.Equal(HttpStatusCode.OK, forced.StatusCode);
        Assert.Equal("disabled", await s.KeyStateAsync("primary"));
        using var response = await s.PostMessageAsync();
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
    }

    [Fact]
    public async Task UnknownKey_Gets404()
    {
        await using var s = await StartAsync();
        using var response = await Admin(s).PostAsync("/admin/pools/anthropic/keys/nope/disable", null, Ct);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    private static Task<Scenario> StartAsync() => Scenario.StartAsync(configure: c => c
        .Set("Admin:Tokens:0:Name", "ops")
        .Set("Admin:Tokens:0:Token", AdminToken));

    private static HttpClient Admin(Scenario s)
    {
        var client = new HttpClient { BaseAddress = s.Proxy.ManagementAddress };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        return client;
    }
}
