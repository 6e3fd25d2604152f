using System.Net;
using System.Text;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Hosting;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;

namespace AuthFailoverProxy.Tests.Proxying;

/// <summary>
/// Each credential goes on the wire in its own scheme, as the provider demands: an Anthropic API key as
/// <c>x-api-key</c>, an OAuth access token as <c>Authorization: Bearer</c> with the OAuth beta added to the client's own
/// betas, an OpenAI key as Bearer, an Azure key as <c>api-key</c>. The simulated provider refuses any other form with
/// the real provider's words, so a wrong scheme cannot pass here.
/// </summary>
public sealed class CredentialSchemeTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task OAuthPrimaryWithApiKeyBackup_ServesFromThePrimary_ThenFromTheBackupWhenOAuthIsRefused()
    {
        // The outage's own setup: a subscription token first, an API key behind it.
        await using var s = await Scenario.StartAsync(secretFor: name => name == "primary" ? Secrets.AnthropicOAuthToken() : Secrets.AnthropicApiKey());
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages?beta=true") { Content = Scenario.MessageBody() };
        request.Headers.Add("anthropic-beta", "prompt-caching-2024-07-31,context-management-2025-06-27");

        using (var served = await s.Proxy.Agent.SendAsync(request, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, served.StatusCode);
            Assert.Equal("primary", FailoverTests.Header(served, "x-afp-key"));
        }

        var oauth = s.Upstream.Requests.Single().Headers;
        Assert.Equal("Bearer " + s.Secret("primary"), oauth["authorization"]);
        Assert.False(oauth.ContainsKey("x-api-key"));
        Assert.Equal(["prompt-caching-2024-07-31", "context-management-2025-06-27", "oauth-2025-04-20"], Betas(oauth));

        // Midnight: the organization stops accepting OAuth. The agent sees nothing.
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.OAuthRejected);
        s.Upstream.ClearRequests();
        using (var failedOver = await s.PostMessageAsync())
        {
            Assert.Equal(HttpStatusCode.OK, failedOver.StatusCode);
            Assert.Equal("backup", FailoverTests.Header(failedOver, "x-afp-key"));
            Assert.Equal("2", FailoverTests.Header(failedOver, "x-afp-attempts"));
        }

        var apiKey = s.AgentRequests[^1].Headers;
        Assert.Equal(s.Secret("backup"), apiKey["x-api-key"]);
        Assert.False(apiKey.ContainsKey("authorization"));
        Assert.False(apiKey.ContainsKey("anthropic-beta"));
        await s.WaitForKeyStateAsync("primary", "dead");
    }

    [Fact]
    public async Task OAuthBeta_TheClientAlreadySent_IsNotRepeated()
    {
        await using var s = await Scenario.StartAsync(keyNames: ["primary"], secretFor: _ => Secrets.AnthropicOAuthToken());
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages") { Content = Scenario.MessageBody() };
        request.Headers.Add("anthropic-beta", "oauth-2025-04-20");
        request.Headers.Add("anthropic-beta", "effort-2025-11-24");

        using var response = await s.Proxy.Agent.SendAsync(request, Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(["oauth-2025-04-20", "effort-2025-11-24"], Betas(s.Upstream.Requests.Single().Headers));
    }

    [Fact]
    public async Task StartupCheck_OfAnOAuthToken_UsesItsScheme_SoAWorkingTokenIsUsable()
    {
        await using var s = await Scenario.StartAsync(
            keyNames: ["primary"],
            secretFor: _ => Secrets.AnthropicOAuthToken(),
            configure: c => c.Set("Probes:AtStartup", "true"));
        await FailoverTests.WaitUntilAsync(() => s.Upstream.RequestCount == 1);

        var check = s.Upstream.Requests.Single();
        Assert.Equal("/v1/models", check.PathAndQuery);
        Assert.Equal("Bearer " + s.Secret("primary"), check.Headers["authorization"]);
        Assert.Equal(["oauth-2025-04-20"], Betas(check.Headers));
        await FailoverTests.WaitUntilAsync(() => s.Proxy.Logs.AllText.Contains("Credential check: anthropic: 1 of 1 keys usable", StringComparison.Ordinal));
        var status = await s.StatusAsync();
        Assert.Equal("oauth", status.GetProperty("pools")[0].GetProperty("keys")[0].GetProperty("scheme").GetString());
    }

    [Fact]
    public async Task OAuthTokenForcedIntoXApiKey_IsRefusedAsTheProviderRefusesIt_AndTheLintSaidSo()
    {
        await using var s = await Scenario.StartAsync(
            secretFor: name => name == "primary" ? Secrets.AnthropicOAuthToken() : Secrets.AnthropicApiKey(),
            configure: c => c.Set("Pools:anthropic:Keys:0:Scheme", "x-api-key"));

        using var response = await s.PostMessageAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("backup", FailoverTests.Header(response, "x-afp-key"));
        await s.WaitForKeyStateAsync("primary", "dead"); // a 401 is confirmed by a check before the key is marked
        var status = await s.StatusAsync();
        var primary = status.GetProperty("pools")[0].GetProperty("keys")[0];
        Assert.Equal("invalid x-api-key", primary.GetProperty("lastError").GetProperty("message").GetString());
        await FailoverTests.WaitUntilAsync(() => s.Proxy.Logs.AllText.Contains("set to go as x-api-key", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("api-key", "api-key", null)]
    [InlineData("bearer", "authorization", "Bearer ")]
    public async Task OpenAIPool_KeysGoInThePoolsScheme(string scheme, string header, string? prefix)
    {
        await using var s = await Scenario.StartAsync(kind: "openai", keyNames: ["main"], configure: c => c.Set("Pools:openai:Scheme", scheme));
        var chat = new StringContent("""{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}""", Encoding.UTF8, "application/json");

        using var response = await s.Proxy.Agent.PostAsync("/openai/v1/chat/completions", chat, Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var headers = s.Upstream.Requests.Single().Headers;
        Assert.Equal(prefix + s.Secret("main"), headers[header]);
        Assert.Equal(scheme == "api-key" ? 1 : 0, headers.Keys.Count(k => k == "api-key"));
        Assert.Equal(scheme == "api-key" ? 0 : 1, headers.Keys.Count(k => k == "authorization"));
    }

    [Fact]
    public async Task SchemeMistakes_StopTheStart_NamingTheKey()
    {
        var config = new ProxyConfig()
            .Pool("anthropic", new Uri("https://api.anthropic.test"), isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())])
            .Set("Pools:anthropic:Keys:0:Scheme", "basic")
            .Pool("openai", new Uri("https://api.openai.test"), "openai", keys: [("main", Secrets.OpenAIKey())])
            .Set("Pools:openai:Scheme", "oauth");

        var exception = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await using var proxy = await ProxyHost.StartAsync(config);
        });
        var problems = ProxyApplication.ConfigurationProblems(exception);

        Assert.Contains("Pools:anthropic:Keys:0:Scheme 'basic' must be 'x-api-key', 'oauth', 'bearer' or 'api-key'.", problems);
        Assert.Contains(problems, p => p.StartsWith("Pools:openai:Scheme 'oauth' is the scheme of Anthropic OAuth tokens", StringComparison.Ordinal));
    }

    private static string[] Betas(IReadOnlyDictionary<string, string> headers)
        => headers.TryGetValue("anthropic-beta", out var value) ? value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries) : [];
}
