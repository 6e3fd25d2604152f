using AuthFailoverProxy.Events;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Alerts;

/// <summary>The configured channels, each with its own queue and loop, in name order.</summary>
/// <remarks>Built on first use, after the host validated <see cref="AlertOptions"/>.</remarks>
internal sealed class AlertChannels(IOptions<AlertOptions> options, AlertDelivery delivery, ProxyEvents events, TimeProvider time, ILogger<AlertChannels> logger)
{
    private readonly Lazy<IReadOnlyList<AlertChannelWorker>> _workers = new(() =>
    [
        .. options.Value.Channels
            .OrderBy(c => c.Key, StringComparer.Ordinal)
            .Select(c => new AlertChannelWorker(Create(c.Key, c.Value, delivery), AlertFilter.From(c.Value), options.Value.QueueCapacity, events, time, logger)),
    ]);

    public IReadOnlyList<AlertChannelWorker> Workers => _workers.Value;

    /// <summary>"ops (slack), pager (pagerduty)": names and types, never a URL.</summary>
    public string Describe() => string.Join(", ", Workers.Select(w => $"{w.Name} ({w.Channel.Type})"));

    internal static IAlertChannel Create(string name, AlertChannelOptions channel, AlertDelivery delivery)
        => channel.Type?.Trim().ToLowerInvariant() switch
        {
            AlertChannelTypes.Webhook => new WebhookAlertChannel(name, channel, delivery),
            AlertChannelTypes.Slack => new SlackAlertChannel(name, channel, delivery),
            AlertChannelTypes.Discord => new DiscordAlertChannel(name, channel, delivery),
            AlertChannelTypes.Teams => new TeamsAlertChannel(name, channel, delivery),
            AlertChannelTypes.PagerDuty => new PagerDutyAlertChannel(name, channel, delivery),
            AlertChannelTypes.Email => new EmailAlertChannel(name, channel, delivery),
            _ => throw new InvalidOperationException($"Alerts:Channels:{name}:Type is not a channel type."),
        };
}
