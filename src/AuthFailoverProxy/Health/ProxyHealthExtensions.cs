using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace AuthFailoverProxy.Health;

/// <summary>
/// <c>/healthz</c>: the process is alive. <c>/readyz</c>: it can take traffic (started and not shutting down). Neither
/// looks at key health on purpose: a pool with dead keys still answers a clear 503 in the provider's format, and an
/// unready pod would turn that answer into connection errors.
/// </summary>
internal static class ProxyHealthExtensions
{
    private const string ReadyTag = "ready";

    public static IServiceCollection AddProxyHealth(this IServiceCollection services)
    {
        services.AddHealthChecks().AddCheck<ReadinessCheck>("lifetime", tags: [ReadyTag]);
        return services;
    }

    public static IApplicationBuilder UseProxyHealth(this IApplicationBuilder app)
    {
        app.UseHealthChecks("/healthz", new HealthCheckOptions { Predicate = static _ => false });
        app.UseHealthChecks("/readyz", new HealthCheckOptions { Predicate = static check => check.Tags.Contains(ReadyTag) });
        return app;
    }

    private sealed class ReadinessCheck(IHostApplicationLifetime lifetime) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
            => Task.FromResult(
                lifetime.ApplicationStopping.IsCancellationRequested ? HealthCheckResult.Unhealthy("shutting down: draining connections")
                : !lifetime.ApplicationStarted.IsCancellationRequested ? HealthCheckResult.Unhealthy("starting")
                : HealthCheckResult.Healthy());
    }
}
