using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Alerts;

/// <summary>Registers the alert channels, their delivery and the dispatcher that feeds them from the events.</summary>
internal static class AlertsServiceCollectionExtensions
{
    public static IServiceCollection AddAlerts(this IServiceCollection services, IConfiguration configuration)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<AlertOptions>().Bind(configuration.GetSection(AlertOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<AlertOptions>, AlertOptionsValidator>();
        // The default handlers log each request's URL at Information, and a Slack or Discord URL is a credential. The
        // retries are the channels' own (AlertDelivery): each attempt is signed and logged as it is made.
        services.AddHttpClient(AlertDelivery.ClientName, client => client.Timeout = Timeout.InfiniteTimeSpan).RemoveAllLoggers();
        services.AddSingleton<AlertDelivery>();
        services.AddSingleton<AlertChannels>();
        services.AddSingleton<AlertDispatcher>();
        services.AddHostedService(sp => sp.GetRequiredService<AlertDispatcher>());
        return services;
    }
}
