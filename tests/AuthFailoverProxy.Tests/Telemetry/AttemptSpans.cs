using System.Collections.Concurrent;
using System.Diagnostics;
using AuthFailoverProxy.Telemetry;

namespace AuthFailoverProxy.Tests.Telemetry;

/// <summary>
/// Listens to the proxy's activities of one trace, the one <see cref="Message"/> starts: the listener is process-wide,
/// and other tests' traces are left out. Like the proxy's own tracer, it listens to ASP.NET Core's source too: the
/// request's activity is what continues the agent's trace, and the host starts it only for a listener.
/// </summary>
internal sealed class AttemptSpans : IDisposable
{
    private readonly ConcurrentQueue<Activity> _stopped = new();
    private readonly ActivityListener _listener;

    public AttemptSpans()
    {
        var traceId = TraceId;
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is ProxyTelemetry.Name or "Microsoft.AspNetCore",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                if (activity.TraceId == traceId && activity.Source.Name == ProxyTelemetry.Name)
                {
                    _stopped.Enqueue(activity);
                }
            },
        };
        ActivitySource.AddActivityListener(_listener);
    }

    public ActivityTraceId TraceId { get; } = ActivityTraceId.CreateRandom();

    /// <summary>Gets the number of activities of the trace that have ended.</summary>
    public int Count => _stopped.Count;

    /// <summary>Gets the activities of the trace that have ended, in the order they started.</summary>
    public IReadOnlyList<Activity> Stopped => [.. _stopped.OrderBy(a => a.StartTimeUtc)];

    /// <summary>Returns a request in the trace, as an agent that traces sends it.</summary>
    public HttpRequestMessage Message(HttpMethod method, string path, HttpContent? content = null)
    {
        var request = new HttpRequestMessage(method, path) { Content = content };
        request.Headers.Add("traceparent", $"00-{TraceId}-{ActivitySpanId.CreateRandom()}-01");
        return request;
    }

    public void Dispose() => _listener.Dispose();
}
