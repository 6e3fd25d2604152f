using System.Diagnostics;
using System.Text;

namespace AuthFailoverProxy.Tests.Fakes;

/// <summary>The repository the tests run from, and running its tools (dotnet, helm, promtool) as child processes.</summary>
internal static class Repository
{
    private static readonly Lazy<string> LazyRoot = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "AuthFailoverProxy.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No AuthFailoverProxy.sln above {AppContext.BaseDirectory}.");
    });

    /// <summary>Gets the repository's root directory (the one holding AuthFailoverProxy.sln).</summary>
    public static string Root => LazyRoot.Value;

    /// <summary>Gets the build configuration the tests were built with, so a publish can reuse that build.</summary>
    public static string Configuration =>
#if DEBUG
        "Debug";
#else
        "Release";
#endif

    public static string PathOf(params string[] parts) => Path.Combine([Root, .. parts]);

    /// <summary>
    /// Runs a tool to its end and returns its exit code and output; never throws for a non-zero exit. With
    /// <paramref name="environment"/>, the tool gets it instead of the test runner's own AFP_, ASPNETCORE_ and
    /// <c>Section__Key</c> variables; <paramref name="input"/> is written to its standard input.
    /// </summary>
    public static async Task<ToolResult> RunAsync(
        string fileName,
        IEnumerable<string> arguments,
        string? workingDirectory = null,
        TimeSpan? timeout = null,
        IEnumerable<KeyValuePair<string, string>>? environment = null,
        string? input = null)
    {
        var start = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory ?? Root,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        // A build server left behind would outlive the test run.
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        if (environment is not null)
        {
            foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("AFP_", StringComparison.Ordinal) || k.StartsWith("ASPNETCORE_", StringComparison.Ordinal) || k.Contains("__", StringComparison.Ordinal)).ToList())
            {
                start.Environment.Remove(name);
            }

            foreach (var (name, value) in environment)
            {
                start.Environment[name] = value;
            }
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{fileName} did not start.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (input is not null)
        {
            await process.StandardInput.WriteAsync(input);
        }

        process.StandardInput.Close();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(3));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{fileName} {string.Join(' ', start.ArgumentList)} took longer than {timeout ?? TimeSpan.FromMinutes(3)}.");
        }

        return new ToolResult(process.ExitCode, await stdout, await stderr);
    }
}

/// <summary>What a tool run printed and how it ended.</summary>
internal sealed record ToolResult(int ExitCode, string Output, string Error)
{
    /// <summary>Gets everything it wrote, for looking for what must never be there.</summary>
    public string Everything => Output + Error;

    /// <summary>Parses standard output as JSON (a test fails on anything else).</summary>
    public System.Text.Json.JsonElement Json()
    {
        using var document = System.Text.Json.JsonDocument.Parse(Output);
        return document.RootElement.Clone();
    }

    public override string ToString()
    {
        var text = new StringBuilder().Append("exit code ").Append(ExitCode);
        if (Output.Length > 0)
        {
            text.AppendLine().Append(Output);
        }

        if (Error.Length > 0)
        {
            text.AppendLine().Append(Error);
        }

        return text.ToString();
    }
}
