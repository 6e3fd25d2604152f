using k8s.Models;
using YamlDotNet.Serialization;

namespace AuthFailoverProxy.Tests.Charts;

/// <summary>charts/auth-failover-proxy: lint, render over the CI matrix, strict parsing, secrets kept out of ConfigMaps, the install notes.</summary>
public sealed class ChartTemplateTests
{
    public static TheoryData<string> CiValuesFiles => Chart.CiValuesFiles;

    [Fact]
    public void CiMatrix_CoversTheInstallShapes()
        => Assert.Equal(
            ["default-values.yaml", "existing-secret-values.yaml", "exposed-values.yaml", "monitoring-values.yaml", "networkpolicy-values.yaml", "redis-pod-values.yaml"],
            CiValuesFiles.Select(row => row.Data));

    [Theory]
    [MemberData(nameof(CiValuesFiles))]
    public async Task Lint_CiValues_PassesStrict(string valuesFile)
    {
        var result = await Chart.RunHelmAsync("lint", "--strict", Chart.Directory, "-f", Path.Combine(Chart.Directory, "ci", valuesFile),
            "--namespace", Chart.Namespace);
        Assert.True(result.ExitCode == 0, result.ToString());
    }

    [Fact]
    public async Task Lint_MissingKeySecret_FailsNamingTheValue()
    {
        var result = await Chart.RunHelmAsync("template", Chart.Release, Chart.Directory, "--set", "secrets.clientTokens.agents=token");
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("secrets.keys.anthropic.primary is empty", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Lint_UnknownValue_IsRejectedBySchema()
    {
        var result = await Chart.RunHelmAsync("template", Chart.Release, Chart.Directory, "-f", Path.Combine(Chart.Directory, "ci", "default-values.yaml"),
            "--set", "replicas=3");
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("replicas", result.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("autoscaling.minReplicas=5,autoscaling.maxReplicas=3", "autoscaling.minReplicas (5) is above autoscaling.maxReplicas (3)")]
    [InlineData("service.managementPort=8080", "service.agentPort and service.managementPort are both 8080")]
    [InlineData("service.agentPort=9090", "service.agentPort and service.managementPort are both 9090")]
    public async Task Template_ValuesThatContradictEachOther_FailNamingTheValues(string value, string message)
    {
        var result = await Chart.TemplateAsync("default-values.yaml", "--set", value);

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains(message, result.Output + result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Template_TwoKeysOfOneNameInAPool_FailsNamingTheKey()
    {
        // They differ in priority, so the schema's uniqueItems cannot see it; one Secret entry would serve both.
        var result = await Chart.TemplateAsync("existing-secret-values.yaml",
            "--set-json", """pools.second-org.keys=[{"name":"reserve"},{"name":"spare"},{"name":"reserve","priority":5}]""");

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("pools.second-org.keys[2].name is 'reserve', like pools.second-org.keys[0]", result.Output + result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Lint_SameKeyNameInTwoPools_AndEqualReplicaBounds_Pass()
    {
        // The checks above are about one pool and one pair of ports: a key name reused in another pool is fine.
        var result = await Chart.LintAsync("existing-secret-values.yaml",
            "--set-json", """pools.second-org.keys=[{"name":"primary"}]""", "--set", "autoscaling.minReplicas=3,autoscaling.maxReplicas=3");

        Assert.True(result.ExitCode == 0, result.ToString());
    }

    [Theory]
    [MemberData(nameof(CiValuesFiles))]
    public async Task Template_CiValues_EveryManifestParsesStrictly(string valuesFile)
    {
        var manifests = await Chart.ManifestsAsync(valuesFile, "--api-versions", Chart.MonitoringApi);

        var typed = Chart.LoadStrict(manifests);

        Assert.Equal(manifests.Count(m => !Chart.CustomKinds.Contains(m.Kind)), typed.Count);
        Assert.Contains(typed, o => o is V1Deployment);
        Assert.Contains(typed, o => o is V1Service);
        Assert.All(manifests.Where(m => Chart.CustomKinds.Contains(m.Kind)),
            m => Assert.Equal(m.Kind == "HTTPRoute" ? "gateway.networking.k8s.io/v1" : Chart.MonitoringApi, m.Root["apiVersion"]));
    }

    [Fact]
    public async Task Template_StrictParse_RejectsAnUnknownField()
    {
        // The strict check is only worth having if it can fail: a misspelt field in a rendered Deployment must not pass.
        var manifests = await Chart.ManifestsAsync("default-values.yaml");
        var deployment = manifests.Single(m => m.Kind == "Deployment").Yaml.Replace("readinessProbe:", "readinessProbes:", StringComparison.Ordinal);

        Assert.ThrowsAny<Exception>(() => k8s.KubernetesYaml.LoadAllFromString(deployment, null, strict: true));
    }

    [Theory]
    [MemberData(nameof(CiValuesFiles))]
    public async Task ConfigMaps_CiValues_HoldNoSecretValue(string valuesFile)
    {
        var manifests = await Chart.ManifestsAsync(valuesFile, "--api-versions", Chart.MonitoringApi);
        var secrets = SecretValues(valuesFile);

        foreach (var configMap in manifests.Where(m => m.Kind == "ConfigMap"))
        {
            foreach (var secret in secrets)
            {
                Assert.DoesNotContain(secret, configMap.Yaml, StringComparison.Ordinal);
            }
        }

        // Nor as plain environment values: every secret reaches the pod through the Secret.
        var deployment = Chart.Typed<V1Deployment>(manifests).Single(d => d.Metadata.Name == Chart.FullName);
        foreach (var env in deployment.Spec.Template.Spec.Containers.Single().Env)
        {
            Assert.DoesNotContain(env.Value ?? "", secrets);
        }

        var secretManifest = manifests.SingleOrDefault(m => m.Kind == "Secret");
        if (valuesFile == "existing-secret-values.yaml")
        {
            Assert.Null(secretManifest);
        }
        else
        {
            // The secrets went somewhere: into the chart's Secret, each one.
            Assert.NotEmpty(secrets);
            Assert.All(secrets, s => Assert.Contains(s, secretManifest!.Yaml, StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task PoolTransportAndSchemes_ReachTheApp_CaInTheConfigMap_ClientCertificateMounted()
    {
        var ca = Path.Combine(Path.GetTempPath(), $"afp-chart-ca-{Guid.NewGuid():N}.pem");
        await File.WriteAllTextAsync(ca, "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n", TestContext.Current.CancellationToken);
        try
        {
            var manifests = await Chart.ManifestsAsync("default-values.yaml",
                "--set", "pools.anthropic.keys[0].name=primary", "--set", "pools.anthropic.keys[0].scheme=oauth", "--set", "pools.anthropic.scheme=x-api-key",
                "--set-file", $"pools.anthropic.transport.caBundle={ca}",
                "--set", "pools.anthropic.transport.clientCertificateSecret=llm-gateway-client",
                "--set", "pools.anthropic.transport.httpVersion=1.1",
                "--set", "pools.anthropic.transport.connectTo=10.0.0.5:443",
                "--set", "pools.anthropic.probePath=/v1/models/claude-haiku-4-5",
                "--set", "pools.anthropic.askForStreamUsage=false");

            var pool = Chart.AppSettings(manifests).GetProperty("Pools").GetProperty("anthropic");
            Assert.False(pool.GetProperty("AskForStreamUsage").GetBoolean());
            Assert.Equal("oauth", pool.GetProperty("Keys")[0].GetProperty("Scheme").GetString());
            Assert.Equal("x-api-key", pool.GetProperty("Scheme").GetString());
            Assert.Equal("/v1/models/claude-haiku-4-5", pool.GetProperty("ProbePath").GetString());
            var transport = pool.GetProperty("Transport");
            Assert.Equal("/etc/auth-failover-proxy/ca.anthropic.pem", transport.GetProperty("CaBundle").GetString());
            Assert.Equal("1.1", transport.GetProperty("HttpVersion").GetString());
            Assert.Equal("10.0.0.5:443", transport.GetProperty("ConnectTo").GetString());
            var configMap = Chart.Typed<V1ConfigMap>(manifests).Single(c => c.Data.ContainsKey("appsettings.json"));
            Assert.StartsWith("-----BEGIN CERTIFICATE-----", configMap.Data["ca.anthropic.pem"], StringComparison.Ordinal);

            var pod = Chart.Typed<V1Deployment>(manifests).Single().Spec.Template.Spec;
            var volume = pod.Volumes.Single(v => v.Secret?.SecretName == "llm-gateway-client");
            Assert.Equal(["tls.crt", "tls.key"], volume.Secret.Items.Select(i => i.Path));
            var mount = pod.Containers.Single().VolumeMounts.Single(m => m.Name == volume.Name);
            Assert.Equal(Path.GetDirectoryName(transport.GetProperty("ClientCertificate").GetString()), mount.MountPath);
            Assert.True(mount.ReadOnlyProperty);
        }
        finally
        {
            File.Delete(ca);
        }
    }

    [Fact]
    public async Task ClientBudgets_ReachTheApp_ABudgetForNoClientFailsNamingIt()
    {
        var manifests = await Chart.ManifestsAsync("default-values.yaml",
            "--set", "clients.budgets.agents.requestsPerMinute=60", "--set", "clients.budgets.agents.tokensPerDay=2000000");

        var client = Chart.AppSettings(manifests).GetProperty("Clients").GetProperty("Tokens")[0];
        Assert.Equal("agents", client.GetProperty("Name").GetString());
        Assert.Equal(60, client.GetProperty("Budget").GetProperty("RequestsPerMinute").GetInt64());
        Assert.Equal(2_000_000, client.GetProperty("Budget").GetProperty("TokensPerDay").GetInt64());
        Assert.False(client.GetProperty("Budget").TryGetProperty("TokensPerMinute", out _));

        var result = await Chart.RunHelmAsync("template", Chart.Release, Chart.Directory, "-f", Path.Combine(Chart.Directory, "ci", "default-values.yaml"), "--set", "clients.budgets.nobody.requestsPerMinute=60");
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("clients.budgets.nobody names no client", result.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("pools.anthropic.scheme=basic", "scheme")]
    [InlineData("pools.anthropic.probePath=v1/models", "probePath")]
    [InlineData("pools.anthropic.keys[0].name=primary,pools.anthropic.keys[0].scheme=password", "scheme")]
    [InlineData("pools.anthropic.transport.connectTo=no-port", "connectTo")]
    [InlineData("pools.anthropic.transport.httpVersion=3", "httpVersion")]
    public async Task PoolTransportAndSchemeMistakes_AreRejectedBySchema(string value, string named)
    {
        var result = await Chart.RunHelmAsync("template", Chart.Release, Chart.Directory, "-f", Path.Combine(Chart.Directory, "ci", "default-values.yaml"), "--set", value);

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains(named, result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Notes_TellAgentsWhereToPoint()
    {
        var notes = await NotesAsync("default-values.yaml");

        Assert.Contains($"ANTHROPIC_BASE_URL=http://{Chart.FullName}.{Chart.Namespace}.svc:8080", notes, StringComparison.Ordinal);
        Assert.Contains("ANTHROPIC_AUTH_TOKEN=<a client token>", notes, StringComparison.Ordinal);
        Assert.Contains($"get secret {Chart.FullName} -o jsonpath='{{.data.client-token\\.agents}}'", notes, StringComparison.Ordinal);
        Assert.Contains("curl -s http://localhost:9090/status", notes, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("exposed-values.yaml", new string[0], $"get secret {Chart.FullName} -o jsonpath='{{.data.management-token}}'")]
    [InlineData("existing-secret-values.yaml", new[] { "--set", "management.existingSecret=ops,management.existingSecretKey=mgmt.token" }, "get secret ops -o jsonpath='{.data.mgmt\\.token}'")]
    public async Task Notes_WithManagementToken_ShowHowToSendIt(string valuesFile, string[] extra, string readsToken)
    {
        var notes = await NotesAsync(valuesFile, extra);

        Assert.Contains(readsToken, notes, StringComparison.Ordinal);
        Assert.Contains("curl -s -H \"Authorization: Bearer $TOKEN\" http://localhost:9090/status", notes, StringComparison.Ordinal);
    }

    /// <summary>helm renders NOTES.txt only on install, which needs a cluster: a copy of the chart renders it into a manifest.</summary>
    private static async Task<string> NotesAsync(string valuesFile, params string[] extra)
    {
        var copy = Directory.CreateTempSubdirectory("afp-chart-");
        try
        {
            var chart = Path.Combine(copy.FullName, "auth-failover-proxy");
            CopyDirectory(Chart.Directory, chart);
            await File.WriteAllTextAsync(Path.Combine(chart, "templates", "zz-notes.yaml"), """
                apiVersion: v1
                kind: ConfigMap
                metadata:
                  name: notes
                data:
                  notes: {{ include "auth-failover-proxy/templates/NOTES.txt" . | quote }}
                """, TestContext.Current.CancellationToken);
            var result = await Chart.RunHelmAsync(["template", Chart.Release, chart, "--namespace", Chart.Namespace,
                "-f", Path.Combine(Chart.Directory, "ci", valuesFile), "--show-only", "templates/zz-notes.yaml", .. extra]);
            Assert.True(result.ExitCode == 0, result.ToString());
            return (string)Manifest.Parse(result.Output).Single().Get("data", "notes")!;
        }
        finally
        {
            copy.Delete(recursive: true);
        }

        static void CopyDirectory(string from, string to)
        {
            foreach (var dir in Directory.EnumerateDirectories(from, "*", SearchOption.AllDirectories))
            {
                Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, dir)));
            }

            Directory.CreateDirectory(to);
            foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
            {
                File.Copy(file, Path.Combine(to, Path.GetRelativePath(from, file)));
            }
        }
    }

    /// <summary>Every leaf string under <c>secrets</c> in a CI values file (the Secret's name excepted).</summary>
    private static List<string> SecretValues(string valuesFile)
    {
        var values = new DeserializerBuilder().Build().Deserialize<Dictionary<object, object>>(File.ReadAllText(Path.Combine(Chart.Directory, "ci", valuesFile)));
        var result = new List<string>();
        if (values.GetValueOrDefault("secrets") is Dictionary<object, object> secrets)
        {
            Collect(secrets.Where(e => (string)e.Key != "existingSecret").Select(e => e.Value));
        }

        if (values.GetValueOrDefault("redis") is Dictionary<object, object> redis && redis.GetValueOrDefault("configuration") is string redisConfiguration)
        {
            result.Add(redisConfiguration);
        }

        if (values.GetValueOrDefault("management") is Dictionary<object, object> management && management.GetValueOrDefault("token") is string managementToken)
        {
            result.Add(managementToken);
        }

        return result;

        void Collect(IEnumerable<object> nodes)
        {
            foreach (var node in nodes)
            {
                switch (node)
                {
                    case string s:
                        result.Add(s);
                        break;
                    case Dictionary<object, object> map:
                        Collect(map.Values);
                        break;
                }
            }
        }
    }
}
