using System.Text;
using System.Text.Json;
using AuthFailoverProxy.Failover;
using AuthFailoverProxy.Telemetry;
using AuthFailoverProxy.Tests.Failover;

namespace AuthFailoverProxy.Tests.Telemetry;

/// <summary>
/// The body edit that asks an OpenAI chat stream for its usage: one place changed, every other byte the agent's, the
/// same whether the body is in memory or spilled, and no edit at all where the proxy could guess wrong.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class StreamUsageRequestTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("afp-spill-");

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public void Dispose() => _directory.Delete(recursive: true);

    [Theory]
    // No stream_options: added right after "stream":true, wherever that is and however it is spaced.
    [InlineData("""{"model":"gpt-4o","stream":true,"messages":[]}""", """{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[]}""")]
    [InlineData("""{"messages":[],"stream":true}""", """{"messages":[],"stream":true,"stream_options":{"include_usage":true}}""")]
    [InlineData("{ \"stream\" :\ttrue ,\n \"model\": \"gpt-4o\" }", "{ \"stream\" :\ttrue,\"stream_options\":{\"include_usage\":true} ,\n \"model\": \"gpt-4o\" }")]
    // An escaped key is the same key to the provider's parser.
    [InlineData("""{"stream":true,"str\u0065am_options":{"seed":1}}""", """{"stream":true,"str\u0065am_options":{"include_usage":true,"seed":1}}""")]
    // What looks like the fields inside a message or a nested object is not them.
    [InlineData("""{"messages":[{"role":"user","content":"\"stream_options\":{\"include_usage\":false}"}],"metadata":{"stream_options":{}},"stream":true}""", """{"messages":[{"role":"user","content":"\"stream_options\":{\"include_usage\":false}"}],"metadata":{"stream_options":{}},"stream":true,"stream_options":{"include_usage":true}}""")]
    // The agent's own stream_options: merged, its other fields kept.
    [InlineData("""{"stream":true,"stream_options":{"include_obfuscation":false}}""", """{"stream":true,"stream_options":{"include_usage":true,"include_obfuscation":false}}""")]
    [InlineData("""{"stream":true,"stream_options":{}}""", """{"stream":true,"stream_options":{"include_usage":true}}""")]
    [InlineData("""{"stream":true,"stream_options":{ }}""", """{"stream":true,"stream_options":{"include_usage":true }}""")]
    [InlineData("""{"stream":true,"stream_options":null}""", """{"stream":true,"stream_options":{"include_usage":true}}""")]
    // Asked not to include it: the proxy asks all the same, and the chunk is taken out of the agent's stream.
    [InlineData("""{"stream_options":{"x":"}","include_usage" : false},"stream":true}""", """{"stream_options":{"x":"}","include_usage" : true},"stream":true}""")]
    [InlineData("""{"stream":true,"stream_options":{"incl\u0075de_usage":null}}""", """{"stream":true,"stream_options":{"incl\u0075de_usage":true}}""")]
    public async Task AChatStreamThatDidNotAsk_IsAskedAtOnePlace_InMemoryAndSpilledAlike(string before, string after)
    {
        var (inMemory, usage) = await AskAsync(before, spilled: false);
        var (spilled, spilledUsage) = await AskAsync(before, spilled: true);

        Assert.Equal(StreamUsage.AskedByProxy, usage);
        Assert.Equal(after, inMemory);
        Assert.Equal(StreamUsage.AskedByProxy, spilledUsage);
        Assert.Equal(Padded(after), spilled);
        var options = JsonDocument.Parse(after).RootElement.EnumerateObject().Single(p => p.Name == "stream_options").Value;
        Assert.True(options.EnumerateObject().Single(p => p.Name == "include_usage").Value.GetBoolean());
    }

    [Theory]
    [InlineData("""{"stream":true,"stream_options":{"include_usage":true}}""")]
    [InlineData("""{"stream_options":{ "include_usage" : true, "include_obfuscation":false },"stream" : true}""")]
    public async Task AChatStreamThatAsked_IsSentAsItCame(string body)
    {
        Assert.Equal((body, StreamUsage.AskedByClient), await AskAsync(body, spilled: false));
        Assert.Equal((Padded(body), StreamUsage.AskedByClient), await AskAsync(body, spilled: true));
    }

    [Theory]
    [InlineData("""{"model":"gpt-4o","messages":[]}""")]
    [InlineData("""{"stream":false}""")]
    [InlineData("""{"stream":"true"}""")]
    [InlineData("""{"stream":null}""")]
    // Twice: parsers disagree on which one counts, and stream_options without a stream is refused.
    [InlineData("""{"stream":true,"stream":false}""")]
    [InlineData("""{"stream":true,"stream_options":{},"stream_options":{"include_usage":false}}""")]
    [InlineData("""{"stream":true,"stream_options":{"include_usage":false,"include_usage":true}}""")]
    // Not what the API takes: the provider says so, as it would without the proxy.
    [InlineData("""{"stream":true,"stream_options":"usage"}""")]
    [InlineData("""{"stream":true,"stream_options":{"include_usage":"yes"}}""")]
    // Not one JSON object.
    [InlineData("""{"stream":true,/* a comment */"messages":[]}""")]
    [InlineData("""{"stream":true,"messages":[}""")]
    [InlineData("""[{"stream":true}]""")]
    public async Task ABodyTheProxyCouldGuessWrongAbout_IsLeftAlone(string body)
    {
        Assert.Equal((body, StreamUsage.Untouched), await AskAsync(body, spilled: false));
        Assert.Equal(Padded(body) is var padded && body.StartsWith('{') ? padded : body, (await AskAsync(body, spilled: true)).Body);
    }

    [Fact]
    public async Task ABodyWhoseArrayHasNoRoom_GrowsIntoALargerOne_AndReadsAsEdited()
    {
        var bytes = Encoding.UTF8.GetBytes("""{"stream":true}""");
        await using var body = ReplayableBody.FromBytes(bytes);

        var (sent, usage) = await StreamUsageRequest.AskAsync(body, asksForStream: true, Ct);

        Assert.Same(body, sent);
        Assert.Equal(StreamUsage.AskedByProxy, usage);
        Assert.True(sent.IsRewritten);
        Assert.Equal("""{"stream":true,"stream_options":{"include_usage":true}}""", Encoding.UTF8.GetString(sent.InMemory));
        Assert.Equal(sent.InMemory.Length, sent.Length);
        Assert.Equal(Encoding.UTF8.GetString(sent.InMemory), await ReadAllAsync(sent));
    }

    [Fact]
    public async Task ABodyInMemoryThatDoesNotAskForAStream_IsNotReadAgain()
    {
        await using var body = await BodyReleaseTests.ReadAsync("""{"stream":true}""", new BodySpill(new RequestBodyOptions()));

        // The caller already read that it does not stream: the body is not looked at again.
        var (sent, usage) = await StreamUsageRequest.AskAsync(body, asksForStream: false, Ct);

        Assert.Equal(StreamUsage.Untouched, usage);
        Assert.False(sent.IsRewritten);
    }

    [Theory]
    [InlineData("/v1/chat/completions", true)]
    [InlineData("/chat/completions?api-version=2024-10-21", true)]
    [InlineData("/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", true)]
    [InlineData("/v1/completions", false)]
    [InlineData("/v1/responses", false)]
    [InlineData("/v1/embeddings", false)]
    [InlineData("/v1/chat/completions/chatcmpl-1/messages", false)]
    public void OnlyChatCompletions_AreAsked(string target, bool asked)
    {
        var pool = Pool(asks: true);

        Assert.Equal(asked, StreamUsageRequest.Applies(pool, target));
    }

    [Fact]
    public void APoolThatDoesNotAsk_OrWhoseFallbackDoesNot_OrAnAnthropicOne_IsNotAsked()
    {
        var asking = Pool(asks: true);
        var fallback = Pool(asks: false);
        asking.UseFallback(fallback, model: null);
        var anthropic = new AuthFailoverProxy.KeyPool.Pool("anthropic", AuthFailoverProxy.KeyPool.ProviderKind.Anthropic, new Uri("https://api.anthropic.test"), "/anthropic", false, AuthFailoverProxy.KeyPool.KeySelection.Priority, [], new HttpMessageInvoker(new SocketsHttpHandler()), new());

        Assert.False(StreamUsageRequest.Applies(fallback, "/v1/chat/completions"));
        Assert.False(StreamUsageRequest.Applies(asking, "/v1/chat/completions"));
        Assert.False(StreamUsageRequest.Applies(anthropic, "/v1/chat/completions"));
    }

    private static AuthFailoverProxy.KeyPool.Pool Pool(bool asks)
        => new("openai", AuthFailoverProxy.KeyPool.ProviderKind.OpenAI, new Uri("https://api.openai.test"), "/openai", false, AuthFailoverProxy.KeyPool.KeySelection.Priority, [], new HttpMessageInvoker(new SocketsHttpHandler()), new())
        {
            AsksForStreamUsage = asks,
        };

    /// <summary>Pads a body past the memory threshold (at its end, inside the object), so that it is spilled.</summary>
    private static string Padded(string body) => body[..^1] + ",\"pad\":\"" + new string('z', 70_000) + "\"}";

    private async Task<(string Body, StreamUsage Usage)> AskAsync(string text, bool spilled)
    {
        var spill = new BodySpill(new RequestBodyOptions { MemoryThresholdBytes = 64 * 1024, TempDirectory = _directory.FullName });
        await using var body = await BodyReleaseTests.ReadAsync(spilled && text.StartsWith('{') ? Padded(text) : text, spill);
        Assert.Equal(spilled && text.StartsWith('{'), body.IsSpilled);
        var (sent, usage) = await StreamUsageRequest.AskAsync(body, RequestFacts.AsksForStream(body.InMemory), Ct);
        var read = await ReadAllAsync(sent);
        Assert.Equal(Encoding.UTF8.GetByteCount(read), sent.Length);
        Assert.Equal(usage == StreamUsage.AskedByProxy, sent.IsRewritten);
        return (read, usage);
    }

    private static async Task<string> ReadAllAsync(ReplayableBody body)
    {
        using var read = new MemoryStream();
        await using (var stream = body.OpenRead())
        {
            await stream.CopyToAsync(read, Ct);
        }

        return Encoding.UTF8.GetString(read.ToArray());
    }
}
