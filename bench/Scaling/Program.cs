using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Scaling;

// How AuthFailoverProxy's cost grows with the work, measured on a real proxy process from outside:
//   1. idle SSE streams held open at once (1 → 1,000): resident memory per stream;
//   2. request bodies (1 KB → 32 MB): time through the proxy next to going direct, and the proxy's peak memory (the
//      replay buffer keeps up to 1 MiB in memory and spills to a temporary file above);
//   3. pools of 2 → 1,000 keys, all usable or all but the last dead: CPU per request (key selection cost).
// Prints Markdown on stdout. Every run is bounded in count and time; every server binds 127.0.0.1.
//   dotnet bench/Scaling/bin/Release/net10.0/Scaling.dll --proxy-dll <AuthFailoverProxy.dll> [--quick]
// With --long-streams it runs instead the long-stream comparison of LongStreams.cs (bench/scaling.sh --long-streams):
//   … Scaling.dll --long-streams --proxy-dll <dll> --bare-dll <BareYarp.dll> [--nginx <nginx> --nginx-template <file>] [--raw <dir>] [--code <text>] [--targets afp,bare,nginx] [--quick]

// A signal ends the process without running the disposals: the proxies it started go with it (what was running may
// then fail on a proxy that is gone before the process exits; the stack trace that follows is that, nothing more).
using var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
using var onInterrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
if (args.Contains("--long-streams"))
{
    return await LongStreams.RunAsync(args);
}

var quick = args.Contains("--quick");
var dllIndex = Array.IndexOf(args, "--proxy-dll");
var dll = dllIndex >= 0 && dllIndex + 1 < args.Length ? args[dllIndex + 1]
    : throw new ArgumentException("pass --proxy-dll <path of a Release AuthFailoverProxy.dll>");
var logDirectory = Directory.CreateTempSubdirectory("afp-scaling-").FullName;

await using var upstream = await ScalingUpstream.StartAsync();
using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, MaxConnectionsPerServer = int.MaxValue, ConnectTimeout = TimeSpan.FromSeconds(5) })
{
    Timeout = TimeSpan.FromSeconds(60),
};

var report = new StringBuilder();
report.AppendLine(CultureInfo.InvariantCulture, $"# AuthFailoverProxy: how cost grows with the work ({(quick ? "quick" : "full")} run, {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC)");
report.AppendLine();

int[] streamCounts = quick ? [1, 10, 100] : [1, 10, 100, 1000];
int[] bodySizes = [1_000, 64_000, 1_000_000, 4_000_000, 16_000_000, 32_000_000];
int[] poolSizes = quick ? [2, 100] : [2, 10, 100, 1000];
var bodyReps = quick ? 3 : 7;
var poolRequests = quick ? 500 : 5000;

var primary = new List<(string, string)> { ("primary", "sk-ant-api03-scalingPrimary000000000000000000001"), ("backup", "sk-ant-api03-scalingBackup0000000000000000000002") };

// 1. Idle SSE streams.
report.AppendLine("## Idle SSE streams held open at once");
report.AppendLine();
report.AppendLine("Each stream got its first event through the proxy and then stays open with nothing to say. RSS of the proxy process (`VmRSS`), 1 s after the last stream opened, minus RSS before opening them. The GC moves RSS by a few MiB on its own: read the per-stream figure of the largest row; the small rows are noise.");
report.AppendLine();
report.AppendLine("| Streams | Open all (s) | RSS before (MiB) | RSS with streams (MiB) | Per stream (KiB) |");
report.AppendLine("|---:|---:|---:|---:|---:|");
using (var proxy = await ProxyProcess.StartAsync(dll, upstream.BaseAddress, primary, Path.Combine(logDirectory, "sse.log")))
{
    await Load.WarmAsync(client, proxy, 200);
    foreach (var count in streamCounts)
    {
        await Task.Delay(TimeSpan.FromSeconds(2));
        var before = proxy.Rss;
        var clock = Stopwatch.StartNew();
        var streams = await Load.OpenStreamsAsync(client, proxy, count);
        var opened = clock.Elapsed;
        await Task.Delay(TimeSpan.FromSeconds(1));
        var with = proxy.Rss;
        upstream.ReleaseStreams();
        await Load.CloseStreamsAsync(streams);
        report.AppendLine(CultureInfo.InvariantCulture, $"| {count} | {opened.TotalSeconds:0.00} | {Mib(before)} | {Mib(with)} | {(with - before) / 1024.0 / count:0.0} |");
        Console.Error.WriteLine($"[scaling] {count} streams: +{Mib(with - before)} MiB");
    }
}

