using System.Text.Json.Nodes;

namespace AuthFailoverProxy.Alerts;

/// <summary>A Slack incoming webhook: <c>{"text":"…","blocks":[…]}</c>. Its URL is the credential and is never shown.</summary>
internal sealed class SlackAlertChannel(string name, AlertChannelOptions options, AlertDelivery delivery)
    : HttpAlertChannel(name, new Uri(options.Url!), delivery, [])
{
    // Slack's limits: a header's text 150 characters, a section's 3000.
    private const int HeaderLimit = 150;
    private const int SectionLimit = 3000;

    public override string Type => AlertChannelTypes.Slack;

    internal static JsonObject Payload(Alert alert)
    {
        var title = AlertText.Title(alert);
        var e = alert.Event;
        var blocks = new JsonArray
        {
            new JsonObject { ["type"] = "header", ["text"] = new JsonObject { ["type"] = "plain_text", ["text"] = AlertText.Cut(title, HeaderLimit) } },
            Section(Escape(e.Message)),
        };
        if (e.Remediation is { } remediation)
        {
            blocks.Add(Section("*What to do:* " + Escape(remediation)));
        }

        if (alert.Action == AlertAction.Reminder)
        {
            blocks.Add(Section(string.Join('\n', AlertText.StillOpenLines(alert).Select(l => "• " + Escape(l)))));
        }
        else
        {
            var facts = string.Join("  ·  ", AlertText.Facts(e).Select(f => $"*{f.Label}:* {Escape(f.Value)}"));
            blocks.Add(new JsonObject { ["type"] = "context", ["elements"] = new JsonArray(new JsonObject { ["type"] = "mrkdwn", ["text"] = AlertText.Cut(facts, SectionLimit) }) });
        }

        return new JsonObject { ["text"] = AlertText.Cut($"{title}: {Escape(e.Message)}", SectionLimit), ["blocks"] = blocks };
    }

    protected override IEnumerable<JsonObject> Payloads(Alert alert) => [Payload(alert)];

    private static JsonObject Section(string markdown)
        => new() { ["type"] = "section", ["text"] = new JsonObject { ["type"] = "mrkdwn", ["text"] = AlertText.Cut(markdown, SectionLimit) } };

    /// <summary>Slack reads &amp;, &lt; and &gt; as markup (links, mentions).</summary>
    private static string Escape(string text)
        => text.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal).Replace(">", "&gt;", StringComparison.Ordinal);
}
