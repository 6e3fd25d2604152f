using System.Net;
using System.Text.Json;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.Time.Testing;
using Serilog.Events;

namespace AuthFailoverProxy.Tests.Failover;

/// <summary>Every failure class end to end: a real proxy in front of a real (simulated) upstream on loopback.</summary>
public sealed class FailoverTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task HealthyPrimary_ServesEveryRequest_WithOneUpstreamCallEach()
    {
        await using var s = await Scenario.StartAsync();

        for (var i = 0; i < 3; i++)
        {
            using var response = await s.PostMessageAsync();
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("primary", Header(response, "x-afp-key"));
            Assert.Equal("1", Header(response, "x-afp-attempts"));
        }

        Assert.Equal(3, s.Upstream.RequestCount);
        Assert.All(s.Upstream.Requests, r => Assert.Equal(s.Secret("primary"), r.Key));
    }

    [Theory]
    [InlineData(nameof(KeyFault.Revoked), 401, "authentication_error")]
    [InlineData(nameof(KeyFault.OAuthRejected), 403, "permission_error")]
    [InlineData(nameof(KeyFault.Billing), 402, "billing_error")]
    [InlineData(nameof(KeyFault.NoCredit), 400, "invalid_request_error")]
    [InlineData(nameof(KeyFault.SpendLimit), 429, "rate_limit_error")]
    public async Task DeadKey_IsReplayedOnNextKey_AndNeverTriedAgain(string faultName, int status, string errorType)
    {
        var fault = Enum.Parse<KeyFault>(faultName);
        await using var s = await Scenario.StartAsync();
        s.Upstream.SetKeyFault(s.Secret("primary"), fault);

        using (var first = await s.PostMessageAsync())
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
            Assert.Equal("backup", Header(first, "x-afp-key"));
            Assert.Equal("2", Header(first, "x-afp-attempts"));
        }

        for (var i = 0; i < 5; i++)
        {
            using var next = await s.PostMessageAsync();
            Assert.Equal(HttpStatusCode.OK, next.StatusCode);
            Assert.Equal("1", Header(next, "x-afp-attempts"));
        }

        // After the first failure a dead key costs nothing: 1 call to primary, 6 to backup.
        Assert.Equal(1, s.UpstreamCallsWith("primary"));
        Assert.Equal(6, s.UpstreamCallsWith("backup"));
        await s.WaitForKeyStateAsync("primary", "dead");

        var status_ = await s.StatusAsync();
        var primary = status_.GetProperty("pools")[0].GetProperty("keys").EnumerateArray().Single(k => k.GetProperty("name").GetString() == "primary");
        Assert.Equal(status, primary.GetProperty("lastError").GetProperty("status").GetInt32());
        Assert.Equal(errorType, primary.GetProperty("lastError").GetProperty("type").GetString());
        Assert.Single(s.Proxy.Logs.At(LogEventLevel.Error), e => LogCapture.Property(e, "KeyName") == "primary");
    }

    [Fact]
    public async Task OpenAIInsufficientQuota_IsDead_AndBearerKeyIsInjected()
    {
        await using var s = await Scenario.StartAsync(kind: "openai");
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.InsufficientQuota);

        using var response = await s.Proxy.Agent.PostAsync("/openai/v1/chat/completions",
            new StringContent("""{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}""", System.Text.Encoding.UTF8, "application/json"), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("backup", Header(response, "x-afp-key"));
        await s.WaitForKeyStateAsync("primary", "dead");
        var last = s.AgentRequests[^1];
        Assert.Equal("/v1/chat/completions", last.PathAndQuery);
        Assert.Equal($"Bearer {s.Secret("backup")}", last.Headers["authorization"]);
        Assert.False(last.Headers.ContainsKey("x-api-key"));
    }

    [Fact]
    public async Task RateLimitedKey_CoolsDownUntilRetryAfter_ThenReturnsWithoutAProbe()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-03-03T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        await using var s = await Scenario.StartAsync(time: time);
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.RateLimited, TimeSpan.FromSeconds(40));

        using (var response = await s.PostMessageAsync())
        {
            Assert.Equal("backup", Header(response, "x-afp-key"));
        }

        // Rested for the model class the 429 was about (Sonnet); the key serves other classes meanwhile.
        var scope = Assert.Single((await s.StatusAsync()).GetProperty("pools")[0].GetProperty("keys")[0].GetProperty("scopes").EnumerateArray());
        Assert.Equal("class:sonnet", scope.GetProperty("scope").GetString());
        Assert.Equal("usable", await s.KeyStateAsync("primary"));
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.None);

        time.Advance(TimeSpan.FromSeconds(39));
        using (var stillCooling = await s.PostMessageAsync())
        {
            Assert.Equal("backup", Header(stillCooling, "x-afp-key"));
        }

        time.Advance(TimeSpan.FromSeconds(2));
        using (var back = await s.PostMessageAsync())
        {
            Assert.Equal("primary", Header(back, "x-afp-key"));
            Assert.Equal("1", Header(back, "x-afp-attempts"));
        }

        Assert.Equal(2, s.UpstreamCallsWith("primary"));
    }

    [Fact]
    public async Task RateLimit_LaterDeadlineWins_AShorterRetryAfterNeverShortensACooldown()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-03-03T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        await using var s = await Scenario.StartAsync(keyNames: ["primary", "backup", "third"], time: time);
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.RateLimited, TimeSpan.FromSeconds(60));
        s.Upstream.SetKeyFault(s.Secret("backup"), KeyFault.RateLimited, TimeSpan.FromSeconds(60));
        // A request that names no model rests the whole key.
        using (await s.Proxy.Agent.GetAsync("/v1/models", Ct))
        {
        }

        // primary rests until 00:01:00. Its cooldown passes for backup only; a new, shorter 429 must not bring primary back early.
        var board = s.Proxy.Services.GetService(typeof(AuthFailoverProxy.State.KeyStateBoard)) as AuthFailoverProxy.State.KeyStateBoard;
        var registry = (AuthFailoverProxy.KeyPool.PoolRegistry)s.Proxy.Services.GetService(typeof(AuthFailoverProxy.KeyPool.PoolRegistry))!;
        var primary = registry.Pools[0].Keys.Single(k => k.Name == "primary");
        var shorter = new AuthFailoverProxy.State.KeyFailure(429, "rate_limit_error", null, "later", null, time.GetUtcNow());
        Assert.False(board!.ReportCooling(primary, shorter, time.GetUtcNow().AddSeconds(5)));
        Assert.Equal(time.GetUtcNow().AddSeconds(60), primary.Health.Until);
    }

    [Theory]
    [InlineData(nameof(UpstreamFault.Overloaded))]
    [InlineData(nameof(UpstreamFault.InternalError))]
    [InlineData(nameof(UpstreamFault.BadGateway))]
    [InlineData(nameof(UpstreamFault.Unavailable))]
    [InlineData(nameof(UpstreamFault.GatewayTimeout))]
    [InlineData(nameof(UpstreamFault.ResetConnection))]
    public async Task UnwellUpstream_IsRetriedOnTheSameKey_WithoutBlamingIt(string faultName)
    {
        var fault = Enum.Parse<UpstreamFault>(faultName);
        await using var s = await Scenario.StartAsync();
        s.Upstream.FailNext(2, fault);

        using var response = await s.PostMessageAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("primary", Header(response, "x-afp-key"));
        Assert.Equal("3", Header(response, "x-afp-attempts"));
        Assert.Equal(3, s.UpstreamCallsWith("primary"));
        Assert.Equal(0, s.UpstreamCallsWith("backup"));
        Assert.Equal("usable", await s.KeyStateAsync("primary"));
    }

    [Fact]
    public async Task UnwellUpstream_AfterRetriesRunOut_PassesTheUpstreamErrorThroughUntouched()
    {
        await using var s = await Scenario.StartAsync(configure: c => c.Set("Failover:UpstreamRetries", 1));
        s.Upstream.FailNext(5, UpstreamFault.Overloaded);

        using var response = await s.PostMessageAsync();

        Assert.Equal(529, (int)response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(Ct);
        Assert.Equal("overloaded_error", body.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal(2, s.Upstream.RequestCount);
        Assert.Equal("usable", await s.KeyStateAsync("primary"));
    }

    [Fact]
    public async Task UnwellUpstream_BacksOffThroughTheInjectedClock()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-03-03T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        await using var s = await Scenario.StartAsync(time: time, configure: c => c.Set("Failover:RetryDelay", "00:00:02"));
        s.Upstream.FailNext(1, UpstreamFault.Overloaded);

        var pending = s.PostMessageAsync();
        await WaitUntilAsync(() => s.Upstream.RequestCount == 1);
        // Polly waits on the proxy's clock: the retry cannot happen until the test moves time past the backoff.
        await Task.Yield();
        Assert.False(pending.IsCompleted);
        Assert.Equal(1, s.Upstream.RequestCount);

        while (!pending.IsCompleted)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            await Task.WhenAny(pending, Task.Delay(50, Ct));
        }

        using var response = await pending;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(2, s.Upstream.RequestCount);
    }

    [Fact]
    public async Task UpstreamSilentBeforeHeaders_TimesOut_AndIsRetried()
    {
        // YARP's activity timer runs on the real clock; a short timeout keeps this bounded (no sleep: the upstream hangs),
        // long enough that the retry's own answer never runs into it on a busy machine.
        await using var s = await Scenario.StartAsync(configure: c => c.Set("Failover:ActivityTimeout", "00:00:01"));
        s.Upstream.FailNext(1, UpstreamFault.Hang);

        using var response = await s.PostMessageAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("2", Header(response, "x-afp-attempts"));
        Assert.Equal(1, s.Upstream.AbortedRequests);
        Assert.Equal("usable", await s.KeyStateAsync("primary"));
    }

    [Fact]
    public async Task FailoverDeadline_StopsTheWalk_WithAClear503()
    {
        await using var s = await Scenario.StartAsync(configure: c => c.Set("Failover:Deadline", "00:00:00.0000001"));
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.OAuthRejected);

        using var response = await s.PostMessageAsync();

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        var message = (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error").GetProperty("message").GetString()!;
        Assert.Contains("the failover deadline passed", message, StringComparison.Ordinal);
        Assert.Contains("'backup'", message, StringComparison.Ordinal);
        Assert.Equal(0, s.UpstreamCallsWith("backup"));
    }

    [Fact]
    public async Task UnreachableUpstream_AnswersAClear502InTheProviderFormat()
    {
        // A port nothing listens on: every connection is refused.
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var config = new ProxyConfig().Pool("anthropic", new Uri($"http://127.0.0.1:{port}"), isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())]);
        await using var proxy = await ProxyHost.StartAsync(config);

        using var response = await proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(Ct);
        Assert.Equal("error", body.GetProperty("type").GetString());
        Assert.Contains("could not be reached", body.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal("3", Header(response, "x-afp-attempts"));
    }

    [Theory]
    [InlineData("/v1/messages/does-not-exist", 404)]
    public async Task ClientError_PassesThroughUntouched_AndBlamesNoKey(string path, int status)
    {
        await using var s = await Scenario.StartAsync();

        using var response = await s.Proxy.Agent.PostAsync(path, Scenario.MessageBody(), Ct);

        Assert.Equal(status, (int)response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(Ct);
        Assert.Equal("not_found_error", body.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal(1, s.Upstream.RequestCount);
        Assert.Equal("usable", await s.KeyStateAsync("primary"));
    }

    [Fact]
    public async Task EveryKeyDead_AnswersAtOnceWith503_NamingEachKeyWhyAndWhatToDo()
    {
        await using var s = await Scenario.StartAsync(secretFor: n => n == "primary" ? Secrets.AnthropicOAuthToken() : Secrets.AnthropicApiKey());
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.OAuthRejected);
        s.Upstream.SetKeyFault(s.Secret("backup"), KeyFault.Revoked);

        using var response = await s.PostMessageAsync();

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        var message = (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error").GetProperty("message").GetString()!;
        Assert.StartsWith("AuthFailoverProxy: no key in pool 'anthropic' can serve this request.", message, StringComparison.Ordinal);
        Assert.Contains("'primary' (sk-ant-oat01-…", message, StringComparison.Ordinal);
        Assert.Contains("403 permission_error \"OAuth authentication is currently not allowed for this organization\"", message, StringComparison.Ordinal);
        Assert.Contains("'backup' (sk-ant-api03-…", message, StringComparison.Ordinal);
        Assert.Contains("401 authentication_error", message, StringComparison.Ordinal);
        Assert.Contains("create a standard API key (sk-ant-api03-…)", message, StringComparison.Ordinal);
        Assert.Contains("Next step:", message, StringComparison.Ordinal);

        // The next request does not touch the upstream at all, and the pool's exhaustion is logged at Error.
        var calls = s.Upstream.RequestCount;
        using var again = await s.PostMessageAsync();
        Assert.Equal(HttpStatusCode.ServiceUnavailable, again.StatusCode);
        Assert.Equal(calls, s.Upstream.RequestCount);
        Assert.Contains(s.Proxy.Logs.At(LogEventLevel.Error), e => LogCapture.Property(e, "Pool") == "anthropic" && e.MessageTemplate.Text.Contains("refused", StringComparison.Ordinal));
    }

    [Fact]
    public async Task EveryKeyCooling_503CarriesRetryAfterOfTheSoonestKey()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-03-03T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        await using var s = await Scenario.StartAsync(time: time);
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.RateLimited, TimeSpan.FromSeconds(30));
        s.Upstream.SetKeyFault(s.Secret("backup"), KeyFault.RateLimited, TimeSpan.FromSeconds(12));

        using var response = await s.PostMessageAsync();

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("12", Header(response, "retry-after"));
        var message = (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error").GetProperty("message").GetString()!;
        Assert.Contains("rate limited", message, StringComparison.Ordinal);
        Assert.Contains("00:00:12Z", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task FiftyConcurrentRequests_PrimaryRevokedMidFlight_NoClientSeesAFailure()
    {
        await using var s = await Scenario.StartAsync(keyNames: ["primary", "backup", "third"]);
        var revoked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var started = 0;
        var requests = Enumerable.Range(0, 50).Select(async i =>
        {
            if (Interlocked.Increment(ref started) == 20)
            {
                s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.OAuthRejected);
                revoked.SetResult();
            }

            using var response = await s.PostMessageAsync();
            return (response.StatusCode, Key: Header(response, "x-afp-key"));
        }).ToList();

        var results = await Task.WhenAll(requests);
        await revoked.Task;

        Assert.All(results, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        await s.WaitForKeyStateAsync("primary", "dead");
        Assert.Equal("usable", await s.KeyStateAsync("backup"));
        Assert.Equal(0, s.UpstreamCallsWith("third"));
        // One transition, logged once, however many requests were in flight when the key died.
        Assert.Equal(1, s.Proxy.Logs.CountEventId(1001));
    }

    internal static string? Header(HttpResponseMessage response, string name)
        => response.Headers.TryGetValues(name, out var values) ? string.Join(",", values)
            : response.Content.Headers.TryGetValues(name, out values) ? string.Join(",", values) : null;

    internal static async Task WaitUntilAsync(Func<bool> condition)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(20));
        while (!condition())
        {
            await Task.Delay(10, timeout.Token);
        }
    }
}
