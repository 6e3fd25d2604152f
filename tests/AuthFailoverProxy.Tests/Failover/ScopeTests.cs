using System.Net;
using System.Text;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;
using AuthFailoverProxy.Tests.Audit;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using Serilog.Events;
using StackExchange.Redis;

namespace AuthFailoverProxy.Tests.Failover;

/// <summary>
/// Scope: a rejection about one model takes a key out for that model only, a rate limit for that model class only (Opus,
/// Sonnet and Haiku are limited apart), and for every key of the organization that shares the limit. Other models keep
/// using the key. Shown in /status, metrics and the audit, shared through Redis in the key's own hash slot.
/// </summary>
public sealed class ScopeTests
{
    private const string Opus = "claude-opus-4-8";
    private const string Sonnet = "claude-sonnet-4-5";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task RateLimitOnOneModelClass_RestsTheKeyForThatClassOnly()
    {
        await using var s = await Scenario.StartAsync(configure: c => c.WithAdmin());
        s.Upstream.SetModelFault(Opus, ModelFault.RateLimited, TimeSpan.FromSeconds(30), organization: "org-primary");

        Assert.Equal(("backup", "2"), await SendAsync(s.Proxy.Agent, Opus));
        // Sonnet is limited apart: the primary serves it at once…
        Assert.Equal(("primary", "1"), await SendAsync(s.Proxy.Agent, Sonnet));
        // …and Opus goes straight to the backup while the primary rests for it.
        Assert.Equal(("backup", "1"), await SendAsync(s.Proxy.Agent, Opus));
        Assert.Equal(1, s.Upstream.Requests.Count(r => r.Key == s.Secret("primary") && Encoding.UTF8.GetString(r.Body).Contains(Opus, StringComparison.Ordinal)));

        var primary = (await s.StatusAsync()).GetProperty("pools")[0].GetProperty("keys")[0];
        Assert.Equal("usable", primary.GetProperty("state").GetString());
        Assert.Equal("org-primary", primary.GetProperty("organization").GetString());
        var scope = Assert.Single(primary.GetProperty("scopes").EnumerateArray());
        Assert.Equal("class:opus", scope.GetProperty("scope").GetString());
        Assert.Equal(429, scope.GetProperty("failure").GetProperty("status").GetInt32());

        var metrics = Telemetry.PrometheusText.Parse(await s.Proxy.Management.GetStringAsync("/metrics", Ct));
        Assert.Equal(1, metrics.Value("afp_key_scoped", ("pool", "anthropic"), ("key", "primary"), ("scope", "class:opus")));
        Assert.Single(metrics.Find("afp_key_scoped"));
        Assert.Contains(s.Proxy.Logs.Messages(LogEventLevel.Warning), m => m.Contains("'primary'", StringComparison.Ordinal) && m.Contains("is rate limited for opus models (429 rate_limit_error)", StringComparison.Ordinal));
        var scoped = Assert.Single(await AuditTestBench.WaitForEventAsync(s.Proxy, "key.scoped"), e => e.GetProperty("kind").GetString() == "key.scoped");
        Assert.Equal(("primary", "class:opus", "warning"), (scoped.GetProperty("key").GetString(), scoped.GetProperty("scope").GetString(), scoped.GetProperty("severity").GetString()));
    }

    [Fact]
    public async Task RateLimit_RestsEveryKeyOfTheOrganization_TheWalkGoesOnToOtherOrganizations()
    {
        // The start-up check learns each key's organization from the provider's answers.
        await using var s = await Scenario.StartAsync(keyNames: ["primary", "backup", "third"], organizationOf: name => name == "third" ? "org-other" : "org-team",
            configure: c => c.Set("Probes:AtStartup", "true"));
        await FailoverTests.WaitUntilAsync(() => Key(s.Proxy, "backup").Organization is not null);
        s.Upstream.SetModelFault(Opus, ModelFault.RateLimited, TimeSpan.FromSeconds(30), organization: "org-team");

        // The primary's 429 is its organization's: the backup shares it and is not asked; the third key serves.
        Assert.Equal(("third", "2"), await SendAsync(s.Proxy.Agent, Opus));
        Assert.Equal(0, s.Upstream.Requests.Count(r => r.Key == s.Secret("backup") && !Scenario.IsKeyCheck(r)));
        var keys = (await s.StatusAsync()).GetProperty("pools")[0].GetProperty("keys").EnumerateArray().ToDictionary(k => k.GetProperty("name").GetString()!);
        Assert.Equal("class:opus", keys["backup"].GetProperty("scopes")[0].GetProperty("scope").GetString());
        Assert.False(keys["third"].TryGetProperty("scopes", out _));
        // Sonnet is another class: the primary serves it.
        Assert.Equal(("primary", "1"), await SendAsync(s.Proxy.Agent, Sonnet));
    }

