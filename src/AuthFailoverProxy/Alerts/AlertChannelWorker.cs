using System.Threading.Channels;
using AuthFailoverProxy.Events;

namespace AuthFailoverProxy.Alerts;

/// <summary>
/// One channel's queue and the loop that empties it, so a slow or dead channel delays no other. A full queue drops
/// its oldest alert (counted). Each delivery is told as an event, for the audit trail and the metrics:
/// <c>alert.delivered</c> (Info) when it arrived, <c>alert.failed</c> (Error, incident <c>alert-channel:{name}</c>)
/// when it did not after its retries; either way the actor is the channel's name and the status the receiver's HTTP
/// status. The dispatcher forwards the first <c>alert.failed</c> of a streak to the other channels, and the
/// <c>alert.restored</c> that ends it when the channel works again.
/// </summary>
internal sealed partial class AlertChannelWorker
{
    private readonly Channel<Alert> _queue;
    private readonly ProxyEvents _events;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private string _state = "untested";
    private DateTimeOffset? _lastDelivery;
    private AlertErrorStatus? _lastError;
    private DateTimeOffset? _failingSince;
    private string? _test;
    private long _sent;
    private long _failed;
    private long _dropped;

    public AlertChannelWorker(IAlertChannel channel, AlertFilter filter, int capacity, ProxyEvents events, TimeProvider time, ILogger logger)
    {
        Channel = channel;
        Filter = filter;
        _events = events;
        _time = time;
        _logger = logger;
        _queue = System.Threading.Channels.Channel.CreateBounded<Alert>(
            new BoundedChannelOptions(capacity) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true },
            OnDropped);
    }

    public IAlertChannel Channel { get; }

    public AlertFilter Filter { get; }

    public string Name => Channel.Name;

    /// <summary>Gets the incident a failing channel opens: <c>alert-channel:{name}</c>.</summary>
    public string Incident => $"alert-channel:{Name}";

    public void Enqueue(Alert alert) => _queue.Writer.TryWrite(alert);

    public AlertChannelStatus Status()
    {
        lock (_lock)
        {
            return new AlertChannelStatus(Name, Channel.Type, _state, _lastDelivery, _lastError, _sent, _failed, Interlocked.Read(ref _dropped), _queue.Reader.Count, _test);
        }
    }

    public async Task RunAsync(CancellationToken stoppingToken)
    {
        try
        {
            await foreach (var alert in _queue.Reader.ReadAllAsync(stoppingToken))
            {
                await DeliverAsync(alert, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down; what is still queued is lost with the process.
        }
    }

    private async Task DeliverAsync(Alert alert, CancellationToken stoppingToken)
    {
        AlertOutcome outcome;
        try
        {
            var status = await Channel.SendAsync(alert, stoppingToken);
            outcome = new AlertOutcome(true, status, null);
        }
        catch (AlertDeliveryException ex)
        {
            outcome = new AlertOutcome(false, ex.Status, ex.Message);
        }
        catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
        {
            // A bug in a channel must not end the loop; the type says enough and holds no secret.
            outcome = new AlertOutcome(false, null, $"unexpected {ex.GetType().Name}");
        }

        Record(alert, outcome);
        alert.Outcome?.TrySetResult(outcome);
    }

    private void Record(Alert alert, AlertOutcome outcome)
    {
        var now = _time.GetUtcNow();
        bool failedNow, restoredNow;
        TimeSpan failedFor = default;
        lock (_lock)
        {
            failedNow = !outcome.Delivered && _state != "failing";
            restoredNow = outcome.Delivered && _state == "failing";
            if (restoredNow)
            {
                failedFor = now - (_failingSince ?? now);
            }

            if (outcome.Delivered)
            {
                _sent++;
                _lastDelivery = now;
                _state = "ok";
                _failingSince = null;
            }
            else
            {
                _failed++;
                _lastError = new AlertErrorStatus(outcome.Error!, now);
                _state = "failing";
                _failingSince ??= now;
            }

            if (alert.Action == AlertAction.Test)
            {
                _test = outcome.Delivered ? "delivered" : $"failed: {outcome.Error}";
            }
        }

        var what = $"{alert.Event.Kind} ({alert.Action.ToString().ToLowerInvariant()})";
        if (outcome.Delivered)
        {
            _events.Publish(new ProxyEvent
            {
                Kind = EventKinds.AlertDelivered,
                Severity = EventSeverity.Info,
                At = now,
                Message = $"Alert {what} delivered to channel '{Name}' ({Channel.Type}).",
                Actor = Name,
                Status = outcome.Status,
            });
        }
        else
        {
            if (failedNow)
            {
                LogFailing(_logger, Name, Channel.Type, alert.Event.Kind, outcome.Error!);
            }

            // Every failed delivery is recorded; the dispatcher tells the other channels once per streak (same incident, same kind).
            _events.Publish(new ProxyEvent
            {
                Kind = EventKinds.AlertFailed,
                Severity = EventSeverity.Error,
                At = now,
                Message = $"Alert channel '{Name}' ({Channel.Type}) cannot deliver: {outcome.Error} (alert {what}). Alerts meant for it are lost until it works again.",
                Remediation = $"Check Alerts:Channels:{Name} (its URL or credentials) and that the receiver is reachable from the proxy; GET /status shows the channel's last error.",
                Actor = Name,
                Status = outcome.Status,
                Incident = Incident,
            });
        }

        if (restoredNow)
        {
            LogRestored(_logger, Name, Channel.Type);
            _events.Publish(new ProxyEvent
            {
                Kind = EventKinds.AlertRestored,
                Severity = EventSeverity.Info,
                At = now,
                Message = $"Alert channel '{Name}' ({Channel.Type}) delivers again after {ProxyEventSources.Describe(failedFor)} failing.",
                Actor = Name,
                Incident = Incident,
                Resolves = true,
            });
        }
    }

    private void OnDropped(Alert alert)
    {
        Interlocked.Increment(ref _dropped);
        alert.Outcome?.TrySetResult(new AlertOutcome(false, null, "dropped: the channel's queue was full"));
        LogDropped(_logger, Name, alert.Event.Kind);
    }

    [LoggerMessage(EventId = 7010, Level = LogLevel.Warning, Message = "Alert channel '{Channel:l}' ({Type:l}) failed to deliver {Kind:l} after its retries: {Reason:l}. The other channels are told (alert.failed).")]
    private static partial void LogFailing(ILogger logger, string channel, string type, string kind, string reason);

    [LoggerMessage(EventId = 7011, Level = LogLevel.Information, Message = "Alert channel '{Channel:l}' ({Type:l}) delivers again.")]
    private static partial void LogRestored(ILogger logger, string channel, string type);

    [LoggerMessage(EventId = 7012, Level = LogLevel.Warning, Message = "Alert channel '{Channel:l}' has too many alerts waiting: the oldest ({Kind:l}) was dropped (Alerts:QueueCapacity).")]
    private static partial void LogDropped(ILogger logger, string channel, string kind);
}
