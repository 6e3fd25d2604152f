using System.Globalization;
using AuthFailoverProxy.Events;

namespace AuthFailoverProxy.Alerts;

/// <summary>What an alert does to the problem it is about.</summary>
internal enum AlertAction
{
    /// <summary>A problem opened.</summary>
    Trigger,

    /// <summary>An open problem changed: another kind, or worse (a key cooling, then dead).</summary>
    Update,

    /// <summary>A problem ended.</summary>
    Resolve,

    /// <summary>Something worth telling that opens no problem.</summary>
    Notice,

    /// <summary>A digest of the problems still open.</summary>
    Reminder,

    /// <summary>A test that the channel works.</summary>
    Test,
}

/// <summary>An open problem as a reminder lists it: its latest state and since when it has been open.</summary>
internal sealed record AlertIncident(string Incident, ProxyEvent Latest, DateTimeOffset Since);

/// <summary>One message for the channels: an event and what it does, or a digest of what is still open.</summary>
internal sealed record Alert(AlertAction Action, ProxyEvent Event)
{
    /// <summary>The kind a reminder's event carries; never published, so never in the audit trail.</summary>
    public const string ReminderKind = "alert.reminder";

    /// <summary>Gets the message id, the same on every retry (receivers deduplicate on it).</summary>
    public string Id { get; } = "msg_" + Guid.CreateVersion7().ToString("N");

    /// <summary>Gets the problems a <see cref="AlertAction.Reminder"/> lists.</summary>
    public IReadOnlyList<AlertIncident> StillOpen { get; init; } = [];

    /// <summary>Gets a source told of the outcome (the test at start waits on it), or <see langword="null"/>.</summary>
    public TaskCompletionSource<AlertOutcome>? Outcome { get; init; }
}

/// <summary>How a delivery ended: delivered, or the reason it was not (never a URL or a secret).</summary>
internal sealed record AlertOutcome(bool Delivered, int? Status, string? Error);

/// <summary>The words every channel uses, so a page, a chat message and a mail say the same thing.</summary>
internal static class AlertText
{
    /// <summary>"[ERROR] key.dead", "[RESOLVED] key.recovered", "[REMINDER] 2 problems still open".</summary>
    public static string Title(Alert alert) => alert.Action switch
    {
        AlertAction.Resolve => $"[RESOLVED] {alert.Event.Kind}",
        AlertAction.Update => $"[{Severity(alert.Event.Severity)}] {alert.Event.Kind} (update)",
        AlertAction.Reminder => $"[REMINDER] {alert.StillOpen.Count} problem{(alert.StillOpen.Count == 1 ? string.Empty : "s")} still open",
        AlertAction.Test => "[TEST] AuthFailoverProxy alert channel",
        _ => $"[{Severity(alert.Event.Severity)}] {alert.Event.Kind}",
    };

    public static string Severity(EventSeverity severity) => severity.ToString().ToUpperInvariant();

    /// <summary>The lower-case severity PagerDuty and webhook receivers read.</summary>
    public static string SeverityWord(EventSeverity severity) => severity.ToString().ToLowerInvariant();

    /// <summary>The facts as label and value, those that are known.</summary>
    public static IReadOnlyList<(string Label, string Value)> Facts(ProxyEvent e)
    {
        var facts = new List<(string, string)>();
        if (e.Pool is not null)
        {
            facts.Add(("Pool", e.Pool));
        }

        if (e.Key is not null)
        {
            facts.Add(("Key", e.Fingerprint is null ? e.Key : $"{e.Key} ({e.Fingerprint})"));
        }

        if (e.Status is not null || e.ErrorType is not null)
        {
            facts.Add(("Upstream answer", string.Join(' ', new[] { e.Status?.ToString(CultureInfo.InvariantCulture), e.ErrorType, e.ErrorCode }.Where(s => s is not null))));
        }

        if (e.ProviderMessage is not null)
        {
            facts.Add(("Provider message", e.ProviderMessage));
        }

        if (e.RequestId is not null)
        {
            facts.Add(("Request id", e.RequestId));
        }

        if (e.Actor is not null)
        {
            facts.Add(("By", e.Actor));
        }

        if (e.Incident is not null)
        {
            facts.Add(("Incident", e.Incident));
        }

        facts.Add(("Seen by", e.Replica));
        facts.Add(("At", Time(e.At)));
        return facts;
    }

    /// <summary>One line per open problem: "[ERROR] key.dead since 2026-03-03 00:00 UTC: Key 'primary' … is out of service…".</summary>
    public static IEnumerable<string> StillOpenLines(Alert alert)
        => alert.StillOpen.Select(i => $"[{Severity(i.Latest.Severity)}] {i.Latest.Kind} since {Time(i.Since)}: {i.Latest.Message}");

    /// <summary>The whole alert as plain text: sentence, what to do, facts, and for a reminder the list.</summary>
    public static string PlainText(Alert alert)
    {
        var lines = new List<string> { alert.Event.Message };
        if (alert.Event.Remediation is { } remediation)
        {
            lines.Add(string.Empty);
            lines.Add("What to do: " + remediation);
        }

        if (alert.Action == AlertAction.Reminder)
        {
            lines.Add(string.Empty);
            lines.AddRange(StillOpenLines(alert).Select(l => "- " + l));
        }
        else
        {
            lines.Add(string.Empty);
            lines.AddRange(Facts(alert.Event).Select(f => $"{f.Label}: {f.Value}"));
        }

        return string.Join('\n', lines);
    }

    public static string Time(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture);

    /// <summary>Cuts text to a receiver's limit, marking the cut with an ellipsis.</summary>
    public static string Cut(string text, int limit) => text.Length <= limit ? text : string.Concat(text.AsSpan(0, limit - 1), "…");
}
