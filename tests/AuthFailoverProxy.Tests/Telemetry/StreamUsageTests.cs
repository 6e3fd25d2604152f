using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.RegularExpressions;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Tests.Demo;
using AuthFailoverProxy.Tests.Fakes;

namespace AuthFailoverProxy.Tests.Telemetry;

/// <summary>
/// An OpenAI chat stream reports its tokens only when asked to: through the proxy against the simulated provider, a
/// stream whose agent did not ask is asked for them, counted exactly, and reaches the agent as the stream it asked for;
/// one that asked gets its usage chunk; a replay sends the same edited body; and the proxy leaves everything else alone.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed partial class StreamUsageTests
{
    private const string Asked = "\"stream_options\":{\"include_usage\":true}";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task AChatStreamThatDidNotAsk_IsCountedExactly_AndTheAgentGetsTheProvidersStreamWithoutTheOption()
    {
        await using var s = await Scenario.StartAsync(kind: "openai", keyNames: ["main"]);
        var body = ChatBody("\"stream\":true");

        var agentGot = await StreamAsync(s, body, acceptEncoding: "gzip, br");

        var sent = s.AgentRequests.Single();
        Assert.Equal(body.Replace("\"stream\":true", "\"stream\":true," + Asked, StringComparison.Ordinal), Encoding.UTF8.GetString(sent.Body));
        Assert.Equal(sent.Body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture), sent.Headers["content-length"]);
        // A stream the proxy edits as it passes is asked for uncompressed.
        Assert.False(sent.Headers.ContainsKey("accept-encoding"));
        // Byte for byte what the provider sends a request without the option (its ids and clock aside).
        Assert.Equal(Normalized(await DirectStreamAsync(s, body)), Normalized(agentGot));
        Assert.DoesNotContain("usage", agentGot, StringComparison.Ordinal);
        Assert.Equal(7, DataLines(agentGot).Count(l => l.StartsWith('{')));
        await AssertCountedAsync(s, "main", sent.Body.Length / 4);
    }

    [Fact]
    public async Task AChatStreamThatAsked_GetsItsUsageChunk_SentAsItCame_AndCountedOnce()
    {
        await using var s = await Scenario.StartAsync(kind: "openai", keyNames: ["main"]);
        var body = ChatBody("\"stream\":true," + Asked);

        var agentGot = await StreamAsync(s, body);

        var sent = s.AgentRequests.Single();
        Assert.Equal(body, Encoding.UTF8.GetString(sent.Body));
        var chunks = DataLines(agentGot).Where(l => l.StartsWith('{')).ToList();
        Assert.Equal(8, chunks.Count);
        Assert.All(chunks[..^1], c => Assert.EndsWith(",\"usage\":null}", c, StringComparison.Ordinal));
        Assert.Contains("\"choices\":[],\"usage\":{\"prompt_tokens\":", chunks[^1], StringComparison.Ordinal);
        await AssertCountedAsync(s, "main", sent.Body.Length / 4);
    }

    [Theory]
    [InlineData("\"stream_options\":{\"include_obfuscation\":false},\"stream\":true", "\"stream_options\":{\"include_usage\":true,\"include_obfuscation\":false},\"stream\":true")]
    [InlineData("\"stream\":true,\"stream_options\":{\"include_usage\":false}", "\"stream\":true,\"stream_options\":{\"include_usage\":true}")]
    public async Task AnAgentsOwnStreamOptions_AreMergedOrTurned_AndTheChunkIsItsToMiss(string fields, string sentFields)
    {
        await using var s = await Scenario.StartAsync(kind: "openai", keyNames: ["main"]);
        var body = ChatBody(fields);

        var agentGot = await StreamAsync(s, body);

        var sent = s.AgentRequests.Single();
        Assert.Equal(ChatBody(sentFields), Encoding.UTF8.GetString(sent.Body));
        Assert.DoesNotContain("usage", agentGot, StringComparison.Ordinal);
        Assert.EndsWith("data: [DONE]\n\n", agentGot, StringComparison.Ordinal);
        await AssertCountedAsync(s, "main", sent.Body.Length / 4);
    }

    [Fact]
    public async Task AReplayOnTheNextKey_SendsTheSameEditedBody_AndCountsOnlyTheDeliveredTry()
    {
        await using var s = await Scenario.StartAsync(kind: "openai");
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.Revoked);
        var body = ChatBody("\"stream\":true");

        var agentGot = await StreamAsync(s, body);

        var edited = body.Replace("\"stream\":true", "\"stream\":true," + Asked, StringComparison.Ordinal);
        Assert.Equal([edited, edited], s.AgentRequests.Select(r => Encoding.UTF8.GetString(r.Body)));
        Assert.Equal([s.Secret("primary"), s.Secret("backup")], s.AgentRequests.Select(r => r.Key));
        Assert.DoesNotContain("usage", agentGot, StringComparison.Ordinal);
        await AssertCountedAsync(s, "backup", Encoding.UTF8.GetByteCount(edited) / 4);
    }

    [Fact]
    public async Task ALargeBodySpilledToDisk_IsEditedToo_WithTheRightLength()
    {
        var directory = Directory.CreateTempSubdirectory("afp-spill-");
        try
        {
            await using var s = await Scenario.StartAsync(kind: "openai", keyNames: ["main"], configure: c => c
                .Set("RequestBody:TempDirectory", directory.FullName)
                .Set("RequestBody:MemoryThresholdBytes", 64 * 1024));
            var body = ChatBody("\"stream\":true", content: new string('p', 300_000));

            var agentGot = await StreamAsync(s, body);

            var sent = s.AgentRequests.Single();
            Assert.Equal(body.Replace("\"stream\":true", "\"stream\":true," + Asked, StringComparison.Ordinal), Encoding.UTF8.GetString(sent.Body));
            Assert.Equal(sent.Body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture), sent.Headers["content-length"]);
            Assert.DoesNotContain("usage", agentGot, StringComparison.Ordinal);
            await AssertCountedAsync(s, "main", sent.Body.Length / 4);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task TurnedOff_ForAServerThatRefusesStreamOptions_TheBodyGoesAsItCame()
    {
        var refuses = new SimulatedProviderOptions { TakesStreamOptions = false };
        var body = ChatBody("\"stream\":true");
        await using (var on = await Scenario.StartAsync(kind: "openai", keyNames: ["main"], provider: refuses))
        {
            // What the switch is for: such a server refuses the field the proxy added.
            using var refused = await on.Proxy.Agent.PostAsync("/v1/chat/completions", Json(body), Ct);
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Contains("Unrecognized request argument supplied: stream_options", await refused.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        }

        await using var off = await Scenario.StartAsync(kind: "openai", keyNames: ["main"], provider: refuses, configure: c => c.Set("Pools:openai:AskForStreamUsage", "false"));

        var agentGot = await StreamAsync(off, body);

        Assert.Equal(body, Encoding.UTF8.GetString(off.AgentRequests.Single().Body));
        Assert.EndsWith("data: [DONE]\n\n", agentGot, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithUsageNotRead_AChatStreamIsNotAsked_AndGoesAsItCame()
    {
        await using var s = await Scenario.StartAsync(kind: "openai", keyNames: ["main"], configure: c => c.Set("Usage:Enabled", "false"));
        var body = ChatBody("\"stream\":true");

        var agentGot = await StreamAsync(s, body);

        // Nothing would read the usage chunk: the agent's request goes as it sent it, and its stream comes back whole.
        Assert.Equal(body, Encoding.UTF8.GetString(s.AgentRequests.Single().Body));
        Assert.Equal(Normalized(await DirectStreamAsync(s, body)), Normalized(agentGot));
        Assert.EndsWith("data: [DONE]\n\n", agentGot, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("openai", "/v1/chat/completions", """{"model":"gpt-4o","stream":false,"messages":[{"role":"user","content":"Hello"}]}""")]
    [InlineData("openai", "/v1/chat/completions", """{"model":"gpt-4o","messages":[{"role":"user","content":"Hello"}]}""")]
    [InlineData("openai", "/v1/responses", """{"model":"gpt-4o","input":"Hello","stream":true}""")]
    [InlineData("openai", "/v1/embeddings", """{"model":"text-embedding-3-small","input":"Hello"}""")]
    [InlineData("anthropic", "/v1/messages", """{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hello"}]}""")]
    public async Task EverythingButAChatStream_GoesAsItCame_AndIsCounted(string kind, string path, string body)
    {
        await using var s = await Scenario.StartAsync(kind: kind, keyNames: ["main"]);

        using var response = await s.Proxy.Agent.PostAsync(path, Json(body), Ct);
        await response.Content.ReadAsStringAsync(Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(body, Encoding.UTF8.GetString(s.AgentRequests.Single().Body));
        await UsageTests.ScrapeUntilAsync(s, m => m.Find("afp_tokens_total", ("key", "main"), ("type", "input")).Any());
    }

    private static string ChatBody(string fields, string content = "Hello")
        => $$"""{"model":"gpt-4o",{{fields}},"messages":[{"role":"user","content":"{{content}}"}]}""";

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static async Task<string> StreamAsync(Scenario s, string body, string? acceptEncoding = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Json(body) };
        if (acceptEncoding is not null)
        {
            request.Headers.TryAddWithoutValidation("Accept-Encoding", acceptEncoding);
        }

        using var response = await s.Proxy.Agent.SendAsync(request, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        return await response.Content.ReadAsStringAsync(Ct);
    }

    /// <summary>The same request made to the provider directly, with the key itself: what the provider sends without the proxy.</summary>
    private static async Task<string> DirectStreamAsync(Scenario s, string body)
    {
        using var client = SimulatedProviderTests.Client(s.Upstream);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Json(body) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", s.SecretsByName.Values.First());
        using var response = await client.SendAsync(request, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync(Ct);
    }

    private static IEnumerable<string> DataLines(string stream)
        => stream.Split('\n').Where(l => l.StartsWith("data: ", StringComparison.Ordinal)).Select(l => l[6..]);

    private static string Normalized(string stream) => Created().Replace(ChunkId().Replace(stream, "chatcmpl-X"), "\"created\":0");

    /// <summary>Waits for the stream's tokens, then checks they were counted once, for the key that served: input as the upstream counted it, output 9.</summary>
    private static async Task AssertCountedAsync(Scenario s, string key, int input)
    {
        var metrics = await UsageTests.ScrapeUntilAsync(s, m => m.Find("afp_tokens_total", ("type", "output")).Any());
        Assert.Equal(9, metrics.Find("afp_tokens_total", ("type", "output")).Sum(x => x.Value));
        Assert.Equal(9, metrics.Value("afp_tokens_total", ("pool", "openai"), ("key", key), ("client", "test-agent"), ("type", "output")));
        Assert.Equal(input, metrics.Value("afp_tokens_total", ("pool", "openai"), ("key", key), ("client", "test-agent"), ("type", "input")));
    }

    [GeneratedRegex("chatcmpl-[A-Za-z0-9]+")]
    private static partial Regex ChunkId();

    [GeneratedRegex("\"created\":[0-9]+")]
    private static partial Regex Created();
}
