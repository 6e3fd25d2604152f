using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using AuthFailoverProxy.Events;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using static AuthFailoverProxy.Tests.Audit.AuditTestBench;

namespace AuthFailoverProxy.Tests.Audit;

/// <summary><c>GET /admin/events</c>: the window and filters asked for, plain answers to mistakes, and only for an operator.</summary>
public sealed class AuditEndpointsTests
{
    [Fact]
    public async Task Query_FiltersByWindowPoolKeyKindSeverity_OldestFirst_AndSaysWhenTruncated()
    {
        var time = new FakeTimeProvider(Midnight.AddHours(9));
        await using var s = await Scenario.StartAsync(time: time, configure: c => c.WithAdmin());
        await TellTheNightAsync(s.Proxy);

        async Task<List<string>> Ask(string query) => [.. (await EventsAsync(s.Proxy, query)).Select(e => $"{e.GetProperty("at").GetDateTimeOffset():HH:mm} {e.GetProperty("kind").GetString()}")];

        const string Night = "since=2026-03-03T00:00:00Z&until=2026-03-03T09:00:00Z";
        string[] all = ["00:00 key.dead", "00:00 key.failover", "00:00 pool.degraded", "01:00 key.dead", "02:00 pool.exhausted", "03:00 key.recovered", "08:40 key.disabled"];
        Assert.Equal(all, await Ask(Night));
        Assert.Equal(all, await Ask("since=-9h"));
        Assert.Equal(all[3..6], await Ask("since=2026-03-03T01:00&until=2026-03-03T08:00"));
        Assert.Equal(["01:00 key.dead", "02:00 pool.exhausted", "03:00 key.recovered"], await Ask($"{Night}&pool=openai"));
        Assert.Equal(["00:00 key.dead", "00:00 key.failover", "08:40 key.disabled"], await Ask($"{Night}&pool=anthropic&key=primary"));
        Assert.Equal(["00:00 key.dead", "01:00 key.dead"], await Ask($"{Night}&kind=key.dead"));
        Assert.Equal(["00:00 pool.degraded", "02:00 pool.exhausted"], await Ask($"{Night}&kind=pool.*"));
        Assert.Equal(["00:00 key.dead", "01:00 key.dead", "02:00 pool.exhausted"], await Ask($"{Night}&severity=error"));

        using var admin = AdminClient(s.Proxy);
        var page = await admin.GetFromJsonAsync<JsonElement>($"/admin/events?{Night}&limit=2", Ct);
        Assert.Equal(2, page.GetProperty("count").GetInt32());
        Assert.Equal(7, page.GetProperty("matched").GetInt32());
        Assert.True(page.GetProperty("truncated").GetBoolean());
        Assert.Contains("ask again with since=2026-03-03T00:00:05Z", page.GetProperty("message").GetString(), StringComparison.Ordinal);
        // Open at 09:00, however long ago they began; the resolved openai key is not.
        Assert.Equal(
            ["store:replica-a", "key:anthropic:primary", "pool:anthropic", "pool:openai"],
            page.GetProperty("unresolved").EnumerateArray().Select(i => i.GetProperty("incident").GetString()));

        var text = await admin.GetStringAsync($"/admin/events?{Night}&format=text", Ct);
        Assert.StartsWith("What happened between 2026-03-03 00:00 and 09:00 UTC (7 events):\n", text, StringComparison.Ordinal);
        Assert.EndsWith("Still unresolved at 09:00: store:replica-a (since 2026-03-02 23:00:00), key:anthropic:primary (since 00:00:05), pool:anthropic (since 00:00:05), pool:openai (since 02:00:00).\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BadParameters_Get400_SayingWhatIsAccepted()
    {
        await using var s = await Scenario.StartAsync(configure: c => c.WithAdmin());
        using var admin = AdminClient(s.Proxy);
        (string Query, string Says)[] mistakes =
        [
            ("since=yesterday", "since 'yesterday' is not an ISO 8601 time (2026-03-03T00:00:00Z"),
            ("until=2026-13-01T00:00:00Z", "or a time relative to now (-9h, -30m"),
            ("since=-1h&until=-2h", "must be before until"),
            ("limit=0", "limit '0' is not a number from 1 to 10000"),
            ("limit=20000", "limit '20000' is not a number from 1 to 10000"),
            ("severity=loud", "not one of info, warning, error, critical"),
            ("kind=nope", "kind 'nope' is not a kind of event"),
            ("sinse=-1h", "unknown parameter 'sinse'"),
            ("format=xml", "format 'xml' is not json or text"),
        ];

        foreach (var (query, says) in mistakes)
        {
            foreach (var path in new[] { "/admin/events", "/admin/events/timeline" })
            {
                using var response = await admin.GetAsync($"{path}?{query}", Ct);
                var body = await response.Content.ReadAsStringAsync(Ct);

                Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{path}?{query}: {response.StatusCode} {body}");
                Assert.Contains(says, JsonDocument.Parse(body).RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
            }
        }
    }

    [Theory]
    [InlineData(null)]
    [InlineData("wrong-token")]
    public async Task NoOrWrongToken_Gets401(string? token)
    {
        await using var s = await Scenario.StartAsync(configure: c => c.WithAdmin());
        foreach (var path in new[] { "/admin/events?since=-9h", "/admin/events/timeline?since=-9h" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            if (token is not null)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            }

            using var response = await s.Proxy.Management.SendAsync(request, Ct);

            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.DoesNotContain("events", await response.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task EventsPathOnTheAgentPort_IsNotTheAdminApi()
    {
        await using var s = await Scenario.StartAsync(configure: c => c.WithAdmin());
        using var request = new HttpRequestMessage(HttpMethod.Get, "/admin/events/timeline?since=-9h");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);

        using var response = await s.Proxy.Agent.SendAsync(request, Ct);

        // Proxied upstream like any agent path, with a pool key: the trail is never served here.
        var forwarded = Assert.Single(s.Upstream.Requests);
        Assert.Equal("/admin/events/timeline?since=-9h", forwarded.PathAndQuery);
        Assert.DoesNotContain(AdminToken, string.Join(' ', forwarded.Headers.Values), StringComparison.Ordinal);
        Assert.DoesNotContain("What happened", await response.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Disabled_RecordsNothing_AndSaysSo()
    {
        await using var s = await Scenario.StartAsync(configure: c => c.WithAdmin().Set("Audit:Enabled", "false"));
        using var admin = AdminClient(s.Proxy);

        Tell(s.Proxy, 1, Midnight);

        using var response = await admin.GetAsync("/admin/events", Ct);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains("Audit:Enabled is false", await response.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        Assert.False(Directory.Exists(s.Proxy.Services.GetRequiredService<IConfiguration>()["Audit:Directory"]));
    }

    /// <summary>Tells a night's events, as the proxy's sources would, and waits until they are written.</summary>
    private static async Task TellTheNightAsync(ProxyHost proxy)
    {
        ProxyEvent At(string time, string kind, EventSeverity severity, string? pool, string? key, string? incident = null, bool resolves = false) => new()
        {
            Kind = kind,
            Severity = severity,
            At = DateTimeOffset.Parse(time, CultureInfo.InvariantCulture),
            Message = $"{kind} {pool}/{key}",
            Remediation = severity >= EventSeverity.Error ? "do something" : null,
            Pool = pool,
            Key = key,
            Incident = incident,
            Resolves = resolves,
        };

        ProxyEvent[] night =
        [
            At("2026-03-02T23:00:00Z", EventKinds.StoreLost, EventSeverity.Error, null, null, "store:replica-a"),
            At("2026-03-03T00:00:05Z", EventKinds.KeyDead, EventSeverity.Error, "anthropic", "primary", "key:anthropic:primary"),
            At("2026-03-03T00:00:05Z", EventKinds.KeyFailover, EventSeverity.Info, "anthropic", "primary"),
            At("2026-03-03T00:00:05Z", EventKinds.PoolDegraded, EventSeverity.Warning, "anthropic", null, "pool:anthropic"),
            At("2026-03-03T01:00:00Z", EventKinds.KeyDead, EventSeverity.Error, "openai", "main", "key:openai:main"),
            At("2026-03-03T02:00:00Z", EventKinds.PoolExhausted, EventSeverity.Critical, "openai", null, "pool:openai"),
            At("2026-03-03T03:00:00Z", EventKinds.KeyRecovered, EventSeverity.Info, "openai", "main", "key:openai:main", resolves: true),
            At("2026-03-03T08:40:00Z", EventKinds.KeyDisabled, EventSeverity.Info, "anthropic", "primary"),
            At("2026-03-03T09:00:00Z", EventKinds.KeyEnabled, EventSeverity.Info, "anthropic", "primary"),
        ];

        // Written out of order, as replicas do: the answer is in time order all the same.
        var writer = proxy.Services.GetRequiredService<AuthFailoverProxy.Audit.AuditWriter>();
        var before = writer.Written;
        var events = proxy.Services.GetRequiredService<ProxyEvents>();
        foreach (var e in night[7..].Concat(night[..7]))
        {
            events.Publish(e);
        }

        await Failover.FailoverTests.WaitUntilAsync(() => writer.Written >= before + night.Length);
    }
}
