using System.Threading.Channels;
using AuthFailoverProxy.Events;
using AuthFailoverProxy.State;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Alerts;

/// <summary>
/// Turns events into alerts, in the background and never on the request path. Alerts follow state changes: an event
/// with an incident opens it (trigger); a later event for the open incident is sent only when it is another kind or
/// more severe (a key cooling, then dead); a resolving event closes it and goes only to the channels that received the
/// trigger, whatever their least severity. Events without an incident go wherever a channel's filter admits them.
/// While problems stay open, a digest every <see cref="AlertOptions.ReminderInterval"/> says what is still wrong.
/// </summary>
/// <remarks>
/// <para>
/// With replicas sharing Redis, the same change can be seen by several of them before the shared state reaches the
/// others (two replicas whose requests both met the revoked key). Each claims the change before sending, under
/// <c>alert:{incident}:{kind}:{bucket}</c> (<c>resolved</c> in place of the kind for a resolve), where the buckets are
/// every <see cref="AlertOptions.DedupWindow"/>-wide slot of Unix time that <c>[At - window, At + window]</c> touches,
/// claimed in ascending order; a replica sends only if it wins them all. Two sightings less than two windows apart
/// share a bucket and only one can win it, even when they straddle a slot boundary, where a single
/// <c>At / window</c> bucket would let both through. The cost: the same kind of change for the same incident
/// happening again within two windows (a key dead, healed and dead again in 20 seconds) is told once; the incident
/// stays open here and reminders still list it. Reminders are claimed per interval (<c>alert:reminder:{slot}</c>),
/// on ticks aligned to Unix time so replicas tick together. An unreachable Redis grants every claim: twice beats never.
/// </para>
/// <para>A resolve for an incident this replica never saw open (opened on another replica, or before a restart) goes to the channels whose event filter admits it.</para>
/// <para>Its dependencies are resolved when it runs: hosted services are built before the host validates options.</para>
/// </remarks>
internal sealed partial class AlertDispatcher(IServiceProvider services, ProxyEvents events, TimeProvider time, ILogger<AlertDispatcher> logger) : BackgroundService
{
    private readonly Dictionary<string, OpenIncident> _open = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private ChannelReader<ProxyEvent>? _reader;
    private AlertChannels? _channels;
    private AlertOptions? _options;
    private IKeyStateStore? _store;

    private AlertChannels Channels => _channels ??= services.GetRequiredService<AlertChannels>();

    private AlertOptions Options => _options ??= services.GetRequiredService<IOptions<AlertOptions>>().Value;

