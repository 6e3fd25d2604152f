using System.Net;
using System.Runtime.Versioning;
using System.Text;
using System.Text.Json;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Tests.Fakes;

namespace AuthFailoverProxy.Tests.Container;

/// <summary>
/// There is no Docker engine here, so the image is tested as far as it can be without one: the published app is
/// started exactly as the Dockerfile's ENTRYPOINT would start it, with the image's environment, its working directory
/// read-only in spirit (nothing may be written there) and /tmp and /data pointed at scratch directories, and is then
/// probed as Kubernetes would probe it and used as an agent would use it.
/// </summary>
[Collection(PublishedAppGroup.Name)]
public sealed class PublishedImageTests(PublishedApp app)
{
    [Fact]
    public void PublishedService_CarriesNoTestMachinery()
    {
        // The simulated provider, the demo and the drill live in their own project; the image copies only this folder.
        var files = Directory.GetFiles(app.PublishDirectory, "*", SearchOption.AllDirectories).Select(Path.GetFileName).ToList();
        Assert.Contains("AuthFailoverProxy.dll", files);
        Assert.DoesNotContain(files, f => f!.StartsWith("AuthFailoverProxy.Demo", StringComparison.Ordinal));
        var service = typeof(AuthFailoverProxy.Hosting.ProxyApplication).Assembly;
        Assert.DoesNotContain(service.GetTypes(), t => t.Namespace is { } ns && (ns.Contains(".Demo", StringComparison.Ordinal) || ns.Contains(".Drill", StringComparison.Ordinal)));
    }

