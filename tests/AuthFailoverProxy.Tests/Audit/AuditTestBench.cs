using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using AuthFailoverProxy.Audit;
using AuthFailoverProxy.Events;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;

namespace AuthFailoverProxy.Tests.Audit;

/// <summary>What the audit tests share: the operator's token, asking the trail, and telling events of one's own.</summary>
internal static class AuditTestBench
{
    public const string AdminToken = "admin-token-audit-0123456789abcdef";

    public static readonly DateTimeOffset Midnight = DateTimeOffset.Parse("2026-03-03T00:00:00Z", CultureInfo.InvariantCulture);

    public static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static ProxyConfig WithAdmin(this ProxyConfig config) => config.Set("Admin:Tokens:0:Name", "ops").Set("Admin:Tokens:0:Token", AdminToken);

    public static HttpClient AdminClient(ProxyHost proxy)
    {
        var client = new HttpClient { BaseAddress = proxy.ManagementAddress, Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        return client;
    }

    /// <summary>Asks <c>GET /admin/events</c> and returns the answer's events.</summary>
    public static async Task<List<JsonElement>> EventsAsync(ProxyHost proxy, string query = "since=-1d&limit=10000")
    {
        using var admin = AdminClient(proxy);
        var answer = await admin.GetFromJsonAsync<JsonElement>($"/admin/events?{query}", Ct);
        return [.. answer.GetProperty("events").EnumerateArray()];
    }

    /// <summary>Polls the admin API (bounded) until an event of <paramref name="kind"/> is in the trail; a 503 (Redis away) is asked again.</summary>
    public static Task<List<JsonElement>> WaitForEventAsync(ProxyHost proxy, string kind, string query = "since=-1d&limit=10000")
        => WaitForEventsAsync(proxy, kind, 1, query);

    /// <summary>Waits until the trail holds at least <paramref name="count"/> events of <paramref name="kind"/> (they are written in the background) and returns it.</summary>
    public static async Task<List<JsonElement>> WaitForEventsAsync(ProxyHost proxy, string kind, int count, string query = "since=-1d&limit=10000")
    {
        using var admin = AdminClient(proxy);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(20));
        while (true)
        {
            using var response = await admin.GetAsync($"/admin/events?{query}", timeout.Token);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                var events = (await response.Content.ReadFromJsonAsync<JsonElement>(timeout.Token)).GetProperty("events").EnumerateArray().ToList();
                if (events.Count(e => e.GetProperty("kind").GetString() == kind) >= count)
                {
                    return events;
                }
            }

            await Task.Delay(20, timeout.Token);
        }
    }

    /// <summary>Publishes <paramref name="count"/> numbered events ("Event 0 of the bench.", …) as the proxy's own sources do, and waits until they are written.</summary>
    public static async Task TellAsync(ProxyHost proxy, int count, DateTimeOffset at, string padding = "")
    {
        var writer = proxy.Services.GetRequiredService<AuditWriter>();
        var before = writer.Written;
        Tell(proxy, count, at, padding);
        await FailoverTests.WaitUntilAsync(() => writer.Written >= before + count);
    }

    public static void Tell(ProxyHost proxy, int count, DateTimeOffset at, string padding = "")
    {
        var events = proxy.Services.GetRequiredService<ProxyEvents>();
        for (var i = 0; i < count; i++)
        {
            events.Publish(new ProxyEvent
            {
                Kind = EventKinds.KeyChecked,
                Severity = EventSeverity.Info,
                At = at,
                Message = $"Event {i} of the bench.{padding}",
                Pool = "anthropic",
                Key = "primary",
            });
        }
    }

    public static int Number(JsonElement e)
    {
        var message = e.GetProperty("message").GetString()!;
        return int.Parse(message.Split(' ')[1], CultureInfo.InvariantCulture);
    }
}
