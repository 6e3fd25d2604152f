
namespace Scaling;

/// <summary>
/// The upstream the scaling runs call, in this process on 127.0.0.1: an Anthropic-shaped answer to
/// <c>POST /v1/messages</c> (the body is read to the end and dropped), <c>GET /v1/models</c> for the proxy's key checks,
/// and <c>POST /v1/sse</c>, an event stream that sends its first event at once and then stays open, idle, until
/// <see cref="ReleaseStreams"/> (or 60 s). A key whose secret contains <c>DEAD</c> gets 401 authentication_error.
/// </summary>
internal sealed class ScalingUpstream : IAsyncDisposable
{
    private static readonly TimeSpan StreamBound = TimeSpan.FromSeconds(60);
    private WebApplication _app = null!;
    private TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Uri BaseAddress { get; private set; } = null!;

    public static async Task<ScalingUpstream> StartAsync()
    {
        var upstream = new ScalingUpstream();
        (upstream._app, upstream.BaseAddress) = await LoopbackServer.StartAsync(upstream.HandleAsync);
        return upstream;
    }

    /// <summary>Ends every idle stream now; streams opened later wait for the next call.</summary>
    public void ReleaseStreams() => Interlocked.Exchange(ref _release, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    public async ValueTask DisposeAsync()
    {
        ReleaseStreams();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var key = request.Headers["x-api-key"].ToString();
        await request.Body.CopyToAsync(Stream.Null, context.RequestAborted);
        if (key.Contains("DEAD", StringComparison.Ordinal))
        {
            context.Response.StatusCode = StatusCodes.Status401Unauthorized;
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("""{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}""");
            return;
        }

        switch (request.Path.Value)
        {
            case "/v1/models":
                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync("""{"data":[],"has_more":false}""");
                break;
            case "/v1/sse":
                await StreamAsync(context);
                break;
            default:
                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync("""{"id":"msg_bench","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hello."}],"stop_reason":"end_turn","usage":{"input_tokens":9,"output_tokens":2}}""");
                break;
        }
    }

    private async Task StreamAsync(HttpContext context)
    {
        var release = Volatile.Read(ref _release).Task;
        context.Response.ContentType = "text/event-stream";
        await context.Response.WriteAsync("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench\"}}\n\n");
        await context.Response.Body.FlushAsync();
        await Task.WhenAny(release, Task.Delay(StreamBound, context.RequestAborted)).ContinueWith(static _ => { }, TaskScheduler.Default);
        if (!context.RequestAborted.IsCancellationRequested)
        {
            await context.Response.WriteAsync("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        }
    }
}
