using System.Globalization;
using System.Net;
using System.Text;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Telemetry;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.Time.Testing;

namespace AuthFailoverProxy.Tests.Telemetry;

/// <summary>
/// OpenTelemetry's GenAI conventions on every upstream call made for a model: its duration until the answer has passed,
/// a stream's time to first content, the same attributes on the attempt's span with the tokens spent, model labels no
/// client can multiply; and the platform's own meters (runtime, ASP.NET Core, HttpClient) beside them, per host and
/// without a path as a label.
/// </summary>
public sealed class GenAiTelemetryTests
{
    private const string Duration = "gen_ai_client_operation_duration_seconds";
    private const string FirstChunk = "gen_ai_client_operation_time_to_first_chunk_seconds";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task AnthropicStream_LastsUntilItsEnd_AndItsFirstChunkIsItsFirstContent_ANonStreamAnswerHasNoFirstChunk()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-03-03T00:00:00Z", CultureInfo.InvariantCulture));
        await using var s = await Scenario.StartAsync(time: time);
        // Events 0-2 open the stream (message_start, content_block_start, ping), 3 is the first content_block_delta, 10
        // message_stop: the proxy's clock moves 2 s before the first content and 3 s more before the end, once the agent has
        // that content.
        var end = new TaskCompletionSource();
        s.Upstream.BeforeStreamEvent = async (index, ct) =>
        {
            if (index == 10)
            {
                await end.Task.WaitAsync(ct);
            }

            time.Advance(index switch { 3 => TimeSpan.FromSeconds(2), 10 => TimeSpan.FromSeconds(3), _ => TimeSpan.Zero });
        };

        var streamed = await StreamAsync(s, "/v1/messages?beta=true", Scenario.MessageBody(stream: true), "content_block_delta", end);
        Assert.EndsWith("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", streamed, StringComparison.Ordinal);

        using (var plain = await s.Proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
        }

        var labels = Labels("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5", "primary");
        var metrics = await ScrapeUntilAsync(s.Proxy, m => m.Value(Duration + "_count", labels) == 2);

