using System.Collections.Concurrent;

namespace AuthFailoverProxy.Telemetry;

/// <summary>
/// Keeps model labels bounded. Clients choose the model names they send: a client sending 10,000 made-up names must
/// make neither 10,000 series nor push real ones into the metrics SDK's overflow bucket. A name becomes a label only
/// once the provider has answered for it with usage (a made-up model gets a 404 and never does), and at most
/// <see cref="Capacity"/> names ever do; anything else is <c>other</c>.
/// </summary>
internal sealed class ModelLabels
{
    /// <summary>How many model names may become labels; a deployment uses a few dozen.</summary>
    public const int Capacity = 200;

    public const string Other = "other";

    // Each name learned, mapped to itself: a label is always the instance stored here, so the metrics SDK and the ledger,
    // which compare labels, find it by reference.
    private readonly ConcurrentDictionary<string, string> _known = new(StringComparer.Ordinal);

    // Counted here: ConcurrentDictionary.Count takes every lock of the dictionary, and this is on the request path.
    private readonly Lock _learning = new();
    private int _count;

    /// <summary>Learns <paramref name="model"/> as a real model (the provider answered for it), while there is room.</summary>
    public void Learn(string? model)
    {
        if (model is not { Length: > 0 and <= KeyPool.ModelClasses.MaxModelLength } || _known.ContainsKey(model) || Volatile.Read(ref _count) >= Capacity)
        {
            return;
        }

        // Once per model at most: a lock keeps the count exact when answers for new models come at once.
        lock (_learning)
        {
            if (_count < Capacity && _known.TryAdd(model, model))
            {
                Volatile.Write(ref _count, _count + 1);
            }
        }
    }

    /// <summary>Learns <paramref name="model"/> (see <see cref="Learn"/>) and returns its label: one look-up once it is known.</summary>
    public string LearnAndLabel(string? model)
    {
        if (model is null)
        {
            return Other;
        }

        if (Known(model) is { } label)
        {
            return label;
        }

        Learn(model);
        return Label(model);
    }

    /// <summary>Returns the label for <paramref name="model"/>: the name as it was learned when known, else <c>other</c>.</summary>
    public string Label(string? model) => model is not null && Known(model) is { } label ? label : Other;

    private string? Known(string model) => _known.TryGetValue(model, out var label) ? label : null;
}
