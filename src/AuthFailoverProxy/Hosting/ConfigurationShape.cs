using System.ComponentModel;
using System.Globalization;
using System.Reflection;
using AuthFailoverProxy.Admin;
using AuthFailoverProxy.Alerts;
using AuthFailoverProxy.Audit;
using AuthFailoverProxy.Events;
using AuthFailoverProxy.Failover;
using AuthFailoverProxy.Health;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.Proxying;
using AuthFailoverProxy.State;
using AuthFailoverProxy.Telemetry;
using AuthFailoverProxy.Usage;

namespace AuthFailoverProxy.Hosting;

/// <summary>
/// Checks the proxy's own configuration sections against the shape of the options they bind to, before anything binds.
/// .NET's binder drops a dictionary or list entry it cannot convert without a word (a key whose <c>Priority</c> is
/// <c>5x</c> vanishes from its pool, a pool whose <c>Selection</c> is <c>Bogus</c> vanishes and its agents land on the
/// default pool) and ignores a setting it does not know (<c>Failover:Dedline</c>). Here each is a problem that names the
/// key, and for a near miss what was meant. The rest of the root (Logging, Kestrel, environment variables) is not the
/// proxy's to judge, except a section whose name is one letter or two away from one of the proxy's.
/// </summary>
internal static class ConfigurationShape
{
    /// <summary>Gets the proxy's sections and the shape each binds to.</summary>
    internal static IReadOnlyList<(string Section, Type Shape)> Sections { get; } =
    [
        ("Pools", typeof(Dictionary<string, KeyPoolOptions>)),
        ("Clients", typeof(ClientOptions)),
        ("Admin", typeof(AdminOptions)),
        ("Events", typeof(EventOptions)),
        ("Failover", typeof(FailoverOptions)),
        ("RequestBody", typeof(RequestBodyOptions)),
        ("CircuitBreaker", typeof(CircuitBreakerOptions)),
        ("Redis", typeof(RedisOptions)),
        ("Encryption", typeof(EncryptionOptions)),
        ("Telemetry", typeof(TelemetryOptions)),
        ("Audit", typeof(AuditOptions)),
        ("Heartbeat", typeof(HeartbeatOptions)),
        ("Probes", typeof(ProbeOptions)),
        (AlertOptions.Section, typeof(AlertOptions)),
        ("Management", typeof(ManagementOptions)),
        (UsageOptions.Section, typeof(UsageOptions)),
    ];

    /// <summary>Returns every problem in the proxy's sections of <paramref name="configuration"/>, each naming its key.</summary>
    public static List<string> Check(IConfiguration configuration)
    {
        var problems = new List<string>();
        foreach (var child in configuration.GetChildren())
        {
            var match = Sections.FirstOrDefault(s => string.Equals(s.Section, child.Key, StringComparison.OrdinalIgnoreCase));
            if (match.Shape is not null)
            {
                CheckNode(child, match.Shape, problems);
            }
            else if (child.GetChildren().Any() && Nearest(child.Key, Sections.Select(s => s.Section)) is { } meant)
            {
                // Only sections: the root also holds every environment variable (HOME, PATH), which are not settings.
                problems.Add($"'{child.Key}' is not a section of the proxy's configuration: did you mean '{meant}'?");
            }
        }

        return problems;
    }

    private static void CheckNode(IConfigurationSection node, Type type, List<string> problems)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        var children = node.GetChildren().ToList();
        if (IsScalar(type))
        {
            if (children.Count > 0)
            {
                problems.Add($"{node.Path} is a single value, not a section (found {children[0].Path}).");
            }
            else if (!string.IsNullOrEmpty(node.Value) && Convert(node.Value, type) is { } expected)
            {
                problems.Add($"{node.Path}: '{Shown(node.Value)}' is not {expected}.");
            }

            return;
        }

        if (children.Count == 0)
        {
            if (!string.IsNullOrEmpty(node.Value))
            {
                problems.Add($"{node.Path} is a section, not a single value: set the settings under it ({node.Path}:…).");
            }

            return;
        }

        if (ElementOf(type, typeof(IDictionary<,>)) is { } valueType)
        {
            foreach (var child in children)
            {
                CheckNode(child, valueType, problems);
            }

            return;
        }

        if (ElementOf(type, typeof(IEnumerable<>)) is { } elementType)
        {
            foreach (var child in children)
            {
                if (int.TryParse(child.Key, NumberStyles.None, CultureInfo.InvariantCulture, out _))
                {
                    CheckNode(child, elementType, problems);
                }
                else
                {
                    problems.Add($"{child.Path}: the entries of {node.Path} are numbered from 0 ({node.Path}:0, {node.Path}:1, …).");
                }
            }

            return;
        }

