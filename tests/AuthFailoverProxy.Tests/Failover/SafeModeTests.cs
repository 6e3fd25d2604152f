using System.Globalization;
using System.Net;
using System.Text.Json;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.Time.Testing;
using Serilog.Events;

namespace AuthFailoverProxy.Tests.Failover;

/// <summary>Graceful degradation instead of death: a second organization serves while the first has no usable key.</summary>
public sealed class SafeModeTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task EveryKeyDead_FallbackServesWithSubstituteModel_AndSafeModeEndsByItselfAfterAHeal()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-03-03T00:00:00Z", CultureInfo.InvariantCulture));
        await using var primaryOrg = await SimulatedProvider.StartAsync(time, cancellationToken: Ct);
        await using var secondOrg = await SimulatedProvider.StartAsync(time, cancellationToken: Ct);
        var primaryKey = Secrets.AnthropicApiKey();
        var config = new ProxyConfig()
            .Pool("anthropic", primaryOrg, isDefault: true, keys: [("primary", primaryKey)])
            .Pool("second-org", secondOrg, keys: [("reserve", Secrets.AnthropicApiKey())])
            .Set("Pools:anthropic:Fallback", "second-org")
            .Set("Pools:anthropic:FallbackModel", "claude-haiku-4-5");
        await using var proxy = await ProxyHost.StartAsync(config, time);
        primaryOrg.SetKeyFault(primaryKey, KeyFault.OAuthRejected);

        using (var degraded = await proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(model: "claude-opus-4-1"), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, degraded.StatusCode);
            Assert.Equal("second-org", FailoverTests.Header(degraded, "x-afp-safe-mode"));
            Assert.Equal("reserve", FailoverTests.Header(degraded, "x-afp-key"));
            Assert.Equal("2", FailoverTests.Header(degraded, "x-afp-attempts"));
        }

        var sent = JsonDocument.Parse(secondOrg.Requests.Single().Body).RootElement;
        Assert.Equal("claude-haiku-4-5", sent.GetProperty("model").GetString());
        Assert.Equal(64, sent.GetProperty("max_tokens").GetInt32());
        Assert.Equal("/v1/messages", secondOrg.Requests.Single().PathAndQuery);

        var status = await proxy.Management.GetFromJsonAsync<JsonElement>("/status", Ct);
        Assert.Equal("degraded", status.GetProperty("status").GetString());
        var safeMode = status.GetProperty("pools").EnumerateArray().Single(p => p.GetProperty("name").GetString() == "anthropic").GetProperty("safeMode");
        Assert.True(safeMode.GetProperty("active").GetBoolean());
        Assert.Equal("second-org", safeMode.GetProperty("fallback").GetString());
        Assert.Single(proxy.Logs.At(LogEventLevel.Warning), e => e.MessageTemplate.Text.Contains("entered safe mode", StringComparison.Ordinal));

        // The key is restored at the provider; the healer's check brings it back, and safe mode ends by itself.
        primaryOrg.SetKeyFault(primaryKey, KeyFault.None);
        for (var i = 0; i < 400 && !proxy.Logs.Events.Any(e => e.MessageTemplate.Text.Contains("left safe mode", StringComparison.Ordinal)); i++)
        {
            time.Advance(TimeSpan.FromSeconds(15));
            await Task.Delay(5, Ct);
        }

        Assert.Single(proxy.Logs.At(LogEventLevel.Warning), e => e.MessageTemplate.Text.Contains("left safe mode", StringComparison.Ordinal));
        using var normal = await proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);
        Assert.Equal("primary", FailoverTests.Header(normal, "x-afp-key"));
        Assert.Null(FailoverTests.Header(normal, "x-afp-safe-mode"));
        Assert.Single(secondOrg.Requests);
    }

    [Fact]
    public async Task FallbackDeadToo_503NamesBothPools()
    {
        await using var primaryOrg = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        var primaryKey = Secrets.AnthropicApiKey();
        var reserveKey = Secrets.AnthropicApiKey();
        var config = new ProxyConfig()
            .Pool("anthropic", primaryOrg, isDefault: true, keys: [("primary", primaryKey)])
            .Pool("second-org", primaryOrg, keys: [("reserve", reserveKey)])
            .Set("Pools:anthropic:Fallback", "second-org");
        await using var proxy = await ProxyHost.StartAsync(config);
        primaryOrg.SetKeyFault(primaryKey, KeyFault.Revoked);
        primaryOrg.SetKeyFault(reserveKey, KeyFault.Billing);

        using var response = await proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        var message = (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error").GetProperty("message").GetString()!;
        Assert.Contains("no key in pool 'anthropic'", message, StringComparison.Ordinal);
        Assert.Contains("Safe mode could not help: no key in pool 'second-org'", message, StringComparison.Ordinal);
        Assert.Contains("402 billing_error", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoFallbackConfigured_TheLoud503Stands()
    {
        await using var s = await Scenario.StartAsync(keyNames: ["only"]);
        s.Upstream.SetKeyFault(s.Secret("only"), KeyFault.Revoked);

        using var response = await s.PostMessageAsync();

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Null(FailoverTests.Header(response, "x-afp-safe-mode"));
    }

    [Fact]
    public async Task AKeyThatArrivesByReload_EndsSafeMode_WithoutWaitingForAHeal()
    {
        await using var primaryOrg = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        await using var secondOrg = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        var keys = Directory.CreateTempSubdirectory("afp-safe-mode-");
        try
        {
            var primaryKey = Secrets.AnthropicApiKey();
            await File.WriteAllTextAsync(Path.Combine(keys.FullName, "primary"), primaryKey, Ct);
            var config = new ProxyConfig()
                .Pool("anthropic", primaryOrg, isDefault: true)
                .Set("Pools:anthropic:KeysDirectory", keys.FullName)
                .Pool("second-org", secondOrg, keys: [("reserve", Secrets.AnthropicApiKey())])
                .Set("Pools:anthropic:Fallback", "second-org");
            await using var proxy = await ProxyHost.StartAsync(config);
            primaryOrg.SetKeyFault(primaryKey, KeyFault.Revoked);
            using (var degraded = await proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
            {
                Assert.Equal("second-org", FailoverTests.Header(degraded, "x-afp-safe-mode"));
            }

            // The operator drops a new key into the mounted directory: it joins usable, and safe mode ends at once.
            await File.WriteAllTextAsync(Path.Combine(keys.FullName, "replacement"), Secrets.AnthropicApiKey(), Ct);
            await FailoverTests.WaitUntilAsync(() => proxy.Logs.Events.Any(e => e.MessageTemplate.Text.Contains("left safe mode", StringComparison.Ordinal)));

            using var normal = await proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);
            Assert.Equal("replacement", FailoverTests.Header(normal, "x-afp-key"));
            Assert.Null(FailoverTests.Header(normal, "x-afp-safe-mode"));
        }
        finally
        {
            keys.Delete(recursive: true);
        }
    }
}
