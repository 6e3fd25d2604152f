using System.Collections.Concurrent;
using AuthFailoverProxy.Telemetry;

namespace AuthFailoverProxy.Usage;

/// <summary>
/// Where this replica counts what every delivered answer spent, per key and per client, until the next sync takes it
/// (<see cref="UsageSync"/>). Counting is a dictionary look-up and a few interlocked adds on rows that already exist: no
/// lock, no allocation once a row is there, and nothing leaves the process on the request path.
/// </summary>
internal sealed class UsageLedger
{
    private readonly ConcurrentDictionary<UsageRow, Cell> _cells = new();

    /// <summary>Counts one delivered answer under its key and under its client; <paramref name="model"/> is a bounded label.</summary>
    public void Record(string pool, string key, string client, string model, TokenUsage usage)
    {
        CellOf(new UsageRow(UsageOf.Key, pool, key, model)).Add(usage);
        CellOf(new UsageRow(UsageOf.Client, string.Empty, client, model)).Add(usage);
    }

    /// <summary>Takes everything counted since the last take, leaving every row at zero.</summary>
    public List<(UsageRow Row, UsageCounts Counts)> Take()
    {
        var taken = new List<(UsageRow, UsageCounts)>();
        foreach (var (row, cell) in _cells)
        {
            if (cell.Take() is { IsZero: false } counts)
            {
                taken.Add((row, counts));
            }
        }

        return taken;
    }

    private Cell CellOf(UsageRow row) => _cells.TryGetValue(row, out var cell) ? cell : _cells.GetOrAdd(row, static _ => new Cell());

    private sealed class Cell
    {
        private long _requests;
        private long _input;
        private long _output;
        private long _cacheRead;
        private long _cacheCreation;

        public void Add(TokenUsage usage)
        {
            Interlocked.Increment(ref _requests);
            Interlocked.Add(ref _input, usage.Input);
            Interlocked.Add(ref _output, usage.Output);
            if (usage.CacheRead != 0)
            {
                Interlocked.Add(ref _cacheRead, usage.CacheRead);
            }

            if (usage.CacheCreation != 0)
            {
                Interlocked.Add(ref _cacheCreation, usage.CacheCreation);
            }
        }

        public UsageCounts Take() => new(
            Interlocked.Exchange(ref _requests, 0),
            Interlocked.Exchange(ref _input, 0),
            Interlocked.Exchange(ref _output, 0),
            Interlocked.Exchange(ref _cacheRead, 0),
            Interlocked.Exchange(ref _cacheCreation, 0));
    }
}
