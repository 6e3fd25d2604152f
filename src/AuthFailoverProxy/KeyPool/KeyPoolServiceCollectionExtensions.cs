using AuthFailoverProxy.Proxying;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.KeyPool;

/// <summary>Registers pools, their keys and who may use them.</summary>
internal static class KeyPoolServiceCollectionExtensions
{
    public static IServiceCollection AddKeyPools(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<PoolsOptions>().BindConfiguration(string.Empty).ValidateOnStart();
        services.AddSingleton<IValidateOptions<PoolsOptions>, PoolsOptionsValidator>();
        services.AddOptions<ClientOptions>().BindConfiguration("Clients").ValidateOnStart();
        services.AddSingleton<IValidateOptions<ClientOptions>, ClientOptionsValidator>();
        services.AddSingleton<PoolRegistry>();
        services.AddSingleton<KeyCatalog>();
        // Edits to the configuration or to a pool's KeysDirectory reach the pools without a restart.
        services.AddSingleton<KeyReloader>();
        services.AddHostedService(sp => sp.GetRequiredService<KeyReloader>());
        services.AddSingleton<ClientAuthenticator>();
        services.AddOptions<Admin.AdminOptions>().BindConfiguration("Admin").ValidateOnStart();
        services.AddSingleton<IValidateOptions<Admin.AdminOptions>, Admin.AdminOptionsValidator>();
        services.AddOptions<Hosting.ManagementOptions>().BindConfiguration("Management");
        services.AddSingleton<Admin.ManagementAccess>();
        services.AddSingleton<Admin.AdminApi>();
        return services;
    }
}
