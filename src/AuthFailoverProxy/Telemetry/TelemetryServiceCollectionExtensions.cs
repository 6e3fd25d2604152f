using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace AuthFailoverProxy.Telemetry;

/// <summary>
/// Registers the proxy's metrics (served as Prometheus text on the management listener's <c>/metrics</c>), the
/// per-attempt tracing, and the event counters. Traces are exported over OTLP only when an endpoint is configured
/// (<c>Telemetry:Otlp:Endpoint</c> or <c>OTEL_EXPORTER_OTLP_ENDPOINT</c>); otherwise no tracer provider exists and the
/// proxy's activity source has no listener, so tracing costs nothing.
/// </summary>
internal static class TelemetryServiceCollectionExtensions
{
    /// <summary>The instruments whose histograms need buckets up to minutes.</summary>
    private static readonly HashSet<string> DurationInstruments = new(StringComparer.Ordinal)
    {
        "afp.upstream.duration", "afp.upstream.time_to_first_byte", "gen_ai.client.operation.duration", "gen_ai.client.operation.time_to_first_chunk",
    };

    public static IServiceCollection AddProxyTelemetry(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<TelemetryOptions>().BindConfiguration("Telemetry").ValidateOnStart();
        services.AddSingleton<IValidateOptions<TelemetryOptions>, TelemetryOptionsValidator>();
        services.AddSingleton<ProxyMetrics>();
        services.AddSingleton<RequestTelemetry>();
        services.AddSingleton<ModelLabels>();
        services.AddHostedService<EventMetrics>();

        var otlp = OtlpTargetOf(configuration);
        var telemetry = services.AddOpenTelemetry();
        if (string.IsNullOrEmpty(configuration["OTEL_SERVICE_NAME"]))
        {
            telemetry.ConfigureResource(resource => resource.AddService("auth-failover-proxy", serviceVersion: typeof(ProxyMetrics).Assembly.GetName().Version?.ToString()));
        }

        services.ConfigureOpenTelemetryMeterProvider((provider, metrics) =>
        {
            var own = provider.GetRequiredService<ProxyMetrics>().Meter;
            metrics.AddView(instrument => ViewOf(instrument, own));
        });
        telemetry.WithMetrics(metrics =>
        {
            metrics.AddMeter(ProxyTelemetry.Name);
            metrics.AddPrometheusExporter();
            if (otlp is not null)
            {
                metrics.AddOtlpExporter(o => otlp.Apply(o, "v1/metrics"));
            }
        });

        if (otlp is not null)
        {
            telemetry.WithTracing(tracing => tracing
                // The server span, one span per upstream attempt, and the client call under it.
                .AddSource(ProxyTelemetry.Name, "Microsoft.AspNetCore", "System.Net.Http")
                .AddOtlpExporter(o => otlp.Apply(o, "v1/traces")));
        }

        return services;
    }

    internal static bool IsHttpUrl(string value)
        => Uri.TryCreate(value, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps);

    internal static OtlpExportProtocol? ParseProtocol(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        "grpc" => OtlpExportProtocol.Grpc,
        "http/protobuf" => OtlpExportProtocol.HttpProtobuf,
        _ => null,
    };

    /// <summary>
    /// Several hosts in one process (the test suite) each create a meter of the same name; each host's pipeline exports
    /// its own and drops the others'. The upstream durations get buckets up to ten minutes.
    /// </summary>
    private static MetricStreamConfiguration? ViewOf(Instrument instrument, Meter own)
    {
        if (instrument.Meter.Name != ProxyTelemetry.Name)
        {
            return null;
        }

        if (!ReferenceEquals(instrument.Meter, own))
        {
            return MetricStreamConfiguration.Drop;
        }

        return DurationInstruments.Contains(instrument.Name)
            ? new ExplicitBucketHistogramConfiguration { Boundaries = [.. ProxyTelemetry.DurationBuckets] }
            : null;
    }

    private static OtlpTarget? OtlpTargetOf(IConfiguration configuration)
    {
        if (configuration["Telemetry:Otlp:Endpoint"] is { Length: > 0 } endpoint)
        {
            // An invalid URL stops the start (TelemetryOptionsValidator names the key).
            return new OtlpTarget(IsHttpUrl(endpoint) ? new Uri(endpoint) : null, ParseProtocol(configuration["Telemetry:Otlp:Protocol"]));
        }

        // The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT, _PROTOCOL and _HEADERS itself.
        return string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]) ? null : new OtlpTarget(null, null);
    }

    private sealed record OtlpTarget(Uri? Endpoint, OtlpExportProtocol? Protocol)
    {
        public void Apply(OtlpExporterOptions options, string signalPath)
        {
            if (Protocol is { } protocol)
            {
                options.Protocol = protocol;
            }

            if (Endpoint is { } endpoint)
            {
                // An endpoint set in code is used as given; over HTTP the collector expects the signal's path.
                options.Endpoint = options.Protocol == OtlpExportProtocol.HttpProtobuf && endpoint.AbsolutePath == "/"
                    ? new Uri(endpoint, signalPath)
                    : endpoint;
            }
        }
    }
}
