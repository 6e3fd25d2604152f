using AuthFailoverProxy.State;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Failover;

/// <summary>Registers the failover forwarder, the key state board and their options.</summary>
internal static class FailoverServiceCollectionExtensions
{
    public static IServiceCollection AddFailover(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddHttpForwarder();
        services.AddOptions<FailoverOptions>().BindConfiguration("Failover").ValidateOnStart();
        services.AddOptions<RequestBodyOptions>().BindConfiguration("RequestBody").ValidateOnStart();
        services.AddSingleton<BodySpill>();
        services.AddHostedService(sp => sp.GetRequiredService<BodySpill>());
        services.AddSingleton<FailoverOptionsValidator>();
        services.AddSingleton<IValidateOptions<FailoverOptions>>(sp => sp.GetRequiredService<FailoverOptionsValidator>());
        services.AddSingleton<IValidateOptions<RequestBodyOptions>>(sp => sp.GetRequiredService<FailoverOptionsValidator>());
        services.AddSingleton<KeyStateBoard>();
        services.AddSingleton<KeyScopeBoard>();
        services.AddSingleton<RequestRejections>();
        services.AddSingleton<PoolExhaustionLog>();
        services.AddSingleton<SafeMode>();
        services.AddOptions<CircuitBreakerOptions>().BindConfiguration("CircuitBreaker").ValidateOnStart();
        services.AddSingleton<IValidateOptions<CircuitBreakerOptions>>(sp => sp.GetRequiredService<FailoverOptionsValidator>());
        services.AddSingleton<UpstreamCircuits>();
        services.AddSingleton<FailoverForwarder>();
        return services;
    }
}
