using AuthFailoverProxy.Health;
using AuthFailoverProxy.Hosting;
using AuthFailoverProxy.KeyPool;

namespace AuthFailoverProxy.Admin;

/// <summary>The management listener's endpoints. They exist only on that listener; the agent port proxies everything.</summary>
internal static class ManagementEndpoints
{
    public static WebApplication MapManagement(this WebApplication app)
    {
        app.MapWhen(ProxyListeners.IsManagement, management =>
        {
            management.UseRouting();
            management.UseEndpoints(endpoints =>
            {
                endpoints.MapProxyHealth();
                endpoints.MapGet("/status", static (PoolRegistry registry, TimeProvider time) =>
                    Results.Json(StatusReport.Capture(registry, time.GetUtcNow()), AdminJsonContext.Default.StatusReport));
            });
        });
        return app;
    }
}
