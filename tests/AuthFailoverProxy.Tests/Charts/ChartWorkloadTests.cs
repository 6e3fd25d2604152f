using System.Globalization;
using k8s.Models;

namespace AuthFailoverProxy.Tests.Charts;

/// <summary>charts/auth-failover-proxy: what the Deployment, Service, Secret mounts, trial Redis and NetworkPolicy must say.</summary>
public sealed class ChartWorkloadTests
{
    [Theory]
    [MemberData(nameof(Chart.CiValuesFiles), MemberType = typeof(Chart))]
    public async Task Probes_CiValues_AreOnTheManagementPort(string valuesFile)
    {
        var manifests = await Chart.ManifestsAsync(valuesFile);
        var deployment = Chart.Typed<V1Deployment>(manifests).Single(d => d.Metadata.Name == Chart.FullName);
        var container = deployment.Spec.Template.Spec.Containers.Single();
        var management = container.Ports.Single(p => p.Name == "management");
        var agent = container.Ports.Single(p => p.Name == "agent");

        Assert.Equal(9090, management.ContainerPort);
        Assert.Equal(8080, agent.ContainerPort);
        Assert.Equal("/healthz", container.LivenessProbe.HttpGet.Path);
        Assert.Equal("management", container.LivenessProbe.HttpGet.Port.Value);
        Assert.Equal("/readyz", container.ReadinessProbe.HttpGet.Path);
        Assert.Equal("management", container.ReadinessProbe.HttpGet.Port.Value);
        Assert.Equal("management", container.StartupProbe.HttpGet.Port.Value);

        // The app listens where the probes knock. Environment variables, as the image sets them (which would otherwise win
        // over appsettings.json): ChartPodTests runs the app with them.
        Assert.Equal("http://+:9090", container.Env.Single(e => e.Name == "AFP_MANAGEMENT_URLS").Value);
        Assert.Equal("http://+:8080", container.Env.Single(e => e.Name == "ASPNETCORE_URLS").Value);
        Assert.False(Chart.AppSettings(manifests).TryGetProperty("Management", out _));

        var service = Chart.Typed<V1Service>(manifests).Single(s => s.Metadata.Name == Chart.FullName);
        Assert.Equal("management", service.Spec.Ports.Single(p => p.Port == 9090).TargetPort.Value);
        Assert.Equal("agent", service.Spec.Ports.Single(p => p.Port == 8080).TargetPort.Value);
    }

    [Fact]
    public async Task Deployment_Defaults_TwoReplicasRollingWithDrain()
    {
        var manifests = await Chart.ManifestsAsync("default-values.yaml");
        var deployment = Chart.Typed<V1Deployment>(manifests).Single();
        var pod = deployment.Spec.Template.Spec;
        var container = pod.Containers.Single();

        Assert.Equal(2, deployment.Spec.Replicas);
        Assert.Equal("RollingUpdate", deployment.Spec.Strategy.Type);
        Assert.Equal("0", deployment.Spec.Strategy.RollingUpdate.MaxUnavailable.Value);
        Assert.Equal(10, container.Lifecycle.PreStop.Sleep.Seconds);
        Assert.Equal("300", container.Env.Single(e => e.Name == "DOTNET_shutdownTimeoutSeconds").Value);
        Assert.True(pod.TerminationGracePeriodSeconds > 10 + 300);
        Assert.NotNull(container.Resources.Requests["cpu"]);
        Assert.NotNull(container.Resources.Requests["memory"]);
        Assert.Contains(manifests, m => m.Kind == "PodDisruptionBudget");
        Assert.DoesNotContain(manifests, m => m.Kind == "HorizontalPodAutoscaler");
        Assert.Null(pod.PriorityClassName);
        Assert.Null(deployment.Metadata.Annotations);
    }

