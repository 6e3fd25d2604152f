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

    /// <summary>
    /// The platform's own meters that cost nothing per request, always exported: the runtime (GC, heap, thread pool, locks,
    /// JIT, exceptions, and the process's CPU time and working set: <c>System.Runtime</c> is .NET 9's built-in meter, so no
    /// instrumentation package is needed), Kestrel's connections and TLS handshakes, ASP.NET Core's handled exceptions,
    /// and DNS look-ups. They record per connection or per look-up, or are read at a scrape.
    /// </summary>
    private static readonly string[] PlatformMeters =
    [
        "System.Runtime",
        "Microsoft.AspNetCore.Server.Kestrel",
        "Microsoft.AspNetCore.Diagnostics",
        "System.Net.NameResolution",
    ];

    /// <summary>
    /// The platform's meters that record on every request (<see cref="TelemetryOptions.RequestMeters"/>): ASP.NET Core's
    /// server requests, HttpClient's calls and connection states (about ten measurements per proxied request), and
    /// Kestrel's memory pool, which records three measurements for every 4 KB block it lends (two blocks per proxied
    /// request under the benchmark's load).
    /// </summary>
    private static readonly string[] RequestMeters =
    [
        "Microsoft.AspNetCore.Hosting",
        HttpClientMeter,
        "Microsoft.AspNetCore.MemoryPool",
    ];

    /// <summary>The labels <c>http.server.request.duration</c> keeps: never <c>http.route</c> or anything else a path could reach.</summary>
    private static readonly string[] ServerRequestTags = ["http.request.method", "http.response.status_code", "url.scheme", "network.protocol.version", "error.type"];

    /// <summary>The labels <c>http.client.request.duration</c> keeps: the upstream's host, never its URL's path or template.</summary>
    private static readonly string[] ClientRequestTags = ["http.request.method", "http.response.status_code", "server.address", "server.port", "url.scheme", "network.protocol.version", "error.type"];

    /// <summary>
    /// The labels HttpClient's connection instruments keep: not <c>network.peer.address</c>, the upstream's IP, which a
    /// CDN front changes often enough to grow a series per address for good.
    /// </summary>
    private static readonly string[] ClientConnectionTags = ["http.connection.state", "network.protocol.version", "server.address", "server.port", "url.scheme"];

    private const string HttpClientMeter = "System.Net.Http";

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
            var factory = provider.GetRequiredService<IMeterFactory>();
            metrics.AddView(instrument => ViewOf(instrument, own, factory));
        });
        telemetry.WithMetrics(metrics =>
        {
            metrics.AddMeter(ProxyTelemetry.Name);
            metrics.AddMeter(PlatformMeters);
            if (configuration.GetValue("Telemetry:RequestMeters", defaultValue: false))
            {
                metrics.AddMeter(RequestMeters);
            }
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

    /// <summary>Whether this proxy traces: an OTLP endpoint is set, in its settings or in the environment.</summary>
    internal static bool Traces(IConfiguration configuration) => OtlpTargetOf(configuration) is not null;

    internal static bool IsHttpUrl(string value)
        => Uri.TryCreate(value, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps);

    internal static OtlpExportProtocol? ParseProtocol(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        "grpc" => OtlpExportProtocol.Grpc,
        "http/protobuf" => OtlpExportProtocol.HttpProtobuf,
        _ => null,
    };

    /// <summary>
    /// Several hosts in one process (the test suite) each create meters of the same names through their own
    /// <see cref="IMeterFactory"/> (the proxy's, ASP.NET Core's, the upstream clients'); each host's pipeline exports its
    /// own and drops the others'. HttpClient's process-wide meter (clients made without a factory: another library's, a
    /// test's) is dropped too: <c>http.client.*</c> are the proxy's own calls. The runtime's and DNS's meters are the
    /// process's, the same for every host. Durations get buckets up to ten minutes (a streamed answer takes minutes), and the
    /// HTTP request durations keep a fixed set of labels, so no path ever becomes one.
    /// </summary>
    private static MetricStreamConfiguration? ViewOf(Instrument instrument, Meter own, IMeterFactory factory)
    {
        var meter = instrument.Meter;
        if (meter.Scope is IMeterFactory scope && !ReferenceEquals(scope, factory))
        {
            return MetricStreamConfiguration.Drop;
        }

        switch (meter.Name)
        {
            case ProxyTelemetry.Name when !ReferenceEquals(meter, own):
                return MetricStreamConfiguration.Drop;
            case ProxyTelemetry.Name:
                return DurationInstruments.Contains(instrument.Name) ? MinutesBuckets(tagKeys: null) : null;
            case HttpClientMeter when meter.Scope is null:
                return MetricStreamConfiguration.Drop;
            case HttpClientMeter when instrument.Name == "http.client.request.duration":
                return MinutesBuckets(ClientRequestTags);
            case HttpClientMeter when instrument.Name == "http.client.connection.duration":
                return MinutesBuckets(ClientConnectionTags);
            case HttpClientMeter when instrument.Name == "http.client.open_connections":
                return new MetricStreamConfiguration { TagKeys = ClientConnectionTags };
            case "Microsoft.AspNetCore.Hosting" when instrument.Name == "http.server.request.duration":
                return MinutesBuckets(ServerRequestTags);
            default:
                return null;
        }
    }

    private static ExplicitBucketHistogramConfiguration MinutesBuckets(string[]? tagKeys)
        => new() { Boundaries = [.. ProxyTelemetry.DurationBuckets], TagKeys = tagKeys };

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
