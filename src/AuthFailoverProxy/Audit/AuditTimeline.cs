using System.Globalization;
using System.Text;
using AuthFailoverProxy.Events;

namespace AuthFailoverProxy.Audit;

/// <summary>
/// Tells an <see cref="AuditReport"/> the way an incident report reads: a heading with the window, one line per event
/// (time, severity, the sentence) with what to do under it, and what is still unresolved at the end.
/// </summary>
/// <example>
/// <code>
/// What happened between 2026-03-03 00:00 and 09:00 UTC (7 events):
/// 00:00:05  ERROR     Key 'primary' (sk-ant-oat01-…AAAA) in pool 'anthropic' is out of service: 403 permission_error "…". Requests now go to 'backup'.
///                     To fix: this key is an OAuth access token (sk-ant-oat01-…) …
/// Still unresolved at 09:00: key:anthropic:primary (since 00:00:05).
/// </code>
/// </example>
internal static class AuditTimeline
{
    private const int SeverityWidth = 10;

    public static string Render(AuditReport report)
    {
        var query = report.Query;
        // Events are before Until; a window within one day shows times of day only.
        var oneDay = query.Since.UtcDateTime.Date == query.Until.UtcDateTime.AddTicks(-1).Date;
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"What happened between {Stamp(query.Since, withDate: true)} and {Stamp(query.Until, withDate: query.Until.UtcDateTime.Date != query.Since.UtcDateTime.Date)} UTC{Filters(query)}");
        text.Append(report.Matched switch
        {
            0 => ": nothing was recorded.\n",
            _ when report.Truncated => $" ({report.Matched} events; the first {report.Events.Count} shown):\n",
            1 => " (1 event):\n",
            _ => $" ({report.Matched} events):\n",
        });

        // Several replicas in one story: say which one saw each event.
        var replicas = report.Events.Select(e => e.Replica).Distinct(StringComparer.Ordinal).Count() > 1;
        foreach (var e in report.Events)
        {
            var time = Time(e.At, oneDay);
            var indent = new string(' ', time.Length + 2 + SeverityWidth);
            text.Append(time).Append("  ").Append(Severity(e.Severity).PadRight(SeverityWidth));
            if (replicas)
            {
                text.Append('[').Append(e.Replica).Append("] ");
            }

            text.Append(e.Message).Append('\n');
            if (e.Remediation is { } remediation)
            {
                text.Append(indent).Append("To fix: ").Append(remediation).Append('\n');
            }

            if (e.RequestId is { } requestId)
            {
                text.Append(indent).Append("Provider request id: ").Append(requestId).Append('\n');
            }
        }

        if (report.Next is { } next)
        {
            text.Append(CultureInfo.InvariantCulture, $"… and {report.Matched - report.Events.Count} more: ask again with since={AuditReport.Iso(next)}, or a higher limit (at most {AuditQuery.MaxLimit}).\n");
        }

        var at = Stamp(query.Until, withDate: !oneDay);
        text.Append(report.Unresolved.Count == 0
            ? $"Nothing unresolved at {at}.\n"
            : $"Still unresolved at {at}: {string.Join(", ", report.Unresolved.Select(i => $"{i.Incident} (since {Time(i.Since, oneDay && i.Since >= query.Since)})"))}.\n");
        return text.ToString();
    }

    private static string Severity(EventSeverity severity) => severity.ToString().ToUpperInvariant();

    private static string Time(DateTimeOffset at, bool timeOnly)
        => at.UtcDateTime.ToString(timeOnly ? "HH:mm:ss" : "yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture);

    private static string Stamp(DateTimeOffset at, bool withDate)
    {
        var utc = at.UtcDateTime;
        var time = utc.Second == 0 && utc.Millisecond == 0 ? "HH:mm" : "HH:mm:ss";
        return utc.ToString(withDate ? "yyyy-MM-dd " + time : time, CultureInfo.InvariantCulture);
    }

    private static string Filters(AuditQuery query)
    {
        List<string> filters = [];
        if (query.Pool is { } pool)
        {
            filters.Add($"pool '{pool}'");
        }

        if (query.Key is { } key)
        {
            filters.Add($"key '{key}'");
        }

        if (query.Kinds.Count > 0)
        {
            filters.Add("kind " + string.Join(" or ", query.Kinds.Select(k => k.EndsWith('.') ? k + "*" : k)));
        }

        if (query.MinSeverity is { } severity)
        {
            filters.Add($"{Severity(severity).ToLowerInvariant()} and above");
        }

        return filters.Count == 0 ? string.Empty : $", for {string.Join(", ", filters)}";
    }
}
