using System.Collections.Concurrent;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Retry;

namespace AuthFailoverProxy.Health;

/// <summary>
/// Brings keys back without a human. A dead key is re-checked in the background with exponential backoff and jitter
/// (<see cref="ProbeOptions.HealDelay"/> up to <see cref="ProbeOptions.MaxHealDelay"/>, paced by Polly on the injected
/// clock) and returns to service only after a check passes. A rate-limited key returns at its deadline without a
/// check. A key an operator disabled is never touched: the state rules refuse it.
/// </summary>
/// <remarks>Its dependencies are resolved when it runs: hosted services are built before the host validates options.</remarks>
internal sealed partial class KeyHealer(
    IServiceProvider services,
    KeyStateBoard board,
    IOptions<ProbeOptions> options,
    TimeProvider time,
    ILogger<KeyHealer> logger) : BackgroundService
{
    private readonly ConcurrentDictionary<PoolKey, Task> _watches = new();
    private CancellationToken _stopping;
    private PoolRegistry? _registry;
    private KeyProber? _prober;
    private IKeyStateStore? _store;
    private ResiliencePipeline<bool>? _recheck;
    private ResiliencePipeline<bool>? _slowRecheck;
    private ResiliencePipeline<bool>? _incidentRecheck;
    private UpstreamIncidents? _incidents;
    private KeyTrials? _trials;

    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        _stopping = stoppingToken;
        _registry = services.GetRequiredService<PoolRegistry>();
        _prober = services.GetRequiredService<KeyProber>();
        _store = services.GetRequiredService<IKeyStateStore>();
        _trials = services.GetRequiredService<KeyTrials>();
        _recheck = BuildRecheck(DelayBackoffType.Exponential, options.Value.HealDelay, options.Value.MaxHealDelay, time);
        // Constant, not exponential: Polly's exponential jitter is decorrelated and can put a first check far below its base.
        _slowRecheck = BuildRecheck(DelayBackoffType.Constant, options.Value.MaxHealDelay, options.Value.MaxHealDelay, time);
        // A key an upstream incident took out is checked often: it returns as soon as the provider does.
        _incidentRecheck = BuildRecheck(DelayBackoffType.Constant, options.Value.IncidentRecheckDelay, options.Value.IncidentRecheckDelay, time);
        _incidents = services.GetRequiredService<UpstreamIncidents>();
        _incidents.Start();
        var catalog = services.GetRequiredService<KeyCatalog>();
        board.Changed += OnChanged;
        catalog.Changed += OnKeySetChanged;
        stoppingToken.Register(() =>
        {
            board.Changed -= OnChanged;
            catalog.Changed -= OnKeySetChanged;
        });
        foreach (var key in _registry.Pools.SelectMany(p => p.Keys))
        {
            Watch(key);
        }

        return Task.CompletedTask;
    }

    private void OnChanged(KeyHealthChange change) => Watch(change.Key);

    private void OnKeySetChanged(KeySetChange change) => Watch(change.Key);

    /// <summary>Starts the one watch a dead or cooling key needs, unless it already has one.</summary>
    private void Watch(PoolKey key)
    {
        if (_stopping.IsCancellationRequested || key.Retired || key.Health.State is not (KeyState.Dead or KeyState.Cooling) || _watches.ContainsKey(key))
        {
            return;
        }

        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_watches.TryAdd(key, started.Task))
        {
            return;
        }

        _ = Task.Run(async () =>
        {
            try
            {
                await (key.Health.State == KeyState.Dead ? HealAsync(key) : AwaitCooldownAsync(key));
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
            }
            catch (Exception ex)
            {
                LogWatchFailed(logger, key.Pool, key.Name, ex);
            }
            finally
            {
                _watches.TryRemove(key, out _);
                started.TrySetResult();
                // The key may have changed state while this watch was finishing (died again, say): look once more.
                Watch(key);
            }
        }, CancellationToken.None);
    }

    private async Task HealAsync(PoolKey key)
    {
        var pool = _registry!.Find(key.Pool);
        if (pool is null)
        {
            return;
        }

        // The key was just found dead: the pipeline is entered as if its first check had failed, so the first real
        // check waits HealDelay, and each later one longer.
        var firstReplayed = false;
        var death = key.Health.LastFailure;
        var inIncident = _incidents!.Of(key) is not null;
        var recheck = inIncident ? _incidentRecheck! : death is not null && !KeyProber.CanJudge(pool, death) ? _slowRecheck! : _recheck!;
        var lease = inIncident ? options.Value.IncidentRecheckDelay : options.Value.HealDelay;
        await recheck.ExecuteAsync(
            async ct =>
            {
                if (!firstReplayed)
                {
                    firstReplayed = true;
                    return false;
                }

                if (key.Health.State != KeyState.Dead || key.Retired)
                {
                    // Healed elsewhere, disabled by an operator, cooling, or gone from its pool: nothing left to heal.
                    return true;
                }

                if (!await _store!.TryLeaseProbeAsync(key, lease))
                {
                    // Another replica checks it this round; its result reaches this one through the store.
                    return false;
                }

                // A key that died of credit is checked with the call that answers about credit, where there is one.
                var result = await _prober!.ProbeAsync(pool, key, ct, about: death);
                switch (result)
                {
                    case { Outcome: ProbeOutcome.Usable }:
                        board.Heal(key, "a background check passed");
                        return true;
                    case { Outcome: ProbeOutcome.Cooling, Failure: { } failure }:
                        // A 429 means the key authenticates: it is alive, only busy.
                        board.Heal(key, "a background check found it rate limited but valid");
                        board.ReportCooling(key, failure, result.CoolUntil);
                        return true;
                    case { Inconclusive: true }:
                        // No check can judge this key here: one real request may.
                        await _trials!.OpenAsync(key, result.Reason!);
                        return false;
                    default:
                        LogStillDead(logger, key.Pool, key.Name, result.Failure?.Label ?? result.Reason ?? "no answer");
                        return false;
                }
            },
            _stopping);
    }

    private async Task AwaitCooldownAsync(PoolKey key)
    {
        while (key.Health is { State: KeyState.Cooling, Until: { } until } && !key.Retired)
        {
            var wait = until - time.GetUtcNow();
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, time, _stopping);
            }

            // False when the deadline was pushed out meanwhile (the loop waits again) or the key died (the loop ends).
            board.EndCooldown(key);
        }
    }

    // A passing GET /v1/models proves a key authenticates, not that its account has credit. A key that died of credit is
    // checked with count_tokens where the pool has it (KeyProber.CanJudge); where it has not (an OpenAI quota), only at
    // the slow end of the backoff: a fast cycle would put it back, lose the next request's first try to the same
    // answer, and log the death again each time.
    private static ResiliencePipeline<bool> BuildRecheck(DelayBackoffType backoff, TimeSpan delay, TimeSpan maxDelay, TimeProvider time) =>
        new ResiliencePipelineBuilder<bool> { TimeProvider = time }
            .AddRetry(new RetryStrategyOptions<bool>
            {
                ShouldHandle = static args => ValueTask.FromResult(args.Outcome is { Result: false }),
                MaxRetryAttempts = int.MaxValue,
                BackoffType = backoff,
                UseJitter = true,
                Delay = delay,
                MaxDelay = maxDelay,
            })
            .Build();

    [LoggerMessage(EventId = 4101, Level = LogLevel.Debug, Message = "Pool '{Pool:l}': key '{KeyName:l}' is still out of service after a background check ({Result:l}).")]
    private static partial void LogStillDead(ILogger logger, string pool, string keyName, string result);

    [LoggerMessage(EventId = 4102, Level = LogLevel.Error, Message = "Pool '{Pool:l}': watching key '{KeyName:l}' failed; it will be looked at again on its next change.")]
    private static partial void LogWatchFailed(ILogger logger, string pool, string keyName, Exception exception);
}
