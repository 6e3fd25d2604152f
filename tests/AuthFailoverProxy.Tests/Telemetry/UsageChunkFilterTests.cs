using System.Text;
using AuthFailoverProxy.Telemetry;

namespace AuthFailoverProxy.Tests.Telemetry;

/// <summary>
/// The usage chunk the proxy asked for, taken out of the agent's stream: what is left is, byte for byte, the stream the
/// provider sends without the option, however the bytes are cut into reads on either side.
/// </summary>
public sealed class UsageChunkFilterTests
{
    private const string Id = "\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\"";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static TheoryData<int, int> Cuts => new() { { 1, 1 }, { 1, 4096 }, { 3, 7 }, { 7, 3 }, { 16, 5 }, { 64, 64 }, { 100, 1000 }, { 4096, 4096 }, { 4096, 16 } };

    [Theory]
    [MemberData(nameof(Cuts))]
    public async Task TheProxysUsageChunk_AndEveryNullUsage_AreTakenOut_HoweverTheBytesAreCut(int upstreamChunk, int readBuffer)
    {
        var (withOption, without) = (Stream(includeUsage: true), Stream(includeUsage: false));

        Assert.Equal(without, await FilterAsync(withOption, upstreamChunk, readBuffer));
    }

    [Theory]
    [MemberData(nameof(Cuts))]
    public async Task CrLfLines_CommentsAndNamedEvents_PassAsTheyCame(int upstreamChunk, int readBuffer)
    {
        var without = ": keep-alive\r\n\r\n" + Stream(includeUsage: false).Replace("\n", "\r\n", StringComparison.Ordinal) + "event: done\r\ndata: {}\r\n\r\n";
        var withOption = ": keep-alive\r\n\r\n" + Stream(includeUsage: true).Replace("\n", "\r\n", StringComparison.Ordinal) + "event: done\r\ndata: {}\r\n\r\n";

        Assert.Equal(without, await FilterAsync(withOption, upstreamChunk, readBuffer));
    }

    [Fact]
    public async Task AStreamWithoutTheOption_PassesUnchanged_ErrorChunkIncluded()
    {
        var stream = Chunk("""{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}""") + Stream(includeUsage: false);

        Assert.Equal(stream, await FilterAsync(stream, 5, 11));
    }

    [Fact]
    public async Task AStreamCutShort_PassesWhatCame_ItsLastLineAsItIs()
    {
        var full = Stream(includeUsage: true);
        var cut = full[..(full.IndexOf("\"choices\":[]", StringComparison.Ordinal) - 20)];
        var expected = Stream(includeUsage: false);
        expected = expected[..expected.IndexOf("data: [DONE]", StringComparison.Ordinal)] + cut[(cut.LastIndexOf('\n') + 1)..];

        Assert.Equal(expected, await FilterAsync(cut, 9, 13));
    }

    [Fact]
    public async Task ALineLongerThanItHolds_PassesUnchanged()
    {
        var content = new string('x', 70_000);
        var stream = Chunk("{" + Id + ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" + content + "\"}}],\"usage\":null}") + "data: [DONE]\n\n";

        Assert.Equal(stream, await FilterAsync(stream, 4096, 4096));
    }

    [Fact]
    public async Task AZeroByteRead_WaitsOnTheUpstream_AndSaysNothingOfItsOwn()
    {
        var upstream = new Chunked(Encoding.UTF8.GetBytes(Stream(includeUsage: true)), 4096);
        await using var filter = new UsageChunkFilter(upstream);

        Assert.Equal(0, await filter.ReadAsync(Memory<byte>.Empty, Ct));
        Assert.Equal(1, upstream.ZeroByteReads);
    }

    [Theory]
    [InlineData("{" + Id + ",\"choices\":[],\"usage\":{\"prompt_tokens\":5}}", true)]
    [InlineData("{\"usage\" : {\"prompt_tokens\":5} , \"choices\" : [ \n ]}", true)]
    // Azure's first chunk: no choices yet, and no usage either.
    [InlineData("{\"choices\":[],\"created\":0,\"id\":\"\",\"prompt_filter_results\":[]}", false)]
    [InlineData("{\"choices\":[],\"usage\":null}", false)]
    [InlineData("{" + Id + ",\"choices\":[{\"index\":0,\"delta\":{}}],\"usage\":{\"prompt_tokens\":5}}", false)]
    [InlineData("{\"choices\":[],\"usage\":{\"prompt_tokens\":5}", false)]
    public void TheUsageChunk_HasNoChoicesAndAUsageObject(string chunk, bool isUsageChunk)
        => Assert.Equal(isUsageChunk, UsageChunkFilter.IsUsageChunk(Encoding.UTF8.GetBytes(chunk)));

