using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace AuthFailoverProxy.Tests.Container;

/// <summary>The published app as a real child process: its output captured, its readiness awaited, stopped with SIGTERM.</summary>
internal sealed class AppProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    // Set by the app's own start-up line (logged once it listens and reports ready) or by its exit.
    private readonly TaskCompletionSource _startedOrExited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Set by the start-up credential check's summary ("Credential check: …"), which follows readiness in the background.
    private readonly TaskCompletionSource _checked = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private AppProcess(Process process) => _process = process;

    public int ExitCode => _process.ExitCode;

    public string Logs
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Starts <paramref name="command"/> with only the environment given (plus what the dotnet host needs).</summary>
    public static AppProcess Start(IReadOnlyList<string> command, string workingDirectory, IEnumerable<KeyValuePair<string, string>> environment)
    {
        var start = new ProcessStartInfo(command[0])
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in command.Skip(1))
        {
            start.ArgumentList.Add(argument);
        }

        // Nothing from the test runner's own configuration leaks in.
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("AFP_", StringComparison.Ordinal) || k.StartsWith("ASPNETCORE_", StringComparison.Ordinal) || k.Contains("__", StringComparison.Ordinal)).ToList())
        {
            start.Environment.Remove(name);
        }

        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        var app = new AppProcess(new Process { StartInfo = start, EnableRaisingEvents = true });
        app._process.Exited += (_, _) => app._startedOrExited.TrySetResult();
        app._process.OutputDataReceived += (_, e) => app.Append(e.Data);
        app._process.ErrorDataReceived += (_, e) => app.Append(e.Data);
        Assert.True(app._process.Start());
        app._process.BeginOutputReadLine();
        app._process.BeginErrorReadLine();
        return app;
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async Task WaitUntilReadyAsync(HttpClient management, CancellationToken ct)
    {
        try
        {
            await _startedOrExited.Task.WaitAsync(TimeSpan.FromSeconds(60), ct);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"the app did not report that it serves within 60 s:\n{Logs}");
        }

        if (_process.HasExited)
        {
            Assert.Fail($"the app exited with code {_process.ExitCode} before it was ready:\n{Logs}");
        }

        // The start-up line is written once the host has started, which is when /readyz turns 200.
        using var ready = await management.GetAsync("/readyz", ct);
        Assert.True(ready.StatusCode == HttpStatusCode.OK, $"/readyz answered {(int)ready.StatusCode} after the app reported it serves:\n{Logs}");
    }

    /// <summary>Waits for the start-up credential check to report (it runs after the app is ready, in the background).</summary>
    public async Task WaitUntilKeysCheckedAsync(CancellationToken ct)
    {
        try
        {
            await _checked.Task.WaitAsync(TimeSpan.FromSeconds(30), ct);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"the app did not report its credential check within 30 s:\n{Logs}");
        }
    }

    /// <summary>Waits for the app to end by itself (a start that fails), 60 s at most, and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        await _process.WaitForExitAsync(timeout.Token);
        return _process.ExitCode;
    }

    /// <summary>Stops the app the way Kubernetes does, with SIGTERM, and waits for it to end.</summary>
    public async Task StopAsync(CancellationToken ct)
    {
        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync(ct);
        }

        using var exit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await _process.WaitForExitAsync(exit.Token);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync(CancellationToken.None);
        }

        _process.Dispose();
    }

    private void Append(string? line)
    {
        lock (_output)
        {
            _output.AppendLine(line);
        }

        // StartupReport's line (EventId 100), in text or JSON: "AuthFailoverProxy is serving agents on …".
        if (line is not null && line.Contains("is serving agents on", StringComparison.Ordinal))
        {
            _startedOrExited.TrySetResult();
        }

        if (line is not null && line.Contains("Credential check: ", StringComparison.Ordinal))
        {
            _checked.TrySetResult();
        }
    }
}
