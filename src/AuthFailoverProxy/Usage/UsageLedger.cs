using System.Collections.Concurrent;
using AuthFailoverProxy.Telemetry;

namespace AuthFailoverProxy.Usage;

/// <summary>
/// Where this replica counts what every delivered answer spent, by pool, key, client and model, since it started. The
/// request path makes one dictionary look-up and a few interlocked adds on a row that already exists: no lock, no
/// allocation, and nothing leaves the process. The sync (<see cref="UsageSync"/>) takes what was added since its last
/// take, rolled up per key and per client; the metrics read the totals at a scrape (<c>afp.tokens</c>).
/// </summary>
internal sealed class UsageLedger
{
    private readonly ConcurrentDictionary<UsageSource, Cell> _cells = new();
    private readonly Lock _taking = new();

    /// <summary>Counts one delivered answer; <paramref name="model"/> is a bounded label (<see cref="ModelLabels"/>).</summary>
    public void Record(string pool, string key, string client, string model, TokenUsage usage)
    {
        var source = new UsageSource(pool, key, client, model);
        (_cells.TryGetValue(source, out var cell) ? cell : _cells.GetOrAdd(source, static _ => new Cell())).Add(usage);
    }

    /// <summary>
    /// Takes what was counted since the last take, one row per key (in its pool) and one per client, each by model. Rows
    /// with nothing new are left out.
    /// </summary>
    public List<(UsageRow Row, UsageCounts Counts)> Take()
    {
        var rows = new Dictionary<UsageRow, UsageCounts>();
        lock (_taking)
        {
            foreach (var (source, cell) in _cells)
            {
                if (cell.TakeNew() is { IsZero: false } counts)
                {
                    Add(rows, new UsageRow(UsageOf.Key, source.Pool, source.Key, source.Model), counts);
                    Add(rows, new UsageRow(UsageOf.Client, string.Empty, source.Client, source.Model), counts);
                }
            }
        }

        return [.. rows.Select(r => (r.Key, r.Value))];

        static void Add(Dictionary<UsageRow, UsageCounts> rows, UsageRow row, UsageCounts counts)
            => rows[row] = rows.TryGetValue(row, out var sum) ? sum + counts : counts;
    }

    /// <summary>Gets everything counted since this replica started, by pool, key, client and model.</summary>
    public IEnumerable<(UsageSource Source, UsageCounts Totals)> Totals()
    {
        foreach (var (source, cell) in _cells)
        {
            yield return (source, cell.Totals);
        }
    }

    private sealed class Cell
    {
        private long _requests;
        private long _input;
        private long _output;
        private long _cacheRead;
        private long _cacheCreation;

        // What the last take saw; only ever touched under the ledger's take lock.
        private UsageCounts _taken;

        public UsageCounts Totals => new(
            Volatile.Read(ref _requests), Volatile.Read(ref _input), Volatile.Read(ref _output), Volatile.Read(ref _cacheRead), Volatile.Read(ref _cacheCreation));

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

        /// <summary>
        /// Returns what was added since the last call. An answer being added meanwhile may count partly in this take and
        /// partly in the next: nothing is lost or counted twice.
        /// </summary>
        public UsageCounts TakeNew()
        {
            var totals = Totals;
            var taken = _taken;
            _taken = totals;
            return new(totals.Requests - taken.Requests, totals.Input - taken.Input, totals.Output - taken.Output,
                totals.CacheRead - taken.CacheRead, totals.CacheCreation - taken.CacheCreation);
        }
    }
}

/// <summary>Where tokens were spent: a key of a pool, the client it answered, and the model label. Never a secret.</summary>
internal readonly record struct UsageSource(string Pool, string Key, string Client, string Model);
