using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using AuthFailoverProxy.Tests.Fakes;

namespace AuthFailoverProxy.Tests.RealClients;

/// <summary>
/// A real client from npm (the Anthropic SDK, the OpenAI SDK, Claude Code) run as a child process against the proxy,
/// configured only as an agent is, through its environment. The scripts in tests/clients print one JSON line per
/// observation, which the test reads as they come; the test can answer on stdin where it changes the world mid-run.
/// </summary>
internal sealed class RealClient : IAsyncDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(90);

    private readonly Process _process;
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();
    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private RealClient(Process process) => _process = process;

    /// <summary>Gets the directory the clients are installed in (by scripts/test.sh).</summary>
    public static string Directory => Repository.PathOf("tests", "clients");

    /// <summary>Gets everything the client printed, stdout and stderr, for failure messages.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public int ExitCode => _process.ExitCode;

    /// <summary>Runs <c>node tests/clients/{script} {scenario}</c>.</summary>
    public static RealClient Node(string script, string scenario, IReadOnlyDictionary<string, string> environment)
        => Start("node", [Path.Combine(Directory, script), scenario], environment);

    /// <summary>Runs the pinned Claude Code CLI, <c>claude -p "…"</c>, with a home directory of its own.</summary>
    public static RealClient ClaudeCode(string prompt, string home, IReadOnlyDictionary<string, string> environment)
        => Start(Path.Combine(Directory, "node_modules", ".bin", "claude"), ["-p", prompt], new Dictionary<string, string>(environment)
        {
            ["HOME"] = home,
            // Offline: no telemetry, error reports or update checks, nothing but the API.
            ["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1",
            ["DISABLE_AUTOUPDATER"] = "1",
        });

    /// <summary>Fails the test with what to run when the clients are not installed (scripts/test.sh installs them).</summary>
    public static void AssertInstalled()
    {
        foreach (var package in new[] { "@anthropic-ai/sdk", "openai", "@anthropic-ai/claude-code" })
        {
            Assert.True(File.Exists(Path.Combine(Directory, "node_modules", package, "package.json")),
                $"The real client {package} is not installed in tests/clients: run ./scripts/test.sh (it installs the pinned versions with npm).");
        }
    }

    /// <summary>Reads the next JSON line the client prints, within the bound.</summary>
    public async Task<JsonElement> NextAsync(CancellationToken cancellationToken)
    {
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bound.CancelAfter(Bound);
        while (true)
        {
            string line;
            try
            {
                line = await _lines.Reader.ReadAsync(bound.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ChannelClosedException)
            {
                Assert.Fail($"the client printed nothing more ({(ex is ChannelClosedException ? "it exited" : "timed out")}):\n{Output}");
                throw;
            }

            if (line.StartsWith('{'))
            {
                return JsonDocument.Parse(line).RootElement.Clone();
            }
        }
    }

    /// <summary>Answers the client's question on stdin: it goes on.</summary>
    public Task ContinueAsync() => _process.StandardInput.WriteLineAsync("go");

    /// <summary>Waits for the client to end and returns its whole output.</summary>
    public async Task<string> WaitForExitAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _exited.Task.WaitAsync(Bound, cancellationToken);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"the client did not end within {Bound.TotalSeconds} s:\n{Output}");
        }

        return Output;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

    private static RealClient Start(string fileName, IEnumerable<string> arguments, IReadOnlyDictionary<string, string> environment)
    {
        var start = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = Directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        // Only what the test sets reaches the client: no key, base URL or proxy setting of the machine's own.
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("ANTHROPIC_", StringComparison.Ordinal) || k.StartsWith("OPENAI_", StringComparison.Ordinal)
            || k.StartsWith("CLAUDE", StringComparison.Ordinal) || k.EndsWith("_proxy", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(name);
        }

        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        var client = new RealClient(new Process { StartInfo = start, EnableRaisingEvents = true });
        client._process.OutputDataReceived += (_, e) => client.Received(e.Data, toLines: true);
        client._process.ErrorDataReceived += (_, e) => client.Received(e.Data, toLines: false);
        client._process.Exited += (_, _) =>
        {
            // Output events can trail the exit; the channel closes once the process has flushed.
            client._process.WaitForExit();
            client._lines.Writer.TryComplete();
            client._exited.TrySetResult();
        };
        Assert.True(client._process.Start(), $"{fileName} did not start");
        client._process.BeginOutputReadLine();
        client._process.BeginErrorReadLine();
        return client;
    }

    private void Received(string? line, bool toLines)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }

        if (toLines)
        {
            _lines.Writer.TryWrite(line);
        }
    }
}
