using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.Tests.Fakes;

namespace AuthFailoverProxy.Tests.Cli;

/// <summary>
/// <c>afp check-config</c> as a process, like <c>nginx -t</c>: each kind of mistake named by its key with exit 2, a good
/// file exit 0, and with <c>--probe</c> every key checked at the (simulated) provider and the difference with a running
/// proxy told by name and fingerprint. The rules are the proxy's own: nothing here is checked twice.
/// </summary>
public sealed class CheckConfigTests : IDisposable
{
    private const string AdminToken = "admin-token-cli-0123456789abcdef";

    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("afp-check-");
    private readonly string _secret = Secrets.AnthropicApiKey();
    private readonly string _clientToken = Secrets.ClientToken();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static TheoryData<string, string, string> Mistakes => new()
    {
        // Where the mistake is, as a JSON patch of a good file; what the answer must say.
        { "unknown setting", """{"Failover":{"Dedline":"00:01:00"}}""", "Failover:Dedline is not a setting: did you mean Failover:Deadline?" },
        { "bad value", """{"Pools":{"anthropic":{"Keys":[{"Name":"primary","Priority":"5x"}]}}}""", "Pools:anthropic:Keys:0:Priority: '5x' is not a whole number." },
        { "bad choice", """{"Pools":{"anthropic":{"Selection":"Bogus"}}}""", "Pools:anthropic:Selection: 'Bogus' is not one of Priority, RoundRobin." },
        { "empty secret", """{"Pools":{"anthropic":{"Keys":[{"Name":"primary","Secret":""}]}}}""", "Pools:anthropic:Keys:0:Secret is empty (key 'primary')." },
        { "listener", """{"Management":{"Urls":"https://0.0.0.0:9090"}}""", "Management:Urls (AFP_MANAGEMENT_URLS): 'https://0.0.0.0:9090' uses https" },
    };

