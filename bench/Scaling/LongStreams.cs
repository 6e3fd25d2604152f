using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Scaling;

/// <summary>
/// Long SSE streams as agents make them, side by side in one run for AuthFailoverProxy, bare YARP and (when installed)
/// nginx: <c>POST /v1/messages</c> with a ~300 KB body, answered by a 20 s event stream, 1,000 of them started evenly over
/// 20 s. For each proxy, one fresh process at a time against the same in-process upstream: resident memory before and its
/// peak (<c>VmHWM</c>), the time to the first content event through it next to direct probes sent in the same run, and for
/// AuthFailoverProxy its request-body spill files while the streams are open. A second, smaller run with 2 MB bodies
/// (spilled to files) checks that no spill file outlives its answer's commitment. Prints Markdown on stdout.
/// </summary>
internal static class LongStreams
{
    private const string PrimarySecret = "sk-ant-api03-longStreamPrimary0000000000000000001";
    private const string BackupSecret = "sk-ant-api03-longStreamBackup00000000000000000002";
    private const int WarmUp = 200;
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(2);

    // Before each run the machine should be quiet (under 10 % busy over 1 s); the waits for it take 30 s at most in all.
    private static TimeSpan _quietBudget = TimeSpan.FromSeconds(30);
    private static readonly StreamShape Immediate = new(TimeSpan.Zero, 1, TimeSpan.Zero);

    // The first content event follows the opening in its own write and flush, with no pause: a timer here (Task.Delay
    // of 2 ms) took 1.2 to 4.6 ms, and by how much depended on when in the millisecond the request had arrived, which is
    // not the same through a proxy as direct (the streams start on whole milliseconds): it skewed the comparison by up
    // to 0.6 ms.
    private static readonly TimeSpan FirstContentAfter = TimeSpan.Zero;

    // user, nice, system, irq, softirq, steal: the fields of /proc/stat's cpu line that count as busy.
    private static readonly int[] BusyFields = [1, 2, 3, 6, 7, 8];

    private enum Target
    {
        Bare,
        Afp,
        Nginx,
    }

