using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Usage;

/// <summary>
/// Reads the usage figures for <c>/status</c> and the hourly summary: from Redis when it is there and answers (the
/// deployment's), else from this replica's own store, saying so.
/// </summary>
internal sealed class UsageFigures(MemoryUsageStore local, PriceTable prices, ClientBudgets budgets, IOptions<UsageOptions> options, TimeProvider time, IServiceProvider services)
{
    private const string NotRead = "Usage:Enabled is false: this replica reads no usage from the answers it delivers, and they are in no figure here.";

    private const string Deployment = "deployment";
    private const string Replica = "replica";

    private readonly RedisUsageStore? _shared = services.GetService<RedisUsageStore>();

    /// <summary>Gets whether the figures are kept for several replicas (Redis).</summary>
    public bool Shared => _shared is not null;

    public async Task<UsageReport> ReportAsync()
    {
        var minute = UsageRetention.MinuteOf(time.GetUtcNow());
        var hour = UsageRetention.HourOf(minute);
        var ((lastHour, lastDay), scope, note) = await ReadAsync(async store =>
            (await store.ReadAsync(UsageGrain.Minute, minute - 59, minute), await store.ReadAsync(UsageGrain.Hour, hour - 23, hour)));
        return new UsageReport(
            scope,
            options.Value.Enabled ? note : note is null ? NotRead : $"{NotRead} {note}",
            prices.Currency,
            Window(lastHour, Minutes(minute - 59), Minutes(minute + 1)),
            Window(lastDay, Minutes((hour - 23) * 60), Minutes((hour + 1) * 60)),
            budgets.Status());
    }

    /// <summary>Returns the figures of one whole hour (Unix hours), and whether they are the deployment's.</summary>
    public async Task<(UsageWindow Window, bool Deployment)> HourAsync(long hour)
    {
        var (rows, scope, _) = await ReadAsync(store => store.ReadAsync(UsageGrain.Hour, hour, hour));
        return (Window(rows, Minutes(hour * 60), Minutes((hour + 1) * 60)), scope == Deployment);
    }

    /// <summary>Reads from the deployment's figures where Redis answers, else from this replica's, and says which.</summary>
    private async Task<(T Value, string Scope, string? Note)> ReadAsync<T>(Func<IUsageStore, Task<T>> read)
    {
        var (store, scope, note) = _shared switch
        {
            { Connected: true } shared => ((IUsageStore)shared, Deployment, (string?)null),
            not null => (local, Replica, "Redis is unreachable: these are this replica's own figures."),
            null => (local, Replica, "No shared store (Redis) is configured: these are this process's figures, the whole deployment's only if it runs alone."),
        };
        try
        {
            return (await read(store), scope, note);
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException)
        {
            return (await read(local), Replica, "Redis could not be read just now: these are this replica's own figures.");
        }
    }

    private static DateTimeOffset Minutes(long unixMinutes) => DateTimeOffset.FromUnixTimeSeconds(unixMinutes * 60);

    private UsageWindow Window(Dictionary<UsageRow, UsageCounts> rows, DateTimeOffset from, DateTimeOffset to)
    {
        var keys = rows.Where(r => r.Key.Of == UsageOf.Key).GroupBy(r => (r.Key.Pool, r.Key.Name))
            .Select(g => Figure(g) with { Pool = g.Key.Pool, Key = g.Key.Name });
        var clients = rows.Where(r => r.Key.Of == UsageOf.Client).GroupBy(r => r.Key.Name)
            .Select(g => Figure(g) with { Client = g.Key });
        // Every answer is counted once under its key and once under its client: the keys' rows make the total.
        var total = Figure(rows.Where(r => r.Key.Of == UsageOf.Key)) with { Models = null };
        return new UsageWindow(from, to, total, Largest(keys), Largest(clients));
    }

    private static List<UsageFigure> Largest(IEnumerable<UsageFigure> figures)
        => [.. figures.OrderByDescending(f => f.Tokens).ThenBy(f => f.Pool + "/" + f.Key + f.Client, StringComparer.Ordinal)];

    private UsageFigure Figure(IEnumerable<KeyValuePair<UsageRow, UsageCounts>> rows)
    {
        var byModel = rows.GroupBy(r => r.Key.Model, r => r.Value)
            .Select(g => (Model: g.Key, Counts: g.Aggregate(default(UsageCounts), (a, b) => a + b)))
            .OrderByDescending(m => m.Counts.Tokens)
            .ToList();
        var sum = byModel.Aggregate(default(UsageCounts), (a, m) => a + m.Counts);
        var priced = prices.Currency is not null;
        decimal? cost = priced ? 0m : null;
        long? unpriced = priced ? 0 : null;
        var models = new List<UsageModelFigure>(byModel.Count);
        foreach (var (model, counts) in byModel)
        {
            var modelCost = prices.Cost(model, counts);
            if (priced)
            {
                cost += modelCost ?? 0m;
                unpriced += modelCost is null ? counts.Tokens : 0;
            }

            models.Add(new UsageModelFigure(model, counts.Requests, counts.Input, counts.Output, counts.CacheRead, counts.CacheCreation, modelCost is { } c ? Math.Round(c, 6) : null));
        }

        return new UsageFigure(sum.Requests, sum.Input, sum.Output, sum.CacheRead, sum.CacheCreation)
        {
            Cost = cost is { } total ? Math.Round(total, 6) : null,
            UnpricedTokens = unpriced,
            Models = models,
        };
    }
}