    [Fact]
    [UnsupportedOSPlatform("windows")]
    public async Task Afp_IsPublishedBesideTheService_OnThePath_AsAnApphost_AndRuns()
    {
        // kubectl exec … afp status: no shell in the chiseled image, so afp is an executable of its own, found on PATH.
        Assert.Contains(app.PublishCommands, c => c.Contains("src/AuthFailoverProxy/AuthFailoverProxy.csproj", StringComparison.Ordinal) && c.Contains($"-o {app.WorkingDirectory}", StringComparison.Ordinal));
        Assert.Contains(app.PublishCommands, c => c.Contains("src/AuthFailoverProxy.Cli/AuthFailoverProxy.Cli.csproj", StringComparison.Ordinal) && c.Contains($"-o {app.WorkingDirectory}", StringComparison.Ordinal) && !c.Contains("UseAppHost=false", StringComparison.Ordinal));
        var path = app.Environment.Single(e => e.Key == "PATH").Value.Split(':');
        Assert.Equal(app.WorkingDirectory, path[0]);
        Assert.Contains("/usr/bin", path);
        var afp = Path.Combine(app.PublishDirectory, "afp");
        Assert.True(File.GetUnixFileMode(afp).HasFlag(UnixFileMode.UserExecute));

        var help = await Repository.RunAsync(afp, ["--help"], app.PublishDirectory, TimeSpan.FromSeconds(60), environment: []);

        Assert.True(help.ExitCode == 0, help.ToString());
        Assert.Contains("check-config", help.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Entrypoint_WithImageEnvironment_ServesProbesStatusAndProxiesUntilSigterm()
    {
        var ct = TestContext.Current.CancellationToken;
        Assert.Equal([8080, 9090], app.ExposedPorts);
        await using var upstream = await SimulatedProvider.StartAsync(cancellationToken: ct);
        var scratch = Directory.CreateTempSubdirectory("afp-image-");
        var ports = app.ExposedPorts.ToDictionary(p => p, _ => AppProcess.FreePort());
        try
        {
            scratch.CreateSubdirectory("tmp");
            var data = scratch.CreateSubdirectory("data").FullName;
            var secret = Secrets.AnthropicApiKey();
            var clientToken = Secrets.ClientToken();
            var before = Snapshot(app.PublishDirectory);

            var environment = app.Environment.Select(e => new KeyValuePair<string, string>(e.Key, InContainer(e.Value))).Concat(
            [
                new("AFP_KEYS", $"primary={secret}"),
                new("AFP_UPSTREAM", upstream.BaseAddress.ToString().TrimEnd('/')),
                new("AFP_CLIENT_TOKENS", clientToken),
                .. ProxyConfig.ProviderTransport("anthropic", upstream).Select(s => new KeyValuePair<string, string>(s.Setting.Replace(":", "__", StringComparison.Ordinal), s.Value)),
            ]);
            await using var process = AppProcess.Start([.. app.Entrypoint.Select(InContainer)], app.PublishDirectory, environment);

            using var management = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{ports[9090]}"), Timeout = TimeSpan.FromSeconds(10) };
            using var agent = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{ports[8080]}"), Timeout = TimeSpan.FromSeconds(30) };
            await process.WaitUntilReadyAsync(management, ct);

            Assert.Equal(HttpStatusCode.OK, (await management.GetAsync("/healthz", ct)).StatusCode);
            var status = await management.GetFromJsonAsync<JsonElement>("/status", ct);
            var key = status.GetProperty("pools")[0].GetProperty("keys")[0];
            Assert.Equal("primary", key.GetProperty("name").GetString());
            Assert.Equal("usable", key.GetProperty("state").GetString());
            Assert.Contains("afp_pool_usable_keys", await management.GetStringAsync("/metrics", ct), StringComparison.Ordinal);

            // An agent's call, then one whose body spills to the temp directory (above the 1 MiB memory threshold).
            agent.DefaultRequestHeaders.Add("x-api-key", clientToken);
            using var small = await agent.PostAsync("/v1/messages", Scenario.MessageBody(), ct);
            Assert.Equal(HttpStatusCode.OK, small.StatusCode);
            Assert.Equal("primary", small.Headers.GetValues("x-afp-key").Single());
            var large = $$"""{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"{{new string('a', 2 * 1024 * 1024)}}"}]}""";
            using var spilled = await agent.PostAsync("/v1/messages", new StringContent(large, Encoding.UTF8, "application/json"), ct);
            Assert.Equal(HttpStatusCode.OK, spilled.StatusCode);
            Assert.Equal(2, upstream.Requests.Count(r => r.Key == secret && r.PathAndQuery == "/v1/messages"));

            // afp in the same container finds the proxy by the image's own AFP_MANAGEMENT_URLS: no --url, no AFP_URL.
            var afp = await Repository.RunAsync(Path.Combine(app.PublishDirectory, "afp"), ["status", "--json"], app.PublishDirectory, TimeSpan.FromSeconds(60), environment);
            Assert.True(afp.ExitCode == 0, afp.ToString());
            Assert.Equal("primary", afp.Json().GetProperty("pools")[0].GetProperty("keys")[0].GetProperty("name").GetString());

            // The agent port proxies every path: management stays on its own port.
            using var statusOnAgentPort = await agent.GetAsync("/status", ct);
            Assert.DoesNotContain("\"pools\"", await statusOnAgentPort.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);

            // Kubernetes stops a pod with SIGTERM: the proxy shuts down cleanly, within the grace period.
            await process.StopAsync(ct);
            Assert.True(process.ExitCode == 0, $"exit code {process.ExitCode}:\n{process.Logs}");

            var logs = process.Logs;
            Assert.DoesNotContain(secret, logs, StringComparison.Ordinal);
            Assert.DoesNotContain(clientToken, logs, StringComparison.Ordinal);
            Assert.Contains("\"@t\"", logs.Split('\n').First(l => l.StartsWith('{')), StringComparison.Ordinal); // AFP_LOG_FORMAT=json

            // Read-only root filesystem: the app directory is untouched; the audit trail went to the /data volume.
            Assert.Equal(before, Snapshot(app.PublishDirectory));
            Assert.True(File.Exists(Path.Combine(data, "audit.jsonl")), $"no audit.jsonl in the /data volume:\n{logs}");
        }
        finally
        {
            scratch.Delete(recursive: true);
        }

        string InContainer(string value)
        {
            // The image's paths and ports, mapped onto this machine: WORKDIR to the publish output, the two volumes to
            // scratch directories, the exposed ports to free ones.
            if (value == "/tmp" || value == "/data")
            {
                return Path.Combine(scratch.FullName, value.TrimStart('/'));
            }

            if (value.StartsWith(app.WorkingDirectory + "/", StringComparison.Ordinal))
            {
                return Path.Combine(app.PublishDirectory, value[(app.WorkingDirectory.Length + 1)..]);
            }

            foreach (var (exposed, free) in ports)
            {
                value = value.Replace($":{exposed}", $":{free}", StringComparison.Ordinal);
            }

            return value;
        }
    }

    private static string Snapshot(string directory)
        => string.Join('\n', Directory.EnumerateFileSystemEntries(directory, "*", SearchOption.AllDirectories)
            .Order(StringComparer.Ordinal)
            .Select(p => $"{Path.GetRelativePath(directory, p)} {File.GetLastWriteTimeUtc(p):O}"));
}
