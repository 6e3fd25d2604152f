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
    }
}
