using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace AuthFailoverProxy.Demo.Drill;

/// <summary>
/// A real process the drill owns (a redis-server or a proxy replica): started with its output in a log file, killed
/// outright (SIGKILL, as a crash would), and never left running when the drill ends.
/// </summary>
internal sealed class DrillProcess : IDisposable
{
    private readonly Process _process;

    private DrillProcess(string name, Process process, string logPath)
    {
        Name = name;
        _process = process;
        LogPath = logPath;
    }

    public string Name { get; }

    public string LogPath { get; }

    public bool HasExited => _process.HasExited;

    /// <summary>Starts <paramref name="file"/> through <c>/bin/sh -c 'exec …'</c>, so the process id is the program's and its output goes to a file.</summary>
    public static DrillProcess Start(string name, string file, IEnumerable<string> arguments, string logPath, IReadOnlyDictionary<string, string> environment)
    {
        var command = "exec " + string.Join(' ', new[] { file }.Concat(arguments).Select(Quote)) + " >" + Quote(logPath) + " 2>&1";
        var start = new ProcessStartInfo("/bin/sh") { ArgumentList = { "-c", command }, UseShellExecute = false };

        // Nothing of the caller's own proxy configuration may leak into the replicas: they get exactly the drill's.
        foreach (var inherited in start.Environment.Keys.Where(IsProxySetting).ToList())
        {
            start.Environment.Remove(inherited);
        }

        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException($"{name} did not start.");
        return new DrillProcess(name, process, logPath);
    }

    /// <summary>Kills the process at once, without a graceful shutdown, and waits until it is gone.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await _process.WaitForExitAsync(timeout.Token);
    }

    /// <summary>The last lines of the log, to say why a process failed.</summary>
    public string Tail(int lines = 20)
    {
        try
        {
            return string.Join('\n', File.ReadLines(LogPath).TakeLast(lines));
        }
        catch (IOException)
        {
            return "(no log)";
        }
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(TimeSpan.FromSeconds(10));
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }

        _process.Dispose();
    }

    private static bool IsProxySetting(string name)
        => name.StartsWith("AFP_", StringComparison.OrdinalIgnoreCase)
        || name.StartsWith("ASPNETCORE_", StringComparison.OrdinalIgnoreCase)
        || name.Contains("__", StringComparison.Ordinal);

    private static string Quote(string value) => "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}

/// <summary>Ports, readiness and the few probes the drill makes on its processes.</summary>
internal static class DrillProbe
{
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Whether a redis-server answers PING on <paramref name="port"/>.</summary>
    public static async Task<bool> RedisAnswersAsync(int port)
    {
        try
        {
            using var client = new TcpClient();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            await client.ConnectAsync(IPAddress.Loopback, port, timeout.Token);
            var stream = client.GetStream();
            await stream.WriteAsync("PING\r\n"u8.ToArray(), timeout.Token);
            var buffer = new byte[16];
            var read = await stream.ReadAsync(buffer, timeout.Token);
            return read > 0 && buffer[0] == (byte)'+';
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Whether the replica's <c>/status</c> answers and shows its Redis store connected.</summary>
    public static async Task<bool> StoreConnectedAsync(HttpClient client, Uri management)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            using var response = await client.GetAsync(new Uri(management, "status"), timeout.Token);
            if (!response.IsSuccessStatusCode)
            {
                return false;
            }

            using var status = JsonDocument.Parse(await response.Content.ReadAsStringAsync(timeout.Token));
            return status.RootElement.TryGetProperty("store", out var store)
                && store.TryGetProperty("connected", out var connected)
                && connected.ValueKind == JsonValueKind.True;
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException or JsonException)
        {
            return false;
        }
    }

    /// <summary>Polls <paramref name="condition"/> every 50 ms until it holds or <paramref name="bound"/> passes.</summary>
    public static async Task<bool> WaitUntilAsync(Func<Task<bool>> condition, TimeSpan bound, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < bound)
        {
            if (await condition())
            {
                return true;
            }

            await Task.Delay(50, cancellationToken);
        }

        return await condition();
    }

    /// <summary>The dotnet host that runs the replicas: the one running this process when it is dotnet, else the one on PATH.</summary>
    public static string DotnetHost()
    {
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host))
        {
            return host;
        }

        if (Environment.ProcessPath is { } path && Path.GetFileNameWithoutExtension(path) == "dotnet")
        {
            return path;
        }

        return "dotnet";
    }
}
