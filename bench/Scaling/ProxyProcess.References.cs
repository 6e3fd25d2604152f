using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;

namespace Scaling;

/// <summary>
/// The reference proxies of the long-stream runs, started and measured like AuthFailoverProxy: bare YARP
/// (<c>bench/BareYarp</c>, its Release build, the arguments <c>bench/run.sh</c> gives it) and, when nginx is installed,
/// nginx as a plain reverse proxy (<c>bench/nginx-proxy.conf.template</c>, one worker: the worker is the process measured).
/// </summary>
internal sealed partial class ProxyProcess
{
    /// <summary>Starts <c>dotnet BareYarp.dll</c> on 127.0.0.1 in front of <paramref name="upstream"/>, sending <paramref name="apiKey"/>.</summary>
    public static async Task<ProxyProcess> StartBareYarpAsync(string dll, Uri upstream, string apiKey, string logPath)
    {
        var port = FreePort();
        var command = $"exec dotnet '{dll}' --urls 'http://127.0.0.1:{port}' --upstream '{upstream}' --api-key '{apiKey}' >'{logPath}' 2>&1";
        var process = StartShell(command);
        var proxy = new ProxyProcess(process, new Uri($"http://127.0.0.1:{port}/"), management: null);
        await proxy.WaitThroughAsync(logPath);
        return proxy;
    }

    /// <summary>
    /// Starts nginx (<paramref name="nginx"/>, in the foreground) with <paramref name="template"/> rendered into
    /// <paramref name="directory"/>: 127.0.0.1 on a free port, in front of <paramref name="upstream"/>, sending
    /// <paramref name="apiKey"/>. The measured process is its one worker.
    /// </summary>
    public static async Task<ProxyProcess> StartNginxAsync(string nginx, string template, string directory, Uri upstream, string apiKey)
    {
        var port = FreePort();
        Directory.CreateDirectory(directory);
        // Started as root, nginx's worker runs as an unprivileged user: it must reach its temporary directories.
        for (var path = directory; OperatingSystem.IsLinux() && path.StartsWith(Path.GetTempPath(), StringComparison.Ordinal); path = Path.GetDirectoryName(path)!)
        {
            File.SetUnixFileMode(path, File.GetUnixFileMode(path) | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        }

        var config = (await File.ReadAllTextAsync(template))
            .Replace("@TMP@", directory, StringComparison.Ordinal)
            .Replace("@PORT@", port.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)
            .Replace("@UPSTREAM_PORT@", upstream.Port.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)
            .Replace("@PRIMARY_SECRET@", apiKey, StringComparison.Ordinal);
        var configPath = Path.Combine(directory, "nginx.conf");
        await File.WriteAllTextAsync(configPath, config);
        var logPath = Path.Combine(directory, "nginx.out");
        var command = $"exec '{nginx}' -p '{directory}' -e '{directory}/error.log' -c '{configPath}' >'{logPath}' 2>&1";
        var process = StartShell(command);
        var proxy = new ProxyProcess(process, new Uri($"http://127.0.0.1:{port}/"), management: null);
        await proxy.WaitThroughAsync(Path.Combine(directory, "error.log"));
        proxy.MeasuredPid = FindChild(process.Id) ?? throw new InvalidOperationException("nginx has no worker process");
        return proxy;
    }

    private static Process StartShell(string command)
    {
        var start = new ProcessStartInfo("/bin/sh") { ArgumentList = { "-c", command }, UseShellExecute = false };
        foreach (var inherited in start.Environment.Keys.Where(k => k.StartsWith("AFP_", StringComparison.Ordinal) || k.StartsWith("ASPNETCORE_", StringComparison.Ordinal)).ToList())
        {
            start.Environment.Remove(inherited);
        }

        return Process.Start(start) ?? throw new InvalidOperationException($"could not run {command}");
    }

    /// <summary>Waits (at most 60 s) until a request through the proxy reaches the upstream and comes back 200.</summary>
    private async Task WaitThroughAsync(string logPath)
    {
        using var probe = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(2) };
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (_process.HasExited)
            {
                Dispose();
                throw new InvalidOperationException($"the proxy exited during start; see {logPath}");
            }

            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(Agent, "v1/models"));
                request.Headers.Add("x-api-key", ClientToken);
                request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
                using var response = await probe.SendAsync(request);
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                // Not listening yet.
            }

            await Task.Delay(100);
        }

        Dispose();
        throw new InvalidOperationException($"the proxy did not answer through to the upstream within 60 s; see {logPath}");
    }

    /// <summary>Returns a child of <paramref name="parent"/> (nginx's worker), waiting for it at most 5 s.</summary>
    private static int? FindChild(int parent)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(5))
        {
            foreach (var entry in Directory.EnumerateDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(entry), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
                {
                    continue;
                }

                try
                {
                    var stat = File.ReadAllText(Path.Combine(entry, "stat"));
                    var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                    if (int.Parse(fields[1], CultureInfo.InvariantCulture) == parent)
                    {
                        return pid;
                    }
                }
                catch (IOException)
                {
                    // Gone while looking.
                }
            }

            Thread.Sleep(50);
        }

        return null;
    }
}
