using AuthFailoverProxy.State;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Audit;

/// <summary>
/// Registers the audit trail: a file in <c>Audit:Directory</c> without Redis, a capped Redis stream with it (the same
/// choice as the key-state store), the background writer and the admin API's <c>/admin/events</c>.
/// </summary>
internal static class AuditServiceCollectionExtensions
{
    public static IServiceCollection AddAuditTrail(this IServiceCollection services, IConfiguration configuration)
    {
        var embedded = string.IsNullOrWhiteSpace(configuration["Redis:Configuration"]);
        services.AddOptions<AuditOptions>().BindConfiguration("Audit").ValidateOnStart();
        services.AddSingleton<IValidateOptions<AuditOptions>>(sp => new AuditOptionsValidator(sp.GetRequiredService<IHostEnvironment>(), embedded));
        services.AddSingleton<IAuditTrail>(sp =>
        {
            var options = sp.GetRequiredService<IOptions<AuditOptions>>().Value;
            return embedded
                ? new FileAuditTrail(options.ResolveDirectory(sp.GetRequiredService<IHostEnvironment>().ContentRootPath), options.MaxBytes)
                : new RedisAuditTrail(sp.GetRequiredService<RedisKeyStateStore>(), sp.GetRequiredService<IOptions<RedisOptions>>().Value, options);
        });
        services.AddSingleton<AuditWriter>();
        services.AddHostedService(sp => sp.GetRequiredService<AuditWriter>());
        services.AddSingleton<AuditEndpoints>();
        services.AddSingleton<EventStream>();
        return services;
    }
}
