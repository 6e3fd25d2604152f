using AuthFailoverProxy.Events;
using AuthFailoverProxy.Failover;

namespace AuthFailoverProxy.Alerts;

/// <summary>A place alerts go: a chat, a pager, a mailbox, a webhook. Each one is independent of the others and of the agents' traffic.</summary>
internal interface IAlertChannel
{
    /// <summary>Gets the channel's name (<c>Alerts:Channels:{name}</c>): what logs, events and /status show, never its URL.</summary>
    string Name { get; }

    /// <summary>Gets the channel's type, as configured (<c>slack</c>, <c>pagerduty</c>…).</summary>
    string Type { get; }

    /// <summary>Gets a value indicating whether reminder digests go here; PagerDuty escalates on its own and takes none.</summary>
    bool TakesReminders { get; }

    /// <summary>
    /// Returns whether this kind of channel is told of an event at all, whatever its filter: PagerDuty is not told of
    /// the start-up summary, which reports conditions whose own incidents it gets (and resolves when they clear).
    /// </summary>
    bool Takes(ProxyEvent e) => true;

    /// <summary>
    /// Delivers one alert, retrying with backoff and a per-attempt timeout. Returns the receiver's HTTP status, if it
    /// speaks HTTP; throws <see cref="AlertDeliveryException"/> with a reason fit to show when every attempt failed.
    /// </summary>
    Task<int?> SendAsync(Alert alert, CancellationToken cancellationToken);
}

/// <summary>A delivery failed after its retries. The message says why in words that never hold a URL or a secret.</summary>
internal sealed class AlertDeliveryException(string reason, int? status = null) : Exception(reason)
{
    public int? Status => status;
}

/// <summary>Takes a channel's credentials out of any text it shows: a receiver's answer, an exception message.</summary>
internal sealed class AlertRedactor(IEnumerable<string?> sensitive)
{
    // Longest first, so a URL goes before its path.
    private readonly string[] _sensitive = [.. sensitive.Where(s => s is { Length: >= 4 }).Cast<string>().Distinct().OrderByDescending(s => s.Length)];

    public string Redact(string text)
    {
        foreach (var value in _sensitive)
        {
            text = text.Replace(value, "…", StringComparison.Ordinal);
        }

        return SecretMasker.Mask(text) ?? string.Empty;
    }
}
