using AuthFailoverProxy.Events;

namespace AuthFailoverProxy.Audit;

/// <summary>
/// The answer to an <see cref="AuditQuery"/>: the events of the window, oldest first (at most its limit), and the
/// problems still open at its end, however long ago they began.
/// </summary>
internal sealed record AuditReport(AuditQuery Query, IReadOnlyList<ProxyEvent> Events, int Matched, DateTimeOffset? Next, IReadOnlyList<OpenIncident> Unresolved)
{
    public bool Truncated => Next is not null;

    /// <summary>Writes a time the way <c>since</c> and <c>until</c> accept it back.</summary>
    public static string Iso(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", System.Globalization.CultureInfo.InvariantCulture);

    public static async Task<AuditReport> ReadAsync(IAuditTrail trail, AuditQuery query, CancellationToken cancellationToken)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var window = new List<ProxyEvent>();
        var incidents = new Dictionary<string, List<ProxyEvent>>(StringComparer.Ordinal);
        await foreach (var e in trail.ReadAsync(cancellationToken))
        {
            // A retried write can store an event twice; its id is unique.
            if (e.At >= query.Until || !query.MatchesSubject(e) || !seen.Add(e.Id))
            {
                continue;
            }

            // Every incident of the subject counts, whatever the kind and severity asked for: its resolution may be neither.
            if (e.Incident is { } incident)
            {
                if (!incidents.TryGetValue(incident, out var told))
                {
                    incidents[incident] = told = [];
                }

                told.Add(e);
            }

            if (e.At >= query.Since && query.Matches(e))
            {
                window.Add(e);
            }
        }

        // Replicas append as they see events, so the trail is nearly but not strictly in time order; the sort is stable.
        var ordered = window.OrderBy(e => e.At).ToList();
        var unresolved = incidents
            .Select(i => OpenSince(i.Key, i.Value))
            .OfType<OpenIncident>()
            .OrderBy(i => i.Since)
            .ThenBy(i => i.Incident, StringComparer.Ordinal)
            .ToList();
        var next = ordered.Count > query.Limit ? ordered[query.Limit].At : (DateTimeOffset?)null;
        return new AuditReport(query, ordered.Take(query.Limit).ToList(), ordered.Count, next, unresolved);
    }

    /// <summary>
    /// An incident is open from the first event of Warning or above that does not resolve it until one that does. An
    /// informational event never opens one: it records a change, not a problem.
    /// </summary>
    private static OpenIncident? OpenSince(string incident, List<ProxyEvent> told)
    {
        ProxyEvent? opened = null;
        foreach (var e in told.OrderBy(e => e.At))
        {
            if (e.Resolves)
            {
                opened = null;
            }
            else if (opened is null && e.Severity >= EventSeverity.Warning)
            {
                opened = e;
            }
        }

        return opened is null ? null : new OpenIncident(incident, opened.At, opened.Message);
    }
}

/// <summary>A problem still open at the end of the window: its incident, since when, and the sentence that opened it.</summary>
internal sealed record OpenIncident(string Incident, DateTimeOffset Since, string Message);

/// <summary>What <c>GET /admin/events</c> answers.</summary>
internal sealed record AuditEventList(
    DateTimeOffset Since,
    DateTimeOffset Until,
    int Count,
    int Matched,
    bool Truncated,
    string? Message,
    IReadOnlyList<ProxyEvent> Events,
    IReadOnlyList<OpenIncident> Unresolved);

internal sealed record AuditError(string Error);
