using Microsoft.Extensions.Configuration.CommandLine;
using Microsoft.Extensions.Configuration.EnvironmentVariables;
using Microsoft.Extensions.Configuration.Json;

namespace AuthFailoverProxy.KeyPool;

/// <summary>A key as configured, before it is put in service.</summary>
internal sealed record KeyDefinition(string Name, string Secret, int Priority, string Source, CredentialScheme Scheme, KeyAccount? Account = null);

/// <summary>
/// Gathers a pool's keys from configuration (appsettings, environment, command line) and from its
/// <see cref="KeyPoolOptions.KeysDirectory"/>, and reports every problem by the configuration key that causes it.
/// Problems never quote a secret.
/// </summary>
internal static class KeySource
{
    public static List<KeyDefinition> Load(string pool, KeyPoolOptions options, IConfiguration? configuration, List<string> errors)
    {
        var keys = new List<KeyDefinition>();
        var fromDirectory = ReadDirectory(pool, options.KeysDirectory, errors);
        var names = new HashSet<string>(StringComparer.Ordinal);

        for (var i = 0; i < options.Keys.Count; i++)
        {
            var key = options.Keys[i];
            var path = $"Pools:{pool}:Keys:{i}";
            if (string.IsNullOrWhiteSpace(key.Name))
            {
                errors.Add($"{path}:Name is empty: every key needs a name (it is what logs and /status show instead of the secret).");
                continue;
            }

            if (!IsValidName(key.Name))
            {
                errors.Add($"{path}:Name '{key.Name}' may contain only letters, digits, '.', '_' and '-'.");
                continue;
            }

            if (!names.Add(key.Name))
            {
                errors.Add($"{path}:Name '{key.Name}' is used twice in pool '{pool}'.");
                continue;
            }

            var secret = key.Secret;
            var source = SourceOf(configuration, $"{path}:Secret");
            if (string.IsNullOrEmpty(secret) && fromDirectory.Remove(key.Name, out var file))
            {
                secret = file;
                source = "file";
            }

            if (string.IsNullOrEmpty(secret))
            {
                errors.Add(options.KeysDirectory is null
                    ? $"{path}:Secret is empty (key '{key.Name}')."
                    : $"{path}:Secret is empty and Pools:{pool}:KeysDirectory has no file named '{key.Name}'.");
                continue;
            }

            if (CheckSecret(secret) is { } problem)
            {
                errors.Add($"{path}:Secret (key '{key.Name}') {problem}");
                continue;
            }

            if (key.Priority is < 0)
            {
                errors.Add($"{path}:Priority must be 0 or more (lower is tried first).");
                continue;
            }

            var scheme = CredentialSchemes.Resolve(pool, options.Kind, secret, key.Scheme, $"{path}:Scheme", options.Scheme, errors);
            var account = KeyAccount.From(key.OpenAIOrganization, key.OpenAIProject, $"{path}:OpenAI", errors);
            keys.Add(new KeyDefinition(key.Name, secret, key.Priority ?? i, source, scheme, account));
        }

        // Files not named in configuration follow the configured keys, in name order.
        var next = keys.Count == 0 ? 0 : keys.Max(k => k.Priority) + 1;
        foreach (var (name, secret) in fromDirectory.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            if (!names.Add(name))
            {
                continue;
            }

            if (CheckSecret(secret) is { } problem)
            {
                errors.Add($"Pools:{pool}:KeysDirectory file '{name}' {problem}");
                continue;
            }

            keys.Add(new KeyDefinition(name, secret, next++, "file", CredentialSchemes.Resolve(pool, options.Kind, secret, null, null, options.Scheme, errors)));
        }

        if (keys.Count == 0 && errors.Count == 0)
        {
            errors.Add($"Pools:{pool}:Keys is empty: give the pool at least one key (Pools:{pool}:Keys:0:Name and :Secret, a file in Pools:{pool}:KeysDirectory, or AFP_KEYS).");
        }

        return keys;
    }

    public static bool IsValidName(string name)
        => name.Length is > 0 and <= 100 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');

    /// <summary>Returns what is wrong with a secret in words that never quote it, or <see langword="null"/>.</summary>
    public static string? CheckSecret(string secret)
    {
        if (secret.Any(char.IsControl))
        {
            return "contains a line break or another control character; it cannot be sent in an HTTP header.";
        }

        if (secret.Any(c => c > '\u007e'))
        {
            return "contains a non-ASCII character; it cannot be sent in an HTTP header.";
        }

        return null;
    }

    private static Dictionary<string, string> ReadDirectory(string pool, string? directory, List<string> errors)
    {
        var files = new Dictionary<string, string>(StringComparer.Ordinal);
        if (string.IsNullOrEmpty(directory))
        {
            return files;
        }

        if (!Directory.Exists(directory))
        {
            errors.Add($"Pools:{pool}:KeysDirectory '{directory}' does not exist or cannot be read.");
            return files;
        }

        foreach (var path in Directory.EnumerateFiles(directory))
        {
            var name = Path.GetFileName(path);
            // Kubernetes mounts Secrets through hidden ..data links; editors leave hidden swap files.
            if (name.StartsWith('.'))
            {
                continue;
            }

            if (!IsValidName(name))
            {
                errors.Add($"Pools:{pool}:KeysDirectory file '{name}': a key file's name may contain only letters, digits, '.', '_' and '-'.");
                continue;
            }

            string content;
            try
            {
                content = File.ReadAllText(path);
            }
            catch (IOException ex)
            {
                errors.Add($"Pools:{pool}:KeysDirectory file '{name}' cannot be read: {ex.GetType().Name}.");
                continue;
            }
            catch (UnauthorizedAccessException)
            {
                errors.Add($"Pools:{pool}:KeysDirectory file '{name}' cannot be read: permission denied.");
                continue;
            }

            // `echo key > file` and `kubectl create secret --from-file` leave one trailing newline; nothing else is trimmed.
            content = content.EndsWith("\r\n", StringComparison.Ordinal) ? content[..^2] : content.EndsWith('\n') ? content[..^1] : content;
            if (content.Length == 0)
            {
                errors.Add($"Pools:{pool}:KeysDirectory file '{name}' is empty.");
                continue;
            }

            files[name] = content;
        }

        return files;
    }

    private static string SourceOf(IConfiguration? configuration, string key)
    {
        if (configuration is not IConfigurationRoot root)
        {
            return "configuration";
        }

        foreach (var provider in root.Providers.Reverse())
        {
            if (provider.TryGet(key, out _))
            {
                return provider switch
                {
                    EnvironmentVariablesConfigurationProvider => "environment",
                    CommandLineConfigurationProvider => "command line",
                    JsonConfigurationProvider json => json.Source.Path ?? "appsettings",
                    Hosting.QuickStartConfigurationProvider => "AFP_KEYS",
                    _ => "configuration",
                };
            }
        }

        return "configuration";
    }
}