    [Fact]
    public async Task ModelItsOrganizationLacks_TakesTheKeyOutForThatModelOnly_OnceAnotherKeyServesIt()
    {
        await using var s = await Scenario.StartAsync();
        s.Upstream.SetModelFault("claude-opus-4-1", ModelFault.Forbidden, organization: "org-primary");

        Assert.Equal(("backup", "2"), await SendAsync(s.Proxy.Agent, "claude-opus-4-1"));
        Assert.Equal(("backup", "1"), await SendAsync(s.Proxy.Agent, "claude-opus-4-1"));
        Assert.Equal(("primary", "1"), await SendAsync(s.Proxy.Agent, Sonnet));
        var primary = Key(s.Proxy, "primary");
        Assert.Equal(KeyState.Usable, primary.Health.State);
        Assert.Equal("model:claude-opus-4-1", Assert.Single(primary.Scopes!).Name);
        Assert.Null(primary.Suspicion);
    }

    [Fact]
    public async Task ModelNoOrganizationHas_IsTheRequestsFault_NoKeyIsScoped()
    {
        await using var s = await Scenario.StartAsync(keyNames: ["a", "b", "c"]);
        s.Upstream.SetModelFault("claude-opus-4-1", ModelFault.Forbidden);

        for (var i = 0; i < 3; i++)
        {
            using var response = await s.Proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody("claude-opus-4-1"), Ct);
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        }

