using AuthFailoverProxy.KeyPool;
using Polly;
using Polly.CircuitBreaker;

namespace AuthFailoverProxy.Failover;

/// <summary>
/// A pool's circuit breaker (Polly): when its upstream is down, the proxy stops sending to it, answers at once with a
/// clear 503 and retry-after, lets one trial call through after the break, and closes the circuit as soon as a
/// background check gets an answer. While the upstream is healthy the request path pays one timestamp comparison:
/// calls go through the breaker only while the pool is guarded, that is within one sampling window of an unwell answer
/// or while the circuit is not closed.
/// </summary>
internal sealed partial class UpstreamCircuit
{
    private readonly Pool _pool;
    private readonly CircuitBreakerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CircuitBreakerStateProvider _state = new();
    private readonly CircuitBreakerManualControl _control = new();
    private readonly long _guardTicks;
    private long _guardedUntil;
    private int _probing;
    // Mirrors "the circuit is not closed", kept by the transition callbacks: Polly's own state getter takes a lock,
    // which every request would contend on.
    private volatile bool _notClosed;

    public UpstreamCircuit(Pool pool, CircuitBreakerOptions options, Func<Pool, CancellationToken, Task<bool>> upstreamAnswers, TimeProvider time, ILogger logger, Events.ProxyEvents events, CancellationToken stopping)
    {
        _pool = pool;
        _options = options;
        _time = time;
        _logger = logger;
        _guardTicks = (long)(options.SamplingDuration.TotalSeconds * time.TimestampFrequency);
        UpstreamAnswers = upstreamAnswers;
        Stopping = stopping;
        Pipeline = new ResiliencePipelineBuilder<bool> { TimeProvider = time }
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions<bool>
            {
                // The outcome is "was the upstream unwell on this call".
                ShouldHandle = static args => ValueTask.FromResult(args.Outcome is { Result: true }),
                FailureRatio = options.FailureRatio,
                MinimumThroughput = options.MinimumThroughput,
                SamplingDuration = options.SamplingDuration,
                BreakDuration = options.BreakDuration,
                StateProvider = _state,
                ManualControl = _control,
                OnOpened = args =>
                {
                    // Re-opening after a failed trial call continues the same incident: told once.
                    var wasClosed = !_notClosed;
                    _notClosed = true;
                    LogOpened(_logger, _pool.Name, _pool.DestinationPrefix, args.BreakDuration);
                    if (wasClosed)
                    {
                        events.Publish(new Events.ProxyEvent
                        {
                            Kind = Events.EventKinds.CircuitOpened,
                            Severity = Events.EventSeverity.Error,
                            At = _time.GetUtcNow(),
                            Message = $"Pool '{_pool.Name}': circuit opened: the upstream {_pool.DestinationPrefix} is failing (connection errors, timeouts or 5xx on most calls). Agents get an immediate 503 with retry-after{(_pool.Fallback is { } f ? $", or pool '{f.Name}' serves (safe mode)" : string.Empty)} until it answers again.",
                            Remediation = "Check the provider's status page and the network path to the upstream; the proxy checks it in the background and closes the circuit by itself.",
                            Pool = _pool.Name,
                            Incident = $"circuit:{_pool.Name}",
                        });
                    }

                    StartProbing();
                    return default;
                },
                OnClosed = _ =>
                {
                    _notClosed = false;
                    LogClosed(_logger, _pool.Name, _pool.DestinationPrefix);
                    events.Publish(new Events.ProxyEvent
                    {
                        Kind = Events.EventKinds.CircuitClosed,
                        Severity = Events.EventSeverity.Info,
                        At = _time.GetUtcNow(),
                        Message = $"Pool '{_pool.Name}': circuit closed: the upstream {_pool.DestinationPrefix} answers again.",
                        Pool = _pool.Name,
                        Incident = $"circuit:{_pool.Name}",
                        Resolves = true,
                    });
                    return default;
                },
            })
            .Build();
    }

    public ResiliencePipeline<bool> Pipeline { get; }

    public CircuitState State => _state.CircuitState;

    /// <summary>Gets a value indicating whether calls must go through the breaker now.</summary>
    /// <remarks>
    /// Polly raises its transition callbacks shortly after the transition; the guard window, renewed by every unwell
    /// answer, covers that moment, since a circuit only opens on unwell answers.
    /// </remarks>
    public bool IsGuarded => _notClosed || _time.GetTimestamp() < Volatile.Read(ref _guardedUntil);

    private Func<Pool, CancellationToken, Task<bool>> UpstreamAnswers { get; }

    private CancellationToken Stopping { get; }

    /// <summary>Notes an unwell answer: the breaker sees every call for one sampling window from now.</summary>
    public void NoteUnwell() => Volatile.Write(ref _guardedUntil, _time.GetTimestamp() + _guardTicks);

    private void StartProbing()
    {
        if (Interlocked.Exchange(ref _probing, 1) == 1)
        {
            return;
        }

        _ = Task.Run(async () =>
        {
            try
            {
                while (_state.CircuitState != CircuitState.Closed && !Stopping.IsCancellationRequested)
                {
                    await Task.Delay(_options.ProbeInterval, _time, Stopping);
                    try
                    {
                        if (_state.CircuitState != CircuitState.Closed && await UpstreamAnswers(_pool, Stopping))
                        {
                            await _control.CloseAsync(Stopping);
                        }
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException)
                    {
                        // One failed check must not end the checking: the next interval tries again.
                        LogCheckFailed(_logger, _pool.Name, ex);
                    }
                }
            }
            catch (OperationCanceledException) when (Stopping.IsCancellationRequested)
            {
            }
            finally
            {
                Volatile.Write(ref _probing, 0);
            }
        }, CancellationToken.None);
    }

    [LoggerMessage(EventId = 3030, Level = LogLevel.Warning,
        Message = "Pool '{Pool:l}': circuit opened: the upstream {Upstream:l} is failing, so calls stop for {BreakDuration} and agents get an immediate 503 with retry-after. The keys are not blamed.")]
    private static partial void LogOpened(ILogger logger, string pool, string upstream, TimeSpan breakDuration);

    [LoggerMessage(EventId = 3032, Level = LogLevel.Warning, Message = "Pool '{Pool:l}': checking whether the upstream is back failed; the next check follows at the usual interval.")]
    private static partial void LogCheckFailed(ILogger logger, string pool, Exception exception);

    [LoggerMessage(EventId = 3031, Level = LogLevel.Information, Message = "Pool '{Pool:l}': circuit closed: the upstream {Upstream:l} answers again.")]
    private static partial void LogClosed(ILogger logger, string pool, string upstream);
}
