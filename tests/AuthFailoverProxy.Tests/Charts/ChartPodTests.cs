using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Tests.Container;
using k8s.Models;

namespace AuthFailoverProxy.Tests.Charts;

/// <summary>
/// The chart and the app agree: the published app runs as the chart's pod would run it, with the rendered
/// ConfigMap as its content root, the rendered Secret's entries as the key files and environment variables the
/// Deployment mounts and references, and the Deployment's own environment and command.
/// </summary>
[Collection(PublishedAppGroup.Name)]
public sealed class ChartPodTests(PublishedApp app)
{
    [Fact]
    public async Task RenderedPod_KeysTokensAndPorts_ReachTheApp()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var upstream = await SimulatedProvider.StartAsync(cancellationToken: ct);
        var (agentPort, managementPort) = (AppProcess.FreePort(), AppProcess.FreePort());
        const string AdminToken = "ci-admin-token-0123456789abcdef0123456789";
        const string ManagementToken = "ci-management-token-0123456789abcdef012345";
        var manifests = await Chart.ManifestsAsync("default-values.yaml",
            "--set", $"pools.anthropic.upstream={upstream.BaseAddress.ToString().TrimEnd('/')}",
            // The simulated provider is reached as a private gateway would be: its CA from the values, its address given.
            "--set-file", $"pools.anthropic.transport.caBundle={upstream.CaBundlePath}",
            "--set", $"pools.anthropic.transport.connectTo={upstream.Endpoint}",
            "--set", $"service.agentPort={agentPort}", "--set", $"service.managementPort={managementPort}",
            "--set", "admin.tokens={ops}", "--set", $"secrets.adminTokens.ops={AdminToken}",
            "--set", $"management.token={ManagementToken}");
        var typed = Chart.LoadStrict(manifests);
        var deployment = typed.OfType<V1Deployment>().Single();
        var secret = typed.OfType<V1Secret>().Single().StringData;
        var pod = deployment.Spec.Template.Spec;
        var container = pod.Containers.Single();
        var primarySecret = secret["key.anthropic.primary"];
        upstream.SetKeyFault(primarySecret, KeyFault.Revoked);

