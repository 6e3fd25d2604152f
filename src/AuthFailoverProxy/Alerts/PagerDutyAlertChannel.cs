using System.Globalization;
using System.Text.Json.Nodes;

namespace AuthFailoverProxy.Alerts;

/// <summary>
/// PagerDuty Events API v2: a problem triggers with <c>dedup_key</c> = the event's incident, so an update lands on the
/// same PagerDuty alert and the resolve closes it. Events without an incident trigger an alert of their own (resolved
/// in PagerDuty by hand); the start-up test triggers and at once resolves. No reminders: PagerDuty escalates by itself.
/// </summary>
internal sealed class PagerDutyAlertChannel(string name, AlertChannelOptions options, IHttpClientFactory clients)
    : HttpAlertChannel(name, new Uri(options.Url ?? AlertChannelTypes.PagerDutyEnqueueUrl), clients, [options.RoutingKey])
{
    private const int SummaryLimit = 1024;
    private readonly string _routingKey = options.RoutingKey!;

    public override string Type => AlertChannelTypes.PagerDuty;

    public override bool TakesReminders => false;

    /// <summary>The dedup key of an alert: its incident, or for a one-off event the event itself.</summary>
    internal static string DedupKey(Alert alert) => alert.Action == AlertAction.Test
        ? $"afp-test:{alert.Id}"
        : alert.Event.Incident ?? $"{alert.Event.Kind}:{alert.Event.Id}";

    internal static IEnumerable<JsonObject> Payloads(Alert alert, string routingKey) => alert.Action switch
    {
        AlertAction.Resolve => [Resolve(alert, routingKey)],
        AlertAction.Test => [Trigger(alert, routingKey), Resolve(alert, routingKey)],
        _ => [Trigger(alert, routingKey)],
    };

    protected override IEnumerable<JsonObject> Payloads(Alert alert) => Payloads(alert, _routingKey);

    private static JsonObject Trigger(Alert alert, string routingKey)
    {
        var e = alert.Event;
        var details = new JsonObject { ["message"] = e.Message };
        AddIfSet(details, "remediation", e.Remediation);
        foreach (var (label, value) in AlertText.Facts(e))
        {
            details[label.ToLowerInvariant().Replace(' ', '_')] = value;
        }

        return new JsonObject
        {
            ["routing_key"] = routingKey,
            ["event_action"] = "trigger",
            ["dedup_key"] = DedupKey(alert),
            ["client"] = "AuthFailoverProxy",
            ["payload"] = new JsonObject
            {
                ["summary"] = AlertText.Cut(e.Message, SummaryLimit),
                ["source"] = e.Replica,
                ["severity"] = AlertText.SeverityWord(e.Severity),
                ["timestamp"] = e.At.ToString("O", CultureInfo.InvariantCulture),
                ["component"] = e.Pool ?? "AuthFailoverProxy",
                ["class"] = e.Kind,
                ["custom_details"] = details,
            },
        };
    }

    private static JsonObject Resolve(Alert alert, string routingKey) => new()
    {
        ["routing_key"] = routingKey,
        ["event_action"] = "resolve",
        ["dedup_key"] = DedupKey(alert),
    };
}
