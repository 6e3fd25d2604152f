using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.KeyPool;

/// <summary>Checks every pool at start and reports every problem at once, each naming the configuration key to fix.</summary>
internal sealed class PoolsOptionsValidator(IConfiguration configuration) : IValidateOptions<PoolsOptions>
{
    public ValidateOptionsResult Validate(string? name, PoolsOptions options)
    {
        var errors = new List<string>();
        if (options.Pools.Count == 0)
        {
            errors.Add("Pools is empty: configure a pool (Pools:{name}:Kind, :Upstream, :Keys) or, for a quick start, set AFP_KEYS=name=secret,name=secret.");
            return ValidateOptionsResult.Fail(errors);
        }

        var prefixes = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var defaults = new List<string>();
        foreach (var (pool, poolOptions) in options.Pools)
        {
            if (!KeySource.IsValidName(pool))
            {
                errors.Add($"Pools:{pool}: a pool name may contain only letters, digits, '.', '_' and '-'.");
                continue;
            }

            if (!Enum.IsDefined(poolOptions.Kind))
            {
                errors.Add($"Pools:{pool}:Kind must be 'anthropic' or 'openai'.");
            }

            var upstream = poolOptions.Upstream ?? PoolsOptions.DefaultUpstream(poolOptions.Kind);
            if (!Uri.TryCreate(upstream, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            {
                errors.Add($"Pools:{pool}:Upstream '{Hosting.ConfigurationShape.WithoutCredentials(upstream)}' is not an absolute http:// or https:// URL.");
                uri = null;
            }
            else if (!string.IsNullOrEmpty(uri.Query) || !string.IsNullOrEmpty(uri.Fragment) || !string.IsNullOrEmpty(uri.UserInfo))
            {
                errors.Add($"Pools:{pool}:Upstream must be a base URL without query, fragment or credentials (keys go in Pools:{pool}:Keys).");
            }

            Proxying.UpstreamTransport.Load(pool, poolOptions.Transport, uri, errors);

            var prefix = PathPrefixOf(pool, poolOptions);
            if (prefix.Length < 2 || prefix[0] != '/' || prefix.EndsWith('/') || prefix.Contains("//", StringComparison.Ordinal))
            {
                errors.Add($"Pools:{pool}:PathPrefix '{prefix}' must start with '/', not end with '/', and not be '/' (use Pools:{pool}:Default=true to serve '/').");
            }
            else if (!prefixes.TryAdd(prefix, pool))
            {
                errors.Add($"Pools:{pool}:PathPrefix '{prefix}' is already used by pool '{prefixes[prefix]}'.");
            }

            if (poolOptions.Default)
            {
                defaults.Add(pool);
            }

            if (poolOptions.ProbePath is { } probePath && (probePath.Length == 0 || probePath[0] != '/'))
            {
                errors.Add($"Pools:{pool}:ProbePath '{probePath}' must start with '/', e.g. /v1/models.");
            }

            KeySource.Load(pool, poolOptions, configuration, errors);
        }

        foreach (var (pool, poolOptions) in options.Pools)
        {
            if (poolOptions.Fallback is { } fallback)
            {
                if (!options.Pools.TryGetValue(fallback, out var fallbackOptions))
                {
                    errors.Add($"Pools:{pool}:Fallback names pool '{fallback}', which is not configured.");
                }
                else if (string.Equals(fallback, pool, StringComparison.OrdinalIgnoreCase))
                {
                    errors.Add($"Pools:{pool}:Fallback names the pool itself.");
                }
                else if (fallbackOptions.Kind != poolOptions.Kind)
                {
                    errors.Add($"Pools:{pool}:Fallback names pool '{fallback}', which speaks {fallbackOptions.Kind} while '{pool}' speaks {poolOptions.Kind}.");
                }
            }
            else if (poolOptions.FallbackModel is not null)
            {
                errors.Add($"Pools:{pool}:FallbackModel is set but Pools:{pool}:Fallback is not.");
            }
        }

        if (defaults.Count > 1)
        {
            errors.Add($"Pools:{{name}}:Default is true for {string.Join(", ", defaults.Select(d => $"'{d}'"))}: only one pool can serve '/'.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    public static string PathPrefixOf(string pool, KeyPoolOptions options) => options.PathPrefix ?? "/" + pool;
}
