using System.Net;
using System.Text.Json;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Events;
using AuthFailoverProxy.Hosting;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.Tests.Container;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace AuthFailoverProxy.Tests.Hosting;

/// <summary>
/// Configuration that is wrong stops the start, wherever it is wrong, in plain words and with exit code 2: the real app
/// as a child process for what the process prints and returns, the app in this process for what it serves. A file broken
/// while the proxy runs is refused and told, and the proxy serves on with the last good configuration.
/// </summary>
public sealed class StrictConfigurationTests
{
    private static readonly Uri Upstream = new("http://127.0.0.1:9");

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task BadValuesInsideAPoolAKeyOrAChannel_StopTheStart_NamingEachKey()
    {
        var config = new ProxyConfig()
            .Pool("anthropic", Upstream, isDefault: true, keys: [("primary", Secrets.AnthropicApiKey()), ("backup", Secrets.AnthropicApiKey())])
            .Pool("second", Upstream, keys: [("other-org", Secrets.AnthropicApiKey())])
            .Set("Pools:anthropic:Keys:1:Priority", "5x")
            .Set("Pools:second:Selection", "Bogus")
            .Set("Alerts:Channels:mail:Type", "email")
            .Set("Alerts:Channels:mail:Port", "abc")
            .Set("Pools:anthropic:Keys:0:Priority", "sk-ant-api03-pasted-into-the-wrong-key");

        var problems = await StartupProblemsAsync(config);

        // Before: the binder dropped the backup key and pool 'second' without a word, and /second went to the default pool.
        Assert.Contains("Pools:anthropic:Keys:1:Priority: '5x' is not a whole number.", problems);
        Assert.Contains("Pools:second:Selection: 'Bogus' is not one of Priority, RoundRobin.", problems);
        Assert.Contains("Alerts:Channels:mail:Port: 'abc' is not a whole number.", problems);
        // A secret pasted into a typed setting is named by its key, never shown.
        Assert.Contains("Pools:anthropic:Keys:0:Priority: '(a value of 38 characters, not shown)' is not a whole number.", problems);
        Assert.DoesNotContain(problems, p => p.Contains("pasted", StringComparison.Ordinal));
    }

