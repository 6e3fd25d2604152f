using System.Net;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Hosting;
using AuthFailoverProxy.Telemetry;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Serilog.Events;

namespace AuthFailoverProxy.Tests.Telemetry;

/// <summary>The per-request summary line: off by default (the request path logs nothing at Information), one Debug line when asked for.</summary>
public sealed class RequestLogTests
{
    private const int SummaryEventId = 9001;

    [Fact]
    public async Task Summary_IsOff_ByDefault()
    {
        await using var s = await Scenario.StartAsync();

        using (var response = await s.PostMessageAsync())
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // The request is counted right after the line would have been written.
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken))
        {
            timeout.CancelAfter(TimeSpan.FromSeconds(20));
            while (await RequestsCountedAsync(s) < 1)
            {
                await Task.Delay(20, timeout.Token);
            }
        }

        Assert.Equal(0, s.Proxy.Logs.CountEventId(SummaryEventId));
    }

    [Fact]
    public async Task Summary_TurnedOnForItsCategory_SaysPoolKeyStatusAndAttempts_WithoutASecret()
    {
        await using var s = await Scenario.StartAsync(configure: c => c.Set($"Serilog:MinimumLevel:Override:{RequestTelemetry.RequestLogCategory}", "Debug"));
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.OAuthRejected);

        using (var response = await s.PostMessageAsync())
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        await FailoverTests.WaitUntilAsync(() => s.Proxy.Logs.CountEventId(SummaryEventId) == 1);
        var line = s.Proxy.Logs.At(LogEventLevel.Debug).Single(e => LogCapture.Property(e, "SourceContext") == RequestTelemetry.RequestLogCategory);
        Assert.Equal("anthropic", LogCapture.Property(line, "Pool"));
        Assert.Equal("backup", LogCapture.Property(line, "KeyName"));
        Assert.Equal("200", LogCapture.Property(line, "Status"));
        Assert.Equal("2", LogCapture.Property(line, "Attempts"));
        Assert.DoesNotContain(s.Secret("backup"), s.Proxy.Logs.AllText, StringComparison.Ordinal);
        Assert.DoesNotContain(s.Secret("primary"), s.Proxy.Logs.AllText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LinesLoggedDuringARequest_CarryNoRequestIdOrPath()
    {
        await using var s = await Scenario.StartAsync(configure: c => c.Set($"Serilog:MinimumLevel:Override:{RequestTelemetry.RequestLogCategory}", "Debug"));

        var line = await SummaryOfOneRequestAsync(s, Message("/v1/messages?beta=true"));

        // ASP.NET Core's request scope is what would add them; its category is off.
        Assert.DoesNotContain("RequestId", line.Properties.Keys);
        Assert.DoesNotContain("RequestPath", line.Properties.Keys);
        Assert.DoesNotContain("/v1/messages", s.Proxy.Logs.AllText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HostingDiagnostics_TurnedBackOnByAnOperator_AddsTheRequestScope()
    {
        await using var s = await Scenario.StartAsync(configure: c => c
            .Set($"Serilog:MinimumLevel:Override:{RequestTelemetry.RequestLogCategory}", "Debug")
            .Set($"Serilog:MinimumLevel:Override:{ProxyLogging.HostingDiagnosticsCategory}", "Warning"));

        var line = await SummaryOfOneRequestAsync(s, Message("/v1/messages?beta=true"));

        Assert.Contains("RequestId", line.Properties.Keys);
        Assert.Equal("/v1/messages", LogCapture.Property(line, "RequestPath"));
    }

    [Fact]
    public async Task LinesLoggedDuringARequest_CarryTheTraceId_WhileATracerListens()
    {
        await using var s = await Scenario.StartAsync(configure: c => c.Set($"Serilog:MinimumLevel:Override:{RequestTelemetry.RequestLogCategory}", "Debug"));
        // Listening to ASP.NET Core's source as the proxy's own tracer does (with an OTLP endpoint).
        using var spans = new AttemptSpans();

        var line = await SummaryOfOneRequestAsync(s, spans.Message(HttpMethod.Post, "/v1/messages", Scenario.MessageBody()));

        Assert.Equal(spans.TraceId, line.TraceId);
        Assert.DoesNotContain("RequestPath", line.Properties.Keys);
    }

    private static HttpRequestMessage Message(string path) => new(HttpMethod.Post, path) { Content = Scenario.MessageBody() };

    private static async Task<LogEvent> SummaryOfOneRequestAsync(Scenario s, HttpRequestMessage request)
    {
        using (request)
        using (var response = await s.Proxy.Agent.SendAsync(request, TestContext.Current.CancellationToken))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        await FailoverTests.WaitUntilAsync(() => s.Proxy.Logs.CountEventId(SummaryEventId) == 1);
        return s.Proxy.Logs.At(LogEventLevel.Debug).Single(e => LogCapture.Property(e, "SourceContext") == RequestTelemetry.RequestLogCategory);
    }

    private static async Task<double> RequestsCountedAsync(Scenario s)
    {
        var text = await s.Proxy.Management.GetStringAsync("/metrics", TestContext.Current.CancellationToken);
        return PrometheusText.Parse(text).Find("afp_requests_total").Sum(m => m.Value);
    }
}
