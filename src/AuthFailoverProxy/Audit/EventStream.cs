using System.Text.Json;
using AuthFailoverProxy.Events;

namespace AuthFailoverProxy.Audit;

/// <summary>
/// <c>GET /admin/events/stream</c>: the events this replica raises from now on, as a server-sent event stream, for the
/// console's live view. The console reads it with <c>fetch</c>, which can carry the bearer token (a browser's
/// <c>EventSource</c> cannot, and a cookie would open the door to cross-site request forgery). Each event is the JSON
/// the trail holds; a comment every <see cref="KeepAlive"/> keeps proxies between the page and the proxy from closing a
/// quiet stream. Events carry no secret (keys by name and fingerprint, provider messages masked).
/// </summary>
/// <remarks>A stream ends when the proxy begins to stop, so an open console never holds up a shutdown.</remarks>
internal sealed class EventStream(ProxyEvents events, TimeProvider time, IHostApplicationLifetime lifetime)
{
    /// <summary>How long a quiet stream waits before it says it is still there.</summary>
    internal static readonly TimeSpan KeepAlive = TimeSpan.FromSeconds(15);

    private static readonly byte[] Ping = ": still here\n\n"u8.ToArray();

    public async Task StreamAsync(HttpContext context)
    {
        using var ending = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, lifetime.ApplicationStopping);
        var aborted = ending.Token;
        var reader = events.SubscribeUntil(capacity: 1_000, aborted);
        var response = context.Response;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache, no-store";
        response.Headers["X-Accel-Buffering"] = "no";
        await response.WriteAsync($"retry: 3000\n: events raised by replica {ProxyEvent.ThisReplica}\n\n", aborted);
        await response.Body.FlushAsync(aborted);
        try
        {
            while (!aborted.IsCancellationRequested)
            {
                using var quiet = new CancellationTokenSource(KeepAlive, time);
                using var waiting = CancellationTokenSource.CreateLinkedTokenSource(aborted, quiet.Token);
                bool ready;
                try
                {
                    ready = await reader.WaitToReadAsync(waiting.Token);
                }
                catch (OperationCanceledException) when (!aborted.IsCancellationRequested)
                {
                    await response.Body.WriteAsync(Ping, aborted);
                    await response.Body.FlushAsync(aborted);
                    continue;
                }

                if (!ready)
                {
                    return;
                }

                while (reader.TryRead(out var proxyEvent))
                {
                    await response.WriteAsync("event: proxy-event\ndata: ", aborted);
                    await response.WriteAsync(JsonSerializer.Serialize(proxyEvent, AuditJsonContext.Compact.ProxyEvent), aborted);
                    await response.WriteAsync("\n\n", aborted);
                }

                await response.Body.FlushAsync(aborted);
            }
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            // The page went away, or the proxy is stopping (the page reconnects to another replica); the subscription goes with it.
        }
    }
}
