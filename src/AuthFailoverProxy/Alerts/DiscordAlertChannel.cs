using System.Globalization;
using System.Text.Json.Nodes;
using AuthFailoverProxy.Events;

namespace AuthFailoverProxy.Alerts;

/// <summary>
/// A Discord webhook: a short <c>content</c> and one embed, within Discord's limits, with mentions switched off
/// (<c>allowed_mentions.parse = []</c>) so no text in an event can ping anyone. Its URL is the credential.
/// </summary>
internal sealed class DiscordAlertChannel(string name, AlertChannelOptions options, AlertDelivery delivery)
    : HttpAlertChannel(name, new Uri(options.Url!), delivery, [])
{
    // Discord's limits (FACTS.md): content 2000, title 256, description 4096; a field's name 256 and value 1024; 25
    // fields; 6000 characters over the whole embed.
    internal const int ContentLimit = 2000;
    internal const int TitleLimit = 256;
    internal const int DescriptionLimit = 4096;
    internal const int FieldNameLimit = 256;
    internal const int FieldValueLimit = 1024;
    internal const int MaxFields = 25;
    internal const int EmbedLimit = 6000;

    public override string Type => AlertChannelTypes.Discord;

    internal static JsonObject Payload(Alert alert)
    {
        var title = AlertText.Cut(AlertText.Title(alert), TitleLimit);
        var e = alert.Event;
        var fields = alert.Action == AlertAction.Reminder
            ? []
            : AlertText.Facts(e).Take(MaxFields).Select(f => (Name: AlertText.Cut(f.Label, FieldNameLimit), Value: AlertText.Cut(f.Value, FieldValueLimit))).ToList();
        var description = e.Message;
        if (e.Remediation is { } remediation)
        {
            description += "\n\n**What to do:** " + remediation;
        }

        if (alert.Action == AlertAction.Reminder)
        {
            description += "\n\n" + string.Join('\n', AlertText.StillOpenLines(alert).Select(l => "• " + l));
        }

        var room = EmbedLimit - title.Length - fields.Sum(f => f.Name.Length + f.Value.Length);
        description = AlertText.Cut(description, Math.Min(DescriptionLimit, room));
        var embed = new JsonObject
        {
            ["title"] = title,
            ["description"] = description,
            ["color"] = Color(alert),
            ["fields"] = new JsonArray([.. fields.Select(f => (JsonNode)new JsonObject { ["name"] = f.Name, ["value"] = f.Value, ["inline"] = f.Value.Length <= 40 })]),
            ["timestamp"] = e.At.ToString("O", CultureInfo.InvariantCulture),
        };
        return new JsonObject
        {
            ["content"] = AlertText.Cut(title, ContentLimit),
            ["embeds"] = new JsonArray(embed),
            ["allowed_mentions"] = new JsonObject { ["parse"] = new JsonArray() },
        };
    }

    protected override IEnumerable<JsonObject> Payloads(Alert alert) => [Payload(alert)];

    private static int Color(Alert alert) => alert.Action == AlertAction.Resolve ? 0x2ECC71 : alert.Event.Severity switch
    {
        EventSeverity.Critical => 0x992D22,
        EventSeverity.Error => 0xE74C3C,
        EventSeverity.Warning => 0xF1C40F,
        _ => 0x3498DB,
    };
}
