using System.Text.Json;
using System.Text.RegularExpressions;
using k8s.Models;

namespace AuthFailoverProxy.Tests.Charts;

/// <summary>charts/auth-failover-proxy: the ServiceMonitor, PrometheusRule and Grafana dashboard, gated on the Prometheus Operator API and using the metrics the proxy really exports.</summary>
public sealed partial class ChartMonitoringTests
{
    /// <summary>
    /// Every metric the proxy exports (src/AuthFailoverProxy/Telemetry/ProxyMetrics.cs), as Prometheus names; the GenAI
    /// ones are checked against a real scrape by GenAiTelemetryTests.
    /// </summary>
    private static readonly HashSet<string> ProxyMetricNames =
    [
        "afp_requests_total", "afp_failovers_total", "afp_retries_total", "afp_upstream_duration_seconds",
        "afp_upstream_time_to_first_byte_seconds", "afp_key_state", "afp_pool_usable_keys", "afp_pool_safe_mode",
        "afp_circuit_state", "afp_store_connected", "afp_alerts_total", "afp_events_total", "afp_tokens_total",
        "gen_ai_client_token_usage", "gen_ai_client_operation_duration_seconds", "gen_ai_client_operation_time_to_first_chunk_seconds",
    ];

    [Fact]
    public async Task Monitoring_WithoutOperatorApi_RendersNoServiceMonitorOrRule()
    {
        var without = await Chart.ManifestsAsync("monitoring-values.yaml");
        var with = await Chart.ManifestsAsync("monitoring-values.yaml", "--api-versions", Chart.MonitoringApi);

        Assert.DoesNotContain(without, m => Chart.CustomKinds.Contains(m.Kind));
        Assert.Single(with, m => m.Kind == "PrometheusRule");
        var monitor = with.Single(m => m.Kind == "ServiceMonitor");
        Assert.Equal("management", monitor.Get("spec", "endpoints", 0, "port"));
        Assert.Equal("/metrics", monitor.Get("spec", "endpoints", 0, "path"));

        // With the API but switched off in values: nothing either.
        var off = await Chart.ManifestsAsync("default-values.yaml", "--api-versions", Chart.MonitoringApi);
        Assert.DoesNotContain(off, m => Chart.CustomKinds.Contains(m.Kind));
    }

