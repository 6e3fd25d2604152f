using AuthFailoverProxy.Events;

namespace AuthFailoverProxy.Alerts;

/// <summary>The reminder digests: what is still wrong, every <see cref="AlertOptions.ReminderInterval"/>, one message per channel.</summary>
internal sealed partial class AlertDispatcher
{
    private async Task RemindAsync(CancellationToken stoppingToken)
    {
        var interval = Options.ReminderInterval;
        try
        {
            var now = time.GetUtcNow();
            var next = TickAfter(now, interval);
            while (!stoppingToken.IsCancellationRequested)
            {
                await Task.Delay(next - now, time, stoppingToken);
                await RemindAsync(next, interval);
                now = time.GetUtcNow();
                next = NextTick(next, now, interval);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// Returns the tick after <paramref name="sent"/>, the one just reminded of: never the same one again, however early
    /// the timer woke (timers may fire before their due time, and a clock read then says the tick has not come yet).
    /// Ticks missed while the process stood still are skipped, not caught up; after the clock was set back by more than
    /// an interval, the ticks start again from the clock.
    /// </summary>
    internal static DateTimeOffset NextTick(DateTimeOffset sent, DateTimeOffset now, TimeSpan interval)
    {
        var following = TickAfter(now, interval);
        return following > sent + interval || sent - now > interval ? following : sent + interval;
    }

    /// <summary>Ticks fall on multiples of the interval since year 1: the same instants on every replica.</summary>
    private static DateTimeOffset TickAfter(DateTimeOffset now, TimeSpan interval) => new((now.UtcTicks / interval.Ticks + 1) * interval.Ticks, TimeSpan.Zero);

    private async Task RemindAsync(DateTimeOffset tick, TimeSpan interval)
    {
        // Problems opened in the last half interval were just told; they wait for the next digest.
        var cutoff = tick - (interval / 2);
        var digests = new Dictionary<AlertChannelWorker, List<AlertIncident>>();
        lock (_lock)
        {
            foreach (var (incident, open) in _open.Where(o => o.Value.Since <= cutoff).OrderBy(o => o.Value.Since))
            {
                foreach (var worker in open.Told.Where(w => w.Channel.TakesReminders))
                {
                    (digests.TryGetValue(worker, out var list) ? list : digests[worker] = []).Add(new AlertIncident(incident, open.Latest, open.Since));
                }
            }
        }

        if (digests.Count == 0 || !await TryClaimAsync($"alert:reminder:{tick.UtcTicks / interval.Ticks}", interval))
        {
            return;
        }

        foreach (var (worker, stillOpen) in digests)
        {
            var count = stillOpen.Count;
            worker.Enqueue(new Alert(AlertAction.Reminder, new ProxyEvent
            {
                Kind = Alert.ReminderKind,
                Severity = stillOpen.Max(i => i.Latest.Severity),
                At = tick,
                Message = $"{count} problem{(count == 1 ? " is" : "s are")} still open, the oldest since {AlertText.Time(stillOpen[0].Since)}.",
                Remediation = "GET /status shows every key's state and last error.",
            })
            { StillOpen = stillOpen });
        }
    }
}
