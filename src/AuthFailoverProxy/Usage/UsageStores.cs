using System.Globalization;
using AuthFailoverProxy.State;
using StackExchange.Redis;

namespace AuthFailoverProxy.Usage;

/// <summary>The grain of stored figures: by minute, for the last hour, and by hour, for the last day.</summary>
internal enum UsageGrain
{
    Minute,
    Hour,
}

/// <summary>Where usage figures are kept, by minute and by hour, for <c>/status</c> and the hourly summary.</summary>
internal interface IUsageStore
{
    /// <summary>Adds what was counted in <paramref name="minute"/> (Unix minutes) to that minute and to its hour.</summary>
    Task AddAsync(long minute, IReadOnlyList<(UsageRow Row, UsageCounts Counts)> rows);

    /// <summary>Returns the sum of the buckets from <paramref name="first"/> to <paramref name="last"/>, both included.</summary>
    Task<Dictionary<UsageRow, UsageCounts>> ReadAsync(UsageGrain grain, long first, long last);
}

/// <summary>How long each grain is kept: a little more than the window it serves.</summary>
internal static class UsageRetention
{
    public const int Minutes = 120;
    public const int Hours = 26;

    public static long HourOf(long minute) => minute / 60;

    public static long MinuteOf(DateTimeOffset time) => time.ToUnixTimeSeconds() / 60;

    public static void Sum(Dictionary<UsageRow, UsageCounts> into, UsageRow row, UsageCounts counts)
        => into[row] = into.TryGetValue(row, out var had) ? had + counts : counts;
}

/// <summary>
/// This replica's own figures, in memory. Without Redis they are the deployment's; with Redis they are what
/// <c>/status</c> falls back to, saying so, while Redis cannot be read.
/// </summary>
internal sealed class MemoryUsageStore : IUsageStore
{
    private readonly Lock _lock = new();
    private readonly SortedDictionary<long, Dictionary<UsageRow, UsageCounts>> _minutes = [];
    private readonly SortedDictionary<long, Dictionary<UsageRow, UsageCounts>> _hours = [];

    public Task AddAsync(long minute, IReadOnlyList<(UsageRow Row, UsageCounts Counts)> rows)
    {
        var hour = UsageRetention.HourOf(minute);
        lock (_lock)
        {
            var byMinute = Bucket(_minutes, minute, minute - UsageRetention.Minutes);
            var byHour = Bucket(_hours, hour, hour - UsageRetention.Hours);
            foreach (var (row, counts) in rows)
            {
                UsageRetention.Sum(byMinute, row, counts);
                UsageRetention.Sum(byHour, row, counts);
            }
        }

        return Task.CompletedTask;
    }

    public Task<Dictionary<UsageRow, UsageCounts>> ReadAsync(UsageGrain grain, long first, long last)
    {
        var sum = new Dictionary<UsageRow, UsageCounts>();
        lock (_lock)
        {
            foreach (var (at, bucket) in grain == UsageGrain.Minute ? _minutes : _hours)
            {
                if (at >= first && at <= last)
                {
                    foreach (var (row, counts) in bucket)
                    {
                        UsageRetention.Sum(sum, row, counts);
                    }
                }
            }
        }

        return Task.FromResult(sum);
    }

    private static Dictionary<UsageRow, UsageCounts> Bucket(SortedDictionary<long, Dictionary<UsageRow, UsageCounts>> buckets, long at, long expired)
    {
        while (buckets.Count > 0 && buckets.First().Key <= expired)
        {
            buckets.Remove(buckets.First().Key);
        }

        if (!buckets.TryGetValue(at, out var bucket))
        {
            buckets[at] = bucket = [];
        }

        return bucket;
    }
}

/// <summary>
/// The deployment's figures in Redis: a hash per minute (kept two hours) and per hour (kept 26 hours), every replica
/// adding its counts with <c>HINCRBY</c>; and the
/// budget counters (<c>{prefix}:budget:…</c>), whose <c>INCRBY</c> answers the deployment's total. Only the background
/// sync and <c>/status</c> call it, never the request path; every call may fail, and the caller keeps what it could not send.
/// </summary>
internal sealed class RedisUsageStore(RedisKeyStateStore store, RedisOptions options) : IUsageStore
{
    private const char Separator = '\u001f';
    private static readonly string[] Fields = ["r", "i", "o", "cr", "cc"];

    /// <summary>Gets whether Redis can be asked now.</summary>
    public bool Connected => store.Connection is { IsConnected: true };

