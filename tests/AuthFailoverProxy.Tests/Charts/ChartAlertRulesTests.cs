using System.Text.RegularExpressions;
using AuthFailoverProxy.Tests.Fakes;
using YamlDotNet.Serialization;

namespace AuthFailoverProxy.Tests.Charts;

/// <summary>
/// The PrometheusRule the chart renders, and the rule file the README gives for Prometheus without the Operator,
/// checked by Prometheus's own promtool: the rules load, and they fire (and stay quiet) in the scenarios of
/// alert-rules.test.yaml and readme-alert-rules.test.yaml, the outage (one key, 403 for nine hours) among them.
/// </summary>
public sealed partial class ChartAlertRulesTests
{
    private static readonly string TestFile = Repository.PathOf("tests", "AuthFailoverProxy.Tests", "Charts", "alert-rules.test.yaml");
    private static readonly string ReadmeTestFile = Repository.PathOf("tests", "AuthFailoverProxy.Tests", "Charts", "readme-alert-rules.test.yaml");

    /// <summary>The rule the README used to give: increase() of a counter that is born at 1 when the key dies.</summary>
    private const string CounterRule = """
        groups:
          - name: counter
            rules:
              - alert: DeadKeyByFailoverCounter
                expr: increase(afp_failovers_total{reason="dead"}[10m]) > 0
        """;

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

    [Fact]
    public async Task PromtoolTestRules_ReadmeRules_FireForTheOutage()
    {
        using var dir = new ScratchDirectory();
        await File.WriteAllTextAsync(Path.Combine(dir.Path, "readme-rules.yaml"), ReadmeRuleFile(), TestContext.Current.CancellationToken);
        await File.WriteAllTextAsync(Path.Combine(dir.Path, "counter-rule.yaml"), CounterRule, TestContext.Current.CancellationToken);
        var test = Path.Combine(dir.Path, "readme-alert-rules.test.yaml");
        File.Copy(ReadmeTestFile, test);

        var result = await Repository.RunAsync(Chart.Promtool, ["test", "rules", test], workingDirectory: dir.Path);

        Assert.True(result.ExitCode == 0, result.ToString());
    }

    /// <summary>
    /// The one fenced yaml block of Prometheus rules (starting with <c>groups:</c>) in README.md or under docs/, where the
    /// README's depth may move.
    /// </summary>
    private static string ReadmeRuleFile()
    {
        var docs = Directory.Exists(Repository.PathOf("docs"))
            ? Directory.EnumerateFiles(Repository.PathOf("docs"), "*.md", SearchOption.AllDirectories)
            : [];
        var blocks = docs.Prepend(Repository.PathOf("README.md"))
            .SelectMany(file => YamlBlock().Matches(File.ReadAllText(file)).Select(m => m.Groups[1].Value))
            .Where(block => block.StartsWith("groups:", StringComparison.Ordinal) && block.Contains("afp_", StringComparison.Ordinal))
            .ToList();
        Assert.True(blocks.Count == 1, $"expected one Prometheus rule file (a ```yaml block starting with groups:) in README.md or docs/, found {blocks.Count}");
        return blocks[0];
    }

    [GeneratedRegex(@"^```yaml\n(.*?)^```", RegexOptions.Multiline | RegexOptions.Singleline)]
    private static partial Regex YamlBlock();

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
