using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace Scaling;

/// <summary>What one long-stream run sends: <paramref name="Streams"/> streams through the proxy, started evenly over <paramref name="Ramp"/>, and one direct probe every <paramref name="DirectEvery"/> of them (0: none).</summary>
internal sealed record LongStreamPlan(int Streams, TimeSpan Ramp, int BodyBytes, StreamShape Shape, int DirectEvery)
{
    /// <summary>Gets the number of direct probes.</summary>
    public int DirectProbes => DirectEvery > 0 ? (Streams + DirectEvery - 1) / DirectEvery : 0;
}

/// <summary>One stream as the client saw it. Times are Stopwatch ticks; 0 when it did not happen.</summary>
internal sealed class StreamOutcome
{
    public required int Slot { get; init; }

    public required bool Direct { get; init; }

    public long Sent { get; set; }

    public long FirstContent { get; set; }

    /// <summary>Gets or sets when the upstream had the request's headers.</summary>
    public long UpstreamRequestIn { get; set; }

    /// <summary>Gets or sets when the upstream had read the whole body.</summary>
    public long UpstreamBodyIn { get; set; }

    /// <summary>Gets or sets when the upstream flushed this stream's first content event.</summary>
    public long UpstreamFirstContent { get; set; }

    public long Ended { get; set; }

    public int Deltas { get; set; }

    public bool Complete { get; set; }

    public string? Error { get; set; }

    /// <summary>Gets the time to first content: from sending the request to reading the first content_block_delta, in ms.</summary>
    public double TimeToFirstContentMs => Stopwatch.GetElapsedTime(Sent, FirstContent).TotalMilliseconds;

    /// <summary>Gets whether the upstream's times of this stream are known, along with its first content.</summary>
    public bool Timed => FirstContent > 0 && UpstreamRequestIn > 0 && UpstreamBodyIn > 0 && UpstreamFirstContent > 0;

    /// <summary>Gets the way in: from sending the request to the upstream having read the whole body, in ms.</summary>
    public double RequestLegMs => Stopwatch.GetElapsedTime(Sent, UpstreamBodyIn).TotalMilliseconds;

    /// <summary>Gets the way in until the upstream had the request's headers, in ms (a proxy that buffers the body sends them after it).</summary>
    public double HeadersInMs => Stopwatch.GetElapsedTime(Sent, UpstreamRequestIn).TotalMilliseconds;

    /// <summary>Gets the upstream's own time: from having the body to flushing the first content event, in ms.</summary>
    public double UpstreamMs => Stopwatch.GetElapsedTime(UpstreamBodyIn, UpstreamFirstContent).TotalMilliseconds;

    /// <summary>Gets the way out: from the upstream's flush of the first content event to the client reading it, in ms.</summary>
    public double ResponseLegMs => Stopwatch.GetElapsedTime(UpstreamFirstContent, FirstContent).TotalMilliseconds;
}

/// <summary>The proxied streams of a run, counted as they go (read by the sampler while the run is under way).</summary>
internal sealed class LoadProgress
{
    private int _started;
    private int _settled;
    private int _ended;

    /// <summary>Gets how many streams were sent so far.</summary>
    public int Started => Volatile.Read(ref _started);

    /// <summary>Gets how many streams got their first content event, or failed before it: the proxy has committed their answers.</summary>
    public int Settled => Volatile.Read(ref _settled);

    /// <summary>Gets how many streams are over.</summary>
    public int Ended => Volatile.Read(ref _ended);

    public void Start() => Interlocked.Increment(ref _started);

    public void Settle() => Interlocked.Increment(ref _settled);

    public void End() => Interlocked.Increment(ref _ended);
}

/// <summary>
/// The client of the long-stream runs: an open loop that starts streams on a schedule whatever the earlier ones are
/// doing, sends the same body bytes every time, reads each event stream as it comes (into a 4 KiB buffer, keeping nothing
/// but counts and times), and gives up on a stream after 60 s.
/// </summary>
internal static class LongStreamLoad
{
    public const string DirectKey = "sk-ant-api03-longStreamDirect00000000000000000000";
    public static readonly TimeSpan StreamBound = TimeSpan.FromSeconds(60);

