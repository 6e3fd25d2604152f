using System.Diagnostics;

namespace Scaling;

/// <summary>One look at the proxy during a run.</summary>
/// <param name="Seconds">Time since the run started.</param>
/// <param name="RssKib">The measured process's <c>VmRSS</c>.</param>
/// <param name="SpillFiles">Spill files (<c>afp-body-*.tmp</c>) in the proxy's temporary directory; -1 when not counted.</param>
/// <param name="SpillFds">The proxy's open descriptors on such files; -1 when not counted in this sample.</param>
/// <param name="Started">Proxied streams sent so far.</param>
/// <param name="Settled">Proxied streams whose answer is committed (first content read) or that failed before it.</param>
/// <param name="Ended">Proxied streams over.</param>
/// <param name="Steady">Whether no stream started or settled while the sample was taken: then Started and Settled describe the spill counts exactly.</param>
internal readonly record struct ProxySample(double Seconds, long RssKib, int SpillFiles, int SpillFds, int Started, int Settled, int Ended, bool Steady)
{
    /// <summary>Gets whether every stream sent so far has its answer committed and at least one is still open.</summary>
    public bool AllCommittedWhileOpen => Steady && Started > 0 && Started == Settled && Ended < Started;

    /// <summary>Gets whether some stream was between being sent and its answer's commitment (its body may be in the proxy).</summary>
    public bool SomeOpening => Started > Settled;
}

/// <summary>
/// Looks at the proxy every 100 ms while a run is under way: resident memory, and for AuthFailoverProxy its spill files
/// (the directory every 100 ms, its file descriptors every 500 ms), next to the client's counts of streams sent,
/// committed and over. Bounded by the run: stopped by <see cref="StopAsync"/>, or when the process is gone.
/// </summary>
internal sealed class LongStreamSampler : IDisposable
{
    private static readonly TimeSpan Period = TimeSpan.FromMilliseconds(100);

    private readonly List<ProxySample> _samples = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    private LongStreamSampler(ProxyProcess proxy, string? spillDirectory, LoadProgress progress)
    {
        _loop = Task.Run(() => LoopAsync(proxy, spillDirectory, progress));
    }

    public static LongStreamSampler Start(ProxyProcess proxy, string? spillDirectory, LoadProgress progress) => new(proxy, spillDirectory, progress);

    /// <summary>Counts AuthFailoverProxy's spill files in <paramref name="directory"/>.</summary>
    public static int CountSpillFiles(string directory) => Directory.EnumerateFiles(directory, "afp-body-*.tmp").Count();

    /// <summary>Counts the open descriptors of process <paramref name="pid"/> on spill files (deleted or not).</summary>
    public static int CountSpillDescriptors(int pid)
    {
        var count = 0;
        foreach (var fd in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
        {
            try
            {
                if (new FileInfo(fd).LinkTarget is { } target && target.Contains("/afp-body-", StringComparison.Ordinal))
                {
                    count++;
                }
            }
            catch (IOException)
            {
                // Closed while looking.
            }
        }

        return count;
    }

    public async Task<List<ProxySample>> StopAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        return _samples;
    }

    public void Dispose() => _stop.Dispose();

    private async Task LoopAsync(ProxyProcess proxy, string? spillDirectory, LoadProgress progress)
    {
        var clock = Stopwatch.StartNew();
        using var timer = new PeriodicTimer(Period);
        for (var n = 0; ; n++)
        {
            try
            {
                var (started, settled) = (progress.Started, progress.Settled);
                var rss = proxy.Rss / 1024;
                var files = spillDirectory is null ? -1 : CountSpillFiles(spillDirectory);
                var fds = spillDirectory is not null && n % 5 == 0 ? CountSpillDescriptors(proxy.MeasuredPid) : -1;
                var steady = progress.Started == started && progress.Settled == settled;
                _samples.Add(new ProxySample(clock.Elapsed.TotalSeconds, rss, files, fds, started, settled, progress.Ended, steady));
                if (!await timer.WaitForNextTickAsync(_stop.Token))
                {
                    return;
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception ex) when (ex is IOException or InvalidOperationException or UnauthorizedAccessException)
            {
                // The process is gone: the run reports its streams' errors.
                return;
            }
        }
    }
}