        var scratch = Directory.CreateTempSubdirectory("afp-pod-");
        try
        {
            // The volumes, where the pod has them.
            var mounts = container.VolumeMounts.ToDictionary(m => m.Name, m => Path.Combine(scratch.FullName, m.Name));
            foreach (var dir in mounts.Values)
            {
                Directory.CreateDirectory(dir);
            }

            var configMap = typed.OfType<V1ConfigMap>().Single(c => c.Metadata.Name == Chart.FullName);
            foreach (var (file, content) in configMap.Data)
            {
                await File.WriteAllTextAsync(Path.Combine(mounts["config"], file), file == "appsettings.json" ? InPod(content) : content, ct);
            }
            foreach (var item in pod.Volumes.Single(v => v.Name == "keys").Secret.Items)
            {
                var file = Path.Combine(mounts["keys"], item.Path);
                Directory.CreateDirectory(Path.GetDirectoryName(file)!);
                await File.WriteAllTextAsync(file, secret[item.Key] + "\n", ct); // a trailing newline, as kubectl create secret --from-file often leaves
            }

            var environment = new List<KeyValuePair<string, string>>();
            foreach (var env in container.Env)
            {
                if (env.ValueFrom?.SecretKeyRef is { } reference)
                {
                    Assert.Equal(Chart.FullName, reference.Name);
                    if (secret.TryGetValue(reference.Key, out var value))
                    {
                        environment.Add(new(env.Name, value));
                    }
                    else
                    {
                        Assert.True(reference.Optional, $"{env.Name} needs Secret entry {reference.Key}, which the chart did not render");
                    }
                }
                else
                {
                    environment.Add(new(env.Name, InPod(env.Value)));
                }
            }

            // The chart sets no command: the image's ENTRYPOINT runs, with the image's ENV under the pod's.
            Assert.Null(container.Command);
            Assert.Null(container.Args);
            await using var process = AppProcess.Start(
                [.. app.Entrypoint.Select(a => a.Replace(app.WorkingDirectory + "/", app.PublishDirectory + "/", StringComparison.Ordinal))],
                app.PublishDirectory,
                [.. app.Environment.Select(e => new KeyValuePair<string, string>(e.Key, InPod(e.Value))), .. environment]);

            using var management = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{managementPort}"), Timeout = TimeSpan.FromSeconds(10) };
            using var agent = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{agentPort}"), Timeout = TimeSpan.FromSeconds(30) };
            await process.WaitUntilReadyAsync(management, ct);
            Assert.Equal(HttpStatusCode.OK, (await management.GetAsync(container.LivenessProbe.HttpGet.Path, ct)).StatusCode);

            // helm test's pod calls this URL through the Service: the port and path reach the app's readiness.
            var helmTest = new Uri(typed.OfType<V1Pod>().Single().Spec.Containers.Single().Command[^1]);
            Assert.Equal(managementPort, helmTest.Port);
            Assert.Equal(HttpStatusCode.OK, (await management.GetAsync(helmTest.PathAndQuery, ct)).StatusCode);

            // Both keys came from their files: the revoked primary is out at start, the backup serves.
            await process.WaitUntilKeysCheckedAsync(ct);
            // The management token from the Secret guards the state; the probes above stayed open.
            Assert.Equal(HttpStatusCode.Unauthorized, (await management.GetAsync("/status", ct)).StatusCode);
            management.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ManagementToken);
            var status = await management.GetFromJsonAsync<JsonElement>("/status", ct);
            var keys = status.GetProperty("pools")[0].GetProperty("keys").EnumerateArray().ToDictionary(k => k.GetProperty("name").GetString()!, k => k.GetProperty("state").GetString());
            Assert.True(keys["primary"] == "dead", $"primary is {keys["primary"]}:\n{process.Logs}");
            Assert.Equal("usable", keys["backup"]);
            agent.DefaultRequestHeaders.Add("x-api-key", secret["client-token.agents"]);
            using var response = await agent.PostAsync("/v1/messages", Fakes.Scenario.MessageBody(), ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("backup", response.Headers.GetValues("x-afp-key").Single());

            // The admin token from the Secret opens the admin API.
            using var admin = new HttpRequestMessage(HttpMethod.Get, "/admin/keys") { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", AdminToken) } };
            Assert.Equal(HttpStatusCode.OK, (await management.SendAsync(admin, ct)).StatusCode);

            await process.StopAsync(ct);
            Assert.True(process.ExitCode == 0, $"exit code {process.ExitCode}:\n{process.Logs}");
            Assert.DoesNotContain(primarySecret, process.Logs, StringComparison.Ordinal);
            Assert.True(File.Exists(Path.Combine(mounts["data"], "audit.jsonl")), process.Logs);

            string InPod(string text)
            {
                // The pod's mount paths, mapped onto the scratch directories (which live under /tmp themselves: one pass).
                var ordered = container.VolumeMounts.OrderByDescending(m => m.MountPath.Length).ToList();
                foreach (var mount in ordered)
                {
                    if (text == mount.MountPath || text.StartsWith(mount.MountPath + "/", StringComparison.Ordinal))
                    {
                        return mounts[mount.Name] + text[mount.MountPath.Length..];
                    }
                }

                for (var i = 0; i < ordered.Count; i++)
                {
                    text = text.Replace($"\"{ordered[i].MountPath}", $"\"\u0001{i}\u0001", StringComparison.Ordinal);
                }

                for (var i = 0; i < ordered.Count; i++)
                {
                    text = text.Replace($"\u0001{i}\u0001", mounts[ordered[i].Name], StringComparison.Ordinal);
                }

                return text;
            }
        }
        finally
        {
            scratch.Delete(recursive: true);
        }
    }
}