    private static readonly byte[] ContentMarker = "event: content_block_delta"u8.ToArray();
    private static readonly byte[] StopMarker = "event: message_stop"u8.ToArray();

    /// <summary>A Messages API request of exactly <paramref name="size"/> bytes asking for a stream: a conversation of ~2 KB turns, <c>"stream": true</c> last, as Claude Code sends it.</summary>
    public static byte[] Body(int size)
    {
        const string Head = """{"model":"claude-sonnet-4-5","messages":[""";
        const string Tail = """],"system":"You are Claude Code, Anthropic's official CLI for Claude.","max_tokens":32000,"stream":true}""";
        const string Sentence = "The function reads the configuration, retries the call on a 529 with backoff, and logs the key name, never its secret. ";
        var text = string.Concat(Enumerable.Repeat(Sentence, 2000 / Sentence.Length + 1))[..2000];
        var json = new StringBuilder(size + 4096).Append(Head);
        for (var turn = 0; ; turn++)
        {
            var role = turn % 2 == 0 ? "user" : "assistant";
            var open = $"{(turn > 0 ? "," : string.Empty)}{{\"role\":\"{role}\",\"content\":\"";
            var room = size - json.Length - open.Length - 2 - Tail.Length;
            if (room < 2 * text.Length)
            {
                // The last turn takes what is left, so the body has the exact size.
                json.Append(open).Append(Sentence[0], Math.Max(room, 1)).Append("\"}");
                break;
            }

            json.Append(open).Append(text).Append("\"}");
        }

        var bytes = Encoding.UTF8.GetBytes(json.Append(Tail).ToString());
        return bytes.Length == size ? bytes : throw new InvalidOperationException($"the body came out at {bytes.Length} bytes, not {size}");
    }

    /// <summary>A handler sized for the run: HTTP/1.1, a connection per open stream, nothing proxied, nothing decompressed.</summary>
    public static HttpClient Client() => new(new SocketsHttpHandler
    {
        UseProxy = false,
        MaxConnectionsPerServer = 4096,
        ConnectTimeout = TimeSpan.FromSeconds(5),
        AutomaticDecompression = DecompressionMethods.None,
        UseCookies = false,
        PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
    })
    {
        Timeout = Timeout.InfiniteTimeSpan, // each stream has its own 60 s bound
    };

