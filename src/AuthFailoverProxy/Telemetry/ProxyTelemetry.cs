using System.Diagnostics;

namespace AuthFailoverProxy.Telemetry;

/// <summary>
/// The names the proxy's telemetry goes out under: one <see cref="System.Diagnostics.Metrics.Meter"/> and one
/// <see cref="ActivitySource"/>, both called <c>AuthFailoverProxy</c>, and the label values shared by the instruments.
/// Label values are constant strings or the names of pools and keys, so recording a measurement allocates nothing; a
/// secret, a request id or a path is never a label.
/// </summary>
internal static class ProxyTelemetry
{
    /// <summary>The name of the meter and of the activity source.</summary>
    public const string Name = "AuthFailoverProxy";

    /// <summary>The label value for "no key": the proxy answered itself, or a failover found no next key.</summary>
    public const string NoKey = "none";

    /// <summary>The status class of an upstream call that got no answer.</summary>
    public const string NoStatus = "none";

    /// <summary>
    /// Gets the source of one activity per upstream attempt. Without a listener (no OTLP endpoint configured)
    /// <see cref="ActivitySource.StartActivity(string, ActivityKind)"/> returns null and an attempt pays one check.
    /// </summary>
    public static ActivitySource Source { get; } = new(Name);

    /// <summary>
    /// Gets the histogram buckets for upstream durations, in seconds. The SDK's default stops at 10 s; an LLM call that
    /// streams a long answer takes minutes.
    /// </summary>
    public static IReadOnlyList<double> DurationBuckets { get; } = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

    private static readonly string[] StatusClasses = ["1xx", "2xx", "3xx", "4xx", "5xx"];

    /// <summary>Returns <c>2xx</c>, <c>4xx</c>… for an HTTP status, <c>none</c> for no answer, without allocating.</summary>
    public static string StatusClass(int status) => status is >= 100 and < 600 ? StatusClasses[(status / 100) - 1] : NoStatus;

    /// <summary>Returns the <c>gen_ai.provider.name</c> of a pool's dialect (OpenTelemetry's well-known values).</summary>
    public static string ProviderName(KeyPool.ProviderKind kind) => kind == KeyPool.ProviderKind.Anthropic ? "anthropic" : "openai";
}

/// <summary>
/// Why an upstream call made for a model failed: the <c>error.type</c> of <c>gen_ai.client.operation.duration</c> and of
/// the attempt's span. Few values, as OpenTelemetry asks: the upstream's error status as a number (<c>401</c>,
/// <c>429</c>, <c>529</c>: also the status an error event at a stream's start stands for), or one of these.
/// </summary>
internal static class ErrorTypes
{
    /// <summary>The agent went away before the answer had passed.</summary>
    public const string ClientGone = "client_gone";

    /// <summary>The upstream sent nothing for <c>Failover:ActivityTimeout</c>, or a stream's headers not within <c>Failover:StreamHeadersTimeout</c>.</summary>
    public const string Timeout = "timeout";

    /// <summary>No connection (refused, reset, DNS, TLS), or it broke before an answer.</summary>
    public const string Connection = "connection";

    /// <summary>The connection broke while the answer was passing to the agent: the agent saw it cut off.</summary>
    public const string ResponseCut = "response_cut";

    /// <summary>The request could not be sent as it is (a header or target invalid for the upstream): nothing went out.</summary>
    public const string RequestInvalid = "request_invalid";

    private static readonly string[] Statuses = [.. Enumerable.Range(400, 200).Select(s => s.ToString(System.Globalization.CultureInfo.InvariantCulture))];

    /// <summary>Returns an error status (400–599) as text without allocating.</summary>
    public static string Status(int status)
        => status is >= 400 and < 600 ? Statuses[status - 400] : status.ToString(System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>Why a request moved past a key: the <c>reason</c> label of <c>afp.failovers</c>.</summary>
internal static class FailoverReasons
{
    /// <summary>The upstream rejected the key (revoked, forbidden, out of credit).</summary>
    public const string Dead = "dead";

    /// <summary>The key is rate limited.</summary>
    public const string Cooling = "cooling";

    /// <summary>The key may not serve this request (a model its organization lacks, a client it is not for); it stays in service.</summary>
    public const string Refused = "refused";

    /// <summary>The upstream sent a stream's call no response headers in time; the next key was tried, no key blamed.</summary>
    public const string Hung = "hung";

    /// <summary>The pool's circuit is open: the request went to the fallback pool (safe mode).</summary>
    public const string CircuitOpen = "circuit_open";
}

/// <summary>Why an upstream call was tried again on the same key: the <c>reason</c> label of <c>afp.retries</c>.</summary>
internal static class RetryReasons
{
    /// <summary>The upstream answered 5xx or 408.</summary>
    public const string Status = "status";

    /// <summary>The upstream sent nothing within <c>Failover:ActivityTimeout</c>.</summary>
    public const string Timeout = "timeout";

    /// <summary>No connection, or it broke before an answer.</summary>
    public const string Connection = "connection";
}