    [Fact]
    public async Task PrometheusRule_CoversTheIncidentsWithRealMetricNames()
    {
        var rule = (await Chart.ManifestsAsync("monitoring-values.yaml", "--api-versions", Chart.MonitoringApi)).Single(m => m.Kind == "PrometheusRule");
        var rules = ((List<object>)rule.Get("spec", "groups", 0, "rules")!).Cast<Dictionary<object, object>>().ToList();

        Assert.Equal(
            ["AuthFailoverProxyErrorRatio", "AuthFailoverProxyFailoverStorm", "AuthFailoverProxyHeartbeatMissing", "AuthFailoverProxyKeyDead",
             "AuthFailoverProxyPoolExhausted", "AuthFailoverProxyRedisDown"],
            rules.Select(r => (string)r["alert"]).Order(StringComparer.Ordinal));
        foreach (var expr in rules.Select(r => (string)r["expr"]))
        {
            Assert.All(MetricNames(expr), name => Assert.True(ProxyMetricNames.Contains(name) || name == "up", $"unknown metric {name} in {expr}"));
            Assert.Contains($"job=\"{Chart.FullName}\", namespace=\"{Chart.Namespace}\"", expr, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Dashboard_IsASidecarConfigMapUsingRealMetricNames()
    {
        var manifests = await Chart.ManifestsAsync("default-values.yaml");
        var configMap = Chart.Typed<V1ConfigMap>(manifests).Single(c => c.Metadata.Name == Chart.FullName + "-dashboard");

        Assert.Equal("1", configMap.Metadata.Labels["grafana_dashboard"]);
        using var dashboard = JsonDocument.Parse(configMap.Data.Single().Value);
        var exprs = dashboard.RootElement.GetProperty("panels").EnumerateArray()
            .SelectMany(p => p.GetProperty("targets").EnumerateArray()).Select(t => t.GetProperty("expr").GetString()!).ToList();
        Assert.True(exprs.Count >= 10);
        var used = exprs.SelectMany(MetricNames).ToHashSet();
        Assert.Subset(ProxyMetricNames, used);
        Assert.Contains("afp_pool_usable_keys", used);
        Assert.Contains("afp_key_state", used);

        // What each key, model and client spends, and how long model calls and their first chunk take.
        foreach (var by in new[] { "(pool, key)", "(model, type)", "(client)" })
        {
            Assert.Contains(exprs, e => e.Contains("afp_tokens_total", StringComparison.Ordinal) && e.Contains("sum by " + by, StringComparison.Ordinal));
        }

        Assert.Contains(exprs, e => e.StartsWith("histogram_quantile(0.95, sum by (le, gen_ai_request_model) (rate(gen_ai_client_operation_duration_seconds_bucket", StringComparison.Ordinal));
        Assert.Contains(exprs, e => e.StartsWith("histogram_quantile(0.95, sum by (le, gen_ai_request_model) (rate(gen_ai_client_operation_time_to_first_chunk_seconds_bucket", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Dashboard_UidAndFileName_DifferPerRelease()
    {
        // Grafana keys dashboards by uid (at most 40 characters) and the sidecar writes every ConfigMap's entries into
        // one folder by name: two releases sharing either overwrite each other. Release names may have 53 characters.
        var longRelease = new string('r', 53);
        var first = await DashboardAsync(Chart.Release, Chart.Namespace);
        var again = await DashboardAsync(Chart.Release, Chart.Namespace);
        var sameNameElsewhere = await DashboardAsync(Chart.Release, "llm-staging");
        var longName = await DashboardAsync(longRelease, Chart.Namespace);

        var uids = new[] { first, sameNameElsewhere, longName }.Select(d => d.Uid).ToList();
        Assert.Equal(3, uids.Distinct(StringComparer.Ordinal).Count());
        Assert.All(uids, uid => Assert.Matches("^[A-Za-z0-9_-]{1,40}$", uid));
        Assert.Equal(first.Uid, again.Uid); // stable across upgrades: links and bookmarks keep working
        Assert.Equal(3, new[] { first, sameNameElsewhere, longName }.Select(d => d.FileName).Distinct(StringComparer.Ordinal).Count());
        Assert.Equal($"AuthFailoverProxy {Chart.Namespace}/{Chart.Release}", first.Title);
        // The dashboard opens on this release's namespace and job.
        Assert.Equal((Chart.Namespace, Chart.FullName), (first.Namespace, first.Job));

        static async Task<(string Uid, string Title, string FileName, string? Namespace, string? Job)> DashboardAsync(string release, string ns)
        {
            var result = await Chart.RunHelmAsync("template", release, Chart.Directory, "--namespace", ns,
                "-f", Path.Combine(Chart.Directory, "ci", "default-values.yaml"), "--show-only", "templates/dashboard.yaml");
            Assert.True(result.ExitCode == 0, result.ToString());
            var (fileName, json) = Chart.Typed<V1ConfigMap>(Manifest.Parse(result.Output)).Single().Data.Single();
            using var dashboard = JsonDocument.Parse(json);
            var variables = dashboard.RootElement.GetProperty("templating").GetProperty("list").EnumerateArray()
                .ToDictionary(v => v.GetProperty("name").GetString()!, v => v.TryGetProperty("current", out var c) && c.TryGetProperty("value", out var value) && value.ValueKind == JsonValueKind.Array ? value[0].GetString() : null);
            return (dashboard.RootElement.GetProperty("uid").GetString()!, dashboard.RootElement.GetProperty("title").GetString()!, fileName,
                variables["namespace"], variables["job"]);
        }
    }

    [Fact]
    public async Task ManagementToken_Inline_InTheSecret_ThePodAndTheServiceMonitor()
    {
        var manifests = await Chart.ManifestsAsync("exposed-values.yaml", "--api-versions", Chart.MonitoringApi);

        var secret = Chart.Typed<V1Secret>(manifests).Single();
        Assert.Equal("ci-management-token-0123456789abcdef", secret.StringData["management-token"]);
        var env = Chart.Typed<V1Deployment>(manifests).Single().Spec.Template.Spec.Containers.Single().Env.Single(e => e.Name == "AFP_MANAGEMENT_TOKEN");
        Assert.Null(env.Value);
        Assert.Equal((Chart.FullName, "management-token"), (env.ValueFrom.SecretKeyRef.Name, env.ValueFrom.SecretKeyRef.Key));
        Assert.NotEqual(true, env.ValueFrom.SecretKeyRef.Optional);
        var endpoint = manifests.Single(m => m.Kind == "ServiceMonitor");
        Assert.Equal("Bearer", endpoint.Get("spec", "endpoints", 0, "authorization", "type"));
        Assert.Equal(Chart.FullName, endpoint.Get("spec", "endpoints", 0, "authorization", "credentials", "name"));
        Assert.Equal("management-token", endpoint.Get("spec", "endpoints", 0, "authorization", "credentials", "key"));
        Assert.DoesNotContain("ci-management-token", endpoint.Yaml, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ManagementToken_FromAnExistingSecret_ReferencedByThePodAndTheServiceMonitor()
    {
        var manifests = await Chart.ManifestsAsync("existing-secret-values.yaml", "--api-versions", Chart.MonitoringApi,
            "--set", "management.existingSecret=ops-tokens", "--set", "management.existingSecretKey=metrics-token", "--set", "metrics.serviceMonitor.enabled=true");

        var env = Chart.Typed<V1Deployment>(manifests).Single().Spec.Template.Spec.Containers.Single().Env.Single(e => e.Name == "AFP_MANAGEMENT_TOKEN");
        Assert.Equal(("ops-tokens", "metrics-token"), (env.ValueFrom.SecretKeyRef.Name, env.ValueFrom.SecretKeyRef.Key));
        var monitor = manifests.Single(m => m.Kind == "ServiceMonitor");
        Assert.Equal("ops-tokens", monitor.Get("spec", "endpoints", 0, "authorization", "credentials", "name"));
        Assert.Equal("metrics-token", monitor.Get("spec", "endpoints", 0, "authorization", "credentials", "key"));
    }

    [Fact]
    public async Task ManagementToken_NotSet_NoEnvAndAnUnauthenticatedScrape()
    {
        var manifests = await Chart.ManifestsAsync("monitoring-values.yaml", "--api-versions", Chart.MonitoringApi);

        Assert.DoesNotContain(Chart.Typed<V1Deployment>(manifests).Single().Spec.Template.Spec.Containers.Single().Env, e => e.Name == "AFP_MANAGEMENT_TOKEN");
        Assert.Null(manifests.Single(m => m.Kind == "ServiceMonitor").Get("spec", "endpoints", 0, "authorization"));
        Assert.DoesNotContain("management-token", Chart.Typed<V1Secret>(manifests).Single().StringData.Keys);
    }

    [Fact]
    public async Task ManagementToken_InlineWithAnExistingSecret_FailsNamingTheValues()
    {
        // The chart's Secret is not rendered then: the token would go nowhere and the proxy would start without it.
        var result = await Chart.TemplateAsync("existing-secret-values.yaml", "--set", "management.token=ci-management-token-0123456789abcdef");

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("management.token is kept in the chart's Secret, which secrets.existingSecret replaces", result.Output + result.Error, StringComparison.Ordinal);
    }

    private static IEnumerable<string> MetricNames(string expr)
        => MetricName().Matches(expr).Select(m => Regex.Replace(m.Value, "_(bucket|sum|count)$", ""));

    // A metric is followed by its selector or range (every expression here selects by job): a label such as
    // gen_ai_request_model in "by (le, gen_ai_request_model)" is not one.
    [GeneratedRegex(@"\b(afp|gen_ai)_[a-z_]+\b(?=\s*[{\[])|\bup\b(?=\s*[{\[)])")]
    private static partial Regex MetricName();
}
