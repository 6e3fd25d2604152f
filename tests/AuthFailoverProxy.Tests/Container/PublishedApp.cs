using System.Text.RegularExpressions;
using AuthFailoverProxy.Tests.Fakes;

namespace AuthFailoverProxy.Tests.Container;

/// <summary>The tests that run the published app share one publish per test run.</summary>
[CollectionDefinition(Name)]
public sealed class PublishedAppGroup : ICollectionFixture<PublishedApp>
{
    public const string Name = "published app";
}

/// <summary>
/// The app as docker/Dockerfile ships it: published once per test run (reusing the build the tests run from), with
/// the ENV, WORKDIR and ENTRYPOINT read from the Dockerfile itself, so the test and the image cannot drift apart.
/// </summary>
public sealed partial class PublishedApp : IAsyncLifetime
{
    private readonly string _root = Directory.CreateTempSubdirectory("afp-publish-").FullName;

    /// <summary>Gets the publish output of the service and of afp: what the image copies to its WORKDIR.</summary>
    public string PublishDirectory => Path.Combine(_root, "app");

    /// <summary>Gets the Dockerfile's ENV lines in order.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Environment { get; private set; } = [];

    /// <summary>Gets the Dockerfile's ENTRYPOINT (exec form).</summary>
    public IReadOnlyList<string> Entrypoint { get; private set; } = [];

    /// <summary>Gets the runtime stage's WORKDIR.</summary>
    public string WorkingDirectory { get; private set; } = "/";

    public IReadOnlyList<int> ExposedPorts { get; private set; } = [];

    /// <summary>Gets the build stage's <c>dotnet publish</c> commands, in order.</summary>
    public IReadOnlyList<string> PublishCommands { get; private set; } = [];

    public async ValueTask InitializeAsync()
    {
        ReadDockerfile(await File.ReadAllTextAsync(Repository.PathOf("docker", "Dockerfile")));
        var publish = await Repository.RunAsync("dotnet",
            ["publish", Repository.PathOf("src", "AuthFailoverProxy", "AuthFailoverProxy.csproj"), "-c", Repository.Configuration, "--no-build",
             "-o", PublishDirectory, "-p:UseAppHost=false", "-nologo", "-v:q"],
            timeout: TimeSpan.FromMinutes(3));
        if (publish.ExitCode != 0 || !File.Exists(Path.Combine(PublishDirectory, "AuthFailoverProxy.dll")))
        {
            throw new InvalidOperationException($"dotnet publish failed: {publish}");
        }

        // afp goes beside the service, as an apphost: the image has no shell to run anything else.
        var cli = await Repository.RunAsync("dotnet",
            ["publish", Repository.PathOf("src", "AuthFailoverProxy.Cli", "AuthFailoverProxy.Cli.csproj"), "-c", Repository.Configuration, "--no-build",
             "-o", PublishDirectory, "-nologo", "-v:q"],
            timeout: TimeSpan.FromMinutes(3));
        if (cli.ExitCode != 0 || !File.Exists(Path.Combine(PublishDirectory, "afp")))
        {
            throw new InvalidOperationException($"dotnet publish of afp failed: {cli}");
        }
    }

    public ValueTask DisposeAsync()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }

        return ValueTask.CompletedTask;
    }

    private void ReadDockerfile(string dockerfile)
    {
        PublishCommands = [.. PublishLine().Matches(dockerfile).Select(m => m.Value)];
        // Only the last stage (the runtime image) counts.
        var runtime = dockerfile[dockerfile.LastIndexOf("\nFROM ", StringComparison.Ordinal)..];
        Environment = [.. EnvLine().Matches(runtime).Select(m => new KeyValuePair<string, string>(m.Groups[1].Value, m.Groups[2].Value.Trim()))];
        WorkingDirectory = WorkdirLine().Match(runtime).Groups[1].Value.Trim();
        var entrypoint = EntrypointLine().Match(runtime).Groups[1].Value;
        Entrypoint = [.. QuotedWord().Matches(entrypoint).Select(m => m.Groups[1].Value)];
        ExposedPorts = [.. ExposeLine().Match(runtime).Groups[1].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse)];
        if (Entrypoint.Count == 0 || Environment.Count == 0 || WorkingDirectory.Length == 0)
        {
            throw new InvalidOperationException("docker/Dockerfile: no ENTRYPOINT [...], ENV or WORKDIR found in the runtime stage.");
        }
    }

    [GeneratedRegex(@"^ENV ([A-Za-z_][A-Za-z0-9_]*)=(.*)$", RegexOptions.Multiline)]
    private static partial Regex EnvLine();

    [GeneratedRegex(@"^WORKDIR (.+)$", RegexOptions.Multiline)]
    private static partial Regex WorkdirLine();

    [GeneratedRegex(@"^ENTRYPOINT \[(.*)\]\s*$", RegexOptions.Multiline)]
    private static partial Regex EntrypointLine();

    [GeneratedRegex("\"([^\"]*)\"")]
    private static partial Regex QuotedWord();

    [GeneratedRegex(@"^EXPOSE (.+)$", RegexOptions.Multiline)]
    private static partial Regex ExposeLine();

    [GeneratedRegex(@"^RUN dotnet publish .+$", RegexOptions.Multiline)]
    private static partial Regex PublishLine();
}
