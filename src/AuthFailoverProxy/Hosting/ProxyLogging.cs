using Serilog;
using Serilog.Events;
using Serilog.Formatting.Compact;

namespace AuthFailoverProxy.Hosting;

/// <summary>
/// Serilog to the console: readable lines by default, one JSON object per line with <c>AFP_LOG_FORMAT=json</c>
/// (<c>none</c> turns the console off).
/// The request path logs nothing at Information: ASP.NET Core's and YARP's per-request lines are held at Warning.
/// Levels can be tuned in the <c>Serilog</c> configuration section.
/// </summary>
internal static class ProxyLogging
{
    private const string Template = "{Timestamp:yyyy-MM-dd HH:mm:ss.fff zzz} [{Level:u3}] {Message:lj}{NewLine}{Exception}";

    /// <summary>
    /// ASP.NET Core's per-request diagnostics category, turned off. While any level of it is on, the host opens a log
    /// scope for every request, which puts the request's id and path (and the agent's trace id) on every line logged
    /// during it, where the proxy's logs promise none; and it starts an activity for every request, even with no
    /// tracer listening, which makes the HTTP client start one of its own per upstream call. Unread unless the proxy
    /// traces, they cost about 5 % of the CPU per request on the bench. With an OTLP endpoint the tracer still starts
    /// its spans, and a line logged during a request carries that trace's id. Nothing above Information is lost: the
    /// category writes only "request starting" and "request finished"; an unhandled exception is Kestrel's to log.
    /// An operator can turn it back on like any other category.
    /// </summary>
    internal const string HostingDiagnosticsCategory = "Microsoft.AspNetCore.Hosting.Diagnostics";

    /// <summary>A level above Fatal: Serilog's way to turn a category off, as no event reaches it.</summary>
    private const LogEventLevel Off = (LogEventLevel)(1 + (int)LogEventLevel.Fatal);

    /// <summary>
    /// Two framework lines that would mislead an operator: a failed start is reported by ProxyApplication.RunAsync in
    /// plain words (the host's own line is a stack trace), and Kestrel's "Overriding address(es)" is the proxy binding
    /// the agent listener on purpose (see ProxyListeners).
    /// </summary>
    internal static bool IsExpectedNoise(LogEvent e) => e.Level switch
    {
        LogEventLevel.Error => e.MessageTemplate.Text.StartsWith("Hosting failed to start", StringComparison.Ordinal),
        LogEventLevel.Warning => e.MessageTemplate.Text.StartsWith("Overriding address(es)", StringComparison.Ordinal),
        _ => false,
    };

    public static WebApplicationBuilder AddProxyLogging(this WebApplicationBuilder builder)
    {
        var format = builder.Configuration["AFP_LOG_FORMAT"];
        var json = string.Equals(format, "json", StringComparison.OrdinalIgnoreCase);
        // "none": no console sink, for hosts that collect events their own way (the test suite does).
        var console = !string.Equals(format, "none", StringComparison.OrdinalIgnoreCase);
        builder.Services.AddSerilog((services, logger) =>
        {
            logger
                .MinimumLevel.Information()
                .MinimumLevel.Override("Microsoft.AspNetCore", LogEventLevel.Warning)
                .MinimumLevel.Override(HostingDiagnosticsCategory, Off)
                .MinimumLevel.Override("Yarp", LogEventLevel.Warning)
                .MinimumLevel.Override("System.Net.Http", LogEventLevel.Warning)
                .MinimumLevel.Override("Polly", LogEventLevel.Warning)
                .ReadFrom.Configuration(builder.Configuration)
                .ReadFrom.Services(services)
                .Enrich.FromLogContext()
                .Filter.ByExcluding(IsExpectedNoise);
            if (!console)
            {
                return;
            }

            if (json)
            {
                logger.WriteTo.Console(new RenderedCompactJsonFormatter());
            }
            else
            {
                logger.WriteTo.Console(outputTemplate: Template, formatProvider: System.Globalization.CultureInfo.InvariantCulture);
            }
        }, preserveStaticLogger: true);
        return builder;
    }
}