    private IKeyStateStore Store => _store ??= services.GetRequiredService<IKeyStateStore>();

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        // Subscribed before the other services start, so nothing found at start (a key dead) goes untold.
        _reader = events.Subscribe();
        return base.StartAsync(cancellationToken);
    }

    public AlertsStatus Status()
    {
        int open;
        lock (_lock)
        {
            open = _open.Count;
        }

        return new AlertsStatus(open, [.. Channels.Workers.Select(w => w.Status())]);
    }

    /// <summary>Returns the keys under which a change is claimed for the deployment (see the remarks).</summary>
    internal static IEnumerable<string> ClaimKeys(string incident, string change, DateTimeOffset at, TimeSpan window)
    {
        var width = (long)window.TotalMilliseconds;
        for (var slot = (at - window).ToUnixTimeMilliseconds() / width; slot <= (at + window).ToUnixTimeMilliseconds() / width; slot++)
        {
            yield return $"alert:{incident}:{change}:{slot}";
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var workers = Channels.Workers;
        var loops = workers.Select(w => Task.Run(() => w.RunAsync(stoppingToken), CancellationToken.None)).ToList();
        if (workers.Count == 0)
        {
            LogNoChannels(logger);
        }
        else
        {
            if (logger.IsEnabled(LogLevel.Information))
            {
                var reminders = Options.ReminderInterval > TimeSpan.Zero ? "every " + ProxyEventSources.Describe(Options.ReminderInterval) : "off";
                var channels = Channels.Describe();
                LogChannels(logger, workers.Count, channels, reminders);
            }

            if (Options.ReminderInterval > TimeSpan.Zero)
            {
                loops.Add(Task.Run(() => RemindAsync(stoppingToken), CancellationToken.None));
            }

            if (Options.TestAtStartup)
            {
                loops.Add(Task.Run(() => TestAsync(workers, stoppingToken), CancellationToken.None));
            }
        }

        try
        {
            // Read even without channels: an unread subscription would count every event as dropped.
            await foreach (var proxyEvent in _reader!.ReadAllAsync(stoppingToken))
            {
                try
                {
                    await DispatchAsync(proxyEvent);
                }
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                {
                    LogDispatchFailed(logger, proxyEvent.Kind, ex);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        await Task.WhenAll(loops);
    }

    private async Task DispatchAsync(ProxyEvent e)
    {
        // A delivery's own record goes to the audit trail and the metrics, never to a channel.
        if (e.Kind == EventKinds.AlertDelivered)
        {
            return;
        }

        var workers = Channels.Workers;
        if (e.Incident is not { } incident)
        {
            var wanting = workers.Where(w => Wants(w, e)).ToList();
            if (wanting.Count > 0 && (e.Once is not { } once || await ClaimAsync(once, e.Kind, e)))
            {
                Send(new Alert(AlertAction.Notice, e), wanting);
            }

            return;
        }

        if (e.Resolves)
        {
            List<AlertChannelWorker> told;
            lock (_lock)
            {
                told = _open.Remove(incident, out var closed) ? [.. closed.Told] : [.. workers.Where(w => w.Filter.AdmitsKind(e.Kind))];
            }

            told.RemoveAll(w => IsAbout(w, e));
            if (told.Count > 0 && await ClaimAsync(incident, "resolved", e))
            {
                Send(new Alert(AlertAction.Resolve, e), told);
            }

            return;
        }

        OpenIncident open;
        List<AlertChannelWorker> targets;
        // The claim names the change, from what to what: a pool that goes degraded, exhausted and degraded again within
        // the dedup window is two changes to "degraded", and the second must not pass for a replica's repeat of the first.
        string change;
        lock (_lock)
        {
            if (!_open.TryGetValue(incident, out open!))
            {
                _open[incident] = open = new OpenIncident(e);
                change = e.Kind;
            }
            else if (e.Kind != open.Latest.Kind || e.Severity > open.Latest.Severity)
            {
                change = $"{open.Latest.Kind}>{e.Kind}";
                open.Latest = e;
            }
            else
            {
                // The same state told again (by another source, or after a blip): nothing changed for a human.
                return;
            }

            targets = [.. workers.Where(w => Wants(w, e))];
        }

        if (targets.Count == 0)
        {
            return;
        }

        var claimed = await ClaimAsync(incident, change, e);
        List<AlertChannelWorker> updates;
        lock (_lock)
        {
            updates = [.. targets.Where(open.Told.Contains)];
            // Told either way: when another replica won the claim, it told these channels.
            open.Told.UnionWith(targets);
        }

        if (claimed)
        {
            Send(new Alert(AlertAction.Trigger, e), targets.Except(updates));
            Send(new Alert(AlertAction.Update, e), updates);
        }
    }

    private static void Send(Alert alert, IEnumerable<AlertChannelWorker> workers)
    {
        foreach (var worker in workers)
        {
            worker.Enqueue(alert);
        }
    }

    private static bool Wants(AlertChannelWorker worker, ProxyEvent e) => worker.Filter.Admits(e) && worker.Channel.Takes(e) && !IsAbout(worker, e);

    /// <summary>A channel is never told about its own failure: it is the one that cannot hear it.</summary>
    private static bool IsAbout(AlertChannelWorker worker, ProxyEvent e)
        => e.Kind.StartsWith("alert.", StringComparison.Ordinal) && string.Equals(e.Actor, worker.Name, StringComparison.Ordinal);

    private async ValueTask<bool> ClaimAsync(string incident, string change, ProxyEvent e)
    {
        var window = Options.DedupWindow;
        if (window <= TimeSpan.Zero)
        {
            return true;
        }

        // Long enough for a replica whose event queue lags; the keys are tiny.
        var ttl = TimeSpan.FromTicks(Math.Max(window.Ticks * 6, TimeSpan.FromMinutes(1).Ticks));
        foreach (var key in ClaimKeys(incident, change, e.At, window))
        {
            if (!await TryClaimAsync(key, ttl))
            {
                LogClaimedElsewhere(logger, e.Kind, incident);
                return false;
            }
        }

        return true;
    }

    private async ValueTask<bool> TryClaimAsync(string key, TimeSpan ttl)
    {
        try
        {
            return await Store.TryClaimAsync(key, ttl);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Telling twice beats never telling.
            return true;
        }
    }

    private async Task TestAsync(IReadOnlyList<AlertChannelWorker> workers, CancellationToken stoppingToken)
    {
        var tests = workers.Select(w =>
        {
            var outcome = new TaskCompletionSource<AlertOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
            w.Enqueue(new Alert(AlertAction.Test, new ProxyEvent
            {
                Kind = EventKinds.AlertTest,
                Severity = EventSeverity.Info,
                At = time.GetUtcNow(),
                Message = $"Test alert from AuthFailoverProxy ({ProxyEvent.ThisReplica}) to channel '{w.Name}': alerts reach this channel.",
            })
            { Outcome = outcome });
            return (Worker: w, Outcome: outcome.Task);
        }).ToList();
        AlertOutcome[] outcomes;
        try
        {
            outcomes = await Task.WhenAll(tests.Select(t => t.Outcome)).WaitAsync(stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            return;
        }

        var results = string.Join("; ", tests.Zip(outcomes, (t, outcome) => outcome.Delivered
            ? $"'{t.Worker.Name}' ({t.Worker.Channel.Type}) delivered"
            : $"'{t.Worker.Name}' ({t.Worker.Channel.Type}) failed: {outcome.Error}"));
        if (outcomes.All(o => o.Delivered))
        {
            LogTestDelivered(logger, results);
        }
        else
        {
            LogTestFailed(logger, results);
        }
    }

    private sealed class OpenIncident(ProxyEvent first)
    {
        public ProxyEvent Latest { get; set; } = first;

        public DateTimeOffset Since { get; } = first.At;

        public HashSet<AlertChannelWorker> Told { get; } = [];
    }
}
