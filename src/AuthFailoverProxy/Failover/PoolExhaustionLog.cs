using System.Collections.Concurrent;
using AuthFailoverProxy.KeyPool;

namespace AuthFailoverProxy.Failover;

/// <summary>
/// Says loudly, at Error, that a pool has no usable key, without writing a line per refused request: the first
/// refusal is logged at once, then one reminder per interval with how many requests were refused meanwhile.
/// </summary>
internal sealed partial class PoolExhaustionLog(TimeProvider time, ILogger<PoolExhaustionLog> logger)
{
    private static readonly TimeSpan ReminderInterval = TimeSpan.FromMinutes(1);
    private readonly ConcurrentDictionary<string, Tracker> _pools = new(StringComparer.Ordinal);

    public void Report(Pool pool, string message)
    {
        var tracker = _pools.GetOrAdd(pool.Name, static _ => new Tracker());
        var now = time.GetTimestamp();
        var refused = Interlocked.Increment(ref tracker.Refused);
        var last = Volatile.Read(ref tracker.LastLogged);
        if (last != 0 && time.GetElapsedTime(last, now) < ReminderInterval)
        {
            return;
        }

        if (Interlocked.CompareExchange(ref tracker.LastLogged, now, last) != last)
        {
            return;
        }

        Interlocked.Add(ref tracker.Refused, -refused);
        LogExhausted(logger, pool.Name, refused, message);
    }

    [LoggerMessage(EventId = 3010, Level = LogLevel.Error, Message = "Pool '{Pool:l}' refused {Refused} request(s) with 503: {Report:l}")]
    private static partial void LogExhausted(ILogger logger, string pool, long refused, string report);

    private sealed class Tracker
    {
#pragma warning disable SA1401, CA1051 // Fields are updated with Interlocked.
        public long Refused;
        public long LastLogged;
#pragma warning restore SA1401, CA1051
    }
}