    [Theory]
    [MemberData(nameof(Chart.CiValuesFiles), MemberType = typeof(Chart))]
    public async Task Pods_CiValues_GetNoServiceLinks(string valuesFile)
    {
        // Kubernetes would inject AFP_AUTH_FAILOVER_PROXY_PORT=tcp://… and the like into a release named afp: the
        // proxy's own AFP_ prefix.
        var pods = Chart.Typed<V1Deployment>(await Chart.ManifestsAsync(valuesFile)).Select(d => d.Spec.Template.Spec)
            .Concat(Chart.Typed<V1Pod>(await Chart.ManifestsAsync(valuesFile)).Select(p => p.Spec))
            .ToList();

        Assert.Contains(pods, p => p.Containers.Single().Name == "proxy");
        Assert.All(pods, p => Assert.False(p.EnableServiceLinks));
    }

    [Theory]
    [InlineData(new string[0], null, 1)]
    [InlineData(new[] { "--set", "podDisruptionBudget.maxUnavailable=0" }, 0, null)]
    [InlineData(new[] { "--set-json", "podDisruptionBudget.maxUnavailable=0" }, 0, null)]
    [InlineData(new[] { "--set", "podDisruptionBudget.maxUnavailable=1" }, 1, null)]
    [InlineData(new[] { "--set", "podDisruptionBudget.minAvailable=0" }, null, 0)]
    public async Task PodDisruptionBudget_RendersWhatIsSet_ZeroIncluded(string[] set, int? maxUnavailable, int? minAvailable)
    {
        var pdb = Chart.Typed<V1PodDisruptionBudget>(await Chart.ManifestsAsync("default-values.yaml", set)).Single();

        Assert.Equal(maxUnavailable?.ToString(CultureInfo.InvariantCulture), pdb.Spec.MaxUnavailable?.Value);
        Assert.Equal(minAvailable?.ToString(CultureInfo.InvariantCulture), pdb.Spec.MinAvailable?.Value);
    }

    [Fact]
    public async Task Deployment_SharedClusterValues_PriorityLabelsAnnotationsAndExtraVolumes()
    {
        var manifests = await Chart.ManifestsAsync("exposed-values.yaml");
        var deployment = Chart.Typed<V1Deployment>(manifests).Single();
        var pod = deployment.Spec.Template.Spec;

        Assert.Equal("llm-critical", pod.PriorityClassName);
        Assert.Equal("platform", deployment.Metadata.Labels["team"]);
        Assert.Equal(Chart.Release, deployment.Metadata.Labels["app.kubernetes.io/instance"]);
        Assert.Equal("true", deployment.Metadata.Annotations["reloader.stakater.com/auto"]);
        // On the Deployment, not the pods: a label there would change nothing a selector sees.
        Assert.DoesNotContain("team", (IDictionary<string, string>)deployment.Spec.Template.Metadata.Labels);

        var volume = pod.Volumes.Single(v => v.Name == "corp-ca");
        Assert.Equal("corp-ca", volume.ConfigMap.Name);
        var mount = pod.Containers.Single().VolumeMounts.Single(m => m.Name == "corp-ca");
        Assert.Equal("/etc/corp-ca", mount.MountPath);
        Assert.True(mount.ReadOnlyProperty);
        // The proxy reads the CA where the mount puts it.
        Assert.Equal("/etc/corp-ca/ca.pem", Chart.AppSettings(manifests).GetProperty("Pools").GetProperty("anthropic").GetProperty("Transport").GetProperty("CaBundle").GetString());
    }

