using AuthFailoverProxy.Events;

namespace AuthFailoverProxy.Alerts;

/// <summary>Which events a channel receives: by kind (exact, or a prefix such as <c>key.*</c>) and by least severity.</summary>
internal sealed class AlertFilter
{
    private readonly string[] _exact;
    private readonly string[] _prefixes;

    private AlertFilter(IEnumerable<string> patterns, EventSeverity minSeverity)
    {
        var list = patterns.Select(p => p.Trim()).ToList();
        var all = list.Count == 0 || list.Contains("*");
        _exact = all ? [] : [.. list.Where(p => !p.EndsWith(".*", StringComparison.Ordinal))];
        _prefixes = all ? [string.Empty] : [.. list.Where(p => p.EndsWith(".*", StringComparison.Ordinal)).Select(p => p[..^1])];
        MinSeverity = minSeverity;
    }

    public EventSeverity MinSeverity { get; }

    /// <summary>Builds the filter of a validated channel.</summary>
    public static AlertFilter From(AlertChannelOptions options)
        => new(options.Events, TryParseSeverity(options.MinSeverity, out var severity) ? severity : EventSeverity.Warning);

    /// <summary>Gets whether the channel wants this kind of event, whatever its severity.</summary>
    public bool AdmitsKind(string kind)
        => _exact.Contains(kind, StringComparer.Ordinal) || _prefixes.Any(p => kind.StartsWith(p, StringComparison.Ordinal));

    public bool Admits(ProxyEvent proxyEvent) => proxyEvent.Severity >= MinSeverity && AdmitsKind(proxyEvent.Kind);

    /// <summary>Gets whether a pattern names a known kind, a prefix of known kinds (<c>key.*</c>) or everything (<c>*</c>).</summary>
    public static bool IsValidPattern(string pattern)
    {
        pattern = pattern.Trim();
        return pattern == "*"
            || EventKinds.All.Contains(pattern, StringComparer.Ordinal)
            || (pattern.EndsWith(".*", StringComparison.Ordinal) && EventKinds.All.Any(k => k.StartsWith(pattern[..^1], StringComparison.Ordinal)));
    }

    public static bool TryParseSeverity(string? text, out EventSeverity severity)
        => Enum.TryParse(text, ignoreCase: true, out severity) && Enum.IsDefined(severity) && !int.TryParse(text, out _);
}
