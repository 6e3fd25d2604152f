using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
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
    public async Task Config_ShowsPoolsKeysFingerprintsSchemesAndPriorities_NeverSecrets()
    {
        await using var s = await StartAsync();
        using var admin = Admin(s);
        using (var added = await admin.PostAsJsonAsync("/admin/pools/anthropic/keys", new { name = "late", secret = Secrets.AnthropicOAuthToken(), priority = 9 }, Ct))
        {
            Assert.Equal(HttpStatusCode.Created, added.StatusCode);
        }

        var body = await admin.GetStringAsync("/admin/config", Ct);

        var root = JsonDocument.Parse(body).RootElement;
        Assert.Equal(AuthFailoverProxy.Events.ProxyEvent.ThisReplica, root.GetProperty("replica").GetString());
        var pool = root.GetProperty("pools").EnumerateArray().Single();
        Assert.Equal("anthropic", pool.GetProperty("name").GetString());
        Assert.Equal(s.Upstream.BaseAddress.ToString().TrimEnd('/'), pool.GetProperty("upstream").GetString());
        var keys = pool.GetProperty("keys").EnumerateArray().ToList();
        Assert.Equal(["primary", "backup", "late"], keys.Select(k => k.GetProperty("name").GetString()));
        Assert.Equal(KeyFormats.Fingerprint(s.Secret("primary")), keys[0].GetProperty("fingerprint").GetString());
        Assert.Equal([0, 1, 9], keys.Select(k => k.GetProperty("priority").GetInt32()));
        Assert.Equal(["x-api-key", "x-api-key", "oauth"], keys.Select(k => k.GetProperty("scheme").GetString()));
        Assert.Equal([false, false, true], keys.Select(k => k.GetProperty("addedAtRuntime").GetBoolean()));
        Assert.DoesNotContain(s.Secret("primary")[..^4], body, StringComparison.Ordinal);
        Assert.DoesNotContain(s.Secret("backup")[..^4], body, StringComparison.Ordinal);
        Assert.DoesNotContain("sk-ant-oat01-", body.Replace("sk-ant-oat01-…", string.Empty, StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.DoesNotContain(AdminToken, body, StringComparison.Ordinal);
        Assert.DoesNotContain(s.Proxy.ClientToken, body, StringComparison.Ordinal);
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

    [Fact]
    public async Task AddedKey_IsPendingAndCheckedAtOnce_AndCarriesNoTrafficUntilConfirmed()
    {
        await using var s = await StartAsync();
        using var admin = Admin(s);
        var secret = Secrets.AnthropicApiKey();
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.Revoked);
        s.Upstream.SetKeyFault(s.Secret("backup"), KeyFault.Revoked);

        using var added = await admin.PostAsJsonAsync("/admin/pools/anthropic/keys", new { name = "spare", secret }, Ct);
        var body = await added.Content.ReadAsStringAsync(Ct);

        Assert.Equal(HttpStatusCode.Created, added.StatusCode);
        var answer = JsonDocument.Parse(body).RootElement;
        Assert.Equal("pending", answer.GetProperty("key").GetProperty("state").GetString());
        Assert.Equal("admin API (ops)", answer.GetProperty("key").GetProperty("source").GetString());
        Assert.Equal("passed", answer.GetProperty("check").GetProperty("outcome").GetString());
        Assert.Contains("/admin/pools/anthropic/keys/spare/confirm", answer.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Contains("this process only", answer.GetProperty("stored").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain(secret[..^4], body, StringComparison.Ordinal);

        // Every configured key is dead and the pending key is valid, yet it carries nothing: only an operator starts it.
        using (var exhausted = await s.PostMessageAsync())
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, exhausted.StatusCode);
        }

        Assert.Equal(0, s.Upstream.Requests.Count(r => r.Key == secret && r.Method == "POST"));

        using var confirmed = await admin.PostAsync("/admin/pools/anthropic/keys/spare/confirm", null, Ct);
        Assert.Equal(HttpStatusCode.OK, confirmed.StatusCode);
        Assert.Equal("usable", (await confirmed.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("state").GetString());
        using var served = await s.PostMessageAsync();
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        Assert.Equal("spare", FailoverTests.Header(served, "x-afp-key"));
        Assert.Contains(s.Proxy.Logs.At(LogEventLevel.Warning), e => LogCapture.Property(e, "Action") == "confirmed" && LogCapture.Property(e, "Operator") == "ops");
        Assert.DoesNotContain(secret[..^4], s.Proxy.Logs.AllText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AddedKey_ThatTheUpstreamRejects_SaysWhyAndWhatToDo_AndConfirmingItNeedsForce()
    {
        await using var s = await StartAsync();
        using var admin = Admin(s);
        var token = Secrets.AnthropicOAuthToken();
        s.Upstream.SetKeyFault(token, KeyFault.OAuthRejected);

        using var added = await admin.PostAsJsonAsync("/admin/pools/anthropic/keys", new { name = "oauth", secret = token, priority = 0 }, Ct);
        var answer = await added.Content.ReadFromJsonAsync<JsonElement>(Ct);

        Assert.Equal(HttpStatusCode.Created, added.StatusCode);
        Assert.Equal("rejected", answer.GetProperty("check").GetProperty("outcome").GetString());
        Assert.Contains("sk-ant-api03", answer.GetProperty("check").GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Contains(answer.GetProperty("warnings").EnumerateArray(), w => w.GetString()!.Contains("OAuth", StringComparison.Ordinal));
        Assert.Equal(403, answer.GetProperty("key").GetProperty("lastError").GetProperty("status").GetInt32());

        using var refused = await admin.PostAsync("/admin/pools/anthropic/keys/oauth/confirm", null, Ct);
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Contains("?force=true", (await refused.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal("pending", await s.KeyStateAsync("oauth"));

        // Priority 0 would put it first: still nothing goes through it.
        using var served = await s.PostMessageAsync();
        Assert.Equal("primary", FailoverTests.Header(served, "x-afp-key"));
        Assert.Equal(0, s.Upstream.Requests.Count(r => r.Key == token && r.Method == "POST"));
    }

    [Theory]
    [InlineData("""{"name":"primary","secret":"sk-ant-api03-anotherkeyanotherkeyanotherkey"}""", HttpStatusCode.Conflict, "already has a key named 'primary'")]
    [InlineData("""{"name":"bad name","secret":"sk-ant-api03-anotherkeyanotherkeyanotherkey"}""", HttpStatusCode.BadRequest, "name is missing or invalid")]
    [InlineData("""{"name":"spare"}""", HttpStatusCode.BadRequest, "secret is missing")]
    [InlineData("""{"name":"spare","secret":"sk-ant-api03-anotherkeyanotherkeyanotherkey" """, HttpStatusCode.BadRequest, "send a JSON body")]
    [InlineData("""{"name":"spare","secret":"sk-ant-api03-anotherkeyanotherkeyanotherkey","priority":-1}""", HttpStatusCode.BadRequest, "priority must be 0 or more")]
    [InlineData("""{"name":"spare","secret":"sk-ant-api03-anotherkeyanotherkeyanotherkey","scheme":"basic"}""", HttpStatusCode.BadRequest, "scheme 'basic' must be 'x-api-key', 'oauth', 'bearer' or 'api-key'")]
    public async Task Add_RefusesWhatWouldNotWork_WithoutQuotingTheSecret(string json, HttpStatusCode status, string error)
    {
        await using var s = await StartAsync();

        using var response = await Admin(s).PostAsync("/admin/pools/anthropic/keys", new StringContent(json, System.Text.Encoding.UTF8, "application/json"), Ct);
        var text = await response.Content.ReadAsStringAsync(Ct);

        Assert.Equal(status, response.StatusCode);
        Assert.Contains(error, text, StringComparison.Ordinal);
        Assert.DoesNotContain("anotherkey", text, StringComparison.Ordinal);
        Assert.Equal(2, s.Proxy.Services.GetRequiredService<PoolRegistry>().Pools[0].Keys.Count);
    }

    [Fact]
    public async Task Add_RefusesASecretAlreadyInThePool_AndAnOversizedBody()
    {
        await using var s = await StartAsync();
        using var admin = Admin(s);

        using var duplicate = await admin.PostAsJsonAsync("/admin/pools/anthropic/keys", new { name = "again", secret = s.Secret("primary") }, Ct);
        using var oversized = await admin.PostAsJsonAsync("/admin/pools/anthropic/keys", new { name = "big", secret = new string('x', 20_000) }, Ct);

        Assert.Equal(HttpStatusCode.Conflict, duplicate.StatusCode);
        Assert.Contains("already in pool 'anthropic' as 'primary'", await duplicate.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, oversized.StatusCode);
    }

    [Fact]
    public async Task Remove_TakesARuntimeKeyOut_RefusesConfiguredKeys_AndTheLastUsableKeyNeedsForce()
    {
        await using var s = await StartAsync();
        using var admin = Admin(s);

        using var configured = await admin.DeleteAsync("/admin/pools/anthropic/keys/primary", Ct);
        Assert.Equal(HttpStatusCode.Conflict, configured.StatusCode);
        Assert.Contains("comes from configuration", await configured.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);

        using (await admin.PostAsJsonAsync("/admin/pools/anthropic/keys", new { name = "spare", secret = Secrets.AnthropicApiKey(), priority = 0 }, Ct))
        using (await admin.PostAsync("/admin/pools/anthropic/keys/spare/confirm", null, Ct))
        using (await admin.PostAsync("/admin/pools/anthropic/keys/primary/disable", null, Ct))
        using (await admin.PostAsync("/admin/pools/anthropic/keys/backup/disable", null, Ct))
        {
        }

        using var refused = await admin.DeleteAsync("/admin/pools/anthropic/keys/spare", Ct);
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Contains("every request gets a 503", await refused.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        using (var served = await s.PostMessageAsync())
        {
            Assert.Equal("spare", FailoverTests.Header(served, "x-afp-key"));
        }

        using var removed = await admin.DeleteAsync("/admin/pools/anthropic/keys/spare?force=true", Ct);
        Assert.Equal(HttpStatusCode.OK, removed.StatusCode);
        Assert.Equal("removed", (await removed.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("state").GetString());
        Assert.DoesNotContain("spare", await admin.GetStringAsync("/admin/keys", Ct), StringComparison.Ordinal);
        using var exhausted = await s.PostMessageAsync();
        Assert.Equal(HttpStatusCode.ServiceUnavailable, exhausted.StatusCode);
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