        // Both answers, under one series: the stream's 5 s (until its end, not its headers) and the plain answer's 0 s.
        Assert.Equal(5, metrics.Value(Duration + "_sum", labels));
        Assert.Single(metrics.Find(Duration + "_count"));
        Assert.DoesNotContain(metrics.Find(Duration + "_count"), x => x.Labels.ContainsKey("error_type"));
        // The stream's first content came 2 s after the call; the plain answer records none.
        Assert.Equal(1, metrics.Value(FirstChunk + "_count", labels));
        Assert.Equal(2, metrics.Value(FirstChunk + "_sum", labels));
        Assert.Single(metrics.Find(FirstChunk + "_count"));
        // Buckets reach minutes, as the other durations'.
        Assert.Contains("600", metrics.Find(Duration + "_bucket", labels).Select(b => b["le"]));
        Assert.Equal(1, metrics.Value(FirstChunk + "_bucket", [.. labels, ("le", "2.5")]));
        Assert.Equal(0, metrics.Value(FirstChunk + "_bucket", [.. labels, ("le", "1")]));
        AssertNoSecret(s, metrics.Text);
    }

    [Fact]
    public async Task OpenAIChatStream_RecordsDurationAndFirstChunk_UnderTheOpenAIProvider()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-03-03T00:00:00Z", CultureInfo.InvariantCulture));
        await using var s = await Scenario.StartAsync(kind: "openai", time: time);
        // Chunk 0 carries the role only, 1 the first content, 7 is [DONE].
        var end = new TaskCompletionSource();
        s.Upstream.BeforeStreamEvent = async (index, ct) =>
        {
            if (index == 7)
            {
                await end.Task.WaitAsync(ct);
            }

            time.Advance(index switch { 1 => TimeSpan.FromSeconds(1), 7 => TimeSpan.FromSeconds(3), _ => TimeSpan.Zero });
        };

        // A whole answer with usage first: the provider has answered for gpt-4o, which may then be a label.
        using (var learned = await s.Proxy.Agent.PostAsync("/v1/chat/completions", ChatBody(stream: false), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, learned.StatusCode);
        }

        var streamed = await StreamAsync(s, "/v1/chat/completions", ChatBody(stream: true), "\"content\":\"Hello", end);
        Assert.EndsWith("data: [DONE]\n\n", streamed, StringComparison.Ordinal);

        var labels = Labels("openai", "gpt-4o", "gpt-4o", "primary");
        var metrics = await ScrapeUntilAsync(s.Proxy, m => m.Value(Duration + "_count", labels) == 2);

        Assert.Equal(4, metrics.Value(Duration + "_sum", labels));
        Assert.Equal(1, metrics.Value(FirstChunk + "_count", labels));
        Assert.Equal(1, metrics.Value(FirstChunk + "_sum", labels));
        AssertNoSecret(s, metrics.Text);
    }

    [Fact]
    public async Task AStreamWhoseOpeningOutlastsTheHold_ItsFirstBytesAfterTheHoldCountAsItsFirstChunk()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-03-03T00:00:00Z", CultureInfo.InvariantCulture));
        await using var s = await Scenario.StartAsync(time: time, configure: c => c.Set("Failover:StreamHoldTime", "00:00:01"));
        // The first content comes 2 s after the call: the hold gives up after 1 s and passes the opening on as it is.
        var end = new TaskCompletionSource();
        s.Upstream.BeforeStreamEvent = async (index, ct) =>
        {
            if (index == 10)
            {
                await end.Task.WaitAsync(ct);
            }

            time.Advance(index switch { 3 => TimeSpan.FromSeconds(2), 10 => TimeSpan.FromSeconds(3), _ => TimeSpan.Zero });
        };

        await StreamAsync(s, "/v1/messages", Scenario.MessageBody(stream: true), "content_block_delta", end);

        var labels = Labels("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5", "primary");
        var metrics = await ScrapeUntilAsync(s.Proxy, m => m.Value(Duration + "_count", labels) == 1);
        Assert.Equal(5, metrics.Value(Duration + "_sum", labels));
        Assert.Equal(2, metrics.Value(FirstChunk + "_sum", labels));
    }

    [Fact]
    public async Task ACompressedAnswer_ItsUsageIsToldBeforeItsEndPassesOn()
    {
        // Large enough that decompressing on the side lags behind the agent's copy.
        var json = Encoding.UTF8.GetBytes("{\"model\":\"claude-haiku-4-5\",\"content\":\"" + new string('x', 8 << 20) + "\",\"usage\":{\"input_tokens\":7,\"output_tokens\":3}}");
        using var compressed = new MemoryStream();
        using (var gzip = new System.IO.Compression.GZipStream(compressed, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true))
        {
            gzip.Write(json);
        }

        using var original = new ByteArrayContent(compressed.ToArray());
        original.Headers.ContentType = new("application/json");
        original.Headers.ContentEncoding.Add("gzip");
        UsageReader? told = null;
        using var content = new UsageContent(original, UsageContent.EncodingOf(original), UsageReader.For("application/json")!, r => told = r);

        await using var stream = await content.ReadAsStreamAsync(Ct);
        var buffer = new byte[16 * 1024];
        while (await stream.ReadAsync(buffer, Ct) > 0)
        {
        }

        // The read that ends the answer returned only once its usage was told: the attempt, which ends with it, knows it.
        Assert.NotNull(told);
        Assert.Equal(new TokenUsage(7, 3, 0, 0), told.Usage);
    }

    [Fact]
    public async Task RevokedKey_ItsAttemptRecordsTheStatusAsErrorType_TheDeliveredOneNone_AndTheSpansCarryTheGenAiAttributes()
    {
        await using var s = await Scenario.StartAsync();
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.Revoked);
        using var spans = new AttemptSpans();
        using var request = spans.Message(HttpMethod.Post, "/v1/messages", Scenario.MessageBody());
        using (var response = await s.Proxy.Agent.SendAsync(request, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("backup", FailoverTests.Header(response, "x-afp-key"));
        }

        await FailoverTests.WaitUntilAsync(() => spans.Count == 2);
        var metrics = await ScrapeUntilAsync(s.Proxy, m => m.Find(Duration + "_count").Sum(x => x.Value) == 2);

        // The revoked key's 401, before the provider had answered for the model (not yet a label); the backup's answer.
        Assert.Equal(1, metrics.Value(Duration + "_count", [.. Labels("anthropic", "other", null, "primary"), ("error_type", "401")]));
        Assert.Equal(1, metrics.Value(Duration + "_count", Labels("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5", "backup")));
        Assert.Null(metrics.Find(Duration + "_count", ("afp_key", "backup")).Single()["error_type"]);
        Assert.Empty(metrics.Find(FirstChunk + "_count"));

        var attempts = spans.Stopped;
        Assert.All(attempts, a =>
        {
            Assert.Equal("anthropic", a.GetTagItem("gen_ai.provider.name"));
            Assert.Equal("chat", a.GetTagItem("gen_ai.operation.name"));
            Assert.Equal("claude-sonnet-4-5", a.GetTagItem("gen_ai.request.model"));
            Assert.Equal("test-agent", a.GetTagItem("afp.client"));
        });
        Assert.Equal("401", attempts[0].GetTagItem("error.type"));
        Assert.Null(attempts[0].GetTagItem("gen_ai.usage.input_tokens"));
        Assert.Null(attempts[0].GetTagItem("gen_ai.response.model"));
        Assert.Null(attempts[1].GetTagItem("error.type"));
        Assert.Equal("claude-sonnet-4-5", attempts[1].GetTagItem("gen_ai.response.model"));
        var sent = s.AgentRequests[1].Body.Length;
        Assert.Equal((long)Math.Max(1, sent / 4), attempts[1].GetTagItem("gen_ai.usage.input_tokens"));
        Assert.True((long)attempts[1].GetTagItem("gen_ai.usage.output_tokens")! > 0);

        var tagText = string.Join(' ', attempts.SelectMany(a => a.TagObjects).Select(t => $"{t.Key}={t.Value}"));
        AssertNoSecret(s, tagText);
        AssertNoSecret(s, metrics.Text);
        Assert.DoesNotContain("/v1/messages", tagText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MadeUpModels_FoldIntoOther_OnTheDurationToo()
    {
        await using var s = await Scenario.StartAsync();
        using (await s.Proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(model: "claude-sonnet-4-5"), Ct))
        {
        }

        // Made-up names the provider answers 404 for: never labels. Bounded: 30 requests stand for the 10,000.
        const int MadeUp = 30;
        for (var i = 0; i < MadeUp; i++)
        {
            using var made = await s.Proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(model: $"claude-made-up-{i}", stream: i % 2 == 0), Ct);
            Assert.Equal(HttpStatusCode.NotFound, made.StatusCode);
        }

        var metrics = await ScrapeUntilAsync(s.Proxy, m => m.Find(Duration + "_count").Sum(x => x.Value) == MadeUp + 1);
        var models = metrics.Samples.Where(x => x.Name.StartsWith("gen_ai_client_operation", StringComparison.Ordinal))
            .SelectMany(x => new[] { x["gen_ai_request_model"], x["gen_ai_response_model"] }).Where(m => m is not null).Distinct().ToList();
        Assert.Equal(["claude-sonnet-4-5", "other"], models.Order(StringComparer.Ordinal));
        Assert.Equal(MadeUp, metrics.Value(Duration + "_count", ("gen_ai_request_model", "other"), ("error_type", "404")));
        Assert.Equal(2, metrics.Find(Duration + "_count").Count());
    }

    [Fact]
    public async Task PlatformMeters_RuntimeServerAndClient_PerHost_WithoutAPathAsALabel()
    {
        await using var a = await Scenario.StartAsync(configure: c => c.Set("Telemetry:RequestMeters", "true"));
        await using var b = await Scenario.StartAsync(configure: c => c.Set("Telemetry:RequestMeters", "true"));
        using (var response = await a.Proxy.Agent.PostAsync("/v1/messages?beta=true", Scenario.MessageBody(), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        using (var response = await a.Proxy.Agent.GetAsync("/v1/agents/secret-project-4711/files?name=x", Ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        }

        // Every call each host made to its upstream (the agent's two, and its key checks), and nothing else: not the other
        // host's, not the test's own HttpClients, not the /metrics scrapes.
        var metrics = await ScrapeUntilAsync(a.Proxy, m =>
            m.Find("http_server_request_duration_seconds_count").Sum(x => x.Value) == 2
            && m.Find("http_client_request_duration_seconds_count").Sum(x => x.Value) == a.Upstream.RequestCount);
        var other = await ScrapeUntilAsync(b.Proxy, m => m.Find("http_client_request_duration_seconds_count").Sum(x => x.Value) == b.Upstream.RequestCount);

        Assert.Contains(metrics.Samples, x => x.Name.StartsWith("dotnet_gc_", StringComparison.Ordinal));
        Assert.Contains(metrics.Samples, x => x.Name.StartsWith("dotnet_process_cpu_time", StringComparison.Ordinal));
        Assert.Contains(metrics.Samples, x => x.Name.StartsWith("kestrel_", StringComparison.Ordinal));
        Assert.Contains(metrics.Samples, x => x.Name.StartsWith("aspnetcore_memory_pool_rented", StringComparison.Ordinal));
        Assert.Empty(other.Find("http_server_request_duration_seconds_count"));

        var server = metrics.Find("http_server_request_duration_seconds_count").ToList();
        Assert.Equal(["200", "404"], server.Select(x => x["http_response_status_code"]!).Order(StringComparer.Ordinal));
        Assert.All(server, x => Assert.Equal(["http_request_method", "http_response_status_code", "network_protocol_version", "url_scheme"], x.Labels.Keys.Where(k => k is not ("job" or "instance" or "otel_scope_name" or "otel_scope_version")).Order(StringComparer.Ordinal)));
        Assert.All(metrics.Find("http_client_request_duration_seconds_count"), x => Assert.Equal(new SimulatedProviderOptions().Name, x["server_address"]));
        // The upstream's IP, which a CDN front changes, is no label of the connection count.
        Assert.All(metrics.Find("http_client_open_connections"), x => Assert.DoesNotContain("network_peer_address", x.Labels.Keys));
        Assert.NotEmpty(metrics.Find("http_client_open_connections"));
        Assert.Contains("600", metrics.Find("http_server_request_duration_seconds_bucket").Select(x => x["le"]));
        Assert.DoesNotContain("/v1/", metrics.Text, StringComparison.Ordinal);
        Assert.DoesNotContain("secret-project", metrics.Text, StringComparison.Ordinal);
        AssertNoSecret(a, metrics.Text);
    }

    [Fact]
    public async Task ByDefault_TheRuntimeAndConnectionsOnly_NoPerRequestPlatformMeasurement()
    {
        await using var s = await Scenario.StartAsync();
        using (var response = await s.Proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        var metrics = await ScrapeUntilAsync(s.Proxy, m => m.Find("afp_requests_total").Any());

        Assert.Contains(metrics.Samples, x => x.Name.StartsWith("dotnet_gc_", StringComparison.Ordinal));
        Assert.Contains(metrics.Samples, x => x.Name.StartsWith("kestrel_", StringComparison.Ordinal));
        Assert.DoesNotContain(metrics.Samples, x => x.Name.StartsWith("http_server_", StringComparison.Ordinal) || x.Name.StartsWith("http_client_", StringComparison.Ordinal));
        // Kestrel's memory pool records on every block it lends: per request, so off with the others.
        Assert.DoesNotContain(metrics.Samples, x => x.Name.StartsWith("aspnetcore_memory_pool_", StringComparison.Ordinal));
    }

    private static (string Label, string Value)[] Labels(string provider, string requestModel, string? responseModel, string key)
    {
        var labels = new List<(string, string)>
        {
            ("gen_ai_provider_name", provider), ("gen_ai_operation_name", "chat"), ("gen_ai_request_model", requestModel),
            ("afp_pool", provider), ("afp_key", key), ("afp_client", "test-agent"),
        };
        if (responseModel is not null)
        {
            labels.Add(("gen_ai_response_model", responseModel));
        }

        return [.. labels];
    }

    /// <summary>Streams an answer to the agent; once <paramref name="content"/> has reached it, lets the stream end.</summary>
    private static async Task<string> StreamAsync(Scenario s, string path, HttpContent body, string content, TaskCompletionSource end)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = body };
        using var response = await s.Proxy.Agent.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(Ct));
        var text = new StringBuilder();
        var buffer = new char[4096];
        while (await reader.ReadAsync(buffer, Ct) is var read and > 0)
        {
            text.Append(buffer, 0, read);
            if (text.ToString().Contains(content, StringComparison.Ordinal))
            {
                end.TrySetResult();
            }
        }

        return text.ToString();
    }

    private static StringContent ChatBody(bool stream)
        => new($$"""{"model":"gpt-4o","stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json");

    private static void AssertNoSecret(Scenario s, string text)
    {
        Assert.DoesNotContain(s.Proxy.ClientToken, text, StringComparison.Ordinal);
        Assert.All(s.SecretsByName.Values, secret => Assert.DoesNotContain(secret, text, StringComparison.Ordinal));
    }

    private static async Task<PrometheusText> ScrapeUntilAsync(ProxyHost proxy, Func<PrometheusText, bool> ready)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(20));
        while (true)
        {
            // An attempt is recorded as its answer ends, which the agent may see a moment before.
            var metrics = PrometheusText.Parse(await proxy.Management.GetStringAsync("/metrics", timeout.Token));
            if (ready(metrics))
            {
                return metrics;
            }

            await Task.Delay(20, timeout.Token);
        }
    }
}
