using System.Globalization;
using System.Text.RegularExpressions;
using AuthFailoverProxy.Events;

namespace AuthFailoverProxy.Audit;

/// <summary>
/// What <c>GET /admin/events</c> asks for: a window [<see cref="Since"/>, <see cref="Until"/>) and optional filters. Times
/// are ISO 8601 (<c>2026-03-03T00:00:00Z</c>; without a zone, UTC) or relative to now (<c>-9h</c>, <c>-30m</c>).
/// </summary>
internal sealed partial record AuditQuery(
    DateTimeOffset Since,
    DateTimeOffset Until,
    string? Pool,
    string? Key,
    IReadOnlyList<string> Kinds,
    EventSeverity? MinSeverity,
    int Limit,
    bool Text)
{
    public const int DefaultLimit = 1000;
    public const int MaxLimit = 10_000;

    /// <summary>Gets the window when <c>since</c> is not given: the day before <c>until</c>.</summary>
    public static TimeSpan DefaultWindow { get; } = TimeSpan.FromHours(24);

    private const string TimeForms = "an ISO 8601 time (2026-03-03T00:00:00Z, 2026-03-03T09:00, 2026-03-03; UTC unless a zone is given) or a time relative to now (-9h, -30m, -2d, -90s, now)";

    private static readonly string[] Parameters = ["since", "until", "pool", "key", "kind", "severity", "limit", "format"];

    private static readonly string[] IsoForms =
    [
        "yyyy-MM-dd'T'HH:mm:ss.FFFFFFFK",
        "yyyy-MM-dd'T'HH:mm:ssK",
        "yyyy-MM-dd'T'HH:mmK",
        "yyyy-MM-dd HH:mm:ss.FFFFFFFK",
        "yyyy-MM-dd HH:mm:ssK",
        "yyyy-MM-dd HH:mmK",
        "yyyy-MM-dd",
    ];

    /// <summary>Gets a value indicating whether events about <paramref name="e"/>'s pool and key are asked for (kind and severity aside).</summary>
    public bool MatchesSubject(ProxyEvent e)
        => (Pool is null || string.Equals(e.Pool, Pool, StringComparison.Ordinal)) && (Key is null || string.Equals(e.Key, Key, StringComparison.Ordinal));

    /// <summary>Gets a value indicating whether <paramref name="e"/> is asked for, its time aside.</summary>
    public bool Matches(ProxyEvent e)
        => MatchesSubject(e)
            && (MinSeverity is not { } minimum || e.Severity >= minimum)
            && (Kinds.Count == 0 || Kinds.Any(k => k.EndsWith('.') ? e.Kind.StartsWith(k, StringComparison.Ordinal) : e.Kind == k));

    /// <summary>Reads the query string; on a mistake returns null and says, for each parameter at fault, what it accepts.</summary>
    public static AuditQuery? Parse(IQueryCollection query, DateTimeOffset now, out string? error)
    {
        var errors = new List<string>();
        foreach (var name in query.Keys.Where(k => !Parameters.Contains(k, StringComparer.OrdinalIgnoreCase)))
        {
            errors.Add($"unknown parameter '{name}': use {string.Join(", ", Parameters)}.");
        }

        string? One(string name)
        {
            var values = query[name];
            if (values.Count > 1)
            {
                errors.Add($"give {name} once.");
            }

            return values.Count == 0 || string.IsNullOrWhiteSpace(values[0]) ? null : values[0]!.Trim();
        }

        var until = Time(One("until"), "until", now, errors) ?? now;
        var since = Time(One("since"), "since", now, errors) ?? until - DefaultWindow;
        if (since >= until)
        {
            errors.Add($"since ({since.UtcDateTime:yyyy-MM-dd'T'HH:mm:ss'Z'}) must be before until ({until.UtcDateTime:yyyy-MM-dd'T'HH:mm:ss'Z'}).");
        }

        var kinds = ParseKinds(One("kind"), errors);
        var severity = One("severity") switch
        {
            null => (EventSeverity?)null,
            var s when SeverityNamed(s) is { } parsed => parsed,
            var s => Fail<EventSeverity?>(errors, $"severity '{s}' is not one of info, warning, error, critical (the least severe to show)."),
        };
        var limit = One("limit") switch
        {
            null => DefaultLimit,
            var s when int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= MaxLimit => n,
            var s => Fail<int>(errors, $"limit '{s}' is not a number from 1 to {MaxLimit} (the default is {DefaultLimit})."),
        };
        var text = One("format") switch
        {
            null => false,
            var f when f.Equals("json", StringComparison.OrdinalIgnoreCase) => false,
            var f when f.Equals("text", StringComparison.OrdinalIgnoreCase) => true,
            var f => Fail<bool>(errors, $"format '{f}' is not json or text."),
        };

        error = errors.Count == 0 ? null : string.Join(" ", errors);
        return errors.Count == 0 ? new AuditQuery(since.ToUniversalTime(), until.ToUniversalTime(), One("pool"), One("key"), kinds, severity, limit, text) : null;
    }

    private static DateTimeOffset? Time(string? value, string name, DateTimeOffset now, List<string> errors)
    {
        if (value is null)
        {
            return null;
        }

        if (value.Equals("now", StringComparison.OrdinalIgnoreCase))
        {
            return now;
        }

        if (Relative().Match(value) is { Success: true } relative
            && long.TryParse(relative.Groups["n"].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture, out var amount)
            && amount <= 366L * 24 * 3600)
        {
            var unit = relative.Groups["unit"].Value.ToLowerInvariant() switch
            {
                "s" => TimeSpan.FromSeconds(1),
                "m" => TimeSpan.FromMinutes(1),
                "h" => TimeSpan.FromHours(1),
                _ => TimeSpan.FromDays(1),
            };
            return now - (unit * amount);
        }

        // A '+' in a query string arrives as a space: 2026-03-03T00:00:00+01:00 is meant.
        var iso = value.Length > 19 ? value[..19] + value[19..].Replace(' ', '+') : value;
        if (DateTimeOffset.TryParseExact(iso, IsoForms, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var absolute))
        {
            return absolute;
        }

        errors.Add($"{name} '{value}' is not {TimeForms}.");
        return null;
    }

    private static List<string> ParseKinds(string? value, List<string> errors)
    {
        List<string> kinds = [];
        foreach (var kind in (value ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            // "key.*" and "key" both mean every key.… kind.
            var prefix = kind.EndsWith(".*", StringComparison.Ordinal) ? kind[..^1] : EventKinds.All.Contains(kind) ? null : kind + ".";
            if (prefix is null)
            {
                kinds.Add(kind);
            }
            else if (EventKinds.All.Any(k => k.StartsWith(prefix, StringComparison.Ordinal)))
            {
                kinds.Add(prefix);
            }
            else
            {
                errors.Add($"kind '{kind}' is not a kind of event: use one or more of {string.Join(", ", EventKinds.All)}, or a family such as key.* (comma-separated).");
            }
        }

        return kinds;
    }

    private static EventSeverity? SeverityNamed(string name)
        => Enum.GetValues<EventSeverity>().Cast<EventSeverity?>().FirstOrDefault(v => v.ToString()!.Equals(name, StringComparison.OrdinalIgnoreCase));

    private static T? Fail<T>(List<string> errors, string message)
    {
        errors.Add(message);
        return default;
    }

    [GeneratedRegex(@"^-(?<n>\d{1,9})(?<unit>[smhdSMHD])$", RegexOptions.CultureInvariant)]
    private static partial Regex Relative();
}
