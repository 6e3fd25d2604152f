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

    /// <summary>Runs a tool to its end and returns its exit code and output; never throws for a non-zero exit.</summary>
    public static async Task<ToolResult> RunAsync(string fileName, IEnumerable<string> arguments, string? workingDirectory = null, TimeSpan? timeout = null)
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
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{fileName} did not start.");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
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
