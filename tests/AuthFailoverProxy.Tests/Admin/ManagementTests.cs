using System.Net;
using System.Text.Json;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Tests.Fakes;

namespace AuthFailoverProxy.Tests.Admin;

/// <summary>/status, /healthz and /readyz: on the management listener only, and honest about keys without a secret in sight.</summary>
public sealed class ManagementTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Status_ListsPoolsAndKeys_ByNameAndFingerprint()
    {
        await using var s = await Scenario.StartAsync();
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.OAuthRejected);
        using (await s.PostMessageAsync())
        {
        }

        var status = await s.StatusAsync();

        Assert.Equal("degraded", status.GetProperty("status").GetString());
        var pool = status.GetProperty("pools").EnumerateArray().Single();
        Assert.Equal("anthropic", pool.GetProperty("name").GetString());
        Assert.Equal(1, pool.GetProperty("usableKeys").GetInt32());
        var primary = pool.GetProperty("keys")[0];
        Assert.Equal("primary", primary.GetProperty("name").GetString());
        Assert.Equal("sk-ant-api03-…" + s.Secret("primary")[^4..], primary.GetProperty("fingerprint").GetString());
        Assert.Equal("dead", primary.GetProperty("state").GetString());
        Assert.Equal("permission_error", primary.GetProperty("lastError").GetProperty("type").GetString());
        Assert.StartsWith("req_", primary.GetProperty("lastError").GetProperty("requestId").GetString(), StringComparison.Ordinal);
        Assert.True(primary.TryGetProperty("since", out _));
        Assert.Equal("configuration", primary.GetProperty("source").GetString());
    }

    [Fact]
    public async Task HealthAndReadiness_AreUp_EvenWhenEveryKeyIsDead()
    {
        await using var s = await Scenario.StartAsync();
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.Revoked);
        s.Upstream.SetKeyFault(s.Secret("backup"), KeyFault.Revoked);
        using (var refused = await s.PostMessageAsync())
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        }

        using var live = await s.Proxy.Management.GetAsync("/healthz", Ct);
        using var ready = await s.Proxy.Management.GetAsync("/readyz", Ct);

        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal("exhausted", (await s.StatusAsync()).GetProperty("status").GetString());
    }

    [Fact]
    public async Task ManagementEndpoints_AreNotReachableOnTheAgentPort_EvenWithAForgedHostHeader()
    {
        await using var s = await Scenario.StartAsync();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/status");
        request.Headers.Host = s.Proxy.ManagementAddress.Authority;

        using var response = await s.Proxy.Agent.SendAsync(request, Ct);

        // The agent port proxies /status upstream like any path; it never answers with the proxy's own status.
        var body = await response.Content.ReadAsStringAsync(Ct);
        Assert.DoesNotContain("\"pools\"", body, StringComparison.Ordinal);
        Assert.Equal("/status", s.Upstream.Requests.Single().PathAndQuery);
    }

    [Fact]
    public async Task ManagementPort_DoesNotProxy()
    {
        await using var s = await Scenario.StartAsync();

        using var response = await s.Proxy.Management.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal(0, s.Upstream.RequestCount);
    }

    [Fact]
    public async Task Status_IsValidJsonWithCamelCaseNames()
    {
        await using var s = await Scenario.StartAsync();
        using var response = await s.Proxy.Management.GetAsync("/status", Ct);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct));
        Assert.True(document.RootElement.TryGetProperty("pools", out _));
    }
}
