using System.Globalization;
using System.Text.Json.Nodes;
using AuthFailoverProxy.Events;

namespace AuthFailoverProxy.Alerts;

/// <summary>
/// A generic JSON webhook, signed per Standard Webhooks (<c>webhook-id</c>, <c>webhook-timestamp</c>,
/// <c>webhook-signature</c>) when a <c>whsec_</c> secret is configured. The body carries the event's every field.
/// </summary>
internal sealed class WebhookAlertChannel(string name, AlertChannelOptions options, AlertDelivery delivery)
    : HttpAlertChannel(name, new Uri(options.Url!), delivery, [options.Secret])
{
    private readonly byte[]? _key = WebhookSignature.TryParseSecret(options.Secret, out var key) ? key : null;

    public override string Type => AlertChannelTypes.Webhook;

    /// <summary>The body: <c>{"type":"trigger","id":"msg_…","title":"…","event":{…},"stillOpen":[…]}</c>.</summary>
    internal static JsonObject Payload(Alert alert)
    {
        var payload = new JsonObject
        {
            ["type"] = alert.Action.ToString().ToLowerInvariant(),
            ["id"] = alert.Id,
            ["title"] = AlertText.Title(alert),
            ["event"] = EventJson(alert.Event),
        };
        if (alert.Action == AlertAction.Reminder)
        {
            payload["stillOpen"] = new JsonArray([.. alert.StillOpen.Select(i => (JsonNode)new JsonObject
            {
                ["incident"] = i.Incident,
                ["since"] = i.Since.ToString("O", CultureInfo.InvariantCulture),
                ["event"] = EventJson(i.Latest),
            })]);
        }

        return payload;
    }

    internal static JsonObject EventJson(ProxyEvent e)
    {
        var json = new JsonObject
        {
            ["id"] = e.Id,
            ["kind"] = e.Kind,
            ["severity"] = AlertText.SeverityWord(e.Severity),
            ["at"] = e.At.ToString("O", CultureInfo.InvariantCulture),
            ["message"] = e.Message,
        };
        AddIfSet(json, "remediation", e.Remediation);
        AddIfSet(json, "pool", e.Pool);
        AddIfSet(json, "key", e.Key);
        AddIfSet(json, "fingerprint", e.Fingerprint);
        if (e.Status is { } status)
        {
            json["status"] = status;
        }

        AddIfSet(json, "errorType", e.ErrorType);
        AddIfSet(json, "errorCode", e.ErrorCode);
        AddIfSet(json, "providerMessage", e.ProviderMessage);
        AddIfSet(json, "requestId", e.RequestId);
        AddIfSet(json, "actor", e.Actor);
        AddIfSet(json, "incident", e.Incident);
        json["resolves"] = e.Resolves;
        json["replica"] = e.Replica;
        return json;
    }

    protected override IEnumerable<JsonObject> Payloads(Alert alert) => [Payload(alert)];

    protected override void AddHeaders(HttpRequestMessage request, Alert alert, byte[] body)
    {
        // Called for every attempt: a retry carries the time it is sent, signed anew, or receivers refuse it as a replay.
        var timestamp = Delivery.Time.GetUtcNow().ToUnixTimeSeconds();
        request.Headers.Add("webhook-id", alert.Id);
        request.Headers.Add("webhook-timestamp", timestamp.ToString(CultureInfo.InvariantCulture));
        if (_key is not null)
        {
            request.Headers.Add("webhook-signature", WebhookSignature.Sign(_key, alert.Id, timestamp, body));
        }
    }
}
