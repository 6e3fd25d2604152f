using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;

namespace Scaling;

/// <summary>The client side of the scaling runs: bounded request loops against the proxy or the upstream.</summary>
internal static class Load
{
    private const string SmallBody = """{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"Say hello."}]}""";
    private const string StreamBody = """{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Say hello."}]}""";

    /// <summary>A JSON request body of exactly <paramref name="size"/> bytes.</summary>
    public static byte[] Body(int size)
    {
        const string Head = """{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":" """;
        const string Tail = "\"}]}";
        var body = new byte[size];
        Encoding.ASCII.GetBytes(Head, body);
        body.AsSpan(Head.Length, size - Head.Length - Tail.Length).Fill((byte)'a');
        Encoding.ASCII.GetBytes(Tail, body.AsSpan(size - Tail.Length));
        return body;
    }

    public static async Task WarmAsync(HttpClient client, ProxyProcess proxy, int count)
    {
        for (var i = 0; i < count; i++)
        {
            await SendAsync(client, proxy.Agent, Encoding.UTF8.GetBytes(SmallBody), withToken: true);
        }
    }

    /// <summary>Median time in ms of <paramref name="reps"/> sequential requests, after one warm-up.</summary>
    public static async Task<double> TimeAsync(HttpClient client, Uri target, byte[] body, int reps, bool withToken)
    {
        await SendAsync(client, target, body, withToken);
        var samples = new List<double>();
        for (var i = 0; i < reps; i++)
        {
            var clock = Stopwatch.StartNew();
            await SendAsync(client, target, body, withToken);
            samples.Add(clock.Elapsed.TotalMilliseconds);
        }

        samples.Sort();
        return samples[samples.Count / 2];
    }

    /// <summary><paramref name="total"/> requests, <paramref name="concurrency"/> at a time: requests/s and median latency in ms.</summary>
    public static async Task<(double Rate, double P50)> ClosedLoopAsync(HttpClient client, ProxyProcess proxy, int total, int concurrency)
    {
        var body = Encoding.UTF8.GetBytes(SmallBody);
        var latencies = new double[total];
        var next = -1;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < total)
            {
                var started = clock.Elapsed;
                await SendAsync(client, proxy.Agent, body, withToken: true);
                latencies[i] = (clock.Elapsed - started).TotalMilliseconds;
            }
        }));
        var elapsed = clock.Elapsed;
        Array.Sort(latencies);
        return (total / elapsed.TotalSeconds, latencies[total / 2]);
    }

    /// <summary>Opens <paramref name="count"/> streams and returns once each has delivered its first event (bounded: 60 s).</summary>
    public static async Task<List<(HttpResponseMessage Response, Stream Body)>> OpenStreamsAsync(HttpClient client, ProxyProcess proxy, int count)
    {
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var streams = await Task.WhenAll(Enumerable.Range(0, count).Select(async _ =>
        {
            using var request = Request(new Uri(proxy.Agent, "v1/sse"), Encoding.UTF8.GetBytes(StreamBody), withToken: true);
            var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, bound.Token);
            response.EnsureSuccessStatusCode();
            var body = await response.Content.ReadAsStreamAsync(bound.Token);
            var buffer = new byte[512];
            var seen = new StringBuilder();
            while (!seen.ToString().Contains("\n\n", StringComparison.Ordinal))
            {
                var read = await body.ReadAsync(buffer, bound.Token);
                if (read == 0)
                {
                    throw new InvalidOperationException("a stream ended before its first event");
                }

                seen.Append(Encoding.UTF8.GetString(buffer, 0, read));
            }

            return (response, body);
        }));
        return [.. streams];
    }

    public static async Task CloseStreamsAsync(List<(HttpResponseMessage Response, Stream Body)> streams)
    {
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await Task.WhenAll(streams.Select(async s =>
        {
            await s.Body.CopyToAsync(Stream.Null, bound.Token);
            await s.Body.DisposeAsync();
            s.Response.Dispose();
        }));
    }

    private static async Task SendAsync(HttpClient client, Uri target, byte[] body, bool withToken)
    {
        using var request = Request(new Uri(target, "v1/messages"), body, withToken);
        using var response = await client.SendAsync(request);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"{target} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }

        await response.Content.CopyToAsync(Stream.Null);
    }

    private static HttpRequestMessage Request(Uri uri, byte[] body, bool withToken)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, uri) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.Add("x-api-key", withToken ? ProxyProcess.ClientToken : "sk-ant-api03-scalingDirect0000000000000000000000");
        request.Headers.Add("anthropic-version", "2023-06-01");
        return request;
    }
}
