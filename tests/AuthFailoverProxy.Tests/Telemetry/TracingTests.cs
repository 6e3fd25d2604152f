using System.Diagnostics;
using System.Net;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Telemetry;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;

namespace AuthFailoverProxy.Tests.Telemetry;

/// <summary>One activity per upstream attempt, tagged with what happened and never a secret, in the agent's trace.</summary>
public sealed class TracingTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task RevokedPrimary_GivesTwoAttemptActivities_InTheAgentsTrace()
    {
        // A proxy traces when it has somewhere to send its spans; nothing listens there, and the exporter drops them.
        await using var s = await Scenario.StartAsync(configure: c => c.Set("Telemetry:Otlp:Endpoint", "http://127.0.0.1:9"));
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.OAuthRejected);
        using var spans = new AttemptSpans();
        using var request = spans.Message(HttpMethod.Post, "/v1/messages", Scenario.MessageBody());
        using var response = await s.Proxy.Agent.SendAsync(request, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await FailoverTests.WaitUntilAsync(() => spans.Count == 2);

        var attempts = spans.Stopped;
        Assert.All(attempts, a => Assert.Equal(RequestTelemetry.AttemptActivityName, a.OperationName));
        Assert.Equal(["primary", "backup"], attempts.Select(a => a.GetTagItem("afp.key") as string));
        Assert.Equal([1, 2], attempts.Select(a => (int)a.GetTagItem("afp.attempt")!));
        Assert.All(attempts, a => Assert.Equal("anthropic", a.GetTagItem("afp.pool") as string));
        Assert.Equal([403, 200], attempts.Select(a => (int)a.GetTagItem("http.response.status_code")!));
        Assert.Equal(["key_dead", "delivered"], attempts.Select(a => a.GetTagItem("afp.outcome") as string));
        Assert.Equal("403 permission_error", attempts[0].GetTagItem("afp.failure") as string);
        Assert.Equal(ActivityStatusCode.Error, attempts[0].Status);
        Assert.Equal(ActivityStatusCode.Unset, attempts[1].Status);

        // Each upstream call carries the trace on, under its own attempt (under the HTTP client's span, which the
        // proxy's tracer provider listens to).
        var parents = s.AgentRequests.Select(r => r.Headers["traceparent"].Split('-')).ToList();
        Assert.Equal(2, parents.Count);
        Assert.All(parents, p => Assert.Equal(spans.TraceId.ToString(), p[1]));
        Assert.NotEqual(parents[0][2], parents[1][2]);

        var tagText = string.Join(' ', attempts.SelectMany(a => a.TagObjects).Select(t => $"{t.Key}={t.Value}"));
        Assert.DoesNotContain(s.Secret("primary"), tagText, StringComparison.Ordinal);
        Assert.DoesNotContain(s.Secret("backup"), tagText, StringComparison.Ordinal);
        Assert.DoesNotContain(s.Proxy.ClientToken, tagText, StringComparison.Ordinal);
    }
}