        var settings = Settings(type);
        foreach (var child in children)
        {
            if (settings.TryGetValue(child.Key, out var property))
            {
                CheckNode(child, property.PropertyType, problems);
            }
            else
            {
                problems.Add(Nearest(child.Key, settings.Keys) is { } meant
                    ? $"{child.Path} is not a setting: did you mean {node.Path}:{meant}?"
                    : $"{child.Path} is not a setting. The settings of {node.Path} are: {string.Join(", ", settings.Keys.Order(StringComparer.Ordinal))}.");
            }
        }
    }

    /// <summary>The settings of an options type, by their configuration names: what the binder would set.</summary>
    private static Dictionary<string, PropertyInfo> Settings(Type type)
    {
        var settings = new Dictionary<string, PropertyInfo>(StringComparer.OrdinalIgnoreCase);
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            // A read-only value is never bound; a read-only collection or section is bound into.
            var bound = property.GetIndexParameters().Length == 0
                && (property.SetMethod is { IsPublic: true } || (property.GetMethod is { IsPublic: true } && !IsScalar(Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType)));
            if (bound)
            {
                settings[property.GetCustomAttribute<ConfigurationKeyNameAttribute>()?.Name ?? property.Name] = property;
            }
        }

        return settings;
    }

    private static bool IsScalar(Type type)
        => type.IsPrimitive || type.IsEnum || type == typeof(string) || type == typeof(decimal) || type == typeof(TimeSpan)
            || type == typeof(DateTime) || type == typeof(DateTimeOffset) || type == typeof(Uri) || type == typeof(Guid) || type == typeof(object);

    private static Type? ElementOf(Type type, Type generic)
    {
        if (type == typeof(string))
        {
            return null;
        }

        if (type.IsArray)
        {
            return generic == typeof(IEnumerable<>) ? type.GetElementType() : null;
        }

        var found = type.IsGenericType && type.GetGenericTypeDefinition() == generic
            ? type
            : type.GetInterfaces().FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == generic);
        return found?.GetGenericArguments()[^1];
    }

    /// <summary>Returns null when <paramref name="value"/> converts to <paramref name="type"/>, else what was expected.</summary>
    private static string? Convert(string value, Type type)
    {
        if (type == typeof(string) || type == typeof(object))
        {
            return null;
        }

        if (type.IsEnum)
        {
            var names = Enum.GetNames(type);
            return names.Any(n => string.Equals(n, value.Trim(), StringComparison.OrdinalIgnoreCase)) ? null : "one of " + string.Join(", ", names);
        }

        if (type == typeof(bool))
        {
            return bool.TryParse(value, out _) ? null : "true or false";
        }

        if (type == typeof(TimeSpan))
        {
            return TimeSpan.TryParse(value, CultureInfo.InvariantCulture, out _) ? null : "a duration such as 00:00:30 (hh:mm:ss) or 1.00:00:00 (a day)";
        }

        if (type == typeof(Uri))
        {
            return Uri.TryCreate(value, UriKind.RelativeOrAbsolute, out _) ? null : "a URL";
        }

        try
        {
            _ = TypeDescriptor.GetConverter(type).ConvertFromInvariantString(value);
            return null;
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException or NotSupportedException or OverflowException || ex.InnerException is FormatException or OverflowException)
        {
            return type == typeof(int) || type == typeof(long) || type == typeof(short) || type == typeof(uint) || type == typeof(ulong) || type == typeof(ushort) || type == typeof(byte)
                ? "a whole number"
                : type == typeof(double) || type == typeof(float) || type == typeof(decimal) ? "a number such as 0.5" : "a " + type.Name;
        }
    }

    /// <summary>Returns <paramref name="url"/> with what stands between <c>scheme://</c> and <c>@</c> (a user and password) cut out, for messages.</summary>
    internal static string WithoutCredentials(string url)
    {
        var start = url.IndexOf("://", StringComparison.Ordinal);
        start = start < 0 ? 0 : start + 3;
        var end = url.IndexOfAny(['/', '?', '#'], start);
        var at = url.LastIndexOf('@', end < 0 ? url.Length - 1 : end - 1);
        return at >= start ? string.Concat(url.AsSpan(0, start), "…@", url.AsSpan(at + 1)) : url;
    }

    /// <summary>
    /// The wrong value of a typed setting, as the message shows it: such values are numbers, durations and names, but a
    /// secret pasted into the wrong key must not reach the console, so a long or key-like value is not shown.
    /// </summary>
    private static string Shown(string value)
        => value.Length <= 24 && Failover.SecretMasker.Mask(value) == value ? value : $"(a value of {value.Length} characters, not shown)";

    /// <summary>The candidate closest to <paramref name="name"/>, when it is close enough to be a typo.</summary>
    internal static string? Nearest(string name, IEnumerable<string> candidates)
    {
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var candidate in candidates)
        {
            var distance = Distance(name.ToUpperInvariant(), candidate.ToUpperInvariant());
            if (distance < bestDistance)
            {
                (best, bestDistance) = (candidate, distance);
            }
        }

        return best is not null && bestDistance > 0 && bestDistance <= Math.Clamp(best.Length / 3, 1, 3) ? best : null;
    }

    /// <summary>Levenshtein distance, with a swap of two neighbours counted as one edit.</summary>
    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }

        for (var j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
                }
            }
        }

        return d[a.Length, b.Length];
    }
}
