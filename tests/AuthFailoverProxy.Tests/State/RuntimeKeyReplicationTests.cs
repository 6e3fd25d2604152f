using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;

namespace AuthFailoverProxy.Tests.State;

/// <summary>Keys added at runtime with Redis: sealed at rest, pending everywhere until confirmed, and never lost.</summary>
public sealed class RuntimeKeyReplicationTests
{
    private const string AdminToken = "admin-token-fedcba9876543210";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task KeyAddedOnOneReplica_IsPendingOnEvery_ServesEverywhereOnceConfirmed_AndLeavesEverywhereWhenRemoved()
    {
        var dataKey = NewDataKey();
        await using var d = await StartAsync(dataKey);
        var a = await d.AddReplicaAsync();
        var b = await d.AddReplicaAsync();
        var secret = Secrets.AnthropicApiKey();

        using (var added = await Admin(a).PostAsJsonAsync("/admin/pools/anthropic/keys", new { name = "spare", secret, priority = 0 }, Ct))
        {
            Assert.Equal(HttpStatusCode.Created, added.StatusCode);
            Assert.Contains("in Redis, sealed with AES-GCM", (await added.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("stored").GetString(), StringComparison.Ordinal);
        }

        await FailoverTests.WaitUntilAsync(() => Key(b, "spare") is { Health.State: KeyState.Pending });
        using (var viaB = await b.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
        {
            Assert.Equal("primary", FailoverTests.Header(viaB, "x-afp-key"));
        }

        using (var confirmed = await Admin(a).PostAsync("/admin/pools/anthropic/keys/spare/confirm", null, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, confirmed.StatusCode);
        }

        using (await Admin(a).PostAsync("/admin/pools/anthropic/keys/primary/disable", null, Ct))
        {
        }

        await FailoverTests.WaitUntilAsync(() => Key(b, "spare") is { Health.State: KeyState.Usable } && Key(b, "primary") is { Health.State: KeyState.Disabled });
        using (var viaB = await b.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
        {
            // Confirmed, and first in line with the primary disabled: B sends with the secret it decrypted from Redis.
            Assert.Equal("spare", FailoverTests.Header(viaB, "x-afp-key"));
        }

        Assert.Equal(secret, d.Upstream.Requests.Last(r => r.Method == "POST").Key);

        using (var removed = await Admin(b).DeleteAsync("/admin/pools/anthropic/keys/spare", Ct))
        {
            Assert.Equal(HttpStatusCode.OK, removed.StatusCode);
        }

        await FailoverTests.WaitUntilAsync(() => Key(a, "spare") is null);
        using var viaA = await a.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);
        Assert.Equal("backup", FailoverTests.Header(viaA, "x-afp-key"));

        // A key's scheme travels with it: B sends it the way it was added on A, not the way its format would suggest.
        using (var gateway = await Admin(a).PostAsJsonAsync("/admin/pools/anthropic/keys", new { name = "gateway", secret = Secrets.AnthropicApiKey(), scheme = "bearer" }, Ct))
        {
            Assert.Equal(HttpStatusCode.Created, gateway.StatusCode);
        }

        await FailoverTests.WaitUntilAsync(() => Key(b, "gateway") is not null);
        Assert.Equal(CredentialScheme.Bearer, Key(b, "gateway")!.Scheme);
    }

    [Fact]
    public async Task TheSecretIsSealedAtRest_NoSecretBytesInADumpOfEveryRedisKey()
    {
        await using var d = await StartAsync(NewDataKey());
        var a = await d.AddReplicaAsync();
        var secret = Secrets.AnthropicApiKey();
        using (await Admin(a).PostAsJsonAsync("/admin/pools/anthropic/keys", new { name = "spare", secret }, Ct))
        using (await Admin(a).PostAsync("/admin/pools/anthropic/keys/spare/confirm", null, Ct))
        {
        }

        d.Upstream.SetKeyFault(d.Primary, KeyFault.Revoked);
        using (await a.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
        {
        }

        await FailoverTests.WaitUntilAsync(() => Store(a).Status.Pending == 0);
        await using var client = await ConnectionMultiplexer.ConnectAsync(d.Redis.Configuration);
        var db = client.GetDatabase();
        var dump = new StringBuilder();
        await foreach (var key in client.GetServer(client.GetEndPoints()[0]).KeysAsync(pattern: "*"))
        {
            // DUMP is Redis's own serialization of any type: whatever a backup or a replica would hold.
            dump.Append(key).Append('\n').Append(Encoding.Latin1.GetString((byte[])(await db.KeyDumpAsync(key))!)).Append('\n');
        }

        var everything = dump.ToString();
        Assert.Contains("afp:rtkey:anthropic:spare", everything, StringComparison.Ordinal);
        foreach (var s in new[] { secret, d.Primary, d.Backup })
        {
            Assert.DoesNotContain(s[..^4], everything, StringComparison.Ordinal);
            Assert.DoesNotContain(s[20..], everything, StringComparison.Ordinal);
        }

        Assert.StartsWith("v1.", (string?)await db.HashGetAsync("afp:rtkey:anthropic:spare", "sec"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithoutADataKey_AddingIsRefused_AndTheAnswerSaysWhatToSet()
    {
        await using var d = await StartAsync(dataKey: null);
        var a = await d.AddReplicaAsync();

        using var refused = await Admin(a).PostAsJsonAsync("/admin/pools/anthropic/keys", new { name = "spare", secret = Secrets.AnthropicApiKey() }, Ct);

        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Contains("AFP_DATA_KEY", await refused.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        Assert.Null(Key(a, "spare"));
    }

    [Fact]
    public async Task RedisRestartedEmpty_TheRuntimeKeysAreRecordedAgain_AndANewReplicaGetsThemConfirmed()
    {
        var dataKey = NewDataKey();
        await using var d = await StartAsync(dataKey);
        var a = await d.AddReplicaAsync();
        using (await Admin(a).PostAsJsonAsync("/admin/pools/anthropic/keys", new { name = "spare", secret = Secrets.AnthropicApiKey() }, Ct))
        using (await Admin(a).PostAsync("/admin/pools/anthropic/keys/spare/confirm", null, Ct))
        {
        }

        await FailoverTests.WaitUntilAsync(() => Store(a).Status.Pending == 0);
        await d.Redis.KillAsync();
        await d.Redis.RestartAsync();
        await using var client = await ConnectionMultiplexer.ConnectAsync(d.Redis.Configuration);
        for (var i = 0; i < 500 && !await client.GetDatabase().KeyExistsAsync("afp:rtkey:anthropic:spare"); i++)
        {
            await Task.Delay(20, Ct);
        }

        Assert.True(await client.GetDatabase().KeyExistsAsync("afp:rtkey:anthropic:spare"));
        Assert.NotNull(Key(a, "spare"));

        var c = await d.AddReplicaAsync();
        await FailoverTests.WaitUntilAsync(() => Key(c, "spare") is { Health.State: KeyState.Usable });
    }

    [Fact]
    public async Task DataKeyRotation_OldSecretsAreResealedUnderTheNewKey_AndAReplicaWithOnlyTheNewKeyReadsThem()
    {
        var (oldKey, newKey) = (NewDataKey(), NewDataKey());
        await using var d = await StartAsync(oldKey);
        var a = await d.AddReplicaAsync();
        var secret = Secrets.AnthropicApiKey();
        using (var added = await Admin(a).PostAsJsonAsync("/admin/pools/anthropic/keys", new { name = "spare", secret }, Ct))
        {
            // The key is in Redis once this answers 201; a 503 (Redis slower than these tests' 0.5 s timeout) says so here,
            // not as a replica that never sees the key.
            Assert.Equal(HttpStatusCode.Created, added.StatusCode);
        }

        await using var client = await ConnectionMultiplexer.ConnectAsync(d.Redis.Configuration);
        async Task<string> SealedAsync() => (string?)await client.GetDatabase().HashGetAsync("afp:rtkey:anthropic:spare", "sec") ?? string.Empty;
        var sealedBefore = await SealedAsync();
        Assert.NotEqual(string.Empty, sealedBefore);

        // Step 2 of the rotation: the new key current, the old one kept for reading.
        var b = await d.AddReplicaAsync(configure: c => c.Set("Encryption:DataKey", newKey).Set("Encryption:PreviousDataKeys:0", oldKey));
        await FailoverTests.WaitUntilAsync(() => Key(b, "spare") is not null);
        for (var i = 0; i < 500 && await SealedAsync() == sealedBefore; i++)
        {
            await Task.Delay(20, Ct);
        }

        Assert.NotEqual(sealedBefore.Split('.')[1], (await SealedAsync()).Split('.')[1]);
        // Logged once the transaction's answer is back, a moment after the value changed.
        await FailoverTests.WaitUntilAsync(() => b.Logs.Events.Any(e => e.MessageTemplate.Text.StartsWith("Re-sealed", StringComparison.Ordinal)));

        // Step 4: the old key gone everywhere; a replica that never had it reads the key.
        var c = await d.AddReplicaAsync(configure: c => c.Set("Encryption:DataKey", newKey));
        await FailoverTests.WaitUntilAsync(() => Key(c, "spare") is not null);
        Assert.Equal(Key(a, "spare")!.Fingerprint, Key(c, "spare")!.Fingerprint);
    }

    [Fact]
    public async Task AReplicaWithAnotherDataKey_CannotReadTheKey_AndSaysWhatToFix()
    {
        await using var d = await StartAsync(NewDataKey());
        var a = await d.AddReplicaAsync();
        using (await Admin(a).PostAsJsonAsync("/admin/pools/anthropic/keys", new { name = "spare", secret = Secrets.AnthropicApiKey() }, Ct))
        {
        }

        var stranger = await d.AddReplicaAsync(configure: c => c.Set("Encryption:DataKey", NewDataKey()));
        await FailoverTests.WaitUntilAsync(() => stranger.Logs.Events.Any(e => e.MessageTemplate.Text.Contains("cannot be read by this replica", StringComparison.Ordinal)));

        Assert.Null(Key(stranger, "spare"));
        Assert.Contains("Encryption:PreviousDataKeys", stranger.Logs.AllText, StringComparison.Ordinal);
    }

    private static Task<Deployment> StartAsync(string? dataKey) => Deployment.StartAsync(configure: c =>
    {
        c.Set("Admin:Tokens:0:Name", "ops").Set("Admin:Tokens:0:Token", AdminToken);
        if (dataKey is not null)
        {
            c.Set("Encryption:DataKey", dataKey);
        }
    });

    private static string NewDataKey() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    private static HttpClient Admin(ProxyHost proxy)
    {
        var client = new HttpClient { BaseAddress = proxy.ManagementAddress };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        return client;
    }

    private static IKeyStateStore Store(ProxyHost proxy) => proxy.Services.GetRequiredService<IKeyStateStore>();

    private static PoolKey? Key(ProxyHost proxy, string name) => proxy.Services.GetRequiredService<PoolRegistry>().Pools[0].FindKey(name);
}
