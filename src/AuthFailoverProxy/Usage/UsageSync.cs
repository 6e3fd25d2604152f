using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Usage;

/// <summary>
/// Every <see cref="UsageOptions.SyncInterval"/>: takes what the request path counted (<see cref="UsageLedger"/>) into
/// this replica's figures and, with Redis, into the deployment's; syncs the client budgets; and once an hour has ended,
/// lets one replica write its summary to the audit trail. Counts Redis could not take are kept (for a day at most) and
/// sent when it is back; budgets meanwhile decide on what this replica knows (<see cref="ClientBudgets"/>).
/// </summary>
internal sealed partial class UsageSync(
    UsageLedger ledger,
    MemoryUsageStore local,
    ClientBudgets budgets,
    UsageSummaries summaries,
    IOptions<UsageOptions> options,
    TimeProvider time,
    IServiceProvider services,
    ILogger<UsageSync> logger) : BackgroundService
{
    private readonly RedisUsageStore? _shared = services.GetService<RedisUsageStore>();
    private readonly SortedDictionary<long, Dictionary<UsageRow, UsageCounts>> _unsent = [];
    private bool _failing;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.SyncInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                await SyncAsync();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        // What the last answers spent still counts: one more sync on the way out.
        await SyncAsync();
    }

    /// <summary>One sync; never throws, so a failure of one never stops the next.</summary>
    internal async Task SyncAsync()
    {
        try
        {
            var now = time.GetUtcNow();
            var minute = UsageRetention.MinuteOf(now);
            var taken = ledger.Take();
            if (taken.Count > 0)
            {
                await local.AddAsync(minute, taken);
            }

            if (_shared is { } shared)
            {
                Keep(minute, taken);
                await SendAsync(shared, minute);
                await budgets.SyncAsync(shared);
            }

            await summaries.SummarizeAsync(now);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            LogSyncFailed(logger, ex);
        }
    }

    private void Keep(long minute, List<(UsageRow Row, UsageCounts Counts)> taken)
    {
        if (taken.Count == 0)
        {
            return;
        }

        if (!_unsent.TryGetValue(minute, out var rows))
        {
            _unsent[minute] = rows = [];
        }

        foreach (var (row, counts) in taken)
        {
            UsageRetention.Sum(rows, row, counts);
        }
    }

    private async Task SendAsync(RedisUsageStore shared, long now)
    {
        // A day's worth at most: the figures serve the last hour and the last day.
        while (_unsent.Count > 0 && _unsent.First().Key < now - (UsageRetention.Hours * 60))
        {
            _unsent.Remove(_unsent.First().Key);
        }

        if (_unsent.Count == 0 || !shared.Connected)
        {
            return;
        }

        try
        {
            foreach (var (minute, rows) in _unsent.ToList())
            {
                await shared.AddAsync(minute, [.. rows.Select(r => (r.Key, r.Value))]);
                _unsent.Remove(minute);
            }

            _failing = false;
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException or ObjectDisposedException)
        {
            if (!_failing)
            {
                _failing = true;
                LogSendFailed(logger, _unsent.Count, ex.Message);
            }
        }
    }

    [LoggerMessage(EventId = 1601, Level = LogLevel.Warning, Message = "Usage figures could not be sent to Redis ({Reason:l}); {Minutes} minutes of counts are kept and sent when it answers again.")]
    private static partial void LogSendFailed(ILogger logger, int minutes, string reason);

    [LoggerMessage(EventId = 1602, Level = LogLevel.Error, Message = "A usage sync failed; the next one runs as usual.")]
    private static partial void LogSyncFailed(ILogger logger, Exception exception);
}
