using System.Threading.Channels;
using AuthFailoverProxy.Events;

namespace AuthFailoverProxy.Telemetry;

/// <summary>
/// Counts what the event hub tells: every event by kind (<c>afp.events</c>), and alerts by channel and outcome
/// (<c>afp.alerts</c>, from <c>alert.delivered</c> and <c>alert.failed</c>, whose actor is the channel). Off the
/// request path: events are read from the hub's queue in the background.
/// </summary>
internal sealed class EventMetrics(ProxyEvents events, ProxyMetrics metrics) : BackgroundService
{
    private ChannelReader<ProxyEvent>? _reader;

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        // Subscribed before anything else starts publishing, so the startup events are counted too.
        _reader = events.Subscribe();
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await foreach (var proxyEvent in _reader!.ReadAllAsync(stoppingToken))
            {
                Count(proxyEvent);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private void Count(ProxyEvent proxyEvent)
    {
        metrics.EventRaised(proxyEvent.Kind);
        var outcome = proxyEvent.Kind switch
        {
            EventKinds.AlertDelivered => "delivered",
            EventKinds.AlertFailed => "failed",
            _ => null,
        };
        if (outcome is not null)
        {
            metrics.AlertSent(proxyEvent.Actor ?? "unknown", outcome);
        }
    }
}
