using Microsoft.Extensions.Configuration.EnvironmentVariables;

namespace AuthFailoverProxy.Hosting;

/// <summary>
/// Maps the one-line quick start onto the full configuration: <c>AFP_UPSTREAM</c>, <c>AFP_PROVIDER</c>,
/// <c>AFP_KEYS</c> (<c>name=secret,name=secret</c> in priority order), <c>AFP_CLIENT_TOKENS</c> (comma-separated),
/// <c>AFP_ALLOW_ANONYMOUS</c>, <c>AFP_REDIS</c>, <c>AFP_DATA_KEY</c>, <c>AFP_MANAGEMENT_URLS</c> and <c>AFP_HEARTBEAT_URL</c>. It sits below the regular environment variables and the
/// command line, so an explicit <c>Pools__…</c> setting always wins.
/// <c>AFP_ALERT_WEBHOOK</c> (signed with <c>AFP_ALERT_WEBHOOK_SECRET</c>, a <c>whsec_…</c> secret) adds a webhook alert channel named <c>webhook</c>.
/// </summary>
internal sealed class QuickStartConfigurationSource(Func<string, string?> environment) : IConfigurationSource
{
    public IConfigurationProvider Build(IConfigurationBuilder builder) => new QuickStartConfigurationProvider(environment);
}

/// <summary>Reads the <c>AFP_*</c> variables once, at start.</summary>
internal sealed class QuickStartConfigurationProvider(Func<string, string?> environment) : ConfigurationProvider
{
    /// <summary>Gets what could not be read from the <c>AFP_*</c> variables, each naming the variable (never its value).</summary>
    public List<string> Problems { get; } = [];

    /// <summary>Returns the problems of every quick-start source in <paramref name="configuration"/>.</summary>
    public static IEnumerable<string> ProblemsIn(IConfiguration configuration)
        => configuration is IConfigurationRoot root ? root.Providers.OfType<QuickStartConfigurationProvider>().SelectMany(p => p.Problems) : [];

    public override void Load()
    {
        Problems.Clear();
        var data = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        if (environment("AFP_LOG_FORMAT") is { Length: > 0 } format && format.ToLowerInvariant() is not ("json" or "text" or "none"))
        {
            Problems.Add($"AFP_LOG_FORMAT '{format}' is not a log format: use json (one JSON object per line) or text (the default).");
        }

        var keys = environment("AFP_KEYS");
        if (!string.IsNullOrWhiteSpace(keys))
        {
            var provider = environment("AFP_PROVIDER");
            var pool = string.Equals(provider, "openai", StringComparison.OrdinalIgnoreCase) ? "openai" : "anthropic";
            data[$"Pools:{pool}:Kind"] = pool;
            data[$"Pools:{pool}:Default"] = "true";
            if (environment("AFP_UPSTREAM") is { Length: > 0 } upstream)
            {
                data[$"Pools:{pool}:Upstream"] = upstream;
            }

            var index = 0;
            var entries = keys.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            for (var position = 0; position < entries.Length; position++)
            {
                // "name=secret". A bare secret is refused rather than named by its place: a key's name is what its health
                // is kept under (in Redis too), so "key-1" would carry one key's state to another when the list changes.
                var entry = entries[position];
                var separator = entry.IndexOf('=', StringComparison.Ordinal);
                var (name, secret) = separator > 0 ? (entry[..separator].Trim(), entry[(separator + 1)..].Trim()) : (string.Empty, string.Empty);
                if (name.Length == 0 || secret.Length == 0)
                {
                    Problems.Add($"AFP_KEYS entry {position + 1} of {entries.Length} is not name=secret: write each key as a name, '=' and the secret, separated by commas (AFP_KEYS=primary=sk-ant-…,backup=sk-ant-…).");
                    continue;
                }

                data[$"Pools:{pool}:Keys:{index}:Name"] = name;
                data[$"Pools:{pool}:Keys:{index}:Secret"] = secret;
                index++;
            }
        }

        var tokens = environment("AFP_CLIENT_TOKENS");
        if (!string.IsNullOrWhiteSpace(tokens))
        {
            var index = 0;
            foreach (var token in tokens.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                data[$"Clients:Tokens:{index}:Name"] = $"token-{index + 1}";
                data[$"Clients:Tokens:{index}:Token"] = token;
                index++;
            }
        }

        if (environment("AFP_ALLOW_ANONYMOUS") is { Length: > 0 } anonymous)
        {
            data["Clients:AllowAnonymous"] = anonymous;
        }

        if (environment("AFP_ADMIN_TOKEN") is { Length: > 0 } admin)
        {
            data["Admin:Tokens:0:Name"] = "admin";
            data["Admin:Tokens:0:Token"] = admin;
        }

        if (environment("AFP_REDIS") is { Length: > 0 } redis)
        {
            data["Redis:Configuration"] = redis;
        }

        if (environment("AFP_DATA_KEY") is { Length: > 0 } dataKey)
        {
            data["Encryption:DataKey"] = dataKey;
        }

        if (environment("AFP_MANAGEMENT_URLS") is { Length: > 0 } management)
        {
            data["Management:Urls"] = management;
        }

        if (environment("AFP_MANAGEMENT_TOKEN") is { Length: > 0 } managementToken)
        {
            data["Management:Token"] = managementToken;
        }

        if (environment("AFP_HEARTBEAT_URL") is { Length: > 0 } heartbeat)
        {
            data["Heartbeat:Url"] = heartbeat;
        }

        // A secret alone still makes the channel, so validation names the missing URL instead of ignoring the secret.
        if (environment("AFP_ALERT_WEBHOOK") is { Length: > 0 } alertWebhook)
        {
            data["Alerts:Channels:webhook:Type"] = "webhook";
            data["Alerts:Channels:webhook:Url"] = alertWebhook;
        }

        if (environment("AFP_ALERT_WEBHOOK_SECRET") is { Length: > 0 } alertSecret)
        {
            data["Alerts:Channels:webhook:Type"] = "webhook";
            data["Alerts:Channels:webhook:Secret"] = alertSecret;
        }

        Data = data;
    }
}

/// <summary>Adds the quick-start source just below the environment variables.</summary>
internal static class QuickStartConfigurationExtensions
{
    public static IConfigurationBuilder AddQuickStart(this IConfigurationBuilder builder, Func<string, string?>? environment = null)
    {
        var source = new QuickStartConfigurationSource(environment ?? Environment.GetEnvironmentVariable);
        var index = builder.Sources.ToList().FindIndex(s => s is EnvironmentVariablesConfigurationSource { Prefix: null or "" });
        if (index < 0)
        {
            builder.Sources.Add(source);
        }
        else
        {
            builder.Sources.Insert(index, source);
        }

        return builder;
    }
}
