using System.Net;
using System.Text;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Events;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;
using AuthFailoverProxy.Tests.Alerts;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;

namespace AuthFailoverProxy.Tests.Failover;

/// <summary>
/// Next to the hostile requests, the real deaths: what the provider says about a credential or its account still fails
/// over at once, and is confirmed by a check, shared with the other replica and alerted, once.
/// </summary>
public sealed class RealDeathTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(nameof(KeyFault.OAuthRejected), 403, "permission_error")]
    [InlineData(nameof(KeyFault.Revoked), 401, "authentication_error")]
    [InlineData(nameof(KeyFault.NoCredit), 400, "invalid_request_error")]
    [InlineData(nameof(KeyFault.SpendLimit), 429, "rate_limit_error")]
    public async Task RealDeath_FailsOverAtOnce_IsConfirmedSharedAndAlertedOnce(string faultName, int status, string errorType)
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var d = await Deployment.StartAsync(configure: c => c.Channel("ops", "webhook", receiver.Url("/ops")).FastRetries());
        var a = await d.AddReplicaAsync();
        var b = await d.AddReplicaAsync();
        d.Upstream.SetKeyFault(d.Primary, Enum.Parse<KeyFault>(faultName));

        using (var first = await a.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
            Assert.Equal(("backup", "2"), (FailoverTests.Header(first, "x-afp-key"), FailoverTests.Header(first, "x-afp-attempts")));
        }

        // Confirmed by a check, then shared: the other replica never pays for it.
        await FailoverTests.WaitUntilAsync(() => Primary(b).Health.State == KeyState.Dead);
        Assert.Equal((status, errorType), (Primary(b).Health.LastFailure!.Status, Primary(b).Health.LastFailure!.ErrorType));
        Assert.Single(d.Upstream.Requests, r => r.Key == d.Primary && Scenario.IsKeyCheck(r));
        using (var onB = await b.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
        {
            Assert.Equal(("backup", "1"), (FailoverTests.Header(onB, "x-afp-key"), FailoverTests.Header(onB, "x-afp-attempts")));
        }

        Assert.Equal(1, d.Upstream.Requests.Count(r => r.Key == d.Primary && !Scenario.IsKeyCheck(r)));
        await receiver.WaitForAsync("/ops", r => r.Kind() == EventKinds.KeyDead);
        var alert = Assert.Single(receiver.Webhooks("/ops", "trigger", EventKinds.KeyDead));
        Assert.Equal("primary", alert.Event().GetProperty("key").GetString());
        Assert.DoesNotContain(d.Primary, alert.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OpenAIInsufficientQuota_FailsOverAtOnce_AndIsConfirmed()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var s = await Scenario.StartAsync(kind: "openai", configure: c => c.Channel("ops", "webhook", receiver.Url("/ops")).FastRetries());
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.InsufficientQuota);

        for (var i = 0; i < 5; i++)
        {
            using var response = await s.Proxy.Agent.PostAsync("/openai/v1/chat/completions",
                new StringContent("""{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json"), Ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("backup", FailoverTests.Header(response, "x-afp-key"));
        }

        await s.WaitForKeyStateAsync("primary", "dead");
        Assert.Equal("insufficient_quota", Primary(s.Proxy).Health.LastFailure!.ErrorCode);
        Assert.Equal(1, s.UpstreamCallsWith("primary"));
        await receiver.WaitForAsync("/ops", r => r.Kind() == EventKinds.KeyDead);
    }

    private static PoolKey Primary(ProxyHost replica) => replica.Services.GetRequiredService<PoolRegistry>().Pools.Single().FindKey("primary")!;
}
