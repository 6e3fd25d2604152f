using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Tests.Fakes;

namespace AuthFailoverProxy.Tests.Admin;

/// <summary>
/// Drives every path that talks about keys (success, failover, dead keys, exhaustion, bad tokens, /status) and then
/// searches everything a human or a machine could read for the secrets: none may appear anywhere.
/// </summary>
public sealed class SecretLeakTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Secrets_NeverAppearInLogsStatusOrResponses()
    {
        await using var s = await Scenario.StartAsync(
            keyNames: ["primary", "backup", "third"],
            secretFor: n => n == "primary" ? Secrets.AnthropicOAuthToken() : Secrets.AnthropicApiKey());
        var seen = new List<string>();

        async Task Capture(HttpResponseMessage response)
        {
            seen.Add(response.ToString());
            seen.Add(await response.Content.ReadAsStringAsync(Ct));
            response.Dispose();
        }

        await Capture(await s.PostMessageAsync());
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.OAuthRejected);
        await Capture(await s.PostMessageAsync());
        s.Upstream.SetKeyFault(s.Secret("backup"), KeyFault.Revoked);
        s.Upstream.SetKeyFault(s.Secret("third"), KeyFault.RateLimited);
        await Capture(await s.PostMessageAsync());
        await Capture(await s.PostMessageAsync());
        using (var wrong = s.Proxy.CreateAgentClient("not-the-token"))
        {
            await Capture(await s.PostMessageAsync(wrong));
        }

        await Capture(await s.Proxy.Management.GetAsync("/status", Ct));
        seen.Add(s.Proxy.Logs.AllText);

        Assert.NotEmpty(s.Proxy.Logs.Events);
        var everything = string.Join('\n', seen);
        foreach (var secret in s.SecretsByName.Values.Append(s.Proxy.ClientToken))
        {
            Assert.DoesNotContain(secret, everything, StringComparison.Ordinal);
            // Not even most of one: only the prefix and the last four characters may show.
            Assert.DoesNotContain(secret[..^4], everything, StringComparison.Ordinal);
            Assert.DoesNotContain(secret[15..], everything, StringComparison.Ordinal);
        }
    }
}
