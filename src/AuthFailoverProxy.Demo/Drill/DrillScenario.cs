using System.Diagnostics;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Events;

namespace AuthFailoverProxy.Demo.Drill;

/// <summary>
/// The script: six faults, one after the other, under the steady load. Each phase injects its fault, waits (bounded) for
/// what should follow, removes the fault when it is one someone would fix, and waits (bounded) for recovery. Judging
/// what was seen is <see cref="DrillReport"/>'s job.
/// </summary>
internal sealed class DrillScenario(DrillCluster cluster, DrillLoad load, Stopwatch clock, DrillTimings timings, TextWriter output, CancellationToken cancellationToken)
{
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(1);

    private readonly List<(TimeSpan At, string What)> _timeline = [];
    private readonly List<DrillPhase> _phases = [];

    public IReadOnlyList<(TimeSpan At, string What)> Timeline => _timeline;

    public IReadOnlyList<DrillPhase> Phases => _phases;

    public async Task RunAsync()
    {
        var warm = Begin("steady load", "none");
        Mark($"steady load starts: {timings.RequestsPerSecond} req/s of POST /v1/messages over {cluster.Replicas.Count} replicas");
        await DelayAsync(timings.Warm);
        End(warm);

        await OutageReplayAsync();
        await RateLimitStormAsync();
        await OverloadBurstsAsync();
        await RedisRestartAsync();
        await ReplicaKillAsync();
        await AllKeysRevokedAsync();
    }

    /// <summary>Marks the end of the last phase once the load has stopped and late alerts had time to arrive.</summary>
    public void Finish() => _phases[^1].End = clock.Elapsed;

    private async Task OutageReplayAsync()
    {
        var phase = Begin("a. outage replay", "'primary' (OAuth token) gets 403 permission_error");
        phase.Expected.Add(new ExpectedAlert(EventKinds.KeyDead, "primary"));
        phase.AlertKind = EventKinds.KeyDead;
        Fault(phase, "'primary' revoked: 403 permission_error \"OAuth authentication is currently not allowed for this organization.\"");
        cluster.Upstream.SetKeyFault(DrillCluster.Secret("primary"), KeyFault.OAuthRejected);
        await WaitAlertAsync(phase, "primary");
        await DelayAsync(timings.Hold);
        End(phase);
    }

    private async Task RateLimitStormAsync()
    {
        var phase = Begin("b. 429 storm", "'backup' gets 429 rate_limit_error");
        // The load names a model: 'backup' rests for that model class only (its organization's limit), told as key.scoped.
        phase.Expected.Add(new ExpectedAlert(EventKinds.KeyScoped, "backup"));
        phase.AlertKind = EventKinds.KeyScoped;
        Fault(phase, $"429 storm on 'backup' (retry-after {timings.StormRetryAfter.TotalSeconds:0} s)");
        cluster.Upstream.SetKeyFault(DrillCluster.Secret("backup"), KeyFault.RateLimited, timings.StormRetryAfter);
        await WaitAlertAsync(phase, "backup");
        await DelayAsync(timings.StormRetryAfter / 2);
        cluster.Upstream.SetKeyFault(DrillCluster.Secret("backup"), KeyFault.None);
        Fix(phase, "429 storm over: 'backup' answers again");
        await WaitRecoveryAsync(phase, r => r.Status == 200 && r.Key == "backup", "'backup' serves again (its reset time passed)", timings.StormRetryAfter + timings.RecoveryBound);
        await DelayAsync(Settle);
        End(phase);
    }

    private async Task OverloadBurstsAsync()
    {
        var phase = Begin("c. 529 bursts", "the upstream answers 529 overloaded_error");
        phase.Forbidden.AddRange([EventKinds.KeyDead, EventKinds.KeyCooling, EventKinds.KeyScoped, EventKinds.CircuitOpened]);
        const int Bursts = 3;
        const int PerBurst = 3;
        phase.FaultAt = clock.Elapsed;
        for (var i = 0; i < Bursts; i++)
        {
            cluster.Upstream.FailNext(PerBurst, UpstreamFault.Overloaded);
            Mark($"upstream burst {i + 1} of {Bursts}: the next {PerBurst} calls get 529 overloaded_error");
            await DelayAsync(timings.Hold / Bursts);
        }

        await DelayAsync(Settle);
        End(phase);
    }

    private async Task RedisRestartAsync()
    {
        var phase = Begin("d. Redis restart", "redis-server killed, restarted empty");
        var replicas = cluster.Replicas.Count(r => !r.Killed);
        phase.Expected.Add(new ExpectedAlert(EventKinds.StoreLost, Count: replicas));
        phase.AlertKind = EventKinds.StoreLost;
        Fault(phase, "redis-server killed (SIGKILL)");
        await cluster.KillRedisAsync();
        await WaitAlertAsync(phase, key: null);
        await DelayAsync(timings.Hold);
        Fix(phase, "redis-server restarting on the same port (empty: no persistence)");
        await cluster.StartRedisAsync(cancellationToken);
        var connected = await DrillProbe.WaitUntilAsync(cluster.AllStoresConnectedAsync, timings.RecoveryBound, cancellationToken);
        if (connected)
        {
            phase.RecoveredAt = clock.Elapsed;
            Mark("every replica's /status shows its Redis store connected again");
        }

        await DelayAsync(Settle);
        End(phase);
    }

