using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Events;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;

namespace AuthFailoverProxy.Tests.Events;

/// <summary>What the proxy tells about itself: once per change, in plain words, with what to do.</summary>
public sealed class ProxyEventSourcesTests
{
    [Fact]
    public async Task ARevokedKey_UnderAStormOfRequests_IsToldOnce_WithTheRemediation_AndThePoolPicture()
    {
        await using var s = await Scenario.StartAsync(secretFor: n => n == "primary" ? Secrets.AnthropicOAuthToken() : Secrets.AnthropicApiKey());
        var events = s.Proxy.Services.GetRequiredService<ProxyEvents>().Subscribe();
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.OAuthRejected);

        await Task.WhenAll(Enumerable.Range(0, 50).Select(async _ =>
        {
            using var response = await s.PostMessageAsync();
        }));
        s.Upstream.SetKeyFault(s.Secret("backup"), KeyFault.Revoked);
        for (var i = 0; i < 20; i++)
        {
            using var response = await s.PostMessageAsync();
        }

        var seen = new List<ProxyEvent>();
        await FailoverTests.WaitUntilAsync(() =>
        {
            while (events.TryRead(out var e))
            {
                seen.Add(e);
            }

            return seen.Any(e => e.Kind == EventKinds.PoolExhausted);
        });

        var dead = Assert.Single(seen, e => e.Kind == EventKinds.KeyDead && e.Key == "primary");
        Assert.Equal(EventSeverity.Error, dead.Severity);
        Assert.Equal(403, dead.Status);
        Assert.Equal("permission_error", dead.ErrorType);
        Assert.Contains("Requests now go to 'backup'", dead.Message, StringComparison.Ordinal);
        Assert.Contains("sk-ant-api03", dead.Remediation, StringComparison.Ordinal);
        Assert.Equal("key:anthropic:primary", dead.Incident);
        Assert.Single(seen, e => e.Kind == EventKinds.KeyFailover);
        Assert.Single(seen, e => e.Kind == EventKinds.KeyDead && e.Key == "backup");
        Assert.Equal(
            [EventKinds.PoolDegraded, EventKinds.PoolExhausted],
            seen.Where(e => e.Kind.StartsWith("pool.", StringComparison.Ordinal)).Select(e => e.Kind));
        Assert.Equal(EventSeverity.Critical, seen.Single(e => e.Kind == EventKinds.PoolExhausted).Severity);
        foreach (var secret in s.SecretsByName.Values)
        {
            Assert.DoesNotContain(seen, e => (e.Message + e.Remediation + e.ProviderMessage).Contains(secret[..^4], StringComparison.Ordinal));
        }
    }
}