// 2. Request bodies.
report.AppendLine();
report.AppendLine("## Request body size");
report.AppendLine();
report.AppendLine(CultureInfo.InvariantCulture, $"`POST /v1/messages` with a body of the given size, one at a time, {bodyReps} measured after one warm-up; median time through the proxy and direct to the upstream; the proxy's RSS and peak RSS (`VmHWM`, never goes down) after the size's runs. Sizes in ascending order on one proxy process.");
report.AppendLine();
report.AppendLine("| Body | Direct median (ms) | Through the proxy median (ms) | Added (ms) | Proxy RSS after (MiB) | Proxy peak RSS so far (MiB) |");
report.AppendLine("|---:|---:|---:|---:|---:|---:|");
using (var proxy = await ProxyProcess.StartAsync(dll, upstream.BaseAddress, primary, Path.Combine(logDirectory, "bodies.log")))
{
    await Load.WarmAsync(client, proxy, 200);
    foreach (var size in bodySizes)
    {
        var body = Load.Body(size);
        var direct = await Load.TimeAsync(client, upstream.BaseAddress, body, bodyReps, withToken: false);
        var through = await Load.TimeAsync(client, proxy.Agent, body, bodyReps, withToken: true);
        report.AppendLine(CultureInfo.InvariantCulture, $"| {Size(size)} | {direct:0.00} | {through:0.00} | {through - direct:0.00} | {Mib(proxy.Rss)} | {Mib(proxy.PeakRss)} |");
        Console.Error.WriteLine($"[scaling] body {Size(size)}: {through:0.00} ms through, {direct:0.00} ms direct");
    }
}

// 3. Pool size.
report.AppendLine();
report.AppendLine("## Pool size (key selection)");
report.AppendLine();
report.AppendLine(CultureInfo.InvariantCulture, $"A fresh proxy per row, with N keys: all usable, or all but the last rejected (401 at the start-up check, so the pool holds N - 1 dead keys before the one that serves). {poolRequests} requests at 8 concurrent after 200 warm-up; CPU is the proxy process's user + system time per request.");
report.AppendLine();
report.AppendLine("| Keys | Usable | Requests/s | p50 (ms) | Proxy CPU µs/request |");
report.AppendLine("|---:|---:|---:|---:|---:|");
foreach (var size in poolSizes)
{
    foreach (var allUsable in new[] { true, false })
    {
        var keys = Enumerable.Range(0, size)
            .Select(i => ($"k{i}", $"sk-ant-api03-scaling{(allUsable || i == size - 1 ? "LIVE" : "DEAD")}{i:D28}"))
            .ToList();
        using var proxy = await ProxyProcess.StartAsync(dll, upstream.BaseAddress, keys, Path.Combine(logDirectory, $"pool-{size}-{allUsable}.log"));
        await Task.Delay(TimeSpan.FromSeconds(allUsable ? 1 : 3)); // the start-up check of every key
        await Load.WarmAsync(client, proxy, 200);
        var cpuBefore = proxy.CpuTime;
        var (rate, p50) = await Load.ClosedLoopAsync(client, proxy, poolRequests, concurrency: 8);
        var cpu = (proxy.CpuTime - cpuBefore).TotalMicroseconds / poolRequests;
        report.AppendLine(CultureInfo.InvariantCulture, $"| {size} | {(allUsable ? size : 1)} | {rate:0} | {p50:0.00} | {cpu:0} |");
        Console.Error.WriteLine($"[scaling] {size} keys ({(allUsable ? "all usable" : "1 usable")}): {cpu:0} µs/request");
    }
}

report.AppendLine();
report.AppendLine("## Machine");
report.AppendLine();
report.AppendLine(CultureInfo.InvariantCulture, $"- CPU: {CpuModel()}, {Environment.ProcessorCount} cores; memory {MemTotal()}");
report.AppendLine(CultureInfo.InvariantCulture, $"- OS: {RuntimeInformation.OSDescription}; .NET {Environment.Version}");
report.AppendLine("- The client (this program), the upstream (in this program) and the proxy share these cores; the proxy is a Release build run with `dotnet AuthFailoverProxy.dll` (Server GC), logging at Warning.");
Console.Write(report.ToString());
Directory.Delete(logDirectory, recursive: true);
return 0;

static void Stop(PosixSignalContext context)
{
    Console.Error.WriteLine($"[scaling] {context.Signal}: stopping the proxies started and ending");
    ProxyProcess.KillAll();
}

static string Mib(long bytes) => (bytes / 1024.0 / 1024.0).ToString("0.0", CultureInfo.InvariantCulture);

static string Size(int bytes) => bytes >= 1_000_000 ? $"{bytes / 1_000_000} MB" : $"{bytes / 1_000} KB";

static string CpuModel() => File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown";

static string MemTotal() => File.ReadLines("/proc/meminfo").First().Split(':', 2)[1].Trim();
