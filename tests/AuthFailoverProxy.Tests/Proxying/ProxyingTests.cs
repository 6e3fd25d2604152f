using System.Net;
using System.Text;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using AuthFailoverProxy.Tests.Telemetry;

namespace AuthFailoverProxy.Tests.Proxying;

/// <summary>What goes upstream: the right pool, the path and query intact, the client's token swapped for a pool key.</summary>
public sealed class ProxyingTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task DefaultPool_ServesTheRoot_SoAnthropicBaseUrlJustWorks()
    {
        await using var s = await Scenario.StartAsync();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages?beta=true&x=%20y") { Content = Scenario.MessageBody() };
        request.Headers.Add("anthropic-beta", "prompt-caching-2024-07-31");
        request.Headers.Add("x-custom-trace", "abc123");

        using var response = await s.Proxy.Agent.SendAsync(request, Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var received = s.Upstream.Requests.Single();
        Assert.Equal("/v1/messages?beta=true&x=%20y", received.PathAndQuery);
        Assert.Equal("prompt-caching-2024-07-31", received.Headers["anthropic-beta"]);
        Assert.Equal("abc123", received.Headers["x-custom-trace"]);
        Assert.Equal(s.Secret("primary"), received.Headers["x-api-key"]);
        Assert.Equal("2023-06-01", received.Headers["anthropic-version"]);
    }

    [Fact]
    public async Task ClientsAnthropicVersion_IsKept()
    {
        await using var s = await Scenario.StartAsync();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        request.Headers.Add("anthropic-version", "2024-99-99");

        using var response = await s.Proxy.Agent.SendAsync(request, Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("2024-99-99", s.Upstream.Requests.Single().Headers["anthropic-version"]);
    }

    [Fact]
    public async Task BearerClientToken_IsAccepted_AndNeverReachesTheUpstream()
    {
        await using var s = await Scenario.StartAsync();
        using var client = s.Proxy.CreateAgentClient(token: null);
        client.DefaultRequestHeaders.Authorization = new("Bearer", s.Proxy.ClientToken);

        using var response = await client.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var received = s.Upstream.Requests.Single();
        Assert.False(received.Headers.ContainsKey("authorization"));
        Assert.Equal(s.Secret("primary"), received.Headers["x-api-key"]);
        Assert.DoesNotContain(received.Headers.Values, v => v.Contains(s.Proxy.ClientToken, StringComparison.Ordinal));
    }

    [Fact]
    public async Task AzureStyleClientToken_InApiKey_IsAccepted_AndNeverReachesTheUpstream()
    {
        // The Azure OpenAI SDKs put the key in api-key; the pool's key goes in the pool's own scheme.
        await using var s = await Scenario.StartAsync(kind: "openai", keyNames: ["main"], configure: c => c.Set("Pools:openai:Scheme", "api-key"));
        using var client = s.Proxy.CreateAgentClient(token: null);
        client.DefaultRequestHeaders.Add("api-key", s.Proxy.ClientToken);

        using var response = await client.GetAsync("/openai/v1/models", Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var received = s.Upstream.Requests.Single();
        Assert.Equal(s.Secret("main"), received.Headers["api-key"]);
        Assert.DoesNotContain(received.Headers.Values, v => v.Contains(s.Proxy.ClientToken, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("wrong-token")]
    public async Task MissingOrWrongClientToken_Gets401InTheProvidersFormat_AndTheUpstreamIsNeverContacted(string? token)
    {
        await using var s = await Scenario.StartAsync();
        using var client = s.Proxy.CreateAgentClient(token);

        using var response = await client.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>(Ct);
        Assert.Equal("error", body.GetProperty("type").GetString());
        Assert.Equal("authentication_error", body.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal(0, s.Upstream.RequestCount);
    }

    [Fact]
    public async Task OnOneKeepAliveConnection_EveryRequestsTokenCounts_NotTheOneBefore()
    {
        // A front may pool one connection for several agents: what one token admitted must not admit the next request.
        var second = Secrets.ClientToken();
        await using var s = await Scenario.StartAsync(configure: c => c.Set("Clients:Tokens:1:Name", "second-agent").Set("Clients:Tokens:1:Token", second));
        var first = s.Proxy.ClientToken;
        var connections = 0;
        using var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = 1,
            ConnectCallback = async (context, ct) =>
            {
                Interlocked.Increment(ref connections);
                var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
                await socket.ConnectAsync(context.DnsEndPoint, ct);
                return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
            },
        };
        using var client = new HttpClient(handler) { BaseAddress = s.Proxy.AgentAddress };

        async Task<HttpStatusCode> SendAsync(string? token)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages") { Content = Scenario.MessageBody() };
            if (token is not null)
            {
                request.Headers.Add("x-api-key", token);
            }

            using var response = await client.SendAsync(request, Ct);
            return response.StatusCode;
        }

        var flipped = first[..^1] + (first[^1] == 'x' ? 'y' : 'x');
        Assert.Equal(
            [HttpStatusCode.OK, HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized, HttpStatusCode.OK, HttpStatusCode.Unauthorized, HttpStatusCode.OK, HttpStatusCode.OK],
            [await SendAsync(first), await SendAsync(flipped), await SendAsync(first[..^1]), await SendAsync(first + "x"), await SendAsync(second), await SendAsync(null), await SendAsync(first), await SendAsync(first)]);
        Assert.Equal(1, connections);
        Assert.Equal(4, s.Upstream.RequestCount);

        // Each answer counted under the client whose token its own request carried.
        var metrics = await UsageTests.ScrapeUntilAsync(s, m => m.Find("afp_tokens_total", ("type", "output")).Sum(x => x.Value) >= 4 * 9);
        Assert.Equal(3 * 9, metrics.Find("afp_tokens_total", ("client", "test-agent"), ("type", "output")).Sum(x => x.Value));
        Assert.Equal(9, metrics.Find("afp_tokens_total", ("client", "second-agent"), ("type", "output")).Sum(x => x.Value));
    }

    [Fact]
    public async Task WrongClientToken_OnAnOpenAIPool_Gets401InOpenAIsFormat()
    {
        await using var s = await Scenario.StartAsync(kind: "openai");
        using var client = s.Proxy.CreateAgentClient(token: null);
        client.DefaultRequestHeaders.Authorization = new("Bearer", "sk-not-a-client-token");

        using var response = await client.GetAsync("/openai/v1/models", Ct);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var error = (await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>(Ct)).GetProperty("error");
        Assert.Equal("invalid_api_key", error.GetProperty("code").GetString());
        Assert.Equal(0, s.Upstream.RequestCount);
    }

    [Fact]
    public async Task AnonymousAccess_OnlyWithExplicitOptIn_AndWarnsAtStart()
    {
        await using var s = await Scenario.StartAsync(configure: c => c.WithoutClientTokens().Set("Clients:AllowAnonymous", "true"));
        using var client = s.Proxy.CreateAgentClient(token: null);

        using var response = await client.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains(s.Proxy.Logs.Messages(Serilog.Events.LogEventLevel.Warning), m => m.Contains("AllowAnonymous is on", StringComparison.Ordinal));
    }

    [Fact]
    public async Task SeveralPools_EachUnderItsPrefix_OneDefault()
    {
        await using var anthropic = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        await using var openai = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        var anthropicKey = Secrets.AnthropicApiKey();
        var openaiKey = Secrets.OpenAIKey();
        var config = new ProxyConfig()
            .Pool("anthropic", anthropic, "anthropic", isDefault: true, keys: [("a1", anthropicKey)])
            .Pool("openai", openai, "openai", keys: [("o1", openaiKey)]);
        await using var proxy = await ProxyHost.StartAsync(config);
        var chat = new StringContent("""{"model":"gpt-4o","messages":[]}""", Encoding.UTF8, "application/json");

        using var viaPrefix = await proxy.Agent.PostAsync("/anthropic/v1/messages", Scenario.MessageBody(), Ct);
        using var viaRoot = await proxy.Agent.PostAsync("/v1/messages/count_tokens", Scenario.CountTokensBody(), Ct);
        using var viaOpenAI = await proxy.Agent.PostAsync("/openai/v1/chat/completions", chat, Ct);
        using var embeddings = await proxy.Agent.PostAsync("/openai/v1/embeddings", new StringContent("""{"model":"text-embedding-3-small","input":"x"}""", Encoding.UTF8, "application/json"), Ct);

        Assert.Equal(HttpStatusCode.OK, viaPrefix.StatusCode);
        Assert.Equal(HttpStatusCode.OK, viaRoot.StatusCode);
        Assert.Equal(HttpStatusCode.OK, viaOpenAI.StatusCode);
        Assert.Equal(HttpStatusCode.OK, embeddings.StatusCode);
        Assert.Equal(["/v1/messages", "/v1/messages/count_tokens"], anthropic.Requests.Select(r => r.PathAndQuery));
        Assert.Equal(["/v1/chat/completions", "/v1/embeddings"], openai.Requests.Select(r => r.PathAndQuery));
        Assert.All(anthropic.Requests, r => Assert.Equal(anthropicKey, r.Key));
        Assert.All(openai.Requests, r => Assert.Equal($"Bearer {openaiKey}", r.Headers["authorization"]));
    }

    [Fact]
    public async Task NoDefaultPool_UnknownPath_Gets404NamingThePools()
    {
        await using var anthropic = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        var config = new ProxyConfig()
            .Pool("anthropic", anthropic, "anthropic", keys: [("a1", Secrets.AnthropicApiKey())])
            .Pool("openai", anthropic, "openai", keys: [("o1", Secrets.OpenAIKey())]);
        await using var proxy = await ProxyHost.StartAsync(config);

        using var response = await proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains("/anthropic", await response.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        Assert.Equal(0, anthropic.RequestCount);
    }

    [Fact]
    public async Task RoundRobin_SpreadsAcrossKeysOfEqualPriority()
    {
        await using var s = await Scenario.StartAsync(keyNames: ["a", "b", "c"], configure: c => c
            .Set("Pools:anthropic:Selection", "RoundRobin")
            .Set("Pools:anthropic:Keys:0:Priority", 0).Set("Pools:anthropic:Keys:1:Priority", 0).Set("Pools:anthropic:Keys:2:Priority", 0));

        for (var i = 0; i < 9; i++)
        {
            using var response = await s.PostMessageAsync();
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Equal(3, s.UpstreamCallsWith("a"));
        Assert.Equal(3, s.UpstreamCallsWith("b"));
        Assert.Equal(3, s.UpstreamCallsWith("c"));
    }

    [Fact]
    public async Task StreamingResponse_EventsArriveOneByOne_NotAtTheEnd()
    {
        await using var s = await Scenario.StartAsync();
        var released = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        s.Upstream.StreamDeltas = 3;
        // The upstream writes the first event, then holds every later one until the test has read the first.
        s.Upstream.BeforeStreamEvent = (index, ct) => index == 0 ? Task.CompletedTask : released.Task.WaitAsync(ct);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages") { Content = Scenario.MessageBody(stream: true) };

        using var response = await s.Proxy.Agent.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(Ct));

        var first = await ReadEventAsync(reader).WaitAsync(TimeSpan.FromSeconds(20), Ct);
        Assert.Equal("message_start", first);
        released.SetResult();
        var rest = new List<string>();
        while (await ReadEventAsync(reader) is { } name)
        {
            rest.Add(name);
        }

        Assert.Equal("message_stop", rest[^1]);
        Assert.Equal(3, rest.Count(e => e == "content_block_delta"));
    }

    [Fact]
    public async Task ClientDisconnect_CancelsTheUpstreamCall()
    {
        await using var s = await Scenario.StartAsync();
        s.Upstream.FailNext(1, UpstreamFault.Hang);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);

        using var client = s.Proxy.CreateAgentClient(s.Proxy.ClientToken);
        var pending = client.PostAsync("/v1/messages", Scenario.MessageBody(), cts.Token);
        await FailoverTests.WaitUntilAsync(() => s.Upstream.RequestCount >= 1);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending);

        await s.Upstream.WhenAborted.WaitAsync(TimeSpan.FromSeconds(20), Ct);
        Assert.Equal(1, s.Upstream.AbortedRequests);
        Assert.Equal(1, s.Upstream.RequestCount);
    }

    private static async Task<string?> ReadEventAsync(StreamReader reader)
    {
        string? name = null;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                name = line[7..];
            }
            else if (line.Length == 0 && name is not null)
            {
                return name;
            }
        }

        return null;
    }
}