    public static async Task<int> RunAsync(string[] args)
    {
        var quick = args.Contains("--quick");
        var afpDll = Arg(args, "--proxy-dll") ?? throw new ArgumentException("pass --proxy-dll <path of a Release AuthFailoverProxy.dll>");
        var bareDll = Arg(args, "--bare-dll") ?? throw new ArgumentException("pass --bare-dll <path of a Release BareYarp.dll>");
        var nginx = Arg(args, "--nginx");
        var nginxTemplate = Arg(args, "--nginx-template");
        var withNginx = nginx is not null && nginxTemplate is not null && File.Exists(nginx) && File.Exists(nginxTemplate);
        var code = Arg(args, "--code") ?? "not given";
        var raw = Arg(args, "--raw") ?? Directory.CreateTempSubdirectory("afp-long-streams-raw-").FullName;
        Directory.CreateDirectory(raw);
        var work = Directory.CreateTempSubdirectory("afp-long-streams-").FullName;

        var main = quick
            ? new LongStreamPlan(100, TimeSpan.FromSeconds(5), 300_000, new StreamShape(FirstContentAfter, 5, TimeSpan.FromSeconds(1)), DirectEvery: 5)
            : new LongStreamPlan(1000, TimeSpan.FromSeconds(20), 300_000, new StreamShape(FirstContentAfter, 20, TimeSpan.FromSeconds(1)), DirectEvery: 5);
        var spill = quick
            ? new LongStreamPlan(20, TimeSpan.FromSeconds(2), 2_000_000, new StreamShape(FirstContentAfter, 3, TimeSpan.FromSeconds(1)), DirectEvery: 0)
            : new LongStreamPlan(100, TimeSpan.FromSeconds(5), 2_000_000, new StreamShape(FirstContentAfter, 10, TimeSpan.FromSeconds(1)), DirectEvery: 0);
        // Bare YARP and AuthFailoverProxy alternate (bare first in round 1, last in round 2); nginx once, for reference.
        (int Round, Target Target)[] order = quick
            ? [(1, Target.Bare), (1, Target.Afp), (1, Target.Nginx)]
            : [(1, Target.Bare), (1, Target.Afp), (1, Target.Nginx), (2, Target.Afp), (2, Target.Bare)];
        // --targets afp,bare (say) runs only those, in the same order: for a quicker look while working on one of them.
        var only = Arg(args, "--targets")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        order = [.. order.Where(o => (withNginx || o.Target != Target.Nginx) && (only is null || only.Contains(Slug(o.Target))))];

        var clock = Stopwatch.StartNew();
        var results = new List<RunResult>();
        try
        {
            await using var upstream = await LongStreamUpstream.StartAsync();
            var body = LongStreamLoad.Body(main.BodyBytes);
            foreach (var (round, target) in order)
            {
                results.Add(await MeasureAsync(round, target, main, body));
            }

            var spillResult = await MeasureAsync(0, Target.Afp, spill, LongStreamLoad.Body(spill.BodyBytes));
            Console.Write(Report(quick, code, main, spill, results, spillResult, withNginx, clock.Elapsed));
            return 0;

            async Task<RunResult> MeasureAsync(int round, Target target, LongStreamPlan plan, byte[] requestBody)
            {
                var name = $"{(round > 0 ? round.ToString(CultureInfo.InvariantCulture) : "spill")}-{Slug(target)}-{plan.BodyBytes / 1000}k";
                Console.Error.WriteLine($"[long-streams] {name}: starting {Label(target)}");
                string? spillDirectory = null;
                ProxyProcess proxy;
                switch (target)
                {
                    case Target.Afp:
                        // A temporary directory of its own (TMPDIR; RequestBody:TempDirectory stays at its default, the
                        // system's temporary directory): its spill files are counted there and nowhere else.
                        spillDirectory = Directory.CreateDirectory(Path.Combine(work, $"tmp-{name}")).FullName;
                        proxy = await ProxyProcess.StartAsync(afpDll, upstream.BaseAddress, [("primary", PrimarySecret), ("backup", BackupSecret)],
                            Path.Combine(raw, $"{name}.log"), new Dictionary<string, string> { ["TMPDIR"] = spillDirectory });
                        break;
                    case Target.Bare:
                        proxy = await ProxyProcess.StartBareYarpAsync(bareDll, upstream.BaseAddress, PrimarySecret, Path.Combine(raw, $"{name}.log"));
                        break;
                    default:
                        proxy = await ProxyProcess.StartNginxAsync(nginx!, nginxTemplate!, Path.Combine(work, $"nginx-{name}"), upstream.BaseAddress, PrimarySecret);
                        break;
                }

                using (proxy)
                {
                    try
                    {
                        return await RunOnceAsync(round, target, name, plan, requestBody, proxy, upstream, spillDirectory, raw);
                    }
                    finally
                    {
                        if (target == Target.Nginx && File.Exists(Path.Combine(work, $"nginx-{name}", "error.log")))
                        {
                            File.Copy(Path.Combine(work, $"nginx-{name}", "error.log"), Path.Combine(raw, $"{name}-error.log"), overwrite: true);
                        }
                    }
                }
            }
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private static async Task<RunResult> RunOnceAsync(int round, Target target, string name, LongStreamPlan plan, byte[] body, ProxyProcess proxy, LongStreamUpstream upstream, string? spillDirectory, string raw)
    {
        using var client = LongStreamLoad.Client();
        var rssAtStart = proxy.Rss;
        upstream.Shape = Immediate;
        await LongStreamLoad.WarmAsync(client, proxy.Agent, body, deltas: 1, count: WarmUp, concurrency: 5);
        await LongStreamLoad.WarmAsync(client, upstream.BaseAddress, body, deltas: 1, count: 50, concurrency: 5);
        await Task.Delay(Settle);
        var busyBefore = await WaitForQuietAsync();

        var rssBefore = proxy.Rss;
        var fileBefore = proxy.RssFile;
        var peakBefore = proxy.PeakRss;
        var cpuBefore = proxy.CpuTime;
        var ownCpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
        var machineBefore = MachineBusyTicks();
        upstream.Shape = plan.Shape;
        var progress = new LoadProgress();
        using var runBound = new CancellationTokenSource(plan.Ramp + plan.Shape.Length + LongStreamLoad.StreamBound);
        Console.Error.WriteLine($"[long-streams] {name}: {plan.Streams} streams of {plan.Shape.Length.TotalSeconds:0} s over {plan.Ramp.TotalSeconds:0} s, {plan.BodyBytes / 1000} KB bodies");
        var clock = Stopwatch.StartNew();
        using var sampler = LongStreamSampler.Start(proxy, spillDirectory, progress);
        List<StreamOutcome> outcomes;
        List<ProxySample> samples;
        try
        {
            outcomes = await LongStreamLoad.RunAsync(client, proxy, upstream.BaseAddress, body, plan, upstream, progress, runBound.Token);
        }
        finally
        {
            samples = await sampler.StopAsync();
        }

        var elapsed = clock.Elapsed;
        var peak = proxy.PeakRss;
        var cpu = proxy.CpuTime - cpuBefore;
        var ownCpu = Process.GetCurrentProcess().TotalProcessorTime - ownCpuBefore;
        var machine = TimeSpan.FromSeconds((MachineBusyTicks() - machineBefore) / 100.0);
        var otherLoad = Math.Max(0, (machine - cpu - ownCpu) / (elapsed * Environment.ProcessorCount) * 100);
        await Task.Delay(Settle);
        var rssAfter = proxy.Rss;
        var fileAfter = proxy.RssFile;
        // Which mappings hold the memory (the GC's reservation, native heaps, images): for a closer look by hand.
        await File.WriteAllTextAsync(Path.Combine(raw, $"{name}-smaps.txt"), await File.ReadAllTextAsync($"/proc/{proxy.MeasuredPid}/smaps"));
        var spillAfter = spillDirectory is null ? -1 : LongStreamSampler.CountSpillFiles(spillDirectory);

        await WriteRawAsync(raw, name, samples, outcomes);
        var result = new RunResult(round, target, plan, rssAtStart, rssBefore, fileBefore, peakBefore, peak, rssAfter, fileAfter, cpu, busyBefore, otherLoad, elapsed, outcomes, samples, spillAfter);
        Console.Error.WriteLine($"[long-streams] {name}: peak RSS {Mib(peak)} MiB (before {Mib(rssBefore)}), {result.Proxied.Count(o => o.Complete)}/{plan.Streams} complete, first content median {Ms(Percentile(result.ProxiedFirstContent, 0.5))} ms (direct {Ms(Percentile(result.DirectFirstContent, 0.5))} ms)");
        return result;
    }

    private static string Report(bool quick, string code, LongStreamPlan main, LongStreamPlan spill, List<RunResult> results, RunResult spillRun, bool withNginx, TimeSpan took)
    {
        var r = new StringBuilder();
        void Line(string text = "") => r.Append(text).Append('\n');
        Line($"# Long SSE streams: memory and time to first content, side by side ({(quick ? "quick" : "full")} run, {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC)");
        Line();
        Line($"Produced by `bench/scaling.sh --long-streams{(quick ? " --quick" : string.Empty)}` in {took.TotalMinutes:0.0} min. Code: {code}.");
        Line();
        Line($"The scenario: {main.Streams:N0} streams `POST /v1/messages` with a {main.BodyBytes / 1000} KB JSON body (`\"stream\": true`), started evenly over {main.Ramp.TotalSeconds:0} s ({main.Streams / main.Ramp.TotalSeconds:0} a second); the upstream reads each body, sends message_start, content_block_start and ping at once, the first content_block_delta {(main.Shape.FirstContentAfter > TimeSpan.Zero ? $"{main.Shape.FirstContentAfter.TotalMilliseconds:0} ms later" : "right after (its own write and flush)")}, one more every {main.Shape.Interval.TotalSeconds:0} s ({main.Shape.Deltas} in all), and closes the stream after {main.Shape.Length.TotalSeconds:0} s. One proxy process at a time, fresh for each run, the same upstream (in the benchmark's process) and the same load; {main.DirectProbes} direct probes per run (one every {main.DirectEvery} streams, half a slot later) measure going straight to the upstream in the same conditions.");
        Line();

        var afp = results.Where(x => x.Target == Target.Afp).ToList();
        Line("## Targets");
        Line();
        Line("| Target | Measured | Goal | Result |");
        Line("|---|---:|---|---|");
        foreach (var run in afp)
        {
            if (results.FirstOrDefault(x => x.Target == Target.Bare && x.Round == run.Round) is { } bare)
            {
                var ratio = (double)run.Peak / bare.Peak;
                Line($"| Peak RSS, AuthFailoverProxy / bare YARP, round {run.Round} | {ratio:0.00} ({Mib(run.Peak)} / {Mib(bare.Peak)} MiB) | ≤ 1.15 | {Pass(ratio <= 1.15)} |");
            }
        }

        var committedSamples = spillRun.Samples.Where(s => s.AllCommittedWhileOpen).ToList();
        var spillAlive = committedSamples.Count == 0 ? -1 : committedSamples.Max(s => Math.Max(s.SpillFiles, s.SpillFds));
        Line($"| Spill files alive once the answers are committed ({spill.Streams} streams, {spill.BodyBytes / 1_000_000} MB bodies) | {(spillAlive < 0 ? "not observed" : spillAlive.ToString(CultureInfo.InvariantCulture))} (largest count in the {committedSamples.Count} samples where every stream sent had its answer committed and some were open) | 0 | {(spillAlive < 0 ? "—" : Pass(spillAlive == 0))} |");
        foreach (var run in afp)
        {
            var added = Percentile(run.ProxiedFirstContent, 0.5) - Percentile(run.DirectFirstContent, 0.5);
            Line($"| Time to first content, AuthFailoverProxy − direct (median), round {run.Round} | {Signed(added)} ms ({Ms(Percentile(run.ProxiedFirstContent, 0.5))} vs {Ms(Percentile(run.DirectFirstContent, 0.5))} ms) | ≤ 0.5 ms | {Pass(added <= 0.5)} |");
        }

        Line();
        Line("## Memory");
        Line();
        Line($"Of the proxy process (nginx: its one worker), from `/proc/<pid>/status`. *At start*: `VmRSS` once it answers. *RSS before*: `VmRSS` after {WarmUp} warm-up streams (same body, immediate answers) and 2 s of rest. *Peak RSS*: `VmHWM` at the end of the run (the largest `VmRSS` since the process started, warm-up included: *peak before* shows the warm-up's). *With the most open*: `VmRSS` (sampled every 100 ms) when the most streams were open at once, and how many that was; the rest of the peak comes after, while streams end (the GC hands little back to the system). *After*: `VmRSS` 2 s after the last stream ended. *Files, before → after*: the part of `VmRSS` that maps files (`RssFile`: the runtime's and the assemblies' images, shared and clean), the rest being the process's own memory (the GC's heap, native allocations, stacks). *Per stream*: (peak − before) / the most streams open at once.");
        Line();
        Line("| Round | Proxy | At start MiB | RSS before MiB | Peak before MiB | Peak RSS MiB | Peak − before MiB | With the most open MiB (streams) | Per stream KiB | After MiB | Files, before → after MiB | CPU s | Other load |");
        Line("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var run in results.Append(spillRun))
        {
            var open = run.MostOpen;
            var atMost = run.Samples.FirstOrDefault(s => s.Started - s.Ended == open);
            Line($"| {Round(run)} | {Label(run.Target)}{(run == spillRun ? $", {spill.BodyBytes / 1_000_000} MB bodies × {spill.Streams}" : string.Empty)} | {Mib(run.RssAtStart)} | {Mib(run.RssBefore)} | {Mib(run.PeakBefore)} | **{Mib(run.Peak)}** | {Mib(run.Peak - run.RssBefore)} | {atMost.RssKib / 1024.0:0.0} ({open}) | {(open > 0 ? (run.Peak - run.RssBefore) / 1024.0 / open : 0):0} | {Mib(run.RssAfter)} | {Mib(run.FileBefore)} → {Mib(run.FileAfter)} | {run.Cpu.TotalSeconds:0.0} | {run.OtherLoad:0.0} % |");
        }

        Line();
        Line("## Time to first content");
        Line();
        Line($"From sending the request (the whole {main.BodyBytes / 1000} KB body included) to reading the first `content_block_delta` event, in ms: through the proxy ({main.Streams:N0} streams a run) and in the direct probes of the same run ({main.DirectProbes}). p90 is nearest-rank.");
        Line();
        Line("| Round | Proxy | Through median | Through p90 | Direct median | Direct p90 | Median − direct | p90 − direct |");
        Line("|---:|---|---:|---:|---:|---:|---:|---:|");
        foreach (var run in results)
        {
            var (through, direct) = (run.ProxiedFirstContent, run.DirectFirstContent);
            Line($"| {run.Round} | {Label(run.Target)} | {Ms(Percentile(through, 0.5))} | {Ms(Percentile(through, 0.9))} | {Ms(Percentile(direct, 0.5))} | {Ms(Percentile(direct, 0.9))} | {Signed(Percentile(through, 0.5) - Percentile(direct, 0.5))} | {Signed(Percentile(through, 0.9) - Percentile(direct, 0.9))} |");
        }

        Line();
        Line("Where that time goes, medians in ms, through the proxy / direct (the upstream is in the benchmark's process, so one clock times both ends): *headers in*: from sending to the upstream having the request's headers (a proxy that reads the whole body first sends them after it); *body in*: to the upstream having read the whole body; *upstream*: from there to its flush of the first content event (the opening's write and flush, then the event's); *way out*: from that flush to the client reading the event (what holding the stream's opening can add). The parts' medians do not add up exactly to the total's.");
        Line();
        Line("| Round | Proxy | Headers in | Body in | Upstream | Way out | Way out p90 |");
        Line("|---:|---|---:|---:|---:|---:|---:|");
        foreach (var run in results)
        {
            string Both(Func<StreamOutcome, double> part, double p) => $"{Ms(Percentile(run.Part(false, part), p))} / {Ms(Percentile(run.Part(true, part), p))}";
            Line($"| {run.Round} | {Label(run.Target)} | {Both(o => o.HeadersInMs, 0.5)} | {Both(o => o.RequestLegMs, 0.5)} | {Both(o => o.UpstreamMs, 0.5)} | {Both(o => o.ResponseLegMs, 0.5)} | {Both(o => o.ResponseLegMs, 0.9)} |");
        }

        Line();
        Line("## Spill files of request bodies (AuthFailoverProxy)");
        Line();
        Line("The proxy keeps a body of up to 1 MiB in memory and spills a larger one to `afp-body-<guid>.tmp` in the system's temporary directory (`Path.GetTempPath()`; each AuthFailoverProxy process here gets a `TMPDIR` of its own so that only its files are counted). Counted every 100 ms in that directory, and every 500 ms among the process's open file descriptors (`/proc/<pid>/fd`; a spill file is opened DeleteOnClose, so an open descriptor is a live file). *Committed and open*: samples in which every stream sent so far had received its first content event (the proxy had committed its answer), at least one stream was open, and no stream was sent or committed while the sample was taken. *Some opening*: samples in which a body could legitimately be in the proxy.");
        Line();
        Line("| Round | Run | Samples | Committed and open: samples | files (max) | descriptors (max) | Some opening: samples | files (max) | After the run |");
        Line("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var run in afp.Append(spillRun))
        {
            var committed = run.Samples.Where(s => s.AllCommittedWhileOpen).ToList();
            var opening = run.Samples.Where(s => s.SomeOpening).ToList();
            var fds = committed.Where(s => s.SpillFds >= 0).ToList();
            Line($"| {Round(run)} | {run.Plan.Streams} × {run.Plan.BodyBytes / 1000:N0} KB | {run.Samples.Count} | {committed.Count} | {MaxOr(committed, s => s.SpillFiles)} | {MaxOr(fds, s => s.SpillFds)} ({fds.Count} looked at) | {opening.Count} | {MaxOr(opening, s => s.SpillFiles)} | {run.SpillAfter} |");
        }

        Line();
        Line("## Every run");
        Line();
        Line("In the order they ran. *Streams*: complete (every content event and message_stop) / sent; errors are listed below the table. *Ramp*: from the first stream sent to the last. *Busy before*: the machine's CPU use over 1 s just before the run (the run waits, 30 s at most in all, for it to be under 10 %). *Other load*: CPU used on the machine by anything but the proxy and this benchmark's process, as a share of all cores over the run.");
        Line();
        Line("| Round | Proxy | Body | Streams complete | Direct probes complete | Ramp s | Run s | Busy before | Other load |");
        Line("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var run in results.Append(spillRun))
        {
            var proxied = run.Proxied.ToList();
            var direct = run.Outcomes.Where(o => o.Direct).ToList();
            var ramp = proxied.Count > 1 ? Stopwatch.GetElapsedTime(proxied.Min(o => o.Sent), proxied.Max(o => o.Sent)).TotalSeconds : 0;
            Line($"| {Round(run)} | {Label(run.Target)} | {run.Plan.BodyBytes / 1000:N0} KB | {proxied.Count(o => o.Complete)} / {proxied.Count} | {direct.Count(o => o.Complete)} / {direct.Count} | {ramp:0.0} | {run.Elapsed.TotalSeconds:0.0} | {run.BusyBefore:0.0} % | {run.OtherLoad:0.0} % |");
        }

        var errors = results.Append(spillRun)
            .SelectMany(run => run.Outcomes.Where(o => o.Error is not null).Select(o => (Run: $"{Round(run)} {Label(run.Target)}{(o.Direct ? " (direct)" : string.Empty)}", o.Error)))
            .GroupBy(e => (e.Run, e.Error))
            .ToList();
        Line();
        if (errors.Count == 0)
        {
            Line("No stream failed.");
        }
        else
        {
            Line("Failed streams:");
            Line();
            foreach (var group in errors)
            {
                Line($"- {group.Key.Run}: {group.Count()} × {group.Key.Error}");
            }
        }

        Line();
        Line("## Machine and setup");
        Line();
        Line($"- CPU: {CpuModel()}, {Environment.ProcessorCount} cores; memory {MemTotal()}");
        Line($"- OS: {RuntimeInformation.OSDescription}; .NET {Environment.Version}");
        Line($"- The client and the upstream (both in the benchmark's process, Kestrel and `SocketsHttpHandler`, HTTP/1.1, a connection per open stream) and the proxy share these cores. Proxies: AuthFailoverProxy's and bare YARP's Release builds run with `dotnet <dll>` (Server GC, non-concurrent, both), AuthFailoverProxy with its defaults and logging at Warning{(withNginx ? "; nginx with `bench/nginx-proxy.conf.template` (one worker, `proxy_buffering off`, request bodies buffered as by default)" : "; nginx was not found, so it was left out")}.");
        return r.ToString();
    }

    private static async Task WriteRawAsync(string raw, string name, List<ProxySample> samples, List<StreamOutcome> outcomes)
    {
        var s = new StringBuilder("seconds\trss_kib\tspill_files\tspill_fds\tstarted\tsettled\tended\tsteady\n");
        foreach (var x in samples)
        {
            s.Append(CultureInfo.InvariantCulture, $"{x.Seconds:0.000}\t{x.RssKib}\t{x.SpillFiles}\t{x.SpillFds}\t{x.Started}\t{x.Settled}\t{x.Ended}\t{x.Steady}\n");
        }

        await File.WriteAllTextAsync(Path.Combine(raw, $"{name}-samples.tsv"), s.ToString());
        var o = new StringBuilder("slot\tdirect\tsent_s\tfirst_content_ms\theaders_in_ms\tbody_in_ms\tupstream_ms\tway_out_ms\tlength_s\tdeltas\tcomplete\terror\n");
        var origin = outcomes.Count == 0 ? 0 : outcomes.Min(x => x.Sent);
        foreach (var x in outcomes)
        {
            var first = x.FirstContent > 0 ? x.TimeToFirstContentMs.ToString("0.000", CultureInfo.InvariantCulture) : string.Empty;
            var parts = x.Timed ? string.Create(CultureInfo.InvariantCulture, $"{x.HeadersInMs:0.000}\t{x.RequestLegMs:0.000}\t{x.UpstreamMs:0.000}\t{x.ResponseLegMs:0.000}") : "\t\t\t";
            o.Append(CultureInfo.InvariantCulture, $"{x.Slot}\t{x.Direct}\t{Stopwatch.GetElapsedTime(origin, x.Sent).TotalSeconds:0.000}\t{first}\t{parts}\t{Stopwatch.GetElapsedTime(x.Sent, x.Ended).TotalSeconds:0.000}\t{x.Deltas}\t{x.Complete}\t{x.Error}\n");
        }

        await File.WriteAllTextAsync(Path.Combine(raw, $"{name}-streams.tsv"), o.ToString());
    }

    /// <summary>Waits until the machine is under 10 % busy over 1 s, within what is left of the budget; returns the last share seen, in %.</summary>
    private static async Task<double> WaitForQuietAsync()
    {
        while (true)
        {
            var clock = Stopwatch.StartNew();
            var before = MachineBusyTicks();
            await Task.Delay(TimeSpan.FromSeconds(1));
            var busy = (MachineBusyTicks() - before) / 100.0 / (clock.Elapsed.TotalSeconds * Environment.ProcessorCount) * 100;
            if (busy < 10 || _quietBudget <= TimeSpan.Zero)
            {
                return busy;
            }

            _quietBudget -= clock.Elapsed;
            Console.Error.WriteLine($"[long-streams] the machine is {busy:0} % busy: waiting (at most {Math.Max(0, _quietBudget.TotalSeconds):0} s more in all)");
        }
    }

    /// <summary>CPU in use on the whole machine (user, nice, system, irq, softirq, steal), in USER_HZ ticks.</summary>
    private static long MachineBusyTicks()
    {
        var fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return BusyFields.Sum(i => long.Parse(fields[i], CultureInfo.InvariantCulture));
    }

    private static double Percentile(List<double> sorted, double p) => sorted.Count == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Count) - 1, 0, sorted.Count - 1)];

    /// <summary>The round of a main run; the spill check runs once, after them.</summary>
    private static string Round(RunResult run) => run.Round > 0 ? run.Round.ToString(CultureInfo.InvariantCulture) : "—";

    private static string MaxOr(List<ProxySample> samples, Func<ProxySample, int> value) => samples.Count == 0 ? "—" : samples.Max(value).ToString(CultureInfo.InvariantCulture);

    private static string Pass(bool ok) => ok ? "PASS" : "MISS";

    private static string Mib(long bytes) => (bytes / 1024.0 / 1024.0).ToString("0.0", CultureInfo.InvariantCulture);

    private static string Ms(double ms) => double.IsNaN(ms) ? "—" : ms.ToString("0.00", CultureInfo.InvariantCulture);

    private static string Signed(double ms) => double.IsNaN(ms) ? "—" : ms.ToString("+0.00;−0.00;0.00", CultureInfo.InvariantCulture);

    private static string Label(Target target) => target switch
    {
        Target.Afp => "AuthFailoverProxy",
        Target.Bare => "bare YARP",
        _ => "nginx (reference proxy)",
    };

    private static string Slug(Target target) => target switch
    {
        Target.Afp => "afp",
        Target.Bare => "bare",
        _ => "nginx",
    };

    private static string? Arg(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    private static string CpuModel() => File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown";

    private static string MemTotal() => File.ReadLines("/proc/meminfo").First().Split(':', 2)[1].Trim();

    private sealed record RunResult(
        int Round,
        Target Target,
        LongStreamPlan Plan,
        long RssAtStart,
        long RssBefore,
        long FileBefore,
        long PeakBefore,
        long Peak,
        long RssAfter,
        long FileAfter,
        TimeSpan Cpu,
        double BusyBefore,
        double OtherLoad,
        TimeSpan Elapsed,
        List<StreamOutcome> Outcomes,
        List<ProxySample> Samples,
        int SpillAfter)
    {
        public IEnumerable<StreamOutcome> Proxied => Outcomes.Where(o => !o.Direct);

        public List<double> ProxiedFirstContent => Sorted(Proxied.Where(o => o.FirstContent > 0).Select(o => o.TimeToFirstContentMs));

        public List<double> DirectFirstContent => Sorted(Outcomes.Where(o => o.Direct && o.FirstContent > 0).Select(o => o.TimeToFirstContentMs));

        /// <summary>Gets one part of the time to first content, sorted, over the streams whose upstream times are known.</summary>
        public List<double> Part(bool direct, Func<StreamOutcome, double> part) => Sorted(Outcomes.Where(o => o.Direct == direct && o.Timed).Select(part));

        /// <summary>Gets the most proxied streams open at once, as sampled.</summary>
        public int MostOpen => Samples.Count == 0 ? 0 : Samples.Max(s => s.Started - s.Ended);

        private static List<double> Sorted(IEnumerable<double> values)
        {
            var list = values.ToList();
            list.Sort();
            return list;
        }
    }
}