    [Theory]
    [InlineData("{\"id\":\"c\",\"choices\":[],\"usage\":null}", "{\"id\":\"c\",\"choices\":[]}")]
    [InlineData("{\"id\":\"c\",\"usage\":null,\"obfuscation\":\"a1\"}", "{\"id\":\"c\",\"obfuscation\":\"a1\"}")]
    [InlineData("{\"id\": \"c\" , \"usage\" : null }", "{\"id\": \"c\" }")]
    [InlineData("{\"usage\":null, \"id\":\"c\"}", "{\"id\":\"c\"}")]
    [InlineData("{\"usage\":null}", "{}")]
    // Only the top level's: a usage inside a choice or a string is the provider's content.
    [InlineData("{\"choices\":[{\"delta\":{\"usage\":null}}]}", null)]
    [InlineData("{\"content\":\"\\\"usage\\\":null\"}", null)]
    [InlineData("{\"usage\":{\"prompt_tokens\":5}}", null)]
    public void ANullUsage_IsCutWithTheCommaThatJoinsIt(string chunk, string? expected)
    {
        var bytes = Encoding.UTF8.GetBytes(chunk);

        var cut = UsageChunkFilter.NullUsage(bytes);

        Assert.Equal(expected, cut is { } c ? Encoding.UTF8.GetString([.. bytes[..c.From], .. bytes[c.To..]]) : null);
    }

    /// <summary>A chat stream as the provider sends it, with or without <c>stream_options.include_usage</c>.</summary>
    internal static string Stream(bool includeUsage)
    {
        var usage = includeUsage ? ",\"usage\":null" : string.Empty;
        var text = new StringBuilder()
            .Append(Chunk("{" + Id + ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]" + usage + "}"))
            .Append(Chunk("{" + Id + ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\\\"usage\\\":null, \\\"choices\\\":[]\"},\"logprobs\":null,\"finish_reason\":null}]" + usage + "}"))
            .Append(Chunk("{" + Id + ",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]" + usage + "}"));
        if (includeUsage)
        {
            text.Append(Chunk("{" + Id + ",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":9,\"total_tokens\":29,\"prompt_tokens_details\":{\"cached_tokens\":0}}}"));
        }

        return text.Append("data: [DONE]\n\n").ToString();
    }

    private static string Chunk(string json) => "data: " + json + "\n\n";

    private static async Task<string> FilterAsync(string stream, int upstreamChunk, int readBuffer)
    {
        await using var filter = new UsageChunkFilter(new Chunked(Encoding.UTF8.GetBytes(stream), upstreamChunk));
        var output = new MemoryStream();
        var buffer = new byte[readBuffer];
        for (var reads = 0; reads < 1_000_000; reads++)
        {
            var read = await filter.ReadAsync(buffer, Ct);
            if (read == 0)
            {
                return Encoding.UTF8.GetString(output.ToArray());
            }

            output.Write(buffer, 0, read);
        }

        throw new InvalidOperationException("the filter never ended");
    }

    /// <summary>An upstream that hands its bytes out at most <c>chunk</c> at a time, as the network cuts them.</summary>
    private sealed class Chunked(byte[] bytes, int chunk) : AuthFailoverProxy.Failover.ForwardOnlyStream
    {
        private int _position;

        public int ZeroByteReads { get; private set; }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (buffer.IsEmpty)
            {
                ZeroByteReads++;
                return ValueTask.FromResult(0);
            }

            var count = Math.Min(Math.Min(chunk, buffer.Length), bytes.Length - _position);
            bytes.AsSpan(_position, count).CopyTo(buffer.Span);
            _position += count;
            return ValueTask.FromResult(count);
        }
    }
}
