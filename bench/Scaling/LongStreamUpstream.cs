using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Scaling;

/// <summary>How the upstream paces a streamed answer.</summary>
/// <param name="FirstContentAfter">Time between the opening events (message_start, content_block_start, ping) and the first content_block_delta.</param>
/// <param name="Deltas">How many content_block_delta events, the first one after <paramref name="FirstContentAfter"/>, the others one per <paramref name="Interval"/> from the start.</param>
/// <param name="Interval">Time between content events; the closing events come <paramref name="Deltas"/> × <paramref name="Interval"/> after the start.</param>
internal sealed record StreamShape(TimeSpan FirstContentAfter, int Deltas, TimeSpan Interval)
{
    public TimeSpan Length => Interval * Deltas;
}

/// <summary>When the upstream saw each numbered stream, in Stopwatch ticks (0: not seen): the request's headers, the end of its body, the flush of its first content event.</summary>
internal sealed class UpstreamTimes(int slots)
{
    public long[] RequestIn { get; } = new long[slots];

    public long[] BodyIn { get; } = new long[slots];

    public long[] FirstContentSent { get; } = new long[slots];
}

/// <summary>
/// The upstream of the long-stream runs, in this process on 127.0.0.1: <c>GET /v1/models</c> for the proxy's key checks,
/// and <c>POST /v1/messages</c> read to the end, then answered with an event stream in the Anthropic format paced by
/// <see cref="Shape"/>: message_start, content_block_start and ping at once; the first content_block_delta
/// <see cref="StreamShape.FirstContentAfter"/> later; one more per interval; then content_block_stop, message_delta,
/// message_stop. A request carrying <c>x-bench-stream: N</c> has its times recorded in slot N of <see cref="Track"/>'s
/// <see cref="UpstreamTimes"/> (Stopwatch ticks, the clock the client reads too).
/// </summary>
internal sealed class LongStreamUpstream : IAsyncDisposable
{
    public const string StreamHeader = "x-bench-stream";

    private static readonly byte[] Opening = Encoding.UTF8.GetBytes(
        "event: message_start\n" +
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench_long_stream\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":75000,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n" +
        "event: content_block_start\n" +
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
        "event: ping\n" +
        "data: {\"type\": \"ping\"}\n\n");

    private static readonly byte[] Delta = Encoding.UTF8.GetBytes(
        "event: content_block_delta\n" +
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Reading the file to see how the retry loop handles a 529 before \"}}\n\n");

    private static readonly byte[] Closing = Encoding.UTF8.GetBytes(
        "event: content_block_stop\n" +
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
        "event: message_delta\n" +
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":400}}\n\n" +
        "event: message_stop\n" +
        "data: {\"type\":\"message_stop\"}\n\n");

    private WebApplication _app = null!;
    private UpstreamTimes? _times;

    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>Gets or sets the pace of the answers to requests that arrive from now on.</summary>
    public StreamShape Shape { get; set; } = new(TimeSpan.Zero, 1, TimeSpan.Zero);

    public static async Task<LongStreamUpstream> StartAsync()
    {
        var upstream = new LongStreamUpstream();
        (upstream._app, upstream.BaseAddress) = await LoopbackServer.StartAsync(upstream.HandleAsync);
        return upstream;
    }

    /// <summary>Records from now on when each numbered stream came and got its first content; null stops recording.</summary>
    public void Track(UpstreamTimes? times) => Volatile.Write(ref _times, times);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var aborted = context.RequestAborted;
        var times = Volatile.Read(ref _times);
        var slot = int.TryParse(request.Headers[StreamHeader], NumberStyles.None, CultureInfo.InvariantCulture, out var n) && times is not null && n < times.BodyIn.Length ? n : -1;
        if (slot >= 0)
        {
            times!.RequestIn[slot] = Stopwatch.GetTimestamp();
        }

        try
        {
            // Like the provider: the whole request is read before anything is answered.
            await request.Body.CopyToAsync(Stream.Null, aborted);
            if (slot >= 0)
            {
                times!.BodyIn[slot] = Stopwatch.GetTimestamp();
            }

            if (request.Path.Value == "/v1/models")
            {
                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync("""{"data":[],"has_more":false}""", aborted);
                return;
            }

            if (request.Path.Value != "/v1/messages" || !HttpMethods.IsPost(request.Method))
            {
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                return;
            }

            await StreamAsync(context, Shape, slot >= 0 ? times : null, slot, aborted);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            // The caller went away.
        }
        catch (IOException) when (aborted.IsCancellationRequested)
        {
            // The caller went away mid-write.
        }
    }

    private static async Task StreamAsync(HttpContext context, StreamShape shape, UpstreamTimes? times, int slot, CancellationToken aborted)
    {
        var start = Stopwatch.GetTimestamp();
        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        var body = response.Body;
        await body.WriteAsync(Opening, aborted);
        await body.FlushAsync(aborted);
        if (shape.FirstContentAfter > TimeSpan.Zero)
        {
            await Task.Delay(shape.FirstContentAfter, aborted);
        }

        await body.WriteAsync(Delta, aborted);
        await body.FlushAsync(aborted);
        if (times is not null)
        {
            times.FirstContentSent[slot] = Stopwatch.GetTimestamp();
        }

        for (var i = 1; i < shape.Deltas; i++)
        {
            await DelayUntilAsync(start, shape.Interval * i, aborted);
            await body.WriteAsync(Delta, aborted);
            await body.FlushAsync(aborted);
        }

        await DelayUntilAsync(start, shape.Length, aborted);
        await body.WriteAsync(Closing, aborted);
        await body.FlushAsync(aborted);
    }

    private static Task DelayUntilAsync(long start, TimeSpan due, CancellationToken aborted)
    {
        var left = due - Stopwatch.GetElapsedTime(start);
        return left > TimeSpan.Zero ? Task.Delay(left, aborted) : Task.CompletedTask;
    }
}
