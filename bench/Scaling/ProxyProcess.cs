using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Scaling;

/// <summary>
/// One AuthFailoverProxy process (<c>dotnet AuthFailoverProxy.dll</c>, configured by <c>AFP_*</c> variables only) on
/// 127.0.0.1, or one of the reference proxies (see ProxyProcess.References.cs), measured from outside through /proc:
/// resident memory, peak resident memory, CPU time. Killed on dispose, with its children.
/// </summary>
internal sealed partial class ProxyProcess : IDisposable
{
    public const string ClientToken = "afp-scaling-client-token-000000000001";
    private static readonly long TicksPerSecond = 100; // USER_HZ on Linux

    // Every process started and not disposed yet, for KillAll.
    private static readonly ConcurrentDictionary<Process, bool> Live = new();

    private readonly Process _process;

    private ProxyProcess(Process process, Uri agent, Uri? management)
    {
        _process = process;
        Live[process] = true;
        Agent = agent;
        Management = management;
        MeasuredPid = process.Id;
    }

    public Uri Agent { get; }

    /// <summary>Gets AuthFailoverProxy's management address; null for the reference proxies.</summary>
    public Uri? Management { get; }

    /// <summary>Gets the process whose /proc entries are read: the proxy itself, or nginx's one worker.</summary>
    public int MeasuredPid { get; private set; }

    /// <summary>Starts AuthFailoverProxy; <paramref name="environment"/> adds variables that are not the proxy's settings (TMPDIR).</summary>
    public static async Task<ProxyProcess> StartAsync(string dll, Uri upstream, IReadOnlyList<(string Name, string Secret)> keys, string logPath, IReadOnlyDictionary<string, string>? environment = null)
    {
        var (agentPort, managementPort) = (FreePort(), FreePort());
        var command = $"exec dotnet '{dll}' >'{logPath}' 2>&1";
        var start = new ProcessStartInfo("/bin/sh") { ArgumentList = { "-c", command }, UseShellExecute = false };
        foreach (var inherited in start.Environment.Keys.Where(k => k.StartsWith("AFP_", StringComparison.Ordinal) || k.StartsWith("ASPNETCORE_", StringComparison.Ordinal)).ToList())
        {
            start.Environment.Remove(inherited);
        }

        start.Environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{agentPort}";
        start.Environment["AFP_MANAGEMENT_URLS"] = $"http://127.0.0.1:{managementPort}";
        start.Environment["AFP_PROVIDER"] = "anthropic";
        start.Environment["AFP_UPSTREAM"] = upstream.ToString();
        start.Environment["AFP_KEYS"] = string.Join(',', keys.Select(k => $"{k.Name}={k.Secret}"));
        start.Environment["AFP_CLIENT_TOKENS"] = ClientToken;
        start.Environment["Serilog__MinimumLevel__Default"] = "Warning";
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("the proxy did not start");
        var proxy = new ProxyProcess(process, new Uri($"http://127.0.0.1:{agentPort}/"), new Uri($"http://127.0.0.1:{managementPort}/"));
        using var probe = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"the proxy exited during start; see {logPath}");
            }

            try
            {
                using var response = await probe.GetAsync(new Uri(proxy.Management!, "status"));
                if (response.IsSuccessStatusCode)
                {
                    return proxy;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                // Not listening yet.
            }

            await Task.Delay(100);
        }

        proxy.Dispose();
        throw new InvalidOperationException($"the proxy did not answer /status within 60 s; see {logPath}");
    }

    /// <summary>Gets the resident set size, in bytes.</summary>
    public long Rss => StatusField("VmRSS:");

    /// <summary>Gets the part of the resident set that maps files (the runtime's and the assemblies' images), in bytes.</summary>
    public long RssFile => StatusField("RssFile:");

    /// <summary>Gets the peak resident set size since start, in bytes.</summary>
    public long PeakRss => StatusField("VmHWM:");

    /// <summary>Gets the user + system CPU time used since start.</summary>
    public TimeSpan CpuTime
    {
        get
        {
            var stat = File.ReadAllText($"/proc/{MeasuredPid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
            return TimeSpan.FromSeconds((double)ticks / TicksPerSecond);
        }
    }

    /// <summary>Kills every proxy process still running (on SIGTERM or SIGINT, when the disposals will not run).</summary>
    public static void KillAll()
    {
        foreach (var process in Live.Keys)
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception)
            {
                // Already gone.
            }
        }
    }

    public void Dispose()
    {
        Live.TryRemove(_process, out _);
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(TimeSpan.FromSeconds(10));
        }

        _process.Dispose();
    }

    private long StatusField(string name)
    {
        var line = File.ReadLines($"/proc/{MeasuredPid}/status").First(l => l.StartsWith(name, StringComparison.Ordinal));
        return long.Parse(line[name.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
