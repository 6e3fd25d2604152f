using k8s.Models;

namespace AuthFailoverProxy.Tests.Charts;

/// <summary>charts/auth-failover-proxy: reaching the proxy from outside the cluster (Ingress, Gateway API HTTPRoute) and the helm test pod.</summary>
public sealed class ChartExposureTests
{
    [Theory]
    [MemberData(nameof(Chart.CiValuesFiles), MemberType = typeof(Chart))]
    public async Task IngressAndHttpRoute_OnlyWhenEnabled(string valuesFile)
    {
        var manifests = await Chart.ManifestsAsync(valuesFile);
        var exposed = valuesFile == "exposed-values.yaml";

        Assert.Equal(exposed, manifests.Any(m => m.Kind == "Ingress"));
        Assert.Equal(exposed, manifests.Any(m => m.Kind == "HTTPRoute"));
    }

    [Fact]
    public async Task Ingress_Enabled_LeadsToTheAgentPortOnly()
    {
        var ingress = Chart.Typed<V1Ingress>(await Chart.ManifestsAsync("exposed-values.yaml")).Single();

        Assert.Equal("nginx", ingress.Spec.IngressClassName);
        Assert.Equal("32m", ingress.Metadata.Annotations["nginx.ingress.kubernetes.io/proxy-body-size"]);
        var rule = ingress.Spec.Rules.Single();
        Assert.Equal("llm-proxy.example.com", rule.Host);
        var path = rule.Http.Paths.Single();
        Assert.Equal(("/", "Prefix"), (path.Path, path.PathType));
        Assert.Equal(Chart.FullName, path.Backend.Service.Name);
        Assert.Equal(8080, path.Backend.Service.Port.Number);
        Assert.Equal("llm-proxy-tls", ingress.Spec.Tls.Single().SecretName);

        // Another agent port moves the backend with it; the management port is never exposed.
        var moved = Chart.Typed<V1Ingress>(await Chart.ManifestsAsync("exposed-values.yaml", "--set", "service.agentPort=8181")).Single();
        Assert.Equal(8181, moved.Spec.Rules.Single().Http.Paths.Single().Backend.Service.Port.Number);
    }

    [Fact]
    public async Task HttpRoute_Enabled_LeadsToTheAgentPortOnly()
    {
        var route = (await Chart.ManifestsAsync("exposed-values.yaml")).Single(m => m.Kind == "HTTPRoute");

        Assert.Equal("gateway.networking.k8s.io/v1", route.Root["apiVersion"]);
        Assert.Equal("public", route.Get("spec", "parentRefs", 0, "name"));
        Assert.Equal("gateway-system", route.Get("spec", "parentRefs", 0, "namespace"));
        Assert.Equal("https", route.Get("spec", "parentRefs", 0, "sectionName"));
        Assert.Equal("llm-proxy.example.com", route.Get("spec", "hostnames", 0));
        var backends = (List<object>)route.Get("spec", "rules", 0, "backendRefs")!;
        Assert.Equal(Chart.FullName, Manifest.Walk(backends.Single(), "name"));
        Assert.Equal("8080", Manifest.Walk(backends.Single(), "port"));
        Assert.Equal("PathPrefix", route.Get("spec", "rules", 0, "matches", 0, "path", "type"));
        // A streamed answer takes minutes: the gateway's own timeout is set from the values.
        Assert.Equal("600s", route.Get("spec", "rules", 0, "timeouts", "request"));
    }

    [Fact]
    public async Task HttpRoute_SchemaRejectsATimeoutGatewaysCannotRead()
    {
        var result = await Chart.LintAsync("exposed-values.yaml", "--set", "httpRoute.timeouts.request=10 minutes");

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("httpRoute.timeouts.request", result.Output + result.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(9090)]
    [InlineData(9191)]
    public async Task HelmTest_CallsReadyzOnTheManagementPortThroughTheService(int managementPort)
    {
        var manifests = await Chart.ManifestsAsync("networkpolicy-values.yaml", "--set", $"service.managementPort={managementPort}");
        var pod = Chart.Typed<V1Pod>(manifests).Single();
        var service = Chart.Typed<V1Service>(manifests).Single(s => s.Metadata.Name == Chart.FullName);

        Assert.Equal("test", pod.Metadata.Annotations["helm.sh/hook"]);
        Assert.Equal("Never", pod.Spec.RestartPolicy);
        Assert.Equal($"http://{Chart.FullName}.{Chart.Namespace}.svc:{managementPort}/readyz", pod.Spec.Containers.Single().Command[^1]);
        Assert.Equal("wget", pod.Spec.Containers.Single().Command[0]);
        // The Service must never send agents to the test pod.
        Assert.False(service.Spec.Selector.All(s => pod.Metadata.Labels.TryGetValue(s.Key, out var v) && v == s.Value));
        Assert.True(pod.Spec.Containers.Single().SecurityContext.ReadOnlyRootFilesystem);
        Assert.False(pod.Spec.AutomountServiceAccountToken);

        var off = await Chart.ManifestsAsync("networkpolicy-values.yaml", "--set", "tests.enabled=false");
        Assert.DoesNotContain(off, m => m.Kind == "Pod");
    }
}