    [Fact]
    public async Task SecurityContext_OpenShiftRemovesTheIds_NoneIsForced()
    {
        // OpenShift's restricted SCC assigns the UID and refuses a pod asking for its own: null removes a default.
        var manifests = await Chart.ManifestsAsync("default-values.yaml",
            "--set", "podSecurityContext.runAsUser=null", "--set", "podSecurityContext.runAsGroup=null", "--set", "podSecurityContext.fsGroup=null");
        var pods = Chart.Typed<V1Deployment>(manifests).Select(d => d.Spec.Template.Spec).Concat(Chart.Typed<V1Pod>(manifests).Select(p => p.Spec)).ToList();

        Assert.Equal(2, pods.Count); // the proxy and the helm test pod
        foreach (var pod in pods)
        {
            Assert.Null(pod.SecurityContext.RunAsUser);
            Assert.Null(pod.SecurityContext.RunAsGroup);
            Assert.Null(pod.SecurityContext.FsGroup);
            Assert.True(pod.SecurityContext.RunAsNonRoot);
            var container = pod.Containers.Single();
            Assert.Null(container.SecurityContext.RunAsUser);
            Assert.Null(container.SecurityContext.RunAsGroup);
            Assert.True(container.SecurityContext.ReadOnlyRootFilesystem);
            Assert.Equal(["ALL"], container.SecurityContext.Capabilities.Drop);
        }

        var lint = await Chart.LintAsync("default-values.yaml", "--set", "podSecurityContext.runAsUser=null");
        Assert.True(lint.ExitCode == 0, lint.ToString());
    }

    [Fact]
    public async Task SecurityContext_Overridden_ReachesThePod()
    {
        var manifests = await Chart.ManifestsAsync("default-values.yaml", "--set", "podSecurityContext.runAsUser=1000700000", "--set", "securityContext.runAsUser=1000700000");
        var pod = Chart.Typed<V1Deployment>(manifests).Single().Spec.Template.Spec;

        Assert.Equal(1000700000, pod.SecurityContext.RunAsUser);
        Assert.Equal(1000700000, pod.Containers.Single().SecurityContext.RunAsUser);
    }

    [Theory]
    [MemberData(nameof(Chart.CiValuesFiles), MemberType = typeof(Chart))]
    public async Task SecurityContext_CiValues_IsHardenedForEveryContainer(string valuesFile)
    {
        var manifests = await Chart.ManifestsAsync(valuesFile);

        foreach (var deployment in Chart.Typed<V1Deployment>(manifests))
        {
            var pod = deployment.Spec.Template.Spec;
            Assert.True(pod.SecurityContext.RunAsNonRoot, deployment.Metadata.Name);
            Assert.Equal("RuntimeDefault", pod.SecurityContext.SeccompProfile.Type);
            Assert.False(pod.AutomountServiceAccountToken);
            foreach (var container in pod.Containers)
            {
                Assert.True(container.SecurityContext.ReadOnlyRootFilesystem, container.Name);
                Assert.False(container.SecurityContext.AllowPrivilegeEscalation, container.Name);
                Assert.Equal(["ALL"], container.SecurityContext.Capabilities.Drop);
            }
        }

        // The proxy's only writable places are its two emptyDir volumes, where the image points them.
        var proxy = Chart.Typed<V1Deployment>(manifests).Single(d => d.Metadata.Name == Chart.FullName).Spec.Template.Spec;
        Assert.Equal(1654, proxy.SecurityContext.RunAsUser);
        var emptyDirs = proxy.Volumes.Where(v => v.EmptyDir is not null).Select(v => v.Name).ToHashSet();
        var writable = proxy.Containers.Single().VolumeMounts.Where(m => m.ReadOnlyProperty != true).ToList();
        Assert.Equal(["/data", "/tmp"], writable.Select(m => m.MountPath).Order(StringComparer.Ordinal));
        Assert.All(writable, m => Assert.Contains(m.Name, emptyDirs));
        var settings = Chart.AppSettings(manifests);
        Assert.Equal("/tmp", settings.GetProperty("RequestBody").GetProperty("TempDirectory").GetString());
        Assert.Equal("/data", settings.GetProperty("Audit").GetProperty("Directory").GetString());
        // PagerDuty dedup keys carry it: two installs sending to one PagerDuty service never close each other's incidents.
        Assert.Equal($"{Chart.Namespace}/{Chart.Release}", settings.GetProperty("Alerts").GetProperty("Deployment").GetString());
    }

