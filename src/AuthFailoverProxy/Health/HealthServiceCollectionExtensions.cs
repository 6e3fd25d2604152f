using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Health;

/// <summary>Registers the credential checks: at start, and the background healing of dead keys.</summary>
internal static class HealthServiceCollectionExtensions
{
    public static IServiceCollection AddCredentialChecks(this IServiceCollection services)
    {
        services.AddOptions<ProbeOptions>().BindConfiguration("Probes").ValidateOnStart();
        services.AddSingleton<IValidateOptions<ProbeOptions>, ProbeOptionsValidator>();
        services.AddSingleton<KeyProber>();
        services.AddSingleton<KeySuspicions>();
        services.AddSingleton<KeyTrials>();
        services.AddSingleton<UpstreamIncidents>();
        // The healer subscribes before the startup check reports, so no key found dead at start goes unwatched.
        services.AddSingleton<KeyHealer>();
        services.AddHostedService(sp => sp.GetRequiredService<KeyHealer>());
        services.AddSingleton<StartupCredentialCheck>();
        services.AddHostedService(sp => sp.GetRequiredService<StartupCredentialCheck>());
        return services;
    }

    private sealed class ProbeOptionsValidator : IValidateOptions<ProbeOptions>
    {
        public ValidateOptionsResult Validate(string? name, ProbeOptions options)
        {
            var errors = new List<string>();
            if (options.Timeout <= TimeSpan.Zero)
            {
                errors.Add("Probes:Timeout must be more than zero.");
            }

            if (options.HealDelay <= TimeSpan.Zero)
            {
                errors.Add("Probes:HealDelay must be more than zero.");
            }

            if (options.IncidentWindow <= TimeSpan.Zero || options.IncidentRecheckDelay <= TimeSpan.Zero)
            {
                errors.Add("Probes:IncidentWindow and Probes:IncidentRecheckDelay must be more than zero.");
            }

            if (options.MaxHealDelay < options.HealDelay)
            {
                errors.Add("Probes:MaxHealDelay must not be shorter than Probes:HealDelay.");
            }

            if (string.IsNullOrEmpty(options.Path) || options.Path[0] != '/')
            {
                errors.Add("Probes:Path must start with '/', e.g. /v1/models.");
            }

            return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
        }
    }
}
