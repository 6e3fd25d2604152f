using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Health;

/// <summary>Registers the heartbeat (dead man's switch); it does nothing without <c>Heartbeat:Url</c>.</summary>
internal static class HeartbeatServiceCollectionExtensions
{
    public static IServiceCollection AddHeartbeat(this IServiceCollection services)
    {
        services.AddOptions<HeartbeatOptions>().BindConfiguration("Heartbeat").ValidateOnStart();
        services.AddSingleton<IValidateOptions<HeartbeatOptions>, HeartbeatOptionsValidator>();
        services.AddSingleton<Heartbeat>();
        services.AddHostedService(sp => sp.GetRequiredService<Heartbeat>());
        return services;
    }
}
