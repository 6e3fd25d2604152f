using System.Text.Json;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Tests.Fakes;

namespace AuthFailoverProxy.Tests.RealClients;

/// <summary>
/// The real clients agents are built on, at pinned versions from npm, through the proxy as agents use it: client to
/// proxy in plain HTTP under a name (<c>localhost</c>) other than the upstream's, proxy to the simulated provider over
/// HTTPS under its own name. What passes here passed the SDKs' own parsing, retries and error handling, not a test's
/// idea of them.
/// </summary>
public sealed class RealClientTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public RealClientTests() => RealClient.AssertInstalled();

    [Fact]
    public async Task AnthropicSdk_PlainCall_IsAnswered()
    {
        await using var s = await Scenario.StartAsync();
        await using var client = RealClient.Node("anthropic-sdk.mjs", "plain", AnthropicEnvironment(s));

        var answer = await client.NextAsync(Ct);

        Assert.True(answer.GetProperty("ok").GetBoolean(), client.Output);
        Assert.Equal(SimulatedProvider.ReplyText, answer.GetProperty("text").GetString());
        Assert.Equal("primary", answer.GetProperty("key").GetString());
        Assert.Equal("Anthropic/JS 1.16.0", s.Upstream.Requests.Single().Headers["user-agent"]);
    }

    [Fact]
    public async Task AnthropicSdk_Stream_ReachesTheClientEventByEvent()
    {
        await using var s = await Scenario.StartAsync();
        var seen = new EventCounter();
        // From the first content event on (event 3: the proxy holds the stream's opening until then), the provider sends
        // event i only once the client has shown it received the ones before (the SDK hides 'ping', event 2): a proxy that
        // held content back would stall the stream here and fail the test.
        s.Upstream.BeforeStreamEvent = (index, ct) => seen.WaitForAsync(index <= 3 ? 0 : index - 1, ct);
        await using var client = RealClient.Node("anthropic-sdk.mjs", "stream", AnthropicEnvironment(s));

        var types = new List<string>();
        JsonElement line;
        while ((line = await client.NextAsync(Ct)).TryGetProperty("event", out _))
        {
            types.Add(line.GetProperty("type").GetString()!);
            seen.Add();
        }

        Assert.Equal(SimulatedProvider.ReplyText, line.GetProperty("text").GetString());
        Assert.Equal("message_start", types[0]);
        Assert.Equal(5, types.Count(t => t == "content_block_delta"));
        Assert.Equal("message_stop", types[^1]);
    }

    [Fact]
    public async Task AnthropicSdk_CountTokensAndModels_AreServed()
    {
        await using var s = await Scenario.StartAsync();
        await using var count = RealClient.Node("anthropic-sdk.mjs", "count-tokens", AnthropicEnvironment(s));
        await using var models = RealClient.Node("anthropic-sdk.mjs", "models", AnthropicEnvironment(s));

        Assert.True((await count.NextAsync(Ct)).GetProperty("inputTokens").GetInt32() > 0, count.Output);
        Assert.Equal(SimulatedProvider.AnthropicModels.Select(m => m.Id), (await models.NextAsync(Ct)).GetProperty("models").EnumerateArray().Select(e => e.GetString()));
    }

    [Fact]
    public async Task AnthropicSdk_PrimaryRevokedMidSession_NoErrorReachesTheClient()
    {
        await using var s = await Scenario.StartAsync();
        await using var client = RealClient.Node("anthropic-sdk.mjs", "revoked-mid-session", AnthropicEnvironment(s));

        var before = await client.NextAsync(Ct);
        Assert.Equal("revoke the primary", (await client.NextAsync(Ct)).GetProperty("waiting").GetString());
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.Revoked);
        await client.ContinueAsync();
        var after = await client.NextAsync(Ct);
        var again = await client.NextAsync(Ct);

        Assert.Equal("primary", before.GetProperty("key").GetString());
        Assert.True(after.GetProperty("ok").GetBoolean(), client.Output);
        Assert.Equal("backup", after.GetProperty("key").GetString());
        Assert.Equal(SimulatedProvider.ReplyText, after.GetProperty("text").GetString());
        Assert.Equal("backup", again.GetProperty("key").GetString());
        Assert.Equal(2, s.UpstreamCallsWith("primary"));
    }

    [Fact]
    public async Task AnthropicSdk_EveryKeyRevoked_ShowsTheProxysMessageAtOnce_NotAfterItsRetries()
    {
        // Keys of one organization: both revoked is two dead keys (keys of different organizations refused alike at once
        // would be an incident at the provider, and the agent told to retry shortly).
        await using var s = await Scenario.StartAsync(organizationOf: _ => "org-team");
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.Revoked);
        s.Upstream.SetKeyFault(s.Secret("backup"), KeyFault.Revoked);
        await using var client = RealClient.Node("anthropic-sdk.mjs", "every-key-revoked", AnthropicEnvironment(s));

        var failure = await client.NextAsync(Ct);

        Assert.False(failure.GetProperty("ok").GetBoolean());
        Assert.Equal(503, failure.GetProperty("status").GetInt32());
        Assert.StartsWith("AuthFailoverProxy: no key in pool 'anthropic' can serve this request.", failure.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.StartsWith("req_", failure.GetProperty("requestId").GetString(), StringComparison.Ordinal);
        Assert.True(failure.GetProperty("ms").GetInt32() < 5_000, client.Output);
        // The SDK did not retry: one client request, one call per key, and each key's death confirmed by one check of its own.
        Assert.Equal(2, s.AgentRequests.Count);
        Assert.Equal(1, s.KeyChecksOf("primary"));
        Assert.Equal(1, s.KeyChecksOf("backup"));
    }

    [Fact]
    public async Task AnthropicSdk_WrongClientToken_Gets401AtOnce()
    {
        await using var s = await Scenario.StartAsync();
        var environment = new Dictionary<string, string>(AnthropicEnvironment(s)) { ["ANTHROPIC_API_KEY"] = "afp-client-wrong-token" };
        await using var client = RealClient.Node("anthropic-sdk.mjs", "wrong-token", environment);

        var failure = await client.NextAsync(Ct);

        Assert.Equal("AuthenticationError", failure.GetProperty("type").GetString());
        Assert.Equal(401, failure.GetProperty("status").GetInt32());
        Assert.Contains("missing or invalid client token", failure.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, s.Upstream.RequestCount);
    }

    [Fact]
    public async Task OpenAISdk_ChatStreamResponsesEmbeddingsAndModels_AreServed()
    {
        await using var s = await Scenario.StartAsync(kind: "openai", keyNames: ["main"]);
        await using var client = RealClient.Node("openai-sdk.mjs", "all", new Dictionary<string, string>
        {
            ["OPENAI_BASE_URL"] = $"http://localhost:{s.Proxy.AgentAddress.Port}/openai/v1",
            ["OPENAI_API_KEY"] = s.Proxy.ClientToken,
        });

        var results = new Dictionary<string, JsonElement>();
        for (var i = 0; i < 6; i++)
        {
            var result = await client.NextAsync(Ct);
            Assert.True(result.GetProperty("ok").GetBoolean(), client.Output);
            results[result.GetProperty("label").GetString()!] = result;
        }

        Assert.Equal(SimulatedProvider.ReplyText, results["chat"].GetProperty("text").GetString());
        Assert.Equal("main", results["chat"].GetProperty("key").GetString());
        // The proxy asked the stream for its usage: the SDK sees neither the usage chunk nor a usage field it did not ask for.
        Assert.Equal(SimulatedProvider.ReplyText, results["chat-stream"].GetProperty("text").GetString());
        Assert.Equal(7, results["chat-stream"].GetProperty("chunks").GetInt32());
        Assert.Equal(0, results["chat-stream"].GetProperty("usage").GetInt32());
        Assert.Equal(SimulatedProvider.ReplyText, results["chat-stream-usage"].GetProperty("text").GetString());
        Assert.Equal(8, results["chat-stream-usage"].GetProperty("chunks").GetInt32());
        Assert.Equal(9, results["chat-stream-usage"].GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(SimulatedProvider.ReplyText, results["responses-stream"].GetProperty("text").GetString());
        Assert.Equal("response.completed", results["responses-stream"].GetProperty("last").GetString());
        Assert.Equal(8, results["embeddings"].GetProperty("dimensions").GetInt32());
        Assert.Contains("gpt-4o", results["models"].GetProperty("models").EnumerateArray().Select(e => e.GetString()));
        Assert.All(s.Upstream.Requests, r => Assert.Equal("Bearer " + s.Secret("main"), r.Headers["authorization"]));
    }

    [Fact]
    public async Task ClaudeCode_Answers_WithAHealthyOAuthPrimary_AndAfterTheOutagesRefusal()
    {
        // The outage's own setup: a subscription token as the primary, an API key behind it.
        await using var s = await Scenario.StartAsync(secretFor: name => name == "primary" ? Secrets.AnthropicOAuthToken() : Secrets.AnthropicApiKey());
        var home = Directory.CreateTempSubdirectory("afp-claude-home-");
        try
        {
            await using (var healthy = RealClient.ClaudeCode("Say hello.", home.FullName, AnthropicEnvironment(s)))
            {
                var output = await healthy.WaitForExitAsync(Ct);
                Assert.True(healthy.ExitCode == 0, output);
                Assert.Contains(SimulatedProvider.ReplyText, output, StringComparison.Ordinal);
            }

            var served = s.Upstream.Requests.Single(r => r.PathAndQuery == "/v1/messages?beta=true");
            Assert.Equal("Bearer " + s.Secret("primary"), served.Headers["authorization"]);
            Assert.StartsWith("claude-cli/2.1.197", served.Headers["user-agent"], StringComparison.Ordinal);

            // Midnight: the organization stops accepting OAuth.
            s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.OAuthRejected);
            await using (var afterRefusal = RealClient.ClaudeCode("Say hello again.", home.FullName, AnthropicEnvironment(s)))
            {
                var output = await afterRefusal.WaitForExitAsync(Ct);
                Assert.True(afterRefusal.ExitCode == 0, output);
                Assert.Contains(SimulatedProvider.ReplyText, output, StringComparison.Ordinal);
                Assert.DoesNotContain("OAuth", output, StringComparison.Ordinal);
            }

            await s.WaitForKeyStateAsync("primary", "dead");
            Assert.Equal(s.Secret("backup"), s.Upstream.Requests.Last(r => r.PathAndQuery == "/v1/messages?beta=true").Key);
        }
        finally
        {
            home.Delete(recursive: true);
        }
    }

    /// <summary>An agent's settings for the proxy: its base URL under a name other than the upstream's, and its client token.</summary>
    private static Dictionary<string, string> AnthropicEnvironment(Scenario s) => new()
    {
        ["ANTHROPIC_BASE_URL"] = $"http://localhost:{s.Proxy.AgentAddress.Port}",
        ["ANTHROPIC_API_KEY"] = s.Proxy.ClientToken,
    };

    /// <summary>Counts the events the client reported, and lets the provider wait for a count.</summary>
    private sealed class EventCounter
    {
        private readonly Lock _lock = new();
        private readonly List<(int Count, TaskCompletionSource Reached)> _waiting = [];
        private int _count;

        public void Add()
        {
            lock (_lock)
            {
                _count++;
                foreach (var waiter in _waiting.Where(w => w.Count <= _count).ToList())
                {
                    waiter.Reached.TrySetResult();
                    _waiting.Remove(waiter);
                }
            }
        }

        public Task WaitForAsync(int count, CancellationToken cancellationToken)
        {
            Task reached;
            lock (_lock)
            {
                if (_count >= count)
                {
                    return Task.CompletedTask;
                }

                var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _waiting.Add((count, waiter));
                reached = waiter.Task;
            }

            // Bounded: a proxy that buffers the stream makes the client see nothing, and the stream fails here.
            return reached.WaitAsync(TimeSpan.FromSeconds(10), cancellationToken);
        }
    }
}