    /// <summary>
    /// Runs <paramref name="plan"/>: the proxied streams at evenly spaced times, the direct probes half a slot after every
    /// <see cref="LongStreamPlan.DirectEvery"/>-th of them. Returns once every stream is over (each is bounded by 60 s).
    /// </summary>
    public static async Task<List<StreamOutcome>> RunAsync(HttpClient client, ProxyProcess proxy, Uri direct, byte[] body, LongStreamPlan plan, LongStreamUpstream upstream, LoadProgress progress, CancellationToken cancellationToken)
    {
        var slot = plan.Ramp / plan.Streams;
        var schedule = new List<(TimeSpan At, StreamOutcome Outcome)>(plan.Streams + plan.DirectProbes);
        for (var i = 0; i < plan.Streams; i++)
        {
            schedule.Add((slot * i, new StreamOutcome { Slot = i, Direct = false }));
            if (plan.DirectEvery > 0 && i % plan.DirectEvery == 0)
            {
                schedule.Add((slot * (i + 0.5), new StreamOutcome { Slot = plan.Streams + (i / plan.DirectEvery), Direct = true }));
            }
        }

        var times = new UpstreamTimes(schedule.Count);
        upstream.Track(times);
        var tasks = new List<Task>(schedule.Count);
        var clock = Stopwatch.StartNew();
        try
        {
            foreach (var (at, outcome) in schedule)
            {
                var wait = at - clock.Elapsed;
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, cancellationToken);
                }

                var target = outcome.Direct ? direct : proxy.Agent;
                tasks.Add(Task.Run(() => StreamAsync(client, target, body, plan.Shape.Deltas, outcome, outcome.Direct ? null : progress, cancellationToken), CancellationToken.None));
            }
        }
        finally
        {
            // Every stream started ends by itself within its bound, also when the schedule was cut short.
            await Task.WhenAll(tasks);
            upstream.Track(null);
        }

        foreach (var (_, outcome) in schedule)
        {
            outcome.UpstreamRequestIn = times.RequestIn[outcome.Slot];
            outcome.UpstreamBodyIn = times.BodyIn[outcome.Slot];
            outcome.UpstreamFirstContent = times.FirstContentSent[outcome.Slot];
        }

        return [.. schedule.Select(s => s.Outcome)];
    }

    /// <summary>Short streams (the upstream's shape is the caller's business) through <paramref name="target"/>, <paramref name="concurrency"/> at a time; throws when one fails.</summary>
    public static async Task WarmAsync(HttpClient client, Uri target, byte[] body, int deltas, int count, int concurrency)
    {
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            while (Interlocked.Increment(ref next) < count)
            {
                var outcome = new StreamOutcome { Slot = -1, Direct = false };
                await StreamAsync(client, target, body, deltas, outcome, progress: null, CancellationToken.None);
                if (!outcome.Complete)
                {
                    throw new InvalidOperationException($"a warm-up stream through {target} failed: {outcome.Error}");
                }
            }
        }));
    }

    private static async Task StreamAsync(HttpClient client, Uri target, byte[] body, int deltas, StreamOutcome outcome, LoadProgress? progress, CancellationToken cancellationToken)
    {
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bound.CancelAfter(StreamBound);
        var buffer = ArrayPool<byte>.Shared.Rent(4096);
        var settled = false;
        progress?.Start();
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(target, "v1/messages"))
            {
                Content = new ByteArrayContent(body),
                Version = HttpVersion.Version11,
                VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            request.Headers.Add("x-api-key", outcome.Direct ? DirectKey : ProxyProcess.ClientToken);
            request.Headers.Add("anthropic-version", "2023-06-01");
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
            if (outcome.Slot >= 0)
            {
                request.Headers.Add(LongStreamUpstream.StreamHeader, outcome.Slot.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }

            outcome.Sent = Stopwatch.GetTimestamp();
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, bound.Token);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                outcome.Error = $"status {(int)response.StatusCode}";
                return;
            }

            await using var stream = await response.Content.ReadAsStreamAsync(bound.Token);
            // The tail of the previous read stays in front of the next one, so a marker cut in two is still found, once.
            var kept = 0;
            var stopped = false;
            while (true)
            {
                var read = await stream.ReadAsync(buffer.AsMemory(kept), bound.Token);
                var now = Stopwatch.GetTimestamp();
                if (read == 0)
                {
                    break;
                }

                var window = buffer.AsSpan(0, kept + read);
                var found = Count(window, ContentMarker);
                if (found > 0 && outcome.Deltas == 0)
                {
                    outcome.FirstContent = now;
                    settled = true;
                    progress?.Settle();
                }

                outcome.Deltas += found;
                stopped |= window.IndexOf(StopMarker) >= 0;
                kept = Math.Min(ContentMarker.Length - 1, window.Length);
                window[^kept..].CopyTo(buffer);
            }

            outcome.Complete = stopped && outcome.Deltas == deltas;
            outcome.Error = outcome.Complete ? null : $"ended after {outcome.Deltas} of {deltas} content events{(stopped ? string.Empty : ", no message_stop")}";
        }
        catch (OperationCanceledException) when (bound.IsCancellationRequested)
        {
            outcome.Error = cancellationToken.IsCancellationRequested ? "cancelled: the run's time was up" : $"not over within {StreamBound.TotalSeconds:0} s";
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            outcome.Error = $"{ex.GetType().Name}: {ex.Message}";
        }
        finally
        {
            outcome.Ended = Stopwatch.GetTimestamp();
            ArrayPool<byte>.Shared.Return(buffer);
            if (!settled)
            {
                progress?.Settle();
            }

            progress?.End();
        }
    }

    private static int Count(ReadOnlySpan<byte> text, ReadOnlySpan<byte> marker)
    {
        var count = 0;
        for (var at = text.IndexOf(marker); at >= 0; at = text.IndexOf(marker))
        {
            count++;
            text = text[(at + marker.Length)..];
        }

        return count;
    }
}