    public async Task AddAsync(long minute, IReadOnlyList<(UsageRow Row, UsageCounts Counts)> rows)
    {
        // One transaction for the minute and its hour (one hash slot, see BucketKey): a sync that fails part-way adds
        // nothing, and the retry cannot count twice.
        var transaction = Database().CreateTransaction();
        var byMinute = (RedisKey)BucketKey(UsageGrain.Minute, minute);
        var byHour = (RedisKey)BucketKey(UsageGrain.Hour, UsageRetention.HourOf(minute));
        foreach (var (row, counts) in rows)
        {
            Span<long> values = [counts.Requests, counts.Input, counts.Output, counts.CacheRead, counts.CacheCreation];
            for (var i = 0; i < Fields.Length; i++)
            {
                if (values[i] != 0)
                {
                    var field = Field(row, Fields[i]);
                    _ = transaction.HashIncrementAsync(byMinute, field, values[i]);
                    _ = transaction.HashIncrementAsync(byHour, field, values[i]);
                }
            }
        }

        _ = transaction.KeyExpireAsync(byMinute, TimeSpan.FromMinutes(UsageRetention.Minutes));
        _ = transaction.KeyExpireAsync(byHour, TimeSpan.FromHours(UsageRetention.Hours));
        if (!await transaction.ExecuteAsync())
        {
            throw new RedisException("The usage transaction was not applied.");
        }
    }

    public async Task<Dictionary<UsageRow, UsageCounts>> ReadAsync(UsageGrain grain, long first, long last)
    {
        var database = Database();
        var reads = new List<Task<HashEntry[]>>();
        for (var at = first; at <= last; at++)
        {
            reads.Add(database.HashGetAllAsync(BucketKey(grain, at)));
        }

        var sum = new Dictionary<UsageRow, UsageCounts>();
        foreach (var entries in await Task.WhenAll(reads))
        {
            foreach (var entry in entries)
            {
                if (Parse(entry.Name.ToString()) is ({ } row, var field) && entry.Value.TryParse(out long value))
                {
                    UsageRetention.Sum(sum, row, field switch
                    {
                        "r" => new UsageCounts(value, 0, 0, 0, 0),
                        "i" => new UsageCounts(0, value, 0, 0, 0),
                        "o" => new UsageCounts(0, 0, value, 0, 0),
                        "cr" => new UsageCounts(0, 0, 0, value, 0),
                        _ => new UsageCounts(0, 0, 0, 0, value),
                    });
                }
            }
        }

        return sum;
    }

    /// <summary>Adds each delta to its counter (creating it with its time to live) and returns each counter's total.</summary>
    public async Task<long[]> IncrementAsync(IReadOnlyList<(string Key, long Delta, TimeSpan Ttl)> counters)
    {
        var database = Database();
        var totals = new Task<long>[counters.Count];
        var expiries = new List<Task>(counters.Count);
        for (var i = 0; i < counters.Count; i++)
        {
            var (key, delta, ttl) = counters[i];
            var name = (RedisKey)$"{options.KeyPrefix}:budget:{key}";
            totals[i] = database.StringIncrementAsync(name, delta);
            if (delta != 0)
            {
                expiries.Add(database.KeyExpireAsync(name, ttl));
            }
        }

        await Task.WhenAll(expiries);
        return await Task.WhenAll(totals);
    }

    private IDatabase Database() => store.Connection is { IsConnected: true } connection
        ? connection.GetDatabase()
        : throw new RedisException("Redis is not connected.");

    /// <summary>
    /// A minute's hash and its hour's share a hash tag, the hour (<c>{afp:usage:493812}:h</c> and
    /// <c>{afp:usage:493812}:m:29628720</c>), so a Redis Cluster keeps them in one slot and one transaction may add to both.
    /// </summary>
    private string BucketKey(UsageGrain grain, long at) => grain == UsageGrain.Minute
        ? string.Create(CultureInfo.InvariantCulture, $"{{{options.KeyPrefix}:usage:{UsageRetention.HourOf(at)}}}:m:{at}")
        : string.Create(CultureInfo.InvariantCulture, $"{{{options.KeyPrefix}:usage:{at}}}:h");

    private static string Field(UsageRow row, string field)
        => string.Join(Separator, row.Of == UsageOf.Key ? "k" : "c", row.Pool, row.Name, row.Model, field);

    private static (UsageRow? Row, string Field) Parse(string name)
    {
        var parts = name.Split(Separator);
        return parts is [var of and ("k" or "c"), var pool, var who, var model, var field]
            ? (new UsageRow(of == "k" ? UsageOf.Key : UsageOf.Client, pool, who, model), field)
            : (null, string.Empty);
    }
}
