using System.Globalization;
using System.Text.Json.Nodes;
using AuthFailoverProxy.Events;

namespace AuthFailoverProxy.Alerts;

/// <summary>
/// PagerDuty Events API v2: a problem triggers with <c>dedup_key</c> = <c>{deployment}:{incident}</c>
/// (<see cref="AlertOptions.Deployment"/>), so an update lands on the same PagerDuty alert, the resolve closes it, and
/// another deployment sending to the same service never closes it. Events without an incident trigger an alert of their
/// own (resolved in PagerDuty by hand), except the start-up summary, which opens none: each condition it reports (a key
/// dead, a pool degraded or exhausted) pages on its own incident, resolved when it clears, while the summary would be a
/// second page nothing ever clears. The test alert triggers and at once resolves. No reminders: PagerDuty escalates by itself.
/// </summary>
internal sealed class PagerDutyAlertChannel(string name, AlertChannelOptions options, AlertDelivery delivery)
    : HttpAlertChannel(name, new Uri(options.Url ?? AlertChannelTypes.PagerDutyEnqueueUrl), delivery, [options.RoutingKey])
{
    private const int SummaryLimit = 1024;
    private readonly string _routingKey = options.RoutingKey!;
    private readonly string _deployment = delivery.Options.Deployment ?? AlertOptions.DefaultDeployment;

    public override string Type => AlertChannelTypes.PagerDuty;

    public override bool TakesReminders => false;

    public override bool Takes(ProxyEvent e) => e.Kind != EventKinds.StartupSummary;

    /// <summary>The dedup key of an alert: the deployment and its incident, or for a one-off event the event itself.</summary>
    internal static string DedupKey(Alert alert, string deployment) => alert.Action == AlertAction.Test
        ? $"{deployment}:afp-test:{alert.Id}"
        : $"{deployment}:{alert.Event.Incident ?? $"{alert.Event.Kind}:{alert.Event.Id}"}";

    protected override IEnumerable<JsonObject> Payloads(Alert alert) => alert.Action switch
    {
        AlertAction.Resolve => [Resolve(alert)],
        AlertAction.Test => [Trigger(alert), Resolve(alert)],
        _ => [Trigger(alert)],
    };

    private JsonObject Trigger(Alert alert)
    {
        var e = alert.Event;
        var details = new JsonObject { ["message"] = e.Message };
        AddIfSet(details, "remediation", e.Remediation);
        foreach (var (label, value) in AlertText.Facts(e))
        {
            details[label.ToLowerInvariant().Replace(' ', '_')] = value;
        }

        details["deployment"] = _deployment;
        return new JsonObject
        {
            ["routing_key"] = _routingKey,
            ["event_action"] = "trigger",
            ["dedup_key"] = DedupKey(alert, _deployment),
            ["client"] = "AuthFailoverProxy",
            ["payload"] = new JsonObject
            {
                ["summary"] = AlertText.Cut(e.Message, SummaryLimit),
                ["source"] = e.Replica,
                ["severity"] = AlertText.SeverityWord(e.Severity),
                ["timestamp"] = e.At.ToString("O", CultureInfo.InvariantCulture),
                ["component"] = e.Pool ?? "AuthFailoverProxy",
                ["group"] = _deployment,
                ["class"] = e.Kind,
                ["custom_details"] = details,
            },
        };
    }

    private JsonObject Resolve(Alert alert) => new()
    {
        ["routing_key"] = _routingKey,
        ["event_action"] = "resolve",
        ["dedup_key"] = DedupKey(alert, _deployment),
    };
}
