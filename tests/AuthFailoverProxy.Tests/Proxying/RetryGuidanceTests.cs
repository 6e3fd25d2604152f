using System.Globalization;
using System.Net;
using System.Text.Json;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;

namespace AuthFailoverProxy.Tests.Proxying;

/// <summary>
/// The proxy's own answers tell the agent's SDK whether to try again, the way the SDKs read it: <c>retry-after</c> when a
/// key is back within the 60 s they obey, <c>x-should-retry: false</c> when a retry cannot change the answer (Claude Code
/// would otherwise retry 10 times and show the message only after minutes). The provider's request id comes back, and
/// the JSON reads as written.
/// </summary>
public sealed class RetryGuidanceTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task EveryKeyRejected_503SaysDoNotRetry_WithTheProvidersRequestId_InReadableJson()
    {
        await using var s = await Scenario.StartAsync(secretFor: name => name == "primary" ? Secrets.AnthropicOAuthToken() : Secrets.AnthropicApiKey());
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.OAuthRejected);
        s.Upstream.SetKeyFault(s.Secret("backup"), KeyFault.Revoked);

        using var response = await s.PostMessageAsync();

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("false", FailoverTests.Header(response, "x-should-retry"));
        Assert.Null(FailoverTests.Header(response, "retry-after"));
        var status = await s.StatusAsync();
        var backup = status.GetProperty("pools")[0].GetProperty("keys").EnumerateArray().Single(k => k.GetProperty("name").GetString() == "backup");
        var lastRequestId = backup.GetProperty("lastError").GetProperty("requestId").GetString();
        Assert.StartsWith("req_", lastRequestId, StringComparison.Ordinal);
        Assert.Equal(lastRequestId, FailoverTests.Header(response, "request-id"));
        var raw = await response.Content.ReadAsStringAsync(Ct);
        Assert.Contains("'primary' (sk-ant-oat01-…", raw, StringComparison.Ordinal);
        Assert.DoesNotContain("\\u0027", raw, StringComparison.Ordinal);
        Assert.DoesNotContain("\\u2026", raw, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(30, null)]
    [InlineData(300, "false")]
    public async Task EveryKeyRateLimited_RetryAfterWhenOneIsBackSoon_ElseDoNotRetry(int seconds, string? shouldRetry)
    {
        await using var s = await Scenario.StartAsync();
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.RateLimited, TimeSpan.FromSeconds(seconds));
        s.Upstream.SetKeyFault(s.Secret("backup"), KeyFault.RateLimited, TimeSpan.FromSeconds(seconds + 5));

        using var response = await s.PostMessageAsync();

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(shouldRetry, FailoverTests.Header(response, "x-should-retry"));
        var retryAfter = int.Parse(FailoverTests.Header(response, "retry-after")!, CultureInfo.InvariantCulture);
        Assert.InRange(retryAfter, seconds - 2, seconds + 1);
    }

    [Fact]
    public async Task AgentsOwnMistakes_SayDoNotRetry()
    {
        await using var s = await Scenario.StartAsync(configure: c => c.Set("RequestBody:MaxBytes", 1_000));
        using var stranger = s.Proxy.CreateAgentClient("afp-client-not-a-token");

        using var wrongToken = await stranger.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);
        using var tooLarge = await s.Proxy.Agent.PostAsync("/v1/messages", new StringContent(new string('x', 5_000)), Ct);

        Assert.Equal(HttpStatusCode.Unauthorized, wrongToken.StatusCode);
        Assert.Equal("false", FailoverTests.Header(wrongToken, "x-should-retry"));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooLarge.StatusCode);
        Assert.Equal("false", FailoverTests.Header(tooLarge, "x-should-retry"));
        Assert.Equal(0, s.Upstream.RequestCount);
    }

    [Fact]
    public async Task UpstreamDown_502LetsTheAgentRetry()
    {
        await using var s = await Scenario.StartAsync(configure: c => c.Set("Failover:UpstreamRetries", 0));
        s.Upstream.FailNext(1, UpstreamFault.ResetConnection);

        using var response = await s.PostMessageAsync();

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Null(FailoverTests.Header(response, "x-should-retry"));
        Assert.NotNull(FailoverTests.Header(response, "retry-after"));
        var message = (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error").GetProperty("message").GetString();
        Assert.Contains("could not be reached", message, StringComparison.Ordinal);
    }
}
