using System.Net;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using Serilog.Events;

namespace AuthFailoverProxy.Tests.Proxying;

/// <summary>
/// The upstream URL as given, and the agent's target as sent: a base path prefixes the agent's path once, encoded
/// characters arrive as the agent encoded them, and a request no upstream could answer (CONNECT, TRACE, a target that
/// is not a path, a climb out of the base path, a doubled <c>/v1</c>) gets a clear 4xx at once, with no upstream call and
/// nothing on the circuit breaker.
/// </summary>
public sealed class UpstreamTargetTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("/v1/models/claude%2Fsonnet%20x?after_id=a%2Fb&q=%20&x=%252F", "/v1/models/claude%2Fsonnet%20x?after_id=a%2Fb&q=%20&x=%252F")]
    [InlineData("/anthropic/v1/models/a%2Fb?q=%3D", "/v1/models/a%2Fb?q=%3D")]
    [InlineData("/anthropic?limit=5", "/?limit=5")]
    public async Task EncodedCharacters_ReachTheUpstreamAsTheAgentSentThem(string sent, string received)
    {
        await using var s = await Scenario.StartAsync();

        using var response = await s.Proxy.Agent.GetAsync(new Uri(sent, UriKind.Relative), Ct);

        Assert.Equal(received, s.Upstream.Requests.Single().PathAndQuery);
    }

    [Fact]
    public async Task UpstreamWithABasePath_PrefixesTheAgentsPathOnce_ForRequestsAndChecks()
    {
        await using var gateway = await SimulatedProvider.StartAsync(options: new SimulatedProviderOptions { Name = "gateway.internal.test", BasePath = "/llm" }, cancellationToken: Ct);
        var config = new ProxyConfig()
            .Pool("anthropic", gateway, isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())])
            .Set("Pools:anthropic:Upstream", gateway.BaseAddress + "llm/")
            .Set("Probes:AtStartup", "true");
        await using var proxy = await ProxyHost.StartAsync(config);
        await Failover.FailoverTests.WaitUntilAsync(() => gateway.RequestCount == 1);

        using var viaRoot = await proxy.Agent.PostAsync("/v1/messages?beta=true", Scenario.MessageBody(), Ct);
        using var viaPrefix = await proxy.Agent.PostAsync("/anthropic/v1/messages/count_tokens", Scenario.CountTokensBody(), Ct);

        Assert.Equal(HttpStatusCode.OK, viaRoot.StatusCode);
        Assert.Equal(HttpStatusCode.OK, viaPrefix.StatusCode);
        Assert.Equal(["/llm/v1/models", "/llm/v1/messages?beta=true", "/llm/v1/messages/count_tokens"], gateway.Requests.Select(r => r.PathAndQuery));
        await Failover.FailoverTests.WaitUntilAsync(() => proxy.Logs.AllText.Contains("Credential check: anthropic: 1 of 1 keys usable", StringComparison.Ordinal));
    }

    [Fact]
    public async Task UpstreamEndingInV1_WarnsAtStart_AnswersADoubledPath404_AndServesPathsWithoutIt()
    {
        await using var gateway = await SimulatedProvider.StartAsync(options: new SimulatedProviderOptions { Name = "gateway.internal.test", BasePath = "/api" }, cancellationToken: Ct);
        var config = new ProxyConfig()
            .Pool("openai", gateway, "openai", isDefault: true, keys: [("main", Secrets.OpenAIKey())])
            .Set("Pools:openai:Upstream", gateway.BaseAddress + "api/v1");
        await using var proxy = await ProxyHost.StartAsync(config);
        using var chat = new StringContent("""{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}""", System.Text.Encoding.UTF8, "application/json");

        using var doubled = await proxy.Agent.PostAsync("/openai/v1/chat/completions", chat, Ct);
        using var plain = await proxy.Agent.PostAsync("/openai/chat/completions", chat, Ct);

        Assert.Equal(HttpStatusCode.NotFound, doubled.StatusCode);
        var message = await doubled.Content.ReadAsStringAsync(Ct);
        Assert.Contains("/v1 twice: Pools:openai:Upstream ends in /v1", message, StringComparison.Ordinal);
        Assert.Equal("false", Failover.FailoverTests.Header(doubled, "x-should-retry"));
        Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
        Assert.Equal("/api/v1/chat/completions", gateway.Requests.Single().PathAndQuery);
        Assert.Contains(proxy.Logs.Messages(LogEventLevel.Warning), m => m.Contains("Pools:openai:Upstream", StringComparison.Ordinal) && m.Contains("ends in /v1", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AgentBaseUrlEndingInV1_GetsA404ThatSaysSo_AndNothingGoesUpstream()
    {
        await using var s = await Scenario.StartAsync();

        using var response = await s.Proxy.Agent.PostAsync("/v1/v1/messages", Scenario.MessageBody(), Ct);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains("the agent's base URL probably ends in /v1", await response.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        Assert.Equal(0, s.Upstream.RequestCount);
    }

    [Theory]
    [InlineData("GET /v1/../admin/keys HTTP/1.1", 400, "'.' or '..' segments")]
    [InlineData("GET /v1/%2e%2E/%2E%2e/secret HTTP/1.1", 400, "'.' or '..' segments")]
    [InlineData("GET /v1/models/. HTTP/1.1", 400, "'.' or '..' segments")]
    [InlineData("GET /V1/v1/models HTTP/1.1", 404, "/v1 twice")]
    [InlineData("GET /v1/models/claude-3.5/../../admin HTTP/1.1", 400, "'.' or '..' segments")]
    [InlineData("GET http://api.anthropic.com:443/v1/models HTTP/1.1", 400, "forward proxy")]
    [InlineData("OPTIONS * HTTP/1.1", 400, "forward proxy")]
    [InlineData("CONNECT api.anthropic.com:443 HTTP/1.1", 405, "not an HTTP(S) proxy")]
    [InlineData("TRACE /v1/messages HTTP/1.1", 405, "TRACE requests are not forwarded")]
    [InlineData("BREW /v1/messages HTTP/1.1", 405, "BREW requests are not forwarded")]
    public async Task RequestsNoUpstreamCouldAnswer_Get4xxAtOnce_WithNoUpstreamCall(string requestLine, int status, string words)
    {
        await using var s = await Scenario.StartAsync();

        // Host matches the absolute-form and CONNECT targets, as Kestrel requires (it refuses a mismatch itself).
        var response = await RawHttp.SendAsync(s.Proxy.AgentAddress, $"{requestLine}\r\nHost: api.anthropic.com:443\r\nx-api-key: {s.Proxy.ClientToken}", Ct);

        Assert.Equal(status, response.Status);
        Assert.Contains(words, response.Body, StringComparison.Ordinal);
        Assert.Contains("\"type\":\"error\"", response.Body, StringComparison.Ordinal);
        Assert.Equal("false", response.Headers["x-should-retry"]);
        Assert.Equal(0, s.Upstream.RequestCount);
    }

    [Fact]
    public async Task ManyConnectRequests_LeaveTheCircuitClosed_AndEveryAgentServed()
    {
        // Before: four CONNECTs from any token holder opened the circuit for every agent for 10 s.
        await using var s = await Scenario.StartAsync(configure: c => c.Set("CircuitBreaker:MinimumThroughput", 2));
        for (var i = 0; i < 12; i++)
        {
            var refused = await RawHttp.SendAsync(s.Proxy.AgentAddress, $"CONNECT api.anthropic.com:443 HTTP/1.1\r\nHost: api.anthropic.com:443\r\nx-api-key: {s.Proxy.ClientToken}", Ct);
            Assert.Equal(405, refused.Status);
        }

        using var served = await s.PostMessageAsync();

        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        var pool = s.Proxy.Services.GetRequiredService<PoolRegistry>().Pools.Single();
        Assert.False(pool.Circuit!.IsGuarded);
        Assert.Equal(1, s.Upstream.RequestCount);
    }
}
