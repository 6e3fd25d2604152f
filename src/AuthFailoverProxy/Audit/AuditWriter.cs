using System.Threading.Channels;
using AuthFailoverProxy.Events;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Audit;

/// <summary>
/// Records every event in the <see cref="IAuditTrail"/> from a background loop, never on the path that published it:
/// events are taken as they come and written in batches, each made durable before the next. While the trail cannot be
/// written (Redis unreachable, disk full) they are kept in memory, in order, up to <see cref="AuditOptions.MaxBuffered"/>,
/// and written as soon as it can be: on the next event, or every <see cref="AuditOptions.RetryInterval"/>. At shutdown
/// what was said until then is written if the trail takes it.
/// </summary>
/// <remarks>Its dependencies are resolved when it starts: hosted services are built before the host validates options.</remarks>
internal sealed partial class AuditWriter(IServiceProvider services, ProxyEvents events, TimeProvider time, ILogger<AuditWriter> logger) : IHostedService, IDisposable
{
    private const int BatchSize = 256;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Queue<ProxyEvent> _pending = new();
    private ChannelReader<ProxyEvent>? _reader;
    private IAuditTrail? _trail;
    private AuditOptions? _options;
    private Task? _loop;
    private bool _failing;
    private bool _overflowTold;
    private long _written;

    /// <summary>Gets how many events this replica has written to the trail.</summary>
    public long Written => Interlocked.Read(ref _written);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _options = services.GetRequiredService<IOptions<AuditOptions>>().Value;
        if (!_options.Enabled)
        {
            return Task.CompletedTask;
        }

        _trail = services.GetRequiredService<IAuditTrail>();
        // Subscribed before the services that follow start, so what they tell at start is recorded too.
        _reader = events.Subscribe();
        LogRecording(logger, _trail.Where);
        _loop = Task.Run(() => RunAsync(_stopping.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        if (_loop is not null)
        {
            await _loop.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    public void Dispose() => _stopping.Dispose();

    private async Task RunAsync(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await WaitAsync(stopping);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                break;
            }

            Take();
            await WriteAsync(stopping);
        }

        // Shutting down: the last events (often the most telling) are written if the trail takes them now.
        Take();
        await WriteAsync(CancellationToken.None);
        if (_pending.Count > 0)
        {
            LogLost(logger, _pending.Count, _trail!.Where);
        }
    }

    /// <summary>Waits for the next event; while writes fail, also for the retry interval, whichever comes first.</summary>
    private async Task WaitAsync(CancellationToken stopping)
    {
        if (!_failing)
        {
            await _reader!.WaitToReadAsync(stopping);
            return;
        }

        using var either = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        await Task.WhenAny(_reader!.WaitToReadAsync(either.Token).AsTask(), Task.Delay(_options!.RetryInterval, time, either.Token));
        await either.CancelAsync();
        stopping.ThrowIfCancellationRequested();
    }

    private void Take()
    {
        while (_reader!.TryRead(out var proxyEvent))
        {
            _pending.Enqueue(proxyEvent);
            if (_pending.Count > _options!.MaxBuffered)
            {
                _pending.Dequeue();
                if (!_overflowTold)
                {
                    _overflowTold = true;
                    LogOverflow(logger, _options.MaxBuffered, _trail!.Where);
                }
            }
        }
    }

    private async Task WriteAsync(CancellationToken cancellationToken)
    {
        var kept = _pending.Count;
        while (_pending.Count > 0)
        {
            var batch = _pending.Take(BatchSize).ToList();
            int stored;
            try
            {
                stored = await _trail!.AppendAsync(batch, cancellationToken);
            }
            catch (AuditTrailUnavailableException ex)
            {
                Failed(ex.Message);
                return;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }

            for (var i = 0; i < stored; i++)
            {
                _pending.Dequeue();
            }

            Interlocked.Add(ref _written, stored);
            if (stored < batch.Count)
            {
                Failed($"{batch.Count - stored} of {batch.Count} events were not stored");
                return;
            }
        }

        if (_failing)
        {
            _failing = false;
            _overflowTold = false;
            LogWritingAgain(logger, _trail!.Where, kept);
        }
    }

    private void Failed(string reason)
    {
        if (!_failing)
        {
            _failing = true;
            LogUnavailable(logger, reason, _pending.Count, _options!.MaxBuffered);
        }
    }

    [LoggerMessage(EventId = 8001, Level = LogLevel.Information, Message = "Recording every event {Where:l}.")]
    private static partial void LogRecording(ILogger logger, string where);

    [LoggerMessage(EventId = 8002, Level = LogLevel.Warning,
        Message = "The audit trail cannot be written: {Reason:l}. {Kept} event(s) are kept in memory (at most {MaxBuffered}) and written in order as soon as it can be.")]
    private static partial void LogUnavailable(ILogger logger, string reason, int kept, int maxBuffered);

    [LoggerMessage(EventId = 8003, Level = LogLevel.Information, Message = "The audit trail is written again {Where:l}: {Kept} kept event(s) written in order.")]
    private static partial void LogWritingAgain(ILogger logger, string where, int kept);

    [LoggerMessage(EventId = 8004, Level = LogLevel.Error,
        Message = "The audit trail's memory buffer is full ({MaxBuffered} events): the oldest kept events are dropped until it can be written {Where:l} again. Raise Audit:MaxBuffered to keep more.")]
    private static partial void LogOverflow(ILogger logger, int maxBuffered, string where);

    [LoggerMessage(EventId = 8005, Level = LogLevel.Error, Message = "{Count} event(s) could not be written {Where:l} before shutdown and are lost.")]
    private static partial void LogLost(ILogger logger, int count, string where);
}
