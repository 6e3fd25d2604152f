using System.Diagnostics;

namespace AuthFailoverProxy.Telemetry;

/// <summary>
/// What trace context goes upstream from a proxy that traces (an OTLP endpoint is set): the W3C <c>traceparent</c> of
/// the proxy's own attempt span, so the upstream call can be found in the proxy's trace. Nothing else: the agent's
/// <c>tracestate</c> and <c>baggage</c> are its tracer's business, not the provider's, and are never sent (see
/// <see cref="Proxying.UpstreamHeaders"/>, which drops the agent's trace headers before this runs). A proxy that does not
/// trace sets no propagator at all, so whether it sends a <c>traceparent</c> is its own setting's business, not
/// whether something else in the process listens to the activity source.
/// </summary>
internal sealed class UpstreamTracePropagator : DistributedContextPropagator
{
    private const string TraceParent = "traceparent";

    private UpstreamTracePropagator()
    {
    }

    public static UpstreamTracePropagator Instance { get; } = new();

    public override IReadOnlyCollection<string> Fields { get; } = [TraceParent];

    public override void Inject(Activity? activity, object? carrier, PropagatorSetterCallback? setter)
    {
        if (activity is { IdFormat: ActivityIdFormat.W3C, Id: { } id } && setter is not null)
        {
            setter(carrier, TraceParent, id);
        }
    }

    public override void ExtractTraceIdAndState(object? carrier, PropagatorGetterCallback? getter, out string? traceId, out string? traceState)
        => (traceId, traceState) = (null, null);

    public override IEnumerable<KeyValuePair<string, string?>>? ExtractBaggage(object? carrier, PropagatorGetterCallback? getter) => null;
}
