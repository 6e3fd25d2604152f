using System.IO.Compression;
using System.Net;
using System.Text;
using System.Text.Json;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Telemetry;
using AuthFailoverProxy.Tests.Fakes;

namespace AuthFailoverProxy.Tests.Telemetry;

/// <summary>
/// Token usage read from every answer as it passes, in each dialect and mode, normalised (input counts cached tokens
/// in every dialect), from the delivered try only, with model labels no client can multiply.
/// </summary>
public sealed class UsageTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public void AnthropicJson_CacheTokensAreAddedToInput_ReadByteByByte()
    {
        var usage = Read("application/json", """{"id":"msg_1","type":"message","content":[{"type":"text","text":"\"usage\": {\"input_tokens\": 999}"}],"model":"claude-sonnet-4-5-20250929","usage":{"input_tokens":12,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":0},"output_tokens":34,"server_tool_use":{"web_search_requests":0},"service_tier":"standard"}}""", chunk: 1);

        Assert.Equal(new TokenUsage(Input: 2112, Output: 34, CacheRead: 2000, CacheCreation: 100), usage.Usage);
        Assert.Equal("claude-sonnet-4-5-20250929", usage.Model);
    }

    [Fact]
    public void AnthropicStream_MessageDeltaIsCumulative_TheLastCounts_NeverTheSum()
    {
        var stream = """
            event: message_start
            data: {"type":"message_start","message":{"id":"msg_1","model":"claude-opus-4-1","content":[],"usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":1}}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"the \"usage\": of words"}}

            event: message_delta
            data: {"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":3}}

            event: message_delta
            data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":9}}

            event: message_stop
            data: {"type":"message_stop"}

            """.Replace("\r", string.Empty, StringComparison.Ordinal);

        Assert.Equal(new TokenUsage(15, 9, 5, 0), Read("text/event-stream", stream, chunk: 7).Usage);

        // Cut after the first delta: what was shown counts.
        var cut = stream[..(stream.IndexOf("event: message_delta", StringComparison.Ordinal) + 120)];
        var reader = Read("text/event-stream", cut, chunk: 64);
        Assert.Equal(new TokenUsage(15, 3, 5, 0), reader.Usage);
        Assert.Equal("claude-opus-4-1", reader.Model);
    }

    [Fact]
    public void OpenAIChat_InputAlreadyCountsItsCachedPart()
    {
        var json = Read("application/json", """{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-2024-08-06","choices":[],"usage":{"prompt_tokens":1200,"completion_tokens":40,"total_tokens":1240,"prompt_tokens_details":{"cached_tokens":1024}}}""", chunk: 5);
        Assert.Equal(new TokenUsage(1200, 40, 1024, 0), json.Usage);

        var stream = """
            data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}

            data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o-2024-08-06","choices":[],"usage":{"prompt_tokens":20,"completion_tokens":2,"total_tokens":22}}

            data: [DONE]

            """.Replace("\r", string.Empty, StringComparison.Ordinal);
        var chunks = Read("text/event-stream", stream, chunk: 3);
        Assert.Equal(new TokenUsage(20, 2, 0, 0), chunks.Usage);
        Assert.Equal("gpt-4o-2024-08-06", chunks.Model);
    }

    [Fact]
    public void ResponsesApi_CountsResponseCompleted()
    {
        var stream = """
            event: response.created
            data: {"type":"response.created","response":{"id":"resp_1","model":"gpt-4.1","usage":null}}

            event: response.output_text.delta
            data: {"type":"response.output_text.delta","delta":"Hello"}

            event: response.completed
            data: {"type":"response.completed","response":{"id":"resp_1","model":"gpt-4.1","usage":{"input_tokens":300,"input_tokens_details":{"cached_tokens":256},"output_tokens":12,"total_tokens":312}}}

            """.Replace("\r", string.Empty, StringComparison.Ordinal);

        Assert.Equal(new TokenUsage(300, 12, 256, 0), Read("text/event-stream", stream, chunk: 11).Usage);
    }

    [Theory]
    [InlineData("gzip")]
    [InlineData("br")]
    [InlineData("deflate")]
    public async Task ACompressedAnswer_PassesAsSent_AndIsReadOnTheSide(string encoding)
    {
        var json = """{"model":"claude-haiku-4-5","usage":{"input_tokens":7,"output_tokens":3}}"""u8.ToArray();
        var compressed = Compress(json, encoding);
        using var original = new ByteArrayContent(compressed);
        original.Headers.ContentType = new("application/json");
        original.Headers.ContentEncoding.Add(encoding);
        var done = new TaskCompletionSource<UsageReader>();

        using var content = new UsageContent(original, UsageContent.EncodingOf(original), UsageReader.For("application/json")!, r => done.TrySetResult(r));
        var passed = await content.ReadAsByteArrayAsync(Ct);

        Assert.Equal(compressed, passed);
        var reader = await done.Task.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        Assert.Equal(new TokenUsage(7, 3, 0, 0), reader.Usage);
    }

    [Fact]
    public async Task ThroughTheProxy_EveryDialectAndMode_IsCountedByPoolKeyClientAndModel_FromTheDeliveredTryOnly()
    {
        await using var s = await Scenario.StartAsync();
        // The first try of the stream opens with an overloaded_error event: it fails over before content, and counts nothing.
        s.Upstream.FailNext(1, UpstreamFault.OverloadedInStream);
        using (var streamed = await s.Proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(stream: true), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, streamed.StatusCode);
            await streamed.Content.ReadAsStringAsync(Ct);
        }

        using (var plain = await s.Proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
        }

        var input = s.Upstream.Requests.Where(r => !Scenario.IsKeyCheck(r)).Select(r => Math.Max(1, r.Body.Length / 4)).ToList();
        var metrics = await ScrapeUntilAsync(s, m => m.Find("afp_tokens_total").Any(x => x["type"] == "output" && x.Value >= 18));
        Assert.Equal(18, metrics.Value("afp_tokens_total", ("pool", "anthropic"), ("key", "primary"), ("client", "test-agent"), ("type", "output")));
        // Each answer's input: the stream's delivered try and the plain request (the failed try is not counted).
        Assert.Equal(input[1] + input[2], metrics.Value("afp_tokens_total", ("pool", "anthropic"), ("key", "primary"), ("client", "test-agent"), ("type", "input")));
        var histogram = metrics.Find("gen_ai_client_token_usage_count").Where(x => x["gen_ai_token_type"] == "output").ToList();
        Assert.Equal(2, histogram.Sum(x => x.Value));
        Assert.All(histogram, x => Assert.Equal("anthropic", x["gen_ai_provider_name"]));
        Assert.All(histogram, x => Assert.Equal("chat", x["gen_ai_operation_name"]));
        Assert.DoesNotContain(s.Proxy.ClientToken, metrics.Text, StringComparison.Ordinal);
        Assert.DoesNotContain(s.Secret("primary"), metrics.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AStreamTheClientCuts_CountsWhatWasSeen()
    {
        await using var s = await Scenario.StartAsync();
        // The provider holds the stream after its first text delta, until the caller goes away.
        s.Upstream.BeforeStreamEvent = (index, gone) => index >= 4 ? Task.Delay(Timeout.Infinite, gone) : Task.CompletedTask;
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages") { Content = Scenario.MessageBody(stream: true) })
        using (var streamed = await s.Proxy.Agent.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct))
        {
            using var events = new StreamReader(await streamed.Content.ReadAsStreamAsync(Ct));
            while (await events.ReadLineAsync(Ct) is { } line && !line.Contains("content_block_delta", StringComparison.Ordinal))
            {
            }
        }

        // The agent saw message_start (input, and 1 output token so far) and one delta: that is what counts.
        var input = s.Upstream.Requests.Where(r => !Scenario.IsKeyCheck(r)).Select(r => Math.Max(1, r.Body.Length / 4)).Single();
        var metrics = await ScrapeUntilAsync(s, m => m.Find("afp_tokens_total").Any(x => x["type"] == "input" && x.Value > 0));
        Assert.Equal(input, metrics.Value("afp_tokens_total", ("pool", "anthropic"), ("key", "primary"), ("client", "test-agent"), ("type", "input")));
        Assert.Equal(1, metrics.Value("afp_tokens_total", ("pool", "anthropic"), ("key", "primary"), ("client", "test-agent"), ("type", "output")));
    }

    [Fact]
    public async Task TurnedOff_AnswersPassUnread_NothingIsCounted_AndStatusSaysSo()
    {
        await using var s = await Scenario.StartAsync(configure: c => c.Set("Usage:Enabled", "false"));
        string streamed;
        using (var stream = await s.Proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(stream: true), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, stream.StatusCode);
            streamed = await stream.Content.ReadAsStringAsync(Ct);
        }

        using (var plain = await s.Proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
            Assert.Contains("\"output_tokens\":", await plain.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        }

        // Both answers' attempts have ended (their durations are recorded once the answer has passed), and with usage read
        // their tokens would have been recorded at the same moment: none were.
        var metrics = await ScrapeUntilAsync(s, m => m.Find("gen_ai_client_operation_duration_seconds_count").Sum(x => x.Value) == 2);
        Assert.Contains("message_delta", streamed, StringComparison.Ordinal);
        Assert.DoesNotContain(metrics.Find("afp_tokens_total"), x => x.Value > 0);
        Assert.Empty(metrics.Find("gen_ai_client_token_usage_count"));
        // Only the answer names the model that answered, and it was not read.
        Assert.All(metrics.Find("gen_ai_client_operation_duration_seconds_count"), x => Assert.Null(x["gen_ai_response_model"]));
        var usage = (await s.Proxy.Management.GetFromJsonAsync<JsonElement>("/status", Ct)).GetProperty("usage");
        Assert.Equal(0, usage.GetProperty("lastHour").GetProperty("total").GetProperty("requests").GetInt64());
        Assert.StartsWith("Usage:Enabled is false: this replica reads no usage", usage.GetProperty("note").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task TenThousandMadeUpModels_MakeNoNewSeries()
    {
        await using var s = await Scenario.StartAsync();
        using (await s.Proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(model: "claude-sonnet-4-5"), Ct))
        {
        }

        // Made-up names the provider answers 404 for: never labels. Bounded: 200 requests stand for the 10,000.
        for (var i = 0; i < 200; i++)
        {
            using var made = await s.Proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(model: $"claude-made-up-{i}"), Ct);
        }

        var metrics = await ScrapeUntilAsync(s, m => m.Find("afp_tokens_total").Any());
        var models = metrics.Samples.Where(x => x.Name.StartsWith("gen_ai_client_token_usage", StringComparison.Ordinal)).SelectMany(x => new[] { x["gen_ai_request_model"], x["gen_ai_response_model"] }).Distinct().ToList();
        Assert.DoesNotContain(models, m => m!.StartsWith("claude-made-up", StringComparison.Ordinal));
        Assert.Contains("claude-sonnet-4-5", models);
    }

    [Fact]
    public void OddUsageValues_AreSkipped_NotGuessed()
    {
        var odd = Read("application/json", """{"model":"gpt-4o","usage":{"prompt_tokens":"12","completion_tokens":3.5,"extra":[{"prompt_tokens":99}],"prompt_tokens_details":{"audio":{"cached_tokens":5},"cached_tokens":7},"total_tokens":15}}""", chunk: 3);
        Assert.True(odd.Seen);
        Assert.Equal(new TokenUsage(0, 0, 7, 0), odd.Usage);
        Assert.Equal("gpt-4o", odd.Model);

        var none = Read("application/json", """{"model":"gpt-4o","usage":null}""", chunk: 64);
        Assert.False(none.Seen);

        var broken = Read("application/json", """{"model":"gpt-4o","usage":{"prompt_tokens":12,}}""", chunk: 64);
        Assert.Equal(new TokenUsage(0, 0, 0, 0), broken.Usage);
    }

    [Fact]
    public void EscapedUsageNames_CountAsTheProviderReadsThem()
    {
        // JSON lets a name be written with escapes; a parser reads "input\u005ftokens" as input_tokens, and so does this.
        var usage = Read("application/json", """{"model":"claude-sonnet-4-5","usage":{"input\u005ftokens":12,"cache_read_input_token\u0073":5,"output_tokens":8,"output_tokens_":99}}""", chunk: 5);

        Assert.Equal(new TokenUsage(Input: 17, Output: 8, CacheRead: 5, CacheCreation: 0), usage.Usage);
    }

    [Fact]
    public void AnAnswersModel_AlreadyALabel_IsThatLabel_ElseItsOwnString()
    {
        var models = new ModelLabels();
        var sonnet = models.LearnAndLabel(new string("claude-sonnet-4-5".AsSpan()));
        const string Answer = """{"model":"claude-sonnet-4-5","usage":{"input_tokens":12,"output_tokens":8}}""";

        var known = Read("application/json", Answer, chunk: 7, models);
        Assert.Same(sonnet, known.Model);
        Assert.Same(sonnet, known.ResponseLabel);

        // A name no answer made a label: read as it is, and labelled (learned or not) only once its tokens are counted.
        var other = Read("application/json", Answer.Replace("4-5", "4-6", StringComparison.Ordinal), chunk: 7, models);
        Assert.Equal("claude-sonnet-4-6", other.Model);
        Assert.Null(other.ResponseLabel);
        var escaped = Read("application/json", Answer.Replace("4-5", "4-\\u0035", StringComparison.Ordinal), chunk: 7, models);
        Assert.Equal("claude-sonnet-4-5", escaped.Model);
        Assert.Equal(new TokenUsage(12, 8, 0, 0), escaped.Usage);
    }

    [Theory]
    [InlineData("application/json")]
    [InlineData("text/event-stream")]
    public async Task AModelNameThatIsNotUtf8_NamesNoModel_AndTheAnswerPassesWhole_ItsTokensCounted(string mediaType)
    {
        // A string a JSON reader cannot turn into text throws only when asked for the text: the tap must not pass that on
        // into the agent's copy, which would cut the answer (a stream in its middle).
        byte[] model = [.. "claude-sonnet-4-5"u8, 0xC3, 0x28];
        byte[] answer = mediaType == "application/json"
            ? [.. "{\"model\":\""u8, .. model, .. "\",\"usage\":{\"input_tokens\":12,\"output_tokens\":8}}"u8]
            : [.. "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\""u8, .. model,
               .. "\",\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":8}}\n\n"u8];
        var original = new ByteArrayContent(answer);
        original.Headers.ContentType = new(mediaType);
        var done = new TaskCompletionSource<UsageReader>();
        using var content = new UsageContent(original, UsageContent.EncodingOf(original), UsageReader.For(mediaType)!, r => done.TrySetResult(r));

        Assert.Equal(answer, await content.ReadAsByteArrayAsync(Ct));
        var read = await done.Task.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        Assert.Null(read.Model);
        Assert.Equal(new TokenUsage(12, 8, 0, 0), read.Usage);
    }

    private static UsageReader Read(string mediaType, string text, int chunk, ModelLabels? labels = null)
    {
        var reader = UsageReader.For(mediaType)!;
        reader.Labels = labels;
        var bytes = Encoding.UTF8.GetBytes(text);
        for (var i = 0; i < bytes.Length; i += chunk)
        {
            reader.Feed(bytes.AsSpan(i, Math.Min(chunk, bytes.Length - i)));
        }

        reader.Complete();
        return reader;
    }

    private static byte[] Compress(byte[] bytes, string encoding)
    {
        using var output = new MemoryStream();
        using (Stream compressor = encoding switch
        {
            "gzip" => new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true),
            "br" => new BrotliStream(output, CompressionLevel.Fastest, leaveOpen: true),
            _ => new ZLibStream(output, CompressionLevel.Fastest, leaveOpen: true),
        })
        {
            compressor.Write(bytes);
        }

        return output.ToArray();
    }

    internal static async Task<PrometheusText> ScrapeUntilAsync(Scenario s, Func<PrometheusText, bool> condition)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(20));
        while (true)
        {
            // A stream's usage is recorded when it ends, just after the agent has read it.
            var metrics = PrometheusText.Parse(await s.Proxy.Management.GetStringAsync("/metrics", timeout.Token));
            if (condition(metrics))
            {
                return metrics;
            }

            await Task.Delay(20, timeout.Token);
        }
    }
}
