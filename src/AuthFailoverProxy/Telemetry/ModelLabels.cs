using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;

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
    private readonly ConcurrentDictionary<string, string> _known;

    // The same names, looked up by their characters: an answer's model is found without making a string of it.
    private readonly ConcurrentDictionary<string, string>.AlternateLookup<ReadOnlySpan<char>> _byChars;

    // Counted here: ConcurrentDictionary.Count takes every lock of the dictionary, and this is on the request path.
    private readonly Lock _learning = new();
    private int _count;

    public ModelLabels()
    {
        _known = new(StringComparer.Ordinal);
        _byChars = _known.GetAlternateLookup<ReadOnlySpan<char>>();
    }

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

    /// <summary>
    /// Returns the label of the model a JSON string names (<paramref name="reader"/> on it) when that model is known,
    /// else null (then the caller makes the string): nothing is allocated.
    /// </summary>
    public string? Known(ref readonly Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.String || reader.ValueIsEscaped || reader.HasValueSequence
            || reader.ValueSpan.Length > KeyPool.ModelClasses.MaxModelLength)
        {
            return null;
        }

        // No name longer than a label can be (in characters, which its UTF-8 bytes are at least) is looked for.
        Span<char> chars = stackalloc char[KeyPool.ModelClasses.MaxModelLength];
        return Encoding.UTF8.TryGetChars(reader.ValueSpan, chars, out var length) && _byChars.TryGetValue(chars[..length], out var label) ? label : null;
    }

    private string? Known(string model) => _known.TryGetValue(model, out var label) ? label : null;
}
