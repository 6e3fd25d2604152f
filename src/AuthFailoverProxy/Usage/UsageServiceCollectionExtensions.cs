using AuthFailoverProxy.State;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Usage;

/// <summary>Registers usage figures, client budgets and the price table; with Redis, the figures are the deployment's.</summary>
internal static class UsageServiceCollectionExtensions
{
    public static IServiceCollection AddUsage(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<UsageOptions>().BindConfiguration(UsageOptions.Section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<UsageOptions>, UsageOptionsValidator>();
        services.AddSingleton<UsageLedger>();
        services.AddSingleton<MemoryUsageStore>();
        services.AddSingleton<PriceTable>();
        services.AddSingleton<ClientBudgets>();
        services.AddSingleton<UsageFigures>();
        services.AddSingleton<UsageSummaries>();
        if (!string.IsNullOrWhiteSpace(configuration["Redis:Configuration"]))
        {
            services.AddSingleton(sp => new RedisUsageStore(sp.GetRequiredService<RedisKeyStateStore>(), sp.GetRequiredService<IOptions<RedisOptions>>().Value));
        }

        services.AddHostedService<UsageSync>();
        return services;
    }
}