    private async Task ReplicaKillAsync()
    {
        var phase = Begin("e. replica killed", "one of two replicas killed");
        var victim = cluster.Replicas.Last(r => !r.Killed);
        Fault(phase, $"{victim.Name} killed (SIGKILL); the balancer sends its load to the others");
        await victim.KillAsync();
        await WaitRecoveryAsync(phase, r => r.Status == 200 && r.Replica != victim.Name && r.SentAt >= phase.FaultAt, "the surviving replica serves the whole load", timings.RecoveryBound, since: phase.FaultAt);
        await DelayAsync(timings.Hold);
        End(phase);
    }

    private async Task AllKeysRevokedAsync()
    {
        var phase = Begin("f. every key revoked", "all keys rejected, then 'spare' restored");
        // Keys of two organizations refused alike at once: that is an incident at the provider, told once as such (each
        // key's death is on record at Info), and the keys are re-checked every few seconds.
        phase.Expected.AddRange([new ExpectedAlert(EventKinds.UpstreamIncident), new ExpectedAlert(EventKinds.PoolExhausted)]);
        phase.AlertKind = EventKinds.PoolExhausted;
        Fault(phase, "'backup' and 'spare' revoked too (401): no key left");
        foreach (var key in new[] { "backup", "spare" })
        {
            cluster.Upstream.SetKeyFault(DrillCluster.Secret(key), KeyFault.Revoked);
        }
        phase.NoKeyUsable = (phase.FaultAt!.Value, TimeSpan.MaxValue);
        await WaitAlertAsync(phase, key: null);
        await DelayAsync(timings.Hold);
        cluster.Upstream.SetKeyFault(DrillCluster.Secret("spare"), KeyFault.None);
        Fix(phase, "'spare' restored upstream (nobody touches the proxy)");
        await WaitRecoveryAsync(phase, r => r.Status == 200, "'spare' re-checked and back in service: requests served again", timings.RecoveryBound);
        phase.NoKeyUsable = (phase.FaultAt.Value, phase.RecoveredAt ?? TimeSpan.MaxValue);
        await DelayAsync(timings.Hold);
        End(phase);
    }

    private DrillPhase Begin(string name, string fault)
    {
        var phase = new DrillPhase(name, fault) { Start = clock.Elapsed, DeadKeyCalls = -DeadKeyCalls(), UpstreamCalls = -UpstreamCalls() };
        _phases.Add(phase);
        return phase;
    }

    private void End(DrillPhase phase)
    {
        phase.End = clock.Elapsed;
        phase.DeadKeyCalls += DeadKeyCalls();
        phase.UpstreamCalls += UpstreamCalls();
    }

    private int DeadKeyCalls() => cluster.Upstream.Requests.Count(r => r.Method == "POST" && r.Key == DrillCluster.Secret("primary"));

    private int UpstreamCalls() => cluster.Upstream.Requests.Count(r => r.Method == "POST");

    private void Fault(DrillPhase phase, string what)
    {
        phase.FaultAt = clock.Elapsed;
        Mark("FAULT " + what);
    }

    private void Fix(DrillPhase phase, string what)
    {
        phase.FixAt = clock.Elapsed;
        Mark("FIX   " + what);
    }

    private void Mark(string what)
    {
        var at = clock.Elapsed;
        _timeline.Add((at, what));
        output.WriteLine($"  {DrillReport.Seconds(at),7}  {what}");
    }

    private async Task WaitAlertAsync(DrillPhase phase, string? key)
    {
        var since = phase.FaultAt!.Value;
        await DrillProbe.WaitUntilAsync(() => Task.FromResult(cluster.Alerts.First(phase.AlertKind!, key, since) is not null), timings.AlertBound, cancellationToken);
        if (cluster.Alerts.First(phase.AlertKind!, key, since) is { } alert)
        {
            phase.AlertAt = alert.At;
        }
    }

    private async Task WaitRecoveryAsync(DrillPhase phase, Func<DrillRequest, bool> served, string what, TimeSpan bound, TimeSpan? since = null)
    {
        var from = since ?? phase.FixAt!.Value;
        DrillRequest? First() => load.Requests.Where(r => r.SentAt >= from && served(r)).MinBy(r => r.SentAt);
        await DrillProbe.WaitUntilAsync(() => Task.FromResult(First() is not null), bound, cancellationToken);
        if (First() is { } request)
        {
            phase.RecoveredAt = request.SentAt + request.Took;
            Mark(what);
        }
    }

    private Task DelayAsync(TimeSpan delay) => Task.Delay(delay, cancellationToken);
}