    [Fact]
    public async Task UnknownSettings_AreNamed_WithWhatWasMeant()
    {
        var config = new ProxyConfig()
            .Pool("anthropic", Upstream, isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())])
            .Set("Failover:Dedline", "00:01:00")
            .Set("Pools:anthropic:Fallbak", "second")
            .Set("Failovr:Deadline", "00:01:00")
            .Set("Pools:anthropic:Keys:0:Colour", "blue");

        var problems = await StartupProblemsAsync(config);

        Assert.Contains("Failover:Dedline is not a setting: did you mean Failover:Deadline?", problems);
        Assert.Contains("Pools:anthropic:Fallbak is not a setting: did you mean Pools:anthropic:Fallback?", problems);
        Assert.Contains("'Failovr' is not a section of the proxy's configuration: did you mean 'Failover'?", problems);
        Assert.Contains(problems, p => p.StartsWith("Pools:anthropic:Keys:0:Colour is not a setting. The settings of Pools:anthropic:Keys:0 are: Name, ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task WhatIsNotTheProxys_IsLeftAlone_KubernetesServiceLinksIncluded()
    {
        // A release named 'afp' gets AFP_…_PORT variables from Kubernetes; Logging and Kestrel are the host's.
        var config = new ProxyConfig()
            .Pool("anthropic", Upstream, isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())])
            .Set("AFP_AUTH_FAILOVER_PROXY_PORT", "tcp://10.96.0.12:8080")
            .Set("AFP_AUTH_FAILOVER_PROXY_SERVICE_HOST", "10.96.0.12")
            .Set("Logging:LogLevel:Microsoft.AspNetCore", "Warning")
            .Set("Kestrel:Limits:MaxConcurrentConnections", "1000");

        await using var proxy = await ProxyHost.StartAsync(config);

        Assert.Single(proxy.Services.GetRequiredService<PoolRegistry>().Pools);
    }

    [Fact]
    public async Task TheShapeCheck_KnowsEverySectionTheProxyBinds()
    {
        // A section bound without being listed would escape the check. Binding an options type to configuration registers
        // a change-token source for it: every such type must be listed (PoolsOptions binds the root, listed as Pools).
        IServiceCollection? registered = null;
        var config = new ProxyConfig().Pool("anthropic", Upstream, isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())]);
        await using (var proxy = await ProxyHost.StartAsync(config, customize: b => registered = b.Services))
        {
            var bound = registered!
                .Where(d => d.ServiceType.IsGenericType && d.ServiceType.GetGenericTypeDefinition() == typeof(Microsoft.Extensions.Options.IOptionsChangeTokenSource<>))
                .Select(d => d.ServiceType.GetGenericArguments()[0])
                .Where(t => t.Assembly == typeof(ProxyApplication).Assembly && t != typeof(PoolsOptions))
                .Distinct()
                .ToList();
            var listed = ConfigurationShape.Sections.Select(s => s.Shape).ToHashSet();

            Assert.True(bound.Count >= 10, string.Join(", ", bound.Select(t => t.Name)));
            Assert.All(bound, t => Assert.Contains(t, listed));
        }
    }

    [Theory]
    [InlineData("AFP_MANAGEMENT_URLS", "notaurl", "Management:Urls (AFP_MANAGEMENT_URLS): 'notaurl' is not a URL")]
    [InlineData("AFP_REDIS", "127.0.0.1:notaport", "Redis:Configuration (AFP_REDIS): '127.0.0.1:notaport' has no valid port")]
    [InlineData("AFP_KEYS", "primary=sk-ant-api03-Aa1,sk-ant-api03-Bb2bare", "AFP_KEYS entry 2 of 2 is not name=secret")]
    [InlineData("AFP_UPSTREAM", "ftp://proxyuser:hunter2@api.example.com", "Pools:anthropic:Upstream 'ftp://…@api.example.com' is not an absolute http:// or https:// URL.")]
    [InlineData("Pools__anthropic__Keys__0__Priority", "5x", "Pools:anthropic:Keys:0:Priority: '5x' is not a whole number.")]
    [InlineData("AFP_LOG_FORMAT", "xml", "AFP_LOG_FORMAT 'xml' is not a log format")]
    public async Task TheRealProcess_ExitsWith2_InPlainWords_NoStackTrace_NoSecret(string variable, string value, string expected)
    {
        using var directory = new TemporaryDirectory();
        var code = await RunAsync(directory.Path, (variable, value));

        Assert.Equal(2, code.Exit);
        Assert.Contains("AuthFailoverProxy cannot start: the configuration needs fixing.", code.Logs, StringComparison.Ordinal);
        Assert.Contains(expected, code.Logs, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", code.Logs, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", code.Logs, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", code.Logs, StringComparison.Ordinal);
        Assert.DoesNotContain("Bb2bare", code.Logs, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AMalformedAppsettingsJson_ExitsWith2_NamingTheFileAndThePlace()
    {
        using var directory = new TemporaryDirectory();
        await File.WriteAllTextAsync(Path.Combine(directory.Path, "appsettings.json"), "{\n  \"Failover\": {\n    \"Deadline\": \"00:01:00\",\n", Ct);

        var code = await RunAsync(directory.Path);

        Assert.Equal(2, code.Exit);
        Assert.Contains("appsettings.json", code.Logs, StringComparison.Ordinal);
        Assert.Contains("LineNumber", code.Logs, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", code.Logs, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AFileBrokenWhileRunning_IsRefusedAndTold_AndTheLastGoodConfigurationServesOn()
    {
        using var directory = new TemporaryDirectory();
        var upstream = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        await using var _ = upstream;
        var (primary, standby) = (Secrets.AnthropicApiKey(), Secrets.AnthropicApiKey());
        var file = Path.Combine(directory.Path, "pools.json");
        WriteJson(file, PoolsJson(upstream, deadline: "00:00:45", ("primary", primary), ("standby", standby)));
        await using var proxy = await ProxyHost.StartAsync(
            new ProxyConfig(),
            customize: builder => builder.Configuration.AddJsonFile(file, optional: false, reloadOnChange: true));
        var events = proxy.Services.GetRequiredService<ProxyEvents>().Subscribe();
        var configuration = proxy.Services.GetRequiredService<IConfiguration>();
        var pool = proxy.Services.GetRequiredService<PoolRegistry>().Pools.Single();

        // Half a file, as an editor that does not save atomically leaves it: .NET's provider would serve nothing from it.
        WriteJson(file, PoolsJson(upstream, deadline: "00:00:45", ("primary", primary))[..40]);
        var rejected = await NextAsync(events, EventKinds.ConfigurationRejected);

        Assert.Equal(EventSeverity.Error, rejected.Severity);
        Assert.StartsWith($"Configuration reload rejected: {file}: - ", rejected.Message, StringComparison.Ordinal);
        Assert.Contains("The proxy keeps serving with the last good configuration.", rejected.Message, StringComparison.Ordinal);
        Assert.Equal("00:00:45", configuration["Failover:Deadline"]);
        Assert.Equal(["primary", "standby"], pool.Keys.Select(k => k.Name));
        using (var response = await proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // A file that parses but holds a bad value is refused the same way, before the binder could drop the entry.
        WriteJson(file, PoolsJson(upstream, deadline: "00:00:45", ("primary", primary), ("standby", standby)).Replace("\"Name\":\"standby\"", "\"Name\":\"standby\",\"Priority\":\"5x\"", StringComparison.Ordinal));
        rejected = await NextAsync(events, EventKinds.ConfigurationRejected);
        Assert.Contains("Pools:anthropic:Keys:1:Priority: '5x' is not a whole number.", rejected.Message, StringComparison.Ordinal);
        Assert.Equal(["primary", "standby"], pool.Keys.Select(k => k.Name));

        // Fixed: the change applies.
        WriteJson(file, PoolsJson(upstream, deadline: "00:00:50", ("standby", standby)));
        await FailoverTests.WaitUntilAsync(() => pool.FindKey("primary") is null);
        Assert.Equal("00:00:50", configuration["Failover:Deadline"]);
        Assert.Equal(2, proxy.Logs.CountEventId(1220));
        Assert.DoesNotContain(primary, proxy.Logs.AllText, StringComparison.Ordinal);
        Assert.DoesNotContain(standby, proxy.Logs.AllText, StringComparison.Ordinal);
    }

    private static async Task<ProxyEvent> NextAsync(System.Threading.Channels.ChannelReader<ProxyEvent> events, string kind)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(20));
        while (true)
        {
            var next = await events.ReadAsync(timeout.Token);
            if (next.Kind == kind)
            {
                return next;
            }
        }
    }

    private static string PoolsJson(SimulatedProvider upstream, string deadline, params (string Name, string Secret)[] keys)
        => JsonSerializer.Serialize(new
        {
            Failover = new { Deadline = deadline },
            Pools = new
            {
                anthropic = new
                {
                    Kind = "anthropic",
                    Upstream = upstream.BaseAddress.ToString(),
                    Transport = new { CaBundle = upstream.CaBundlePath, ConnectTo = upstream.Endpoint },
                    Default = true,
                    Keys = keys.Select(k => new { k.Name, k.Secret }).ToArray(),
                },
            },
        });

    /// <summary>Replaces the file in one step, so the watcher sees one change.</summary>
    private static void WriteJson(string file, string json)
    {
        var temporary = file + ".tmp";
        File.WriteAllText(temporary, json);
        File.Move(temporary, file, overwrite: true);
    }

    private static Task<List<string>> StartupProblemsAsync(ProxyConfig config) => ConfigurationValidationTests.StartupProblemsAsync(config);

    /// <summary>Runs the built app (next to the tests) with a minimal valid quick start plus <paramref name="overrides"/>, in <paramref name="directory"/>.</summary>
    private static async Task<(int Exit, string Logs)> RunAsync(string directory, params (string Name, string Value)[] overrides)
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["AFP_KEYS"] = "primary=" + Secrets.AnthropicApiKey(),
            ["AFP_UPSTREAM"] = Upstream.ToString(),
            ["AFP_CLIENT_TOKENS"] = "tok-" + Guid.NewGuid().ToString("N"),
            ["AFP_MANAGEMENT_URLS"] = $"http://127.0.0.1:{AppProcess.FreePort()}",
            ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{AppProcess.FreePort()}",
        };
        foreach (var (name, value) in overrides)
        {
            environment[name] = value;
        }

        var dll = Path.Combine(AppContext.BaseDirectory, "AuthFailoverProxy.dll");
        await using var process = AppProcess.Start(["dotnet", dll], directory, environment);
        var exit = await process.WaitForExitAsync(Ct);
        return (exit, process.Logs);
    }

    private sealed class TemporaryDirectory : IDisposable
    {
        private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("afp-config-");

        public string Path => _directory.FullName;

        public void Dispose() => _directory.Delete(recursive: true);
    }
}