    [Fact]
    public async Task Keys_FromSecret_MountedOneFilePerKeyInEachPoolsDirectory()
    {
        var manifests = await Chart.ManifestsAsync("existing-secret-values.yaml");
        var pod = Chart.Typed<V1Deployment>(manifests).Single().Spec.Template.Spec;
        var keys = pod.Volumes.Single(v => v.Name == "keys").Secret;
        var mount = pod.Containers.Single().VolumeMounts.Single(m => m.Name == "keys");
        var pools = Chart.AppSettings(manifests).GetProperty("Pools");

        Assert.Equal("afp-secrets", keys.SecretName);
        Assert.Equal(
            ["anthropic/backup", "anthropic/primary", "second-org/reserve"],
            keys.Items.Select(i => i.Path).Order(StringComparer.Ordinal));
        Assert.All(keys.Items, i => Assert.Equal("key." + i.Path.Replace('/', '.'), i.Key));
        Assert.Equal(mount.MountPath + "/second-org", pools.GetProperty("second-org").GetProperty("KeysDirectory").GetString());
        Assert.Equal(5, pools.GetProperty("anthropic").GetProperty("Keys")[1].GetProperty("Priority").GetInt32());

        // Every secret reference points at the existing Secret; client tokens line up with their names by index.
        var env = pod.Containers.Single().Env;
        Assert.All(env.Where(e => e.ValueFrom?.SecretKeyRef is not null), e => Assert.Equal("afp-secrets", e.ValueFrom.SecretKeyRef.Name));
        Assert.Equal("client-token.ci-bot", env.Single(e => e.Name == "Clients__Tokens__1__Token").ValueFrom.SecretKeyRef.Key);
        Assert.Equal("ci-bot", Chart.AppSettings(manifests).GetProperty("Clients").GetProperty("Tokens")[1].GetProperty("Name").GetString());
        Assert.Equal("alert.oncall.routing-key", env.Single(e => e.Name == "Alerts__Channels__oncall__RoutingKey").ValueFrom.SecretKeyRef.Key);
        Assert.DoesNotContain("checksum/secret", (IDictionary<string, string>)Chart.Typed<V1Deployment>(manifests).Single().Spec.Template.Metadata.Annotations);
    }

    [Fact]
    public async Task Checksums_ChangeWithWhatTheyCover()
    {
        var baseline = Annotations(await Chart.ManifestsAsync("default-values.yaml"));
        var config = Annotations(await Chart.ManifestsAsync("default-values.yaml", "--set", "config.Failover.Deadline=00:02:00"));
        var secret = Annotations(await Chart.ManifestsAsync("default-values.yaml", "--set", "secrets.clientTokens.agents=another-token-0123456789abcdef"));
        var again = Annotations(await Chart.ManifestsAsync("default-values.yaml", "--set", "replicaCount=2"));

        Assert.NotEqual(baseline["checksum/config"], config["checksum/config"]);
        Assert.Equal(baseline["checksum/secret"], config["checksum/secret"]);
        Assert.NotEqual(baseline["checksum/secret"], secret["checksum/secret"]);
        Assert.Equal(baseline["checksum/config"], secret["checksum/config"]);
        Assert.Equal(baseline, again);

        static IDictionary<string, string> Annotations(IReadOnlyList<Manifest> manifests)
            => Chart.Typed<V1Deployment>(manifests).Single().Spec.Template.Metadata.Annotations;
    }

