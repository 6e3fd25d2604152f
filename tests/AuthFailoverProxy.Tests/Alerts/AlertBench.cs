using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.Time.Testing;

namespace AuthFailoverProxy.Tests.Alerts;

/// <summary>What the alert tests share: channel configuration the way an operator writes it, and reading what receivers got.</summary>
internal static class AlertBench
{
    public static ProxyConfig Channel(this ProxyConfig config, string name, string type, string? url, params (string Key, string Value)[] settings)
    {
        config.Set($"Alerts:Channels:{name}:Type", type);
        if (url is not null)
        {
            config.Set($"Alerts:Channels:{name}:Url", url);
        }

        foreach (var (key, value) in settings)
        {
            config.Set($"Alerts:Channels:{name}:{key}", value);
        }

        return config;
    }

    /// <summary>Short retries on the real clock: a failing channel gives up within a second.</summary>
    public static ProxyConfig FastRetries(this ProxyConfig config)
        => config.Set("Alerts:Retries", 1).Set("Alerts:RetryDelay", "00:00:00.010").Set("Alerts:MaxRetryDelay", "00:00:00.050").Set("Alerts:AttemptTimeout", "00:00:00.300");

    /// <summary>
    /// For tests on a FakeTimeProvider: the per-attempt timeout runs on that clock too, and must not fire on a delivery
    /// in flight while the test moves time forward.
    /// </summary>
    public static ProxyConfig PatientAttempts(this ProxyConfig config) => config.Set("Alerts:AttemptTimeout", "1.00:00:00");

    /// <summary>The generic webhook's body: <c>{"type","id","title","event":{…}}</c>.</summary>
    public static string? Type(this ReceivedWebhook request) => request.Json.GetProperty("type").GetString();

    public static JsonElement Event(this ReceivedWebhook request) => request.Json.GetProperty("event");

    public static string? Kind(this ReceivedWebhook request) => request.Event().GetProperty("kind").GetString();

    /// <summary>Webhook requests at <paramref name="path"/> of this type and event kind.</summary>
    public static List<ReceivedWebhook> Webhooks(this WebhookReceiver receiver, string path, string type, string kind)
        => [.. receiver.At(path).Where(r => r.Type() == type && r.Kind() == kind)];

    public static Task WaitForAsync(this WebhookReceiver receiver, string path, Func<ReceivedWebhook, bool> match)
        => FailoverTests.WaitUntilAsync(() => receiver.At(path).Any(match));

    /// <summary>Moves the fake clock in steps, giving background work a moment between steps, until the condition holds.</summary>
    public static async Task AdvanceUntilAsync(this FakeTimeProvider time, Func<bool> condition, TimeSpan step, int maxSteps = 400)
    {
        for (var i = 0; i < maxSteps && !condition(); i++)
        {
            time.Advance(step);
            await Task.Delay(5, TestContext.Current.CancellationToken);
        }

        Assert.True(condition(), "the condition never held while time advanced");
    }

    public static string RandomToken(int length = 24) => RandomNumberGenerator.GetString("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", length);

    /// <summary>A loopback port nothing listens on: connecting to it is refused.</summary>
    public static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public static string WebhookSecret() => "whsec_" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
}
