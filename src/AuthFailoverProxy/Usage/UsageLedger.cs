using System.Collections.Concurrent;
using System.Numerics;
using System.Runtime.InteropServices;
using AuthFailoverProxy.Telemetry;

namespace AuthFailoverProxy.Usage;

/// <summary>
/// Where this replica counts what every delivered answer spent, by pool, key, client and model, since it started. The
/// request path finds its row (the row counted last, compared by its labels, else one dictionary look-up) and makes a few
/// interlocked adds on this core's part of it: no lock, no allocation, no cache line that every core writes, and nothing
/// leaves the process. The sync (<see cref="UsageSync"/>) takes what was added since its last
/// take, rolled up per key and per client; the metrics read the totals at a scrape (<c>afp.tokens</c>).
/// </summary>
internal sealed class UsageLedger
{
    private readonly ConcurrentDictionary<UsageSource, Cell> _cells = new();
    private readonly Lock _taking = new();

    // The row counted last: most answers go to the row of the answer before (the labels are the same instances, so
    // comparing them is comparing references), which spares hashing four strings.
    private Cell? _last;

    /// <summary>Counts one delivered answer; <paramref name="model"/> is a bounded label (<see cref="ModelLabels"/>).</summary>
    public void Record(string pool, string key, string client, string model, TokenUsage usage)
    {
        var source = new UsageSource(pool, key, client, model);
        var cell = Volatile.Read(ref _last);
        if (cell is null || cell.Source != source)
        {
            cell = _cells.TryGetValue(source, out var found) ? found : _cells.GetOrAdd(source, static s => new Cell(s));
            Volatile.Write(ref _last, cell);
        }

        cell.Add(usage);
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

    /// <summary>
    /// One row's counts, kept in one part per core (up to eight, each on cache lines of its own) and summed when
    /// read: every core adds to its own part, so answers finishing on two cores at once do not pass a line between them.
    /// </summary>
    private sealed class Cell(UsageSource source)
    {
        private static readonly int Parts = (int)Math.Min(8, BitOperations.RoundUpToPowerOf2((uint)Environment.ProcessorCount));

        private readonly Part[] _parts = new Part[Parts];

        // What the last take saw; only ever touched under the ledger's take lock.
        private UsageCounts _taken;

        public UsageSource Source { get; } = source;

        public UsageCounts Totals
        {
            get
            {
                long requests = 0, input = 0, output = 0, cacheRead = 0, cacheCreation = 0;
                for (var i = 0; i < _parts.Length; i++)
                {
                    ref var part = ref _parts[i];
                    requests += Volatile.Read(ref part.Requests);
                    input += Volatile.Read(ref part.Input);
                    output += Volatile.Read(ref part.Output);
                    cacheRead += Volatile.Read(ref part.CacheRead);
                    cacheCreation += Volatile.Read(ref part.CacheCreation);
                }

                return new(requests, input, output, cacheRead, cacheCreation);
            }
        }

        public void Add(TokenUsage usage)
        {
            // Interlocked still: a thread may be moved to another core between reading its number and adding.
            ref var part = ref _parts[Thread.GetCurrentProcessorId() & (Parts - 1)];
            Interlocked.Increment(ref part.Requests);
            Interlocked.Add(ref part.Input, usage.Input);
            Interlocked.Add(ref part.Output, usage.Output);
            if (usage.CacheRead != 0)
            {
                Interlocked.Add(ref part.CacheRead, usage.CacheRead);
            }

            if (usage.CacheCreation != 0)
            {
                Interlocked.Add(ref part.CacheCreation, usage.CacheCreation);
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

    /// <summary>
    /// One core's part of a ledger row, padded so that no two parts share a cache line however the array is aligned: its
    /// 40 bytes and 88 of padding.
    /// </summary>
    [StructLayout(LayoutKind.Explicit, Size = 128)]
    private struct Part
    {
        [FieldOffset(0)]
        public long Requests;

        [FieldOffset(8)]
        public long Input;

        [FieldOffset(16)]
        public long Output;

        [FieldOffset(24)]
        public long CacheRead;

        [FieldOffset(32)]
        public long CacheCreation;
    }
}

/// <summary>Where tokens were spent: a key of a pool, the client it answered, and the model label. Never a secret.</summary>
internal readonly record struct UsageSource(string Pool, string Key, string Client, string Model);
