using System.Net;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Events;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Trace;

namespace AuthFailoverProxy.Tests.Telemetry;

/// <summary>
/// <c>/metrics</c> on the management listener, scraped and parsed as Prometheus does: what a failover looks like in
/// numbers, with label values that never carry a secret.
/// </summary>
public sealed class MetricsTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Scrape_AfterAFailover_CountsRequestsFailoversAndKeyStates_WithoutASecret()
    {
        await using var s = await Scenario.StartAsync();
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.OAuthRejected);
        const int Requests = 3;
        for (var i = 0; i < Requests; i++)
        {
            using var response = await s.PostMessageAsync();
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // A request is counted as it ends, which the client may see a moment before; events are counted in the background.
        var scrape = await ScrapeUntilAsync(s, m =>
            m.Value("afp_events_total", ("kind", EventKinds.KeyDead)) == 1
            && m.Value("afp_requests_total", ("pool", "anthropic"), ("key", "backup"), ("status_class", "2xx")) == Requests
            && m.Value("afp_upstream_duration_seconds_count", ("key", "backup"), ("status_class", "2xx")) == Requests);

        // Only the first request met the revoked key; the others went straight to the backup.
        Assert.Equal(1, scrape.Value("afp_failovers_total", ("pool", "anthropic"), ("from", "primary"), ("to", "backup"), ("reason", "dead")));
        Assert.Single(scrape.Find("afp_failovers_total"));
        Assert.Equal(Requests, scrape.Value("afp_requests_total", ("pool", "anthropic"), ("key", "backup"), ("status_class", "2xx")));
        Assert.Single(scrape.Find("afp_requests_total"));
        Assert.Equal(1, scrape.Value("afp_pool_usable_keys", ("pool", "anthropic")));
        Assert.Equal(1, scrape.Value("afp_key_state", ("pool", "anthropic"), ("key", "primary"), ("state", "dead")));
        Assert.Equal(0, scrape.Value("afp_key_state", ("pool", "anthropic"), ("key", "primary"), ("state", "usable")));
        Assert.Equal(1, scrape.Value("afp_key_state", ("pool", "anthropic"), ("key", "backup"), ("state", "usable")));
        Assert.Equal(5, scrape.Find("afp_key_state", ("key", "backup")).Count());
        Assert.Equal(1, scrape.Value("afp_circuit_state", ("pool", "anthropic"), ("state", "closed")));
        Assert.Equal(1, scrape.Value("afp_store_connected", ("store", "memory")));

        // One upstream call per attempt: the primary's rejection and the backup's answers.
        Assert.Equal(1, scrape.Value("afp_upstream_duration_seconds_count", ("key", "primary"), ("status_class", "4xx")));
        Assert.Equal(Requests, scrape.Value("afp_upstream_duration_seconds_count", ("key", "backup"), ("status_class", "2xx")));
        Assert.Equal(Requests, scrape.Value("afp_upstream_time_to_first_byte_seconds_count", ("key", "backup"), ("status_class", "2xx")));

        // Buckets reach minutes (the SDK's default stops at 10 s).
        foreach (var histogram in new[] { "afp_upstream_duration_seconds_bucket", "afp_upstream_time_to_first_byte_seconds_bucket" })
        {
            var bounds = scrape.Find(histogram, ("key", "backup")).Select(b => b["le"]).ToList();
            Assert.Contains("60", bounds);
            Assert.Contains("600", bounds);
            Assert.Contains("+Inf", bounds);
        }

        Assert.DoesNotContain(s.Secret("primary"), scrape.Text, StringComparison.Ordinal);
        Assert.DoesNotContain(s.Secret("backup"), scrape.Text, StringComparison.Ordinal);
        Assert.DoesNotContain(s.Proxy.ClientToken, scrape.Text, StringComparison.Ordinal);
        Assert.DoesNotContain("/v1/messages", scrape.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Scrape_EveryKeyDead_CountsTheProxysOwnAnswers_AndTheFailoverWithNowhereToGo()
    {
        await using var s = await Scenario.StartAsync();
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.Revoked);
        s.Upstream.SetKeyFault(s.Secret("backup"), KeyFault.Revoked);
        for (var i = 0; i < 2; i++)
        {
            using var response = await s.PostMessageAsync();
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        }

        var scrape = await ScrapeUntilAsync(s, m => m.Value("afp_requests_total", ("pool", "anthropic"), ("key", "none"), ("status_class", "5xx")) == 2);

        Assert.Equal(1, scrape.Value("afp_failovers_total", ("from", "primary"), ("to", "backup"), ("reason", "dead")));
        Assert.Equal(1, scrape.Value("afp_failovers_total", ("from", "backup"), ("to", "none"), ("reason", "dead")));
        Assert.Equal(0, scrape.Value("afp_pool_usable_keys", ("pool", "anthropic")));
    }

    [Fact]
    public async Task Scrape_InSafeMode_CountsTheFallbacksAnswers_AndShowsTheSafeMode()
    {
        await using var upstream = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        var primary = Secrets.AnthropicApiKey();
        var reserve = Secrets.AnthropicApiKey();
        var config = new ProxyConfig()
            .Pool("anthropic", upstream, isDefault: true, keys: [("primary", primary)])
            .Pool("second-org", upstream, keys: [("reserve", reserve)])
            .Set("Pools:anthropic:Fallback", "second-org");
        await using var proxy = await ProxyHost.StartAsync(config);
        upstream.SetKeyFault(primary, KeyFault.Revoked);

        using (var response = await proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        var scrape = await ScrapeUntilAsync(proxy, m => m.Value("afp_requests_total", ("pool", "second-org"), ("key", "reserve"), ("status_class", "2xx")) == 1);
        Assert.Equal(1, scrape.Value("afp_failovers_total", ("pool", "anthropic"), ("from", "primary"), ("to", "reserve"), ("reason", "dead")));
        Assert.Equal(1, scrape.Value("afp_pool_safe_mode", ("pool", "anthropic")));
        Assert.Empty(scrape.Find("afp_pool_safe_mode", ("pool", "second-org")));
        Assert.Equal(0, scrape.Value("afp_pool_usable_keys", ("pool", "anthropic")));
        Assert.DoesNotContain(reserve, scrape.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Scrape_CountsAlertsByChannelAndOutcome_FromTheEvents()
    {
        await using var s = await Scenario.StartAsync();
        var events = s.Proxy.Services.GetRequiredService<ProxyEvents>();
        var now = DateTimeOffset.UtcNow;
        events.Publish(new ProxyEvent { Kind = EventKinds.AlertDelivered, Severity = EventSeverity.Info, At = now, Message = "delivered", Actor = "ops-slack" });
        events.Publish(new ProxyEvent { Kind = EventKinds.AlertDelivered, Severity = EventSeverity.Info, At = now, Message = "delivered", Actor = "ops-slack" });
        events.Publish(new ProxyEvent { Kind = EventKinds.AlertFailed, Severity = EventSeverity.Warning, At = now, Message = "failed", Actor = "pagerduty" });

        var scrape = await ScrapeUntilAsync(s, m => m.Value("afp_alerts_total", ("channel", "pagerduty"), ("outcome", "failed")) == 1);

        Assert.Equal(2, scrape.Value("afp_alerts_total", ("channel", "ops-slack"), ("outcome", "delivered")));
    }

    [Fact]
    public async Task Metrics_AreServedOnTheManagementListenerOnly_WithoutEndpointRouting()
    {
        await using var s = await Scenario.StartAsync();

        using var management = await s.Proxy.Management.GetAsync("/metrics", Ct);
        using var agent = await s.Proxy.Agent.GetAsync("/metrics", Ct);

        Assert.Equal(HttpStatusCode.OK, management.StatusCode);
        Assert.Equal("text/plain", management.Content.Headers.ContentType?.MediaType);
        // The agent port proxies every path, /metrics included.
        Assert.DoesNotContain("afp_", await agent.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        Assert.Equal("/metrics", s.Upstream.Requests.Single().PathAndQuery);
        // A branch of the management pipeline, not an endpoint: agent requests never meet a route matcher.
        Assert.Empty(s.Proxy.Services.GetServices<EndpointDataSource>().SelectMany(d => d.Endpoints));
    }

    [Fact]
    public async Task Tracing_WithoutAnOtlpEndpoint_HasNoTracerProvider()
    {
        await using var s = await Scenario.StartAsync();

        Assert.Null(s.Proxy.Services.GetService<TracerProvider>());
    }

    [Fact]
    public async Task Tracing_WithAnOtlpEndpoint_HasATracerProvider()
    {
        // Nothing listens there; the batch exporter drops what it cannot send.
        await using var s = await Scenario.StartAsync(configure: c => c.Set("Telemetry:Otlp:Endpoint", "http://127.0.0.1:9"));

        Assert.NotNull(s.Proxy.Services.GetService<TracerProvider>());
    }

    [Fact]
    public async Task ProxysOwnRefusal_IsCountedUnderKeyNone()
    {
        await using var s = await Scenario.StartAsync();
        using var anonymous = s.Proxy.CreateAgentClient();

        using (var response = await s.PostMessageAsync(anonymous))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }

        var scrape = await ScrapeUntilAsync(s, m => m.Value("afp_requests_total", ("pool", "anthropic"), ("key", "none"), ("status_class", "4xx")) is not null);
        Assert.Equal(1, scrape.Value("afp_requests_total", ("pool", "anthropic"), ("key", "none"), ("status_class", "4xx")));
    }

    private static Task<PrometheusText> ScrapeAsync(Scenario s) => ScrapeAsync(s.Proxy);

    private static async Task<PrometheusText> ScrapeAsync(ProxyHost proxy)
    {
        using var response = await proxy.Management.GetAsync("/metrics", Ct);
        response.EnsureSuccessStatusCode();
        return PrometheusText.Parse(await response.Content.ReadAsStringAsync(Ct));
    }

    /// <summary>Scrapes until <paramref name="ready"/> holds, for values fed in the background (bounded).</summary>
    private static Task<PrometheusText> ScrapeUntilAsync(Scenario s, Func<PrometheusText, bool> ready) => ScrapeUntilAsync(s.Proxy, ready);

    private static async Task<PrometheusText> ScrapeUntilAsync(ProxyHost proxy, Func<PrometheusText, bool> ready)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(20));
        while (true)
        {
            var scrape = await ScrapeAsync(proxy);
            if (ready(scrape))
            {
                return scrape;
            }

            await Task.Delay(50, timeout.Token);
        }
    }
}
