using AuthFailoverProxy.Alerts;
using AuthFailoverProxy.Failover;
using AuthFailoverProxy.Health;
using AuthFailoverProxy.Hosting;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.OperatorConsole;
using AuthFailoverProxy.State;
using AuthFailoverProxy.Usage;
using Microsoft.AspNetCore.Http.Features;

namespace AuthFailoverProxy.Admin;

/// <summary>The management listener's endpoints. They exist only on that listener; the agent port proxies everything.</summary>
/// <remarks>
/// Plain middleware rather than endpoint routing: WebApplication registers a branch's endpoints in its global route
/// table, which would put every agent request through the route matcher.
/// </remarks>
internal static class ManagementEndpoints
{
    public static WebApplication MapManagement(this WebApplication app)
    {
        app.MapWhen(ProxyListeners.IsManagement, management =>
        {
            // Scrapes and probes stay out of http.server.request.duration, which then tells of agents' requests only.
            management.Use(static (context, next) =>
            {
                context.Features.Get<IHttpMetricsTagsFeature>()?.MetricsDisabled = true;
                return next(context);
            });
            management.UseProxyHealth();
            management.UseConsolePage();
            var access = management.ApplicationServices.GetRequiredService<ManagementAccess>();
            management.Use(access.InvokeAsync);
            management.Map("/status", status => status.Run(WriteStatusAsync));
            // Prometheus text, from the OpenTelemetry exporter: a branch of this listener's pipeline, not an endpoint.
            management.UseOpenTelemetryPrometheusScrapingEndpoint("/metrics");
            management.Map("/admin", admin => admin.Run(context => context.RequestServices.GetRequiredService<AdminApi>().HandleAsync(context)));
            management.Run(static context =>
            {
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                return Task.CompletedTask;
            });
        });
        return app;
    }

    private static async Task WriteStatusAsync(HttpContext context)
    {
        if (!HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method))
        {
            context.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
            return;
        }

        var services = context.RequestServices;
        var report = StatusReport.Capture(
            services.GetRequiredService<PoolRegistry>(),
            services.GetRequiredService<SafeMode>(),
            services.GetRequiredService<IKeyStateStore>(),
            services.GetRequiredService<TimeProvider>().GetUtcNow()) with
        {
            Heartbeat = services.GetRequiredService<Heartbeat>().Status,
            Alerts = services.GetRequiredService<AlertDispatcher>().Status(),
            Usage = await services.GetRequiredService<UsageFigures>().ReportAsync(),
        };
        await Results.Json(report, AdminJsonContext.Readable.StatusReport).ExecuteAsync(context);
    }
}
