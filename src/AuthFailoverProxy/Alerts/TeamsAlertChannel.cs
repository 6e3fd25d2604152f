using System.Text.Json.Nodes;

namespace AuthFailoverProxy.Alerts;

/// <summary>Microsoft Teams through a Workflows webhook: a message carrying one Adaptive Card (version 1.2).</summary>
internal sealed class TeamsAlertChannel(string name, AlertChannelOptions options, AlertDelivery delivery)
    : HttpAlertChannel(name, new Uri(options.Url!), delivery, [])
{
    public override string Type => AlertChannelTypes.Teams;

    internal static JsonObject Payload(Alert alert)
    {
        var e = alert.Event;
        var body = new JsonArray
        {
            new JsonObject { ["type"] = "TextBlock", ["text"] = AlertText.Title(alert), ["wrap"] = true, ["weight"] = "Bolder", ["size"] = "Medium" },
            Text(e.Message),
        };
        if (e.Remediation is { } remediation)
        {
            body.Add(Text("What to do: " + remediation));
        }

        if (alert.Action == AlertAction.Reminder)
        {
            foreach (var line in AlertText.StillOpenLines(alert))
            {
                body.Add(Text("- " + line));
            }
        }
        else
        {
            body.Add(new JsonObject
            {
                ["type"] = "FactSet",
                ["facts"] = new JsonArray([.. AlertText.Facts(e).Select(f => (JsonNode)new JsonObject { ["title"] = f.Label, ["value"] = f.Value })]),
            });
        }

        return new JsonObject
        {
            ["type"] = "message",
            ["attachments"] = new JsonArray(new JsonObject
            {
                ["contentType"] = "application/vnd.microsoft.card.adaptive",
                ["content"] = new JsonObject
                {
                    ["$schema"] = "http://adaptivecards.io/schemas/adaptive-card.json",
                    ["type"] = "AdaptiveCard",
                    ["version"] = "1.2",
                    ["body"] = body,
                },
            }),
        };
    }

    protected override IEnumerable<JsonObject> Payloads(Alert alert) => [Payload(alert)];

    private static JsonObject Text(string text) => new() { ["type"] = "TextBlock", ["text"] = text, ["wrap"] = true };
}