    [Fact]
    public async Task RedisPod_Trial_IsWiredIntoTheConfigurationNotTheSecret()
    {
        var manifests = await Chart.ManifestsAsync("redis-pod-values.yaml");

        Assert.Contains(Chart.Typed<V1Service>(manifests), s => s.Metadata.Name == Chart.FullName + "-redis");
        Assert.Equal($"{Chart.FullName}-redis:6379", Chart.AppSettings(manifests).GetProperty("Redis").GetProperty("Configuration").GetString());
        var env = Chart.Typed<V1Deployment>(manifests).Single(d => d.Metadata.Name == Chart.FullName).Spec.Template.Spec.Containers.Single().Env;
        Assert.DoesNotContain(env, e => e.Name == "Redis__Configuration");

        var both = await Chart.RunHelmAsync("template", Chart.Release, Chart.Directory, "-f", Path.Combine(Chart.Directory, "ci", "redis-pod-values.yaml"),
            "--set", "redis.configuration=redis:6379");
        Assert.NotEqual(0, both.ExitCode);
        Assert.Contains("not both", both.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NetworkPolicy_LimitsBothPorts()
    {
        var manifests = await Chart.ManifestsAsync("networkpolicy-values.yaml");
        var policy = Chart.Typed<V1NetworkPolicy>(manifests).Single();

        Assert.Equal(["Ingress", "Egress"], policy.Spec.PolicyTypes);
        Assert.Equal("agent", policy.Spec.Ingress[0].Ports.Single().Port.Value);
        Assert.Equal("true", policy.Spec.Ingress[0].FromProperty.Single().PodSelector.MatchLabels["afp-client"]);
        Assert.Equal("management", policy.Spec.Ingress[1].Ports.Single().Port.Value);
        Assert.DoesNotContain(await Chart.ManifestsAsync("default-values.yaml"), m => m.Kind == "NetworkPolicy");

        // Besides the monitoring namespace, the helm test pod may call /readyz.
        var testPod = Chart.Typed<V1Pod>(manifests).Single();
        var peers = policy.Spec.Ingress[1].FromProperty;
        Assert.Equal("monitoring", peers[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]);
        Assert.Contains(peers, p => p.PodSelector?.MatchLabels is { } labels && labels.All(l => testPod.Metadata.Labels.TryGetValue(l.Key, out var v) && v == l.Value));
    }

    [Fact]
    public async Task NetworkPolicy_Egress_OpensWhatTheValuesConfigure()
    {
        var manifests = await Chart.ManifestsAsync("networkpolicy-values.yaml",
            "--set", "pools.anthropic.upstream=http://llm-gateway.corp.internal",
            "--set-json", """pools.openai={"kind":"openai","upstream":"http://10.0.0.9:8081","keys":[{"name":"main"}]}""",
            "--set-json", """pools.private={"kind":"anthropic","upstream":"https://gw.corp.example","transport":{"connectTo":"10.0.0.10:9443"},"keys":[{"name":"main"}]}""",
            "--set", "secrets.keys.openai.main=sk-ci", "--set", "secrets.keys.private.main=sk-ant-ci",
            "--set-json", """alerts.channels.mail={"type":"email","host":"smtp.example.com"}""",
            "--set-json", """alerts.channels.relay={"type":"email","host":"relay.corp.internal","port":2525,"security":"None"}""",
            "--set", "config.Telemetry.Otlp.Endpoint=http://otel-collector.monitoring:4317",
            "--set-json", """extraEnv=[{"name":"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT","value":"https://otlp.example.com/v1/traces"}]""",
            "--set-json", """networkPolicy.upstreamTo=[{"ipBlock":{"cidr":"10.0.0.0/8"}}]""");
        var egress = Chart.Typed<V1NetworkPolicy>(manifests).Single().Spec.Egress;

        // Each plain-HTTP upstream on its own port (80 when none), and connectTo's port rather than the URL's.
        var upstream = egress.Single(r => r.To?.Any(p => p.IpBlock?.Cidr == "10.0.0.0/8") == true);
        Assert.Equal([80, 8081, 9443], Ports(upstream));
        // SMTP on 587 (the default) and 2525, the OTLP collector on 4317, HTTPS for webhooks, the heartbeat and OTLP on 443.
        var notify = egress.Single(r => r.Ports.Any(p => p.Port.Value == "587"));
        Assert.Equal([443, 587, 2525, 4317], Ports(notify));
        Assert.Null(notify.To);

        // The plain install: HTTPS to the upstream, HTTPS for alerts.
        var plain = Chart.Typed<V1NetworkPolicy>(await Chart.ManifestsAsync("networkpolicy-values.yaml")).Single().Spec.Egress;
        Assert.Equal([443], Ports(plain[1]));
        Assert.Equal([443], Ports(plain[2]));

        static List<int> Ports(V1NetworkPolicyEgressRule rule) => [.. rule.Ports.Select(p => int.Parse(p.Port.Value, CultureInfo.InvariantCulture)).Order()];
    }
}
