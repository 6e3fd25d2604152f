using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace AuthFailoverProxy.State;

/// <summary>Chooses the key-state store: Redis when <c>Redis:Configuration</c> (or <c>AFP_REDIS</c>) is set, embedded otherwise.</summary>
internal static class StateServiceCollectionExtensions
{
    public static IServiceCollection AddKeyStateStore(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<RedisOptions>().BindConfiguration("Redis").ValidateOnStart();
        services.AddSingleton<IValidateOptions<RedisOptions>, RedisOptionsValidator>();
        services.AddSecretSealing();
        if (string.IsNullOrWhiteSpace(configuration["Redis:Configuration"]))
        {
            services.AddSingleton<IKeyStateStore, InMemoryKeyStateStore>();
            return services;
        }

        services.AddSingleton<RedisKeyStateStore>();
        services.AddSingleton<IKeyStateStore>(sp => sp.GetRequiredService<RedisKeyStateStore>());
        services.AddHostedService(sp => sp.GetRequiredService<RedisKeyStateStore>());
        return services;
    }

    private sealed class RedisOptionsValidator : IValidateOptions<RedisOptions>
    {
        public ValidateOptionsResult Validate(string? name, RedisOptions options)
        {
            var errors = new List<string>();
            if (!string.IsNullOrWhiteSpace(options.Configuration))
            {
                try
                {
                    _ = ConfigurationOptions.Parse(options.Configuration);
                    errors.AddRange(BadEndpoints(options.Configuration));
                }
                catch (ArgumentException ex)
                {
                    // The parser names the offending keyword, never a value.
                    errors.Add($"Redis:Configuration (AFP_REDIS) is not a valid Redis configuration: {ex.Message}");
                }
            }

            if (options.CaCertificateFile is { Length: > 0 } ca && !File.Exists(ca))
            {
                errors.Add($"Redis:CaCertificateFile names a file that does not exist: {ca}");
            }

            if (string.IsNullOrWhiteSpace(options.KeyPrefix) || options.KeyPrefix.Contains(' ', StringComparison.Ordinal))
            {
                errors.Add("Redis:KeyPrefix must be a non-empty word such as 'afp'.");
            }

            if (options.ReconcileInterval <= TimeSpan.Zero || options.Timeout <= TimeSpan.Zero)
            {
                errors.Add("Redis:ReconcileInterval and Redis:Timeout must be more than zero.");
            }

            return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
        }

        /// <summary>
        /// The parser takes <c>127.0.0.1:notaport</c> for a host name and the proxy would start against nothing; an endpoint
        /// (a part without <c>=</c>) must be a host with an optional port from 1 to 65535. Endpoints are no secret.
        /// </summary>
        private static IEnumerable<string> BadEndpoints(string configuration)
        {
            foreach (var part in configuration.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (part.Contains('=', StringComparison.Ordinal))
                {
                    continue;
                }

                var colon = part.LastIndexOf(':');
                var bracketed = part.StartsWith('[') && part.LastIndexOf(']') > colon; // [::1] without a port
                if (colon > 0 && !bracketed && part.IndexOf(':', StringComparison.Ordinal) == colon
                    && !(int.TryParse(part.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port) && port is > 0 and <= 65535))
                {
                    yield return $"Redis:Configuration (AFP_REDIS): '{part}' has no valid port after ':'; write host:port, e.g. 127.0.0.1:6379.";
                }
            }
        }
    }
}
