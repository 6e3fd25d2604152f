using AuthFailoverProxy.State;

namespace AuthFailoverProxy.KeyPool;

/// <summary>How many answers of one kind a key gave requests for one model within the window.</summary>
internal sealed record RejectionCount(string Model, string Reason, int Status, string? Type, int Count);

/// <summary>
/// One key's request-specific rejections over a sliding window (<see cref="Window"/>), for <c>/status</c>. Bounded
/// (<see cref="MaxEntries"/>) whatever models clients name; past it the oldest go.
/// </summary>
internal sealed class RejectionTally
{
    /// <summary>The window counted over.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(10);

    /// <summary>The most answers kept within the window.</summary>
    public const int MaxEntries = 4096;

    private readonly Lock _lock = new();
    private readonly Queue<(long AtUnixMs, Entry Entry)> _entries = new();

    public void Add(DateTimeOffset at, string? model, string reason, KeyFailure answer)
    {
        var entry = new Entry(model ?? "(none)", reason, answer.Status, answer.ErrorType);
        lock (_lock)
        {
            _entries.Enqueue((at.ToUnixTimeMilliseconds(), entry));
            if (_entries.Count > MaxEntries)
            {
                _entries.Dequeue();
            }
        }
    }

    /// <summary>The counts within the window ending at <paramref name="now"/>, most frequent first; null when there are none.</summary>
    public IReadOnlyList<RejectionCount>? Counts(DateTimeOffset now)
    {
        var since = (now - Window).ToUnixTimeMilliseconds();
        lock (_lock)
        {
            while (_entries.TryPeek(out var oldest) && oldest.AtUnixMs < since)
            {
                _entries.Dequeue();
            }

            return _entries.Count == 0 ? null : [.. _entries.GroupBy(e => e.Entry)
                .Select(g => new RejectionCount(g.Key.Model, g.Key.Reason, g.Key.Status, g.Key.Type, g.Count()))
                .OrderByDescending(c => c.Count)];
        }
    }

    private readonly record struct Entry(string Model, string Reason, int Status, string? Type);
}
