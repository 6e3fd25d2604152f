namespace AuthFailoverProxy.Events;

/// <summary>Registers the event hub and the sources that feed it.</summary>
internal static class EventsServiceCollectionExtensions
{
    public static IServiceCollection AddProxyEvents(this IServiceCollection services)
    {
        services.AddOptions<EventOptions>().BindConfiguration("Events").Validate(o => o.DegradedBelow >= 1, "Events:DegradedBelow must be 1 or more.").ValidateOnStart();
        services.AddSingleton<ProxyEvents>();
        services.AddHostedService<ProxyEventSources>();
        return services;
    }
}
