using System.Net;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Failover;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.AspNetCore.Http;
using Serilog.Events;
using Yarp.ReverseProxy.Forwarder;

namespace AuthFailoverProxy.Tests.Failover;

/// <summary>
/// Suspect, confirm, then blame: a key whose answer to a request says it may be dead is skipped for that request at once,
/// tried last by others, and blamed (recorded, shared, alerted) only once a check that no request shaped confirms it.
/// </summary>
public sealed class SuspicionTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task AuthBlipOnOneRequest_TheCheckClearsIt_TheKeyStaysInService_NothingIsBlamed()
    {
        await using var s = await Scenario.StartAsync();
        // The provider answers 401 to one request with the primary, then is fine again.
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.Revoked, times: 1);

        using (var blip = await s.PostMessageAsync())
        {
            Assert.Equal(HttpStatusCode.OK, blip.StatusCode);
            Assert.Equal("backup", FailoverTests.Header(blip, "x-afp-key"));
        }

        // The check's thread logs the clearing just after it clears the suspicion.
        await FailoverTests.WaitUntilAsync(() => s.KeyChecksOf("primary") == 1 && Key(s, "primary").Suspicion is null
            && s.Proxy.Logs.Messages(LogEventLevel.Information).Any(m => m.Contains("passed its check after a request got 401 authentication_error", StringComparison.Ordinal)));
        using var next = await s.PostMessageAsync();

        Assert.Equal("primary", FailoverTests.Header(next, "x-afp-key"));
        Assert.Equal("usable", await s.KeyStateAsync("primary"));
        Assert.Null(Key(s, "primary").Health.LastFailure);
        Assert.DoesNotContain(s.Proxy.Logs.At(LogEventLevel.Error), e => e.MessageTemplate.Text.Contains("out of service", StringComparison.Ordinal));
        // Counted as an answer a check cleared, not recorded against the key.
        var rejection = Assert.Single((await s.StatusAsync()).GetProperty("pools")[0].GetProperty("keys")[0].GetProperty("rejections").EnumerateArray());
        Assert.Equal(("cleared", 401, 1), (rejection.GetProperty("reason").GetString(), rejection.GetProperty("status").GetInt32(), rejection.GetProperty("count").GetInt32()));
    }

    [Fact]
    public async Task RealDeath_IsConfirmedByOneCheck_ThenRecorded_AndNoOtherRequestPaysForIt()
    {
        await using var s = await Scenario.StartAsync();
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.NoCredit);

        using (var first = await s.PostMessageAsync())
        {
            Assert.Equal("backup", FailoverTests.Header(first, "x-afp-key"));
        }

        await s.WaitForKeyStateAsync("primary", "dead");
        for (var i = 0; i < 5; i++)
        {
            using var next = await s.PostMessageAsync();
            Assert.Equal("1", FailoverTests.Header(next, "x-afp-attempts"));
        }

        // Credit is in question: the check was the free count_tokens, which answers the credit-balance 400 too.
        var check = Assert.Single(s.Upstream.Requests, Scenario.IsKeyCheck);
        Assert.Equal(("POST", "/v1/messages/count_tokens"), (check.Method, check.PathAndQuery));
        Assert.Equal(1, s.UpstreamCallsWith("primary"));
        Assert.Single(s.Proxy.Logs.At(LogEventLevel.Error), e => e.MessageTemplate.Text.Contains("is out of service", StringComparison.Ordinal));
    }

    [Fact]
    public async Task SuspectThatNoCheckCanJudge_IsTriedLast_NotExcluded_AndARequestItServesClearsIt()
    {
        // The upstream serves no /v1/models: no check can tell.
        await using var s = await Scenario.StartAsync(configure: c => c.Set("Probes:Path", "/v1/nothing-here"));
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.Revoked, times: 1);
        using (await s.PostMessageAsync())
        {
        }

        await FailoverTests.WaitUntilAsync(() => Key(s, "primary").Suspicion is { Unjudged: true });
        var status = await s.StatusAsync();
        var suspicion = status.GetProperty("pools")[0].GetProperty("keys")[0].GetProperty("suspicion");
        Assert.True(suspicion.GetProperty("unjudged").GetBoolean());
        Assert.Equal(401, suspicion.GetProperty("failure").GetProperty("status").GetInt32());

        // Tried last: the backup serves while it can…
        using (var meanwhile = await s.PostMessageAsync())
        {
            Assert.Equal("backup", FailoverTests.Header(meanwhile, "x-afp-key"));
        }

        // …and when it cannot, the suspect is still tried, serves, and is cleared by doing so.
        s.Upstream.SetKeyFault(s.Secret("backup"), KeyFault.RateLimited, TimeSpan.FromSeconds(30));
        using var last = await s.PostMessageAsync();

        Assert.Equal(HttpStatusCode.OK, last.StatusCode);
        Assert.Equal("primary", FailoverTests.Header(last, "x-afp-key"));
        Assert.Null(Key(s, "primary").Suspicion);
        Assert.Contains(s.Proxy.Logs.Messages(LogEventLevel.Warning), m => m.Contains("its check cannot tell whether the key is at fault", StringComparison.Ordinal));
    }

    [Fact]
    public void NoUsableKey_WhileACheckIsUnderWay_SaysRetrySoon_NeverDoNotRetry()
    {
        var now = DateTimeOffset.Parse("2026-03-03T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
        var key = new PoolKey("anthropic", "primary", "sk-ant-api03-" + new string('x', 40), 0, "test", CredentialScheme.XApiKey, now);
        var pool = new Pool("anthropic", ProviderKind.Anthropic, new Uri("https://api.anthropic.test"), new PathString("/anthropic"), isDefault: true,
            KeySelection.Priority, [key], new HttpMessageInvoker(new SocketsHttpHandler()), new ForwarderRequestConfig());
        var checking = new TaskCompletionSource();
        Assert.True(key.TrySuspect(new KeySuspicion(new KeyFailure(401, "authentication_error", null, "invalid x-api-key", "req_1", now), now) { Check = checking.Task }));

        var (message, retryAfter) = NoUsableKeyReport.Build(pool, now, deadlineExceeded: false, attempts: 1);

        Assert.Contains("'primary' (sk-ant-api03-…xxxx) was refused on this request: 401 authentication_error \"invalid x-api-key\"; a check of the key is under way.", message, StringComparison.Ordinal);
        Assert.Equal(AuthFailoverProxy.Health.KeySuspicions.RetryAfterWhileChecking, retryAfter);
        Assert.True(AuthFailoverProxy.Proxying.ProviderErrorResponse.WorthRetrying(AuthFailoverProxy.Proxying.ProxyErrorKind.NoUsableKey, retryAfter));
        checking.SetResult();
    }

    private static PoolKey Key(Scenario s, string name)
        => Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<PoolRegistry>(s.Proxy.Services).Pools.Single().FindKey(name)!;
}