    [Theory]
    [MemberData(nameof(Mistakes))]
    public async Task Mistake_Exit2_NamesTheKeyToFix(string mistake, string patch, string expected)
    {
        var file = Write(Merge(GoodConfig(), patch));

        var result = await Afp.RunAsync(["check-config", file]);

        Assert.True(result.ExitCode == 2, $"{mistake}: {result}");
        Assert.Contains(expected, result.Output, StringComparison.Ordinal);
        Assert.Contains("the proxy would not start with it", result.Output, StringComparison.Ordinal);
        Assert.DoesNotContain(_secret[..^4], result.Everything, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SeveralMistakes_AreNamedTogether_AsTheStartNamesThem()
    {
        // A pool, the clients and a listener wrong at once: one run names all three, not the first the app happens to touch.
        var config = GoodConfig();
        config["Pools"]!["anthropic"]!["Upstream"] = "ftp://x";
        config.Remove("Clients");
        config["Management"] = new JsonObject { ["Urls"] = "https://0.0.0.0:9090" };
        var file = Write(config.ToJsonString());

        var result = await Afp.RunAsync(["check-config", file, "--json"]);

        Assert.True(result.ExitCode == 2, result.ToString());
        var report = result.Json();
        Assert.False(report.GetProperty("valid").GetBoolean());
        var problems = report.GetProperty("problems").EnumerateArray().Select(p => p.GetString()!).ToList();
        Assert.Contains("Pools:anthropic:Upstream 'ftp://x' is not an absolute http:// or https:// URL.", problems);
        Assert.Contains(problems, p => p.StartsWith("Clients:Tokens is empty", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Management:Urls (AFP_MANAGEMENT_URLS): 'https://0.0.0.0:9090' uses https", StringComparison.Ordinal));
        Assert.Equal(problems.Count, problems.Distinct().Count());
    }

    [Fact]
    public async Task SecretPastedIntoATypedSetting_IsNotEchoed()
    {
        var pasted = Secrets.AnthropicApiKey();
        var file = Write(Merge(GoodConfig(), $$$"""{"Failover":{"MaxCooldown":"{{{pasted}}}"}}"""));

        var result = await Afp.RunAsync(["check-config", file]);

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains($"Failover:MaxCooldown: '(a value of {pasted.Length} characters, not shown)' is not a duration", result.Output, StringComparison.Ordinal);
        Assert.DoesNotContain(pasted[..^4], result.Everything, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MissingFile_Exit2()
    {
        var result = await Afp.RunAsync(["check-config", Path.Combine(_directory.FullName, "nothere.json")]);

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains("nothere.json': no such file.", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MalformedJson_Exit2_WithWhereItBreaks()
    {
        var file = Write("{\n  \"Pools\": {\n    \"anthropic\": { \"Kind\": \"anthropic\",, }\n");

        var result = await Afp.RunAsync(["check-config", file]);

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains($"Failed to load configuration from file '{file}'", result.Output, StringComparison.Ordinal);
        Assert.Contains("LineNumber: 2", result.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GoodFile_Exit0_ShowsKeysByFingerprint_AndJsonParses()
    {
        var file = Write(GoodConfig().ToJsonString());

        var text = await Afp.RunAsync(["check-config", file]);
        var json = await Afp.RunAsync(["check-config", file, "--json"]);

        Assert.True(text.ExitCode == 0, text.ToString());
        Assert.Contains("The configuration is valid: 1 pool(s), 1 key(s).", text.Output, StringComparison.Ordinal);
        Assert.Contains($"primary {KeyFormats.Fingerprint(_secret)} (x-api-key, priority 0)", text.Output, StringComparison.Ordinal);
        Assert.True(json.ExitCode == 0, json.ToString());
        var report = json.Json();
        Assert.True(report.GetProperty("valid").GetBoolean());
        Assert.Equal(file, report.GetProperty("file").GetString());
        Assert.Equal("primary", report.GetProperty("pools")[0].GetProperty("keys")[0].GetProperty("name").GetString());
        Assert.DoesNotContain(_secret[..^4], text.Everything + json.Everything, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Probe_ChecksEveryKeyUpstream_AndTellsWhatWouldChangeOnTheRunningProxy()
    {
        await using var upstream = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        var (primary, backup, old, runtime) = (Secrets.AnthropicApiKey(), Secrets.AnthropicApiKey(), Secrets.AnthropicApiKey(), Secrets.AnthropicApiKey());
        var (newBackup, fresh, revoked) = (Secrets.AnthropicApiKey(), Secrets.AnthropicApiKey(), Secrets.AnthropicApiKey());
        upstream.SetKeyFault(revoked, KeyFault.Revoked);
        await using var proxy = await ProxyHost.StartAsync(new ProxyConfig()
            .Pool("anthropic", upstream, isDefault: true, keys: [("primary", primary), ("backup", backup), ("old", old)])
            .Set("Admin:Tokens:0:Name", "ops").Set("Admin:Tokens:0:Token", AdminToken));
        using (var admin = new HttpClient { BaseAddress = proxy.ManagementAddress })
        {
            admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
            using var added = await admin.PostAsJsonAsync("/admin/pools/anthropic/keys", new { name = "runtime", secret = runtime }, Ct);
            Assert.Equal(System.Net.HttpStatusCode.Created, added.StatusCode);
        }

        // The file moves primary down, gives backup a new secret, drops old, and brings two new keys, one of them revoked.
        var config = GoodConfig(upstream, ("primary", primary, 3), ("backup", newBackup, 1), ("fresh", fresh, 2), ("revoked", revoked, 4));
        var file = Write(config.ToJsonString());
        var environment = Afp.For(proxy, AdminToken);

        var json = await Afp.RunAsync(["check-config", file, "--probe", "--json"], environment);
        var text = await Afp.RunAsync(["check-config", file, "--probe"], environment);

        Assert.True(json.ExitCode == 1, json.ToString()); // valid, but a key failed its check
        var report = json.Json();
        Assert.True(report.GetProperty("valid").GetBoolean());
        var checks = report.GetProperty("checks").EnumerateArray().ToDictionary(c => c.GetProperty("key").GetString()!, c => c);
        Assert.Equal("rejected", checks["revoked"].GetProperty("outcome").GetString());
        Assert.Contains("401 authentication_error \"invalid x-api-key\"", checks["revoked"].GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.All(["primary", "backup", "fresh"], k => Assert.Equal("passed", checks[k].GetProperty("outcome").GetString()));
        // Checked for real, at the provider, with the proxy's own prober.
        Assert.Contains(upstream.Requests, r => r.Key == revoked && r.PathAndQuery == "/v1/models" && Scenario.IsKeyCheck(r));

        var changes = report.GetProperty("changes").EnumerateArray().ToDictionary(c => c.GetProperty("key").GetString() ?? "(pool)", c => c);
        Assert.Equal("key-reranked", changes["primary"].GetProperty("change").GetString());
        Assert.Contains("priority 0 → 3", changes["primary"].GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal("key-replaced", changes["backup"].GetProperty("change").GetString());
        Assert.Contains($"new secret ({KeyFormats.Fingerprint(backup)} → {KeyFormats.Fingerprint(newBackup)})", changes["backup"].GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal("key-added", changes["fresh"].GetProperty("change").GetString());
        Assert.Equal(KeyFormats.Fingerprint(fresh), changes["fresh"].GetProperty("fingerprint").GetString());
        Assert.Equal("key-added", changes["revoked"].GetProperty("change").GetString());
        Assert.Equal("key-removed", changes["old"].GetProperty("change").GetString());
        Assert.Equal("key-kept", changes["runtime"].GetProperty("change").GetString());
        Assert.Equal(6, changes.Count);

        Assert.True(text.ExitCode == 1, text.ToString());
        Assert.Contains("REJECTED", text.Output, StringComparison.Ordinal);
        Assert.Contains($"+ anthropic/fresh    {KeyFormats.Fingerprint(fresh)}", text.Output, StringComparison.Ordinal);
        Assert.Contains($"- anthropic/old      {KeyFormats.Fingerprint(old)}", text.Output, StringComparison.Ordinal);
        Assert.Contains("Nothing was applied", text.Output, StringComparison.Ordinal);
        foreach (var secret in new[] { primary, backup, old, runtime, newBackup, fresh, revoked, AdminToken })
        {
            Assert.DoesNotContain(secret[..^4], json.Everything + text.Everything, StringComparison.Ordinal);
        }

        // Nothing was applied: the running proxy still has its own keys.
        Assert.Equal(["backup", "old", "primary", "runtime"], await RunningKeysAsync(proxy));
    }

    public void Dispose() => _directory.Delete(recursive: true);

    private static async Task<List<string>> RunningKeysAsync(ProxyHost proxy)
    {
        using var admin = new HttpClient { BaseAddress = proxy.ManagementAddress };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        var shape = await admin.GetFromJsonAsync<JsonElement>("/admin/config", Ct);
        return [.. shape.GetProperty("pools")[0].GetProperty("keys").EnumerateArray().Select(k => k.GetProperty("name").GetString()!).Order(StringComparer.Ordinal)];
    }

    /// <summary>A configuration the proxy starts with: one pool (its keys, or the test's one key), a client token.</summary>
    private JsonObject GoodConfig(SimulatedProvider? upstream = null, params (string Name, string Secret, int Priority)[] keys)
    {
        var pool = new JsonObject { ["Kind"] = "anthropic", ["Default"] = true };
        pool["Keys"] = new JsonArray([.. (keys.Length > 0 ? keys : [("primary", _secret, 0)]).Select(k => new JsonObject { ["Name"] = k.Name, ["Secret"] = k.Secret, ["Priority"] = k.Priority })]);
        if (upstream is not null)
        {
            pool["Upstream"] = upstream.BaseAddress.ToString();
            var transport = new JsonObject();
            foreach (var (setting, value) in ProxyConfig.ProviderTransport("anthropic", upstream))
            {
                transport[setting.Split(':')[^1]] = value;
            }

            pool["Transport"] = transport;
        }

        return new JsonObject
        {
            ["Pools"] = new JsonObject { ["anthropic"] = pool },
            ["Clients"] = new JsonObject { ["Tokens"] = new JsonArray(new JsonObject { ["Name"] = "agent", ["Token"] = _clientToken }) },
        };
    }

    private static string Merge(JsonObject config, string patch)
    {
        static void Into(JsonObject target, JsonObject source)
        {
            foreach (var (name, value) in source.ToList())
            {
                if (value is JsonObject inner && target[name] is JsonObject existing)
                {
                    Into(existing, inner);
                }
                else if (value is JsonArray array && target[name] is JsonArray current)
                {
                    for (var i = 0; i < array.Count; i++)
                    {
                        if (array[i] is JsonObject item && i < current.Count && current[i] is JsonObject old)
                        {
                            Into(old, item);
                        }
                    }
                }
                else
                {
                    target[name] = value?.DeepClone();
                }
            }
        }

        Into(config, JsonNode.Parse(patch)!.AsObject());
        return config.ToJsonString();
    }

    private string Write(string json)
    {
        var path = Path.Combine(_directory.FullName, $"appsettings-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, json);
        return path;
    }
}
