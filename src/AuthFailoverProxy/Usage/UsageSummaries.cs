using System.Globalization;
using System.Text;
using AuthFailoverProxy.Events;
using AuthFailoverProxy.State;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Usage;

/// <summary>
/// Writes each hour's spending to the audit trail as one <c>usage.summary</c> event, a little after the hour ends (once
/// every replica's last counts are in): the total, and the largest keys and clients, with the cost where there is a price
/// table. One replica writes it for the deployment (a claim in the store); an hour with no answers writes nothing.
/// </summary>
internal sealed class UsageSummaries(UsageFigures figures, ProxyEvents events, IOptions<UsageOptions> options, TimeProvider time, IServiceProvider services)
{
    private const int Largest = 5;

    // The hour in progress when this process started is summarized when it ends: from Redis that is the deployment's
    // whole hour; alone, it is what this process saw of it, and the summary says whose figures they are.
    private long _summarized = UsageRetention.HourOf(UsageRetention.MinuteOf(time.GetUtcNow())) - 1;

    public async Task SummarizeAsync(DateTimeOffset now)
    {
        // Every replica's last counts of the hour arrive within a sync interval or two.
        var hour = UsageRetention.HourOf(UsageRetention.MinuteOf(now - (2 * options.Value.SyncInterval) - TimeSpan.FromSeconds(1))) - 1;
        if (hour <= _summarized)
        {
            return;
        }

        _summarized = hour;
        var store = services.GetRequiredService<IKeyStateStore>();
        if (!await store.TryClaimAsync($"usage-summary:{hour}", TimeSpan.FromHours(2)))
        {
            return;
        }

        var (window, deployment) = await figures.HourAsync(hour);
        if (window.Total.Requests == 0)
        {
            return;
        }

        events.Publish(new ProxyEvent
        {
            Kind = EventKinds.UsageSummary,
            Severity = EventSeverity.Info,
            At = time.GetUtcNow(),
            Message = Describe(window, deployment, figures.Shared),
        });
    }

    internal string Describe(UsageWindow window, bool deployment, bool shared)
    {
        var text = new StringBuilder();
        var total = window.Total;
        text.Append(CultureInfo.InvariantCulture, $"From {window.From:HH:mm} to {window.To:HH:mm} UTC ")
            .Append(deployment ? "the deployment" : shared ? "this replica (Redis could not be read)" : "this proxy")
            .Append(CultureInfo.InvariantCulture, $" spent {total.Tokens:N0} tokens in {total.Requests:N0} answers (input {total.InputTokens:N0}");
        if (total.CacheReadTokens + total.CacheCreationTokens > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $", of which {total.CacheReadTokens:N0} read from and {total.CacheCreationTokens:N0} written to the cache");
        }

        text.Append(CultureInfo.InvariantCulture, $"; output {total.OutputTokens:N0})");
        AppendCost(text, total, options.Value.Currency, ", about ");
        text.Append(". By key: ");
        List(text, window.Keys, f => $"{f.Pool}/{f.Key}");
        text.Append(". By client: ");
        List(text, window.Clients, f => f.Client!);
        return text.Append('.').ToString();
    }

    private static void List(StringBuilder text, IReadOnlyList<UsageFigure> figures, Func<UsageFigure, string> name)
    {
        for (var i = 0; i < Math.Min(Largest, figures.Count); i++)
        {
            text.Append(i == 0 ? string.Empty : ", ").Append(name(figures[i])).Append(CultureInfo.InvariantCulture, $" {figures[i].Tokens:N0}");
        }

        if (figures.Count > Largest)
        {
            text.Append(CultureInfo.InvariantCulture, $" and {figures.Count - Largest} more");
        }
    }

    private static void AppendCost(StringBuilder text, UsageFigure figure, string currency, string lead)
    {
        if (figure.Cost is { } cost)
        {
            text.Append(lead).Append(CultureInfo.InvariantCulture, $"{cost:0.00} {currency}");
            if (figure.UnpricedTokens is > 0 and var unpriced)
            {
                text.Append(CultureInfo.InvariantCulture, $" (not counting {unpriced:N0} tokens of models without a price)");
            }
        }
    }
}