        Assert.All(s.Proxy.Services.GetRequiredService<PoolRegistry>().Pools[0].Keys, k => Assert.Null(k.Scopes));
        Assert.Equal(6, s.AgentRequests.Count);
    }

    [Fact]
    public async Task SubscriptionTokenForClaudeCodeOnly_IsOutForOtherClients_AndServesClaudeCode()
    {
        await using var s = await Scenario.StartAsync();
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.ClaudeCodeOnly);

        Assert.Equal(("backup", "2"), await SendAsync(s.Proxy.Agent, Sonnet));
        Assert.Equal(("backup", "1"), await SendAsync(s.Proxy.Agent, Sonnet));
        Assert.Equal("client:not-claude-code", Assert.Single(Key(s.Proxy, "primary").Scopes!).Name);

        using var claudeCode = new HttpRequestMessage(HttpMethod.Post, "/v1/messages?beta=true") { Content = Scenario.MessageBody() };
        claudeCode.Headers.TryAddWithoutValidation("anthropic-beta", "claude-code-20250219,oauth-2025-04-20");
        using var served = await s.Proxy.Agent.SendAsync(claudeCode, Ct);
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        Assert.Equal("primary", FailoverTests.Header(served, "x-afp-key"));
    }

    [Fact]
    public async Task OpenAIRateLimit_IsPerModel()
    {
        await using var s = await Scenario.StartAsync(kind: "openai");
        s.Upstream.SetModelFault("gpt-4o", ModelFault.RateLimited, TimeSpan.FromSeconds(30), organization: "org-primary");

        Assert.Equal(("backup", "2"), await SendChatAsync(s, "gpt-4o"));
        Assert.Equal(("primary", "1"), await SendChatAsync(s, "gpt-4o-mini"));
        Assert.Equal(("backup", "1"), await SendChatAsync(s, "gpt-4o"));
        Assert.Equal("class:gpt-4o", Assert.Single(Key(s.Proxy, "primary").Scopes!).Name);
        Assert.Equal("org-primary", Key(s.Proxy, "primary").Organization);
    }

    [Theory]
    [InlineData("{\"model\":\"claude-opus-4-8\",\"max_tokens\":1}", "claude-opus-4-8", "opus")]
    [InlineData("{\"messages\":[{\"model\":\"nested\"}],\"model\":\"claude-3-5-haiku-latest\"}", "claude-3-5-haiku-latest", "haiku")]
    [InlineData("{\"model\":\"gpt-4o-mini\"}", "gpt-4o-mini", "gpt-4o-mini")]
    [InlineData("{\"model\":42}", null, null)]
    [InlineData("[{\"model\":\"claude-opus-4-8\"}]", null, null)]
    [InlineData("{\"model\":\"claude-opus-4-8\"", "claude-opus-4-8", "opus")]
    [InlineData("not json \"model\"", null, null)]
    [InlineData("", null, null)]
    public void RequestScope_ReadsTheTopLevelModel_AndItsClass(string body, string? model, string? modelClass)
    {
        var scope = RequestScope.Of(Encoding.UTF8.GetBytes(body), new Microsoft.AspNetCore.Http.HeaderDictionary());

        Assert.Equal((model, modelClass, false), (scope.Model, scope.ModelClass, scope.FromClaudeCode));
    }

    [Fact]
    public void RequestScope_RefusesWhatNoProviderServes_AndTellsClaudeCodeByItsBeta()
    {
        var tooLong = Encoding.UTF8.GetBytes($$"""{"model":"{{new string('m', ModelClasses.MaxModelLength + 1)}}"}""");
        byte[] notUtf8 = [.. "{\"model\":\""u8, 0xC3, 0x28, .. "\"}"u8];
        var headers = new Microsoft.AspNetCore.Http.HeaderDictionary { ["anthropic-beta"] = "oauth-2025-04-20,claude-code-20250219" };

        Assert.Null(RequestScope.ModelOf(tooLong));
        Assert.Null(RequestScope.ModelOf(notUtf8));
        Assert.True(RequestScope.Of([], headers).FromClaudeCode);
    }

    [Fact]
    public void ScopesPerKey_AreCapped_TheOneEndingFirstGoes_AndALaterEndAlwaysWins()
    {
        var now = DateTimeOffset.Parse("2026-03-03T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
        var key = new PoolKey("anthropic", "primary", "sk-ant-api03-" + new string('x', 40), 0, "test", CredentialScheme.XApiKey, now);
        var failure = new KeyFailure(403, "permission_error", null, "no", null, now);
        for (var i = 0; i < PoolKey.MaxScopes + 4; i++)
        {
            Assert.Equal(ScopeMerge.Added, key.MergeScope(new KeyScope(KeyScopeKind.Model, $"model-{i}", now.AddMinutes(10 + i), failure), now));
        }

        Assert.Equal(PoolKey.MaxScopes, key.Scopes!.Length);
        Assert.DoesNotContain(key.Scopes, s => s.Value is "model-0" or "model-1" or "model-2" or "model-3");

        var held = key.Scopes.Single(s => s.Value == "model-10");
        Assert.Equal(ScopeMerge.None, key.MergeScope(held with { Until = held.Until.AddMinutes(-5) }, now));
        Assert.Equal(ScopeMerge.Extended, key.MergeScope(held with { Until = held.Until.AddMinutes(5) }, now));
        Assert.Equal(held.Until.AddMinutes(5), key.Scopes.Single(s => s.Value == "model-10").Until);
    }

    [Fact]
    public async Task Scopes_AreSharedThroughRedis_InTheHashSlotOfTheKeysOwnRecord()
    {
        await using var d = await Deployment.StartAsync();
        var a = await d.AddReplicaAsync();
        var b = await d.AddReplicaAsync();
        d.Upstream.SetModelFault(Opus, ModelFault.RateLimited, TimeSpan.FromSeconds(30), organization: "org-primary");

        Assert.Equal(("backup", "2"), await SendAsync(a.Agent, Opus));
        await FailoverTests.WaitUntilAsync(() => Key(b, "primary").Scopes is [{ Name: "class:opus" }]);
        Assert.Equal(("backup", "1"), await SendAsync(b.Agent, Opus));
        Assert.Equal(("primary", "1"), await SendAsync(b.Agent, Sonnet));

        await using var redis = await ConnectionMultiplexer.ConnectAsync(d.Redis.Configuration);
        var db = redis.GetDatabase();
        const string Record = "afp:key:anthropic:primary";
        var scopes = AuthFailoverProxy.State.RedisKeyStateStore.ScopesRecordFor(Record);
        Assert.Equal(HashSlot(Record), HashSlot(scopes));
        Assert.Equal(HashSlot("{afp}:key:anthropic:primary"), HashSlot(AuthFailoverProxy.State.RedisKeyStateStore.ScopesRecordFor("{afp}:key:anthropic:primary")));
        var field = await db.HashGetAsync(scopes, "class:opus");
        Assert.True(field.HasValue);
        Assert.DoesNotContain(d.Primary, field.ToString(), StringComparison.Ordinal);
        Assert.True(await db.KeyTimeToLiveAsync(scopes) is { } ttl && ttl > TimeSpan.Zero && ttl < TimeSpan.FromMinutes(5));
    }

    private static async Task<(string? Key, string? Attempts)> SendAsync(HttpClient agent, string model)
    {
        using var response = await agent.PostAsync("/v1/messages", Scenario.MessageBody(model), Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (FailoverTests.Header(response, "x-afp-key"), FailoverTests.Header(response, "x-afp-attempts"));
    }

    private static async Task<(string? Key, string? Attempts)> SendChatAsync(Scenario s, string model)
    {
        using var response = await s.Proxy.Agent.PostAsync("/v1/chat/completions",
            new StringContent($$"""{"model":"{{model}}","messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json"), Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (FailoverTests.Header(response, "x-afp-key"), FailoverTests.Header(response, "x-afp-attempts"));
    }

    private static PoolKey Key(ProxyHost proxy, string name) => proxy.Services.GetRequiredService<PoolRegistry>().Pools.Single().FindKey(name)!;

    /// <summary>Redis Cluster's slot of a key name: CRC16 (XMODEM) of its hash tag, or of the whole name without one, mod 16384.</summary>
    private static int HashSlot(string name)
    {
        var open = name.IndexOf('{', StringComparison.Ordinal);
        var close = open < 0 ? -1 : name.IndexOf('}', open + 1);
        var hashed = Encoding.UTF8.GetBytes(close > open + 1 ? name[(open + 1)..close] : name);
        var crc = 0;
        foreach (var b in hashed)
        {
            crc ^= b << 8;
            for (var bit = 0; bit < 8; bit++)
            {
                crc = (crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1;
            }
        }

        return (crc & 0xFFFF) % 16384;
    }
}
