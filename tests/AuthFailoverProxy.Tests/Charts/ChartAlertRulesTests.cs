using AuthFailoverProxy.Tests.Fakes;
using YamlDotNet.Serialization;

namespace AuthFailoverProxy.Tests.Charts;

/// <summary>
/// The PrometheusRule the chart renders, checked by Prometheus's own promtool: the rules load, and they fire (and stay
/// quiet) in the scenarios of alert-rules.test.yaml.
/// </summary>
public sealed class ChartAlertRulesTests
{
    private static readonly string TestFile = Repository.PathOf("tests", "AuthFailoverProxy.Tests", "Charts", "alert-rules.test.yaml");

    [Fact]
    public async Task PromtoolCheckRules_RenderedRule_IsValid()
    {
        using var dir = new ScratchDirectory();
        var rules = await WriteRulesAsync(dir.Path, keepAnnotations: true);

        var result = await Repository.RunAsync(Chart.Promtool, ["check", "rules", rules]);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("SUCCESS: 6 rules found", result.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PromtoolTestRules_IncidentScenarios_FireAsExpected()
    {
        using var dir = new ScratchDirectory();
        // promtool compares annotations too; the scenarios are about when and with which labels a rule fires.
        await WriteRulesAsync(dir.Path, keepAnnotations: false);
        var test = Path.Combine(dir.Path, "alert-rules.test.yaml");
        File.Copy(TestFile, test);

        var result = await Repository.RunAsync(Chart.Promtool, ["test", "rules", test], workingDirectory: dir.Path);

        Assert.True(result.ExitCode == 0, result.ToString());
    }

    [Fact]
    public async Task PromtoolTestRules_ThresholdChanged_Fails()
    {
        // The scenarios are sharp enough to notice a rule that no longer fires: the same run with a storm threshold
        // above the scenario's rate fails.
        using var dir = new ScratchDirectory();
        await WriteRulesAsync(dir.Path, keepAnnotations: false, "--set", "metrics.prometheusRule.failoverStormPerMinute=100");
        var test = Path.Combine(dir.Path, "alert-rules.test.yaml");
        File.Copy(TestFile, test);

        var result = await Repository.RunAsync(Chart.Promtool, ["test", "rules", test], workingDirectory: dir.Path);

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("AuthFailoverProxyFailoverStorm", result.Output + result.Error, StringComparison.Ordinal);
    }

    /// <summary>Writes the rendered PrometheusRule's groups as a Prometheus rule file, rules.yaml.</summary>
    private static async Task<string> WriteRulesAsync(string directory, bool keepAnnotations, params string[] extra)
    {
        var manifests = await Chart.ManifestsAsync("monitoring-values.yaml", ["--api-versions", Chart.MonitoringApi, .. extra]);
        var groups = (List<object>)manifests.Single(m => m.Kind == "PrometheusRule").Get("spec", "groups")!;
        if (!keepAnnotations)
        {
            foreach (var rule in groups.Cast<Dictionary<object, object>>().SelectMany(g => ((List<object>)g["rules"]).Cast<Dictionary<object, object>>()))
            {
                rule.Remove("annotations");
            }
        }

        var path = Path.Combine(directory, "rules.yaml");
        await File.WriteAllTextAsync(path, new SerializerBuilder().Build().Serialize(new Dictionary<string, object> { ["groups"] = groups }), TestContext.Current.CancellationToken);
        return path;
    }

    private sealed class ScratchDirectory : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("afp-rules-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
