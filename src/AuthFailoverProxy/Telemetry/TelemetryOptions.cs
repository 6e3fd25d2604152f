using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Telemetry;

/// <summary>Where traces (and metrics, besides <c>/metrics</c>) are pushed. Bound from <c>Telemetry</c>.</summary>
public sealed class TelemetryOptions
{
    /// <summary>Gets the OTLP exporter's settings.</summary>
    public OtlpTelemetryOptions Otlp { get; set; } = new();

    /// <summary>
    /// Gets or sets a value indicating whether the platform's per-request meters are exported: ASP.NET Core's
    /// <c>http.server.*</c>, HttpClient's <c>http.client.*</c> and Kestrel's memory pool (<c>aspnetcore.memory_pool.*</c>).
    /// Each proxied request then records about sixteen more measurements (see docs/observability.md for what they cost),
    /// while the proxy's own <c>afp.requests</c>, <c>afp.upstream.*</c> and <c>gen_ai.client.*</c> tell the same with the
    /// labels that matter here. The runtime's, the process's, Kestrel's connection and DNS meters cost nothing per request
    /// and are always exported.
    /// <value>The default value is <see langword="false"/>.</value>
    /// </summary>
    public bool RequestMeters { get; set; }
}

/// <summary>
/// The OTLP endpoint. Without one (and without <c>OTEL_EXPORTER_OTLP_ENDPOINT</c>) nothing is exported and nothing is
/// traced: the proxy's activity source then has no listener and costs the request path one check per attempt.
/// </summary>
public sealed class OtlpTelemetryOptions
{
    /// <summary>
    /// Gets or sets the collector's URL, e.g. <c>http://otel-collector:4317</c>.
    /// <value>The default value is none: the standard <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is used when set.</value>
    /// </summary>
    public string? Endpoint { get; set; }

    /// <summary>
    /// Gets or sets the protocol: <c>grpc</c> or <c>http/protobuf</c>.
    /// <value>The default value is none: <c>OTEL_EXPORTER_OTLP_PROTOCOL</c>, else <c>grpc</c>.</value>
    /// </summary>
    public string? Protocol { get; set; }
}

/// <summary>Checks <see cref="TelemetryOptions"/>, naming the key to fix.</summary>
internal sealed class TelemetryOptionsValidator : IValidateOptions<TelemetryOptions>
{
    public ValidateOptionsResult Validate(string? name, TelemetryOptions options)
    {
        var errors = new List<string>();
        if (options.Otlp.Endpoint is { Length: > 0 } endpoint && !TelemetryServiceCollectionExtensions.IsHttpUrl(endpoint))
        {
            errors.Add("Telemetry:Otlp:Endpoint is not an absolute http:// or https:// URL such as http://otel-collector:4317.");
        }

        if (options.Otlp.Protocol is { Length: > 0 } protocol && TelemetryServiceCollectionExtensions.ParseProtocol(protocol) is null)
        {
            errors.Add($"Telemetry:Otlp:Protocol must be grpc or http/protobuf, not '{protocol}'.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
