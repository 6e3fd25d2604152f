using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Health;

/// <summary>
/// Suspect, confirm, then blame. A key whose answer to a request says it may be dead is skipped for that request at
/// once and becomes a suspect: tried last by other requests, never excluded. A check that depends on no request (the
/// probe, in the key's own scheme; <c>count_tokens</c> where credit is in question; one check in flight per key) then
/// confirms the death, which alone is recorded, shared and alerted, or clears it and leaves the key in service. A
/// suspect that no check can judge stays a suspect, re-checked with backoff, and a real request it serves clears it.
/// </summary>
internal sealed partial class KeySuspicions(
    KeyProber prober,
    KeyStateBoard board,
    KeyTrials trials,
    UpstreamIncidents incidents,
    Failover.RequestRejections rejections,
    IOptions<ProbeOptions> options,
    IOptions<Failover.FailoverOptions> failover,
    TimeProvider time,
    IHostApplicationLifetime lifetime,
    ILogger<KeySuspicions> logger)
{
    /// <summary>What the proxy tells an agent to wait while a suspicion is being checked: the SDKs retry after it.</summary>
    public static readonly TimeSpan RetryAfterWhileChecking = TimeSpan.FromSeconds(2);

    /// <summary>Makes <paramref name="key"/> a suspect on the strength of <paramref name="failure"/> and checks it, unless it already is one.</summary>
    /// <param name="pool">The key's pool.</param>
    /// <param name="key">The key.</param>
    /// <param name="failure">What the request got.</param>
    /// <param name="walk">The request's walk through the pool, done when it has its answer: a confirmed death waits for it
    /// (bounded), so that the keys the same request meets next are seen before the death is told (see <see cref="UpstreamIncidents"/>).</param>
    public void Suspect(Pool pool, PoolKey key, KeyFailure failure, Task? walk = null)
    {
        if (!key.Health.IsUsable)
        {
            // Already out of service (or cooling, pending, disabled): nothing to confirm.
            return;
        }

        var suspicion = new KeySuspicion(failure, failure.At) { Walk = walk };
        if (!key.TrySuspect(suspicion))
        {
            return;
        }

        LogSuspected(logger, key.Pool, key.Name, key.Fingerprint, failure.Label);
        // The check is the proxy's own business: it does not run in the request's trace or context.
        using (ExecutionContext.SuppressFlow())
        {
            suspicion.Check = Task.Run(() => CheckAsync(pool, key, suspicion), CancellationToken.None);
        }
    }

    /// <summary>Waits, at most <paramref name="bound"/>, for the checks under way on <paramref name="pool"/>'s keys.</summary>
    public async Task WhenCheckedAsync(Pool pool, TimeSpan bound)
    {
        var checks = pool.Keys.Select(k => k.Suspicion?.Check).OfType<Task>().Where(t => !t.IsCompleted).ToList();
        if (checks.Count == 0 || bound <= TimeSpan.Zero)
        {
            return;
        }

        try
        {
            await Task.WhenAll(checks).WaitAsync(bound, time, lifetime.ApplicationStopping);
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
        {
            // The answer says what is still being checked.
        }
    }

    private async Task CheckAsync(Pool pool, PoolKey key, KeySuspicion suspicion)
    {
        var stopping = lifetime.ApplicationStopping;
        var delay = options.Value.HealDelay;
        try
        {
            while (!stopping.IsCancellationRequested && key.Suspicion == suspicion && !key.Retired)
            {
                var result = await prober.ProbeAsync(pool, key, stopping, about: suspicion.Failure);
                if (key.Suspicion != suspicion)
                {
                    return;
                }

                switch (result)
                {
                    case { Outcome: ProbeOutcome.Dead }:
                        // Confirmed by a check no request could have shaped: now it is the key's recorded state, told as
                        // agents first met it, unless keys that cannot share a cause with it got the same answer (an
                        // upstream incident, told once for all).
                        await WhenWalkedAsync(suspicion);
                        board.ReportDead(key, suspicion.Failure, incidents.Observe(pool, key, suspicion.Failure)?.Id);
                        key.ClearSuspicion();
                        return;
                    case { Outcome: ProbeOutcome.Usable } when KeyProber.CanJudge(pool, suspicion.Failure):
                        key.ClearSuspicion();
                        rejections.Count(pool, key, model: null, suspicion.Failure, Failover.RejectionReason.Cleared);
                        LogCleared(logger, key.Pool, key.Name, key.Fingerprint, suspicion.Failure.Label);
                        return;
                    case { Outcome: ProbeOutcome.Usable }:
                        // The key authenticates, and no free call can say more about its account (an OpenAI quota): the
                        // provider's own account code stands, as no request can make it up.
                        board.ReportDead(key, suspicion.Failure);
                        key.ClearSuspicion();
                        return;
                    case { Outcome: ProbeOutcome.Cooling, Failure: { } failure }:
                        // It authenticates: not dead, only busy.
                        key.ClearSuspicion();
                        board.ReportCooling(key, failure, result.CoolUntil);
                        return;
                }

                if (!suspicion.Unjudged)
                {
                    suspicion.Unjudged = true;
                    LogUnjudged(logger, key.Pool, key.Name, key.Fingerprint, suspicion.Failure.Label, result.Reason ?? "the check passed, but proves nothing about credit");
                }
                else if (result.Inconclusive)
                {
                    // After its first backoff, a suspect no check can judge is given one real request ahead of the others.
                    await trials.OpenAsync(key, result.Reason!);
                }

                await Task.Delay(delay, time, stopping);
                delay = delay * 2 > options.Value.MaxHealDelay ? options.Value.MaxHealDelay : delay * 2;
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            LogCheckFailed(logger, key.Pool, key.Name, ex);
        }
    }

    /// <summary>Waits (bounded by the failover deadline) for the walk of the request that raised the suspicion, if it may be part of an incident.</summary>
    private async Task WhenWalkedAsync(KeySuspicion suspicion)
    {
        if (suspicion.Walk is not { IsCompleted: false } walk || !UpstreamIncidents.CanBePartOfIncident(suspicion.Failure))
        {
            return;
        }

        try
        {
            await walk.WaitAsync(failover.Value.Deadline, time, lifetime.ApplicationStopping);
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
        {
            // Told as it is known.
        }
    }

    [LoggerMessage(EventId = 4201, Level = LogLevel.Debug, Message = "Pool '{Pool:l}': key '{KeyName:l}' ({Fingerprint:l}) answered a request {Failure:l}; the request moved on, and the key is checked before it is blamed.")]
    private static partial void LogSuspected(ILogger logger, string pool, string keyName, string fingerprint, string failure);

    [LoggerMessage(EventId = 4202, Level = LogLevel.Information, Message = "Pool '{Pool:l}': key '{KeyName:l}' ({Fingerprint:l}) passed its check after a request got {Failure:l}: the key is fine and stays in service.")]
    private static partial void LogCleared(ILogger logger, string pool, string keyName, string fingerprint, string failure);

    [LoggerMessage(EventId = 4203, Level = LogLevel.Warning, Message = "Pool '{Pool:l}': key '{KeyName:l}' ({Fingerprint:l}) answered a request {Failure:l}, and its check cannot tell whether the key is at fault ({Reason:l}). It is tried last, and given a trial request after each backoff, until a check or a request it serves says otherwise.")]
    private static partial void LogUnjudged(ILogger logger, string pool, string keyName, string fingerprint, string failure, string reason);

    [LoggerMessage(EventId = 4204, Level = LogLevel.Error, Message = "Pool '{Pool:l}': checking suspect key '{KeyName:l}' failed; it stays a suspect, tried last.")]
    private static partial void LogCheckFailed(ILogger logger, string pool, string keyName, Exception exception);
}
