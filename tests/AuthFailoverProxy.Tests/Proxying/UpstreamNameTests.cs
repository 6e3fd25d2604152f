using System.Diagnostics;
using System.Net;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;

namespace AuthFailoverProxy.Tests.Proxying;

/// <summary>
/// The upstream is reached as production reaches the real provider: HTTPS under its own name behind a front that
/// routes by name and serves other sites on the same address. Whatever name the agent used to reach the proxy, the
/// upstream sees its own, in <c>Host</c> and in the TLS server name, and nothing of the agent's network.
/// </summary>
public sealed class UpstreamNameTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(null)]                                   // the proxy's own address, 127.0.0.1:port
    [InlineData("afp-auth-failover-proxy.llm.svc:8080")] // a Kubernetes Service name
    [InlineData("api.anthropic.test")]                   // the upstream's name without its port
    public async Task AnyNameTheAgentUses_UpstreamGetsItsOwnHostAndServerName(string? agentHost)
    {
        await using var s = await Scenario.StartAsync();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages") { Content = Scenario.MessageBody() };
        if (agentHost is not null)
        {
            request.Headers.Host = agentHost;
        }

        using var response = await s.Proxy.Agent.SendAsync(request, Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var received = s.Upstream.Requests.Single();
        Assert.Equal($"{s.Upstream.Name}:{s.Upstream.BaseAddress.Port}", received.Host);
        Assert.Equal(s.Upstream.Name, received.ServerName);
        Assert.Empty(s.Upstream.MisdirectedRequests);
    }

    [Fact]
    public async Task ForgedHostNamingAnotherSiteOnTheFront_NeverCarriesTheKeyThere()
    {
        await using var s = await Scenario.StartAsync();
        var otherSite = new SimulatedProviderOptions().OtherSites[0];
        using var client = s.Proxy.CreateAgentClient(s.Proxy.ClientToken);

        for (var i = 0; i < 3; i++)
        {
            using var request = new HttpRequestMessage(i == 0 ? HttpMethod.Get : HttpMethod.Post, i == 0 ? "/v1/models" : "/v1/messages") { Content = i == 0 ? null : Scenario.MessageBody() };
            request.Headers.Host = i == 2 ? $"{otherSite}:{s.Upstream.BaseAddress.Port}" : otherSite;
            using var response = await client.SendAsync(request, Ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Empty(s.Upstream.MisdirectedRequests);
        Assert.Equal(3, s.Upstream.Requests.Count(r => r.Key == s.Secret("primary")));
    }

    [Fact]
    public async Task StartupCheckAndForwardedRequests_ReachTheUpstreamTheSameWay()
    {
        // The outage of this issue: the check built its own request and passed while every forwarded one failed TLS.
        await using var s = await Scenario.StartAsync(configure: c => c.Set("Probes:AtStartup", "true"));
        await FailoverTests.WaitUntilAsync(() => s.Upstream.Requests.Count(r => r.PathAndQuery == "/v1/models") == 2);

        using var response = await s.PostMessageAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.All(s.Upstream.Requests, r =>
        {
            Assert.Equal(s.Upstream.Name, r.ServerName);
            Assert.StartsWith(s.Upstream.Name + ":", r.Host, StringComparison.Ordinal);
            Assert.Equal("HTTP/2", r.Protocol);
        });
    }

    [Fact]
    public async Task ForwardingAndTraceHeaders_StayWithTheProxy_WhatTheProviderNeedsGoesOn()
    {
        await using var s = await Scenario.StartAsync();
        // Something else in the process traces everything (as another proxy's host does in this test run): a proxy
        // without an OTLP endpoint still sends no trace context of its own.
        using var elsewhere = new ActivityListener
        {
            ShouldListenTo = _ => true,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(elsewhere);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages?beta=true") { Content = Scenario.MessageBody() };
        request.Headers.Add("X-Forwarded-For", "10.1.2.3");
        request.Headers.Add("X-Forwarded-Host", "agents.internal.corp");
        request.Headers.Add("X-Forwarded-Proto", "http");
        request.Headers.Add("Forwarded", "for=10.1.2.3;host=agents.internal.corp");
        request.Headers.Add("Via", "1.1 corp-gateway");
        request.Headers.Add("X-Real-IP", "10.1.2.3");
        request.Headers.Add("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        request.Headers.Add("tracestate", "corp=internal-tenant-42");
        request.Headers.Add("baggage", "user.email=alice@corp.example");
        request.Headers.Add("api-key", "afp-client-token-in-the-azure-header");
        request.Headers.Add("anthropic-beta", "prompt-caching-2024-07-31");
        request.Headers.UserAgent.ParseAdd("Anthropic/JS 1.16.0");

        using var response = await s.Proxy.Agent.SendAsync(request, Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var headers = s.Upstream.Requests.Single().Headers;
        foreach (var name in new[] { "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "forwarded", "via", "x-real-ip", "traceparent", "tracestate", "baggage", "api-key" })
        {
            Assert.False(headers.ContainsKey(name), $"{name} reached the upstream");
        }

        Assert.DoesNotContain(headers.Values, v => v.Contains("10.1.2.3", StringComparison.Ordinal) || v.Contains("corp", StringComparison.Ordinal));
        Assert.Equal("prompt-caching-2024-07-31", headers["anthropic-beta"]);
        Assert.Equal("Anthropic/JS 1.16.0", headers["user-agent"]);
        Assert.Equal(s.Secret("primary"), headers["x-api-key"]);
    }

    [Fact]
    public async Task UpstreamNamedLocalhost_ResolvedAsUsual_WithoutConnectTo()
    {
        // The default path: the upstream's name resolved by the system, only the CA added.
        await using var upstream = await SimulatedProvider.StartAsync(options: new SimulatedProviderOptions { Name = "localhost" }, cancellationToken: Ct);
        var config = new ProxyConfig()
            .Pool("anthropic", upstream.BaseAddress, isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())])
            .Set("Pools:anthropic:Transport:CaBundle", upstream.CaBundlePath);
        await using var proxy = await ProxyHost.StartAsync(config);

        using var response = await proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal($"localhost:{upstream.BaseAddress.Port}", upstream.Requests.Single().Host);
        Assert.Equal("localhost", upstream.Requests.Single().ServerName);
    }
}
