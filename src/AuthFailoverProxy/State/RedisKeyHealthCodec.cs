using System.Globalization;
using StackExchange.Redis;

namespace AuthFailoverProxy.State;

/// <summary>How key health is written in Redis: one hash per key, and the same fields flattened into pub/sub messages.</summary>
internal static class RedisKeyHealthCodec
{
    public const string VersionField = "v";

    /// <summary>The field naming which secret the record is about (<see cref="KeyPool.PoolKey.Identity"/>).</summary>
    public const string IdentityField = "id";

    public static HashEntry[] Encode(KeyHealth health, string identity)
    {
        var entries = new List<HashEntry>(12)
        {
            new(VersionField, health.Version),
            new(IdentityField, identity),
            new("s", (int)health.State),
            new("since", health.Since.ToUnixTimeMilliseconds()),
            new("n", health.Failures),
        };
        if (health.Until is { } until)
        {
            entries.Add(new("until", until.ToUnixTimeMilliseconds()));
        }

        if (health.LastFailure is { } f)
        {
            entries.Add(new("fs", f.Status));
            entries.Add(new("fa", f.At.ToUnixTimeMilliseconds()));
            AddIfSet(entries, "ft", f.ErrorType);
            AddIfSet(entries, "fc", f.ErrorCode);
            AddIfSet(entries, "fm", f.Message);
            AddIfSet(entries, "fr", f.RequestId);
        }

        return [.. entries];
    }

    /// <summary>
    /// Reads a record; <paramref name="identity"/> says which secret it is about (<see langword="null"/> when the record
    /// does not say). A record about another secret of the same name is no evidence about this one.
    /// </summary>
    public static KeyHealth? Decode(HashEntry[] entries, out string? identity)
    {
        identity = null;
        if (entries.Length == 0)
        {
            return null;
        }

        var fields = entries.ToDictionary(e => e.Name.ToString(), e => e.Value, StringComparer.Ordinal);
        identity = Text(fields, IdentityField);
        KeyFailure? failure = fields.TryGetValue("fs", out var status)
            ? new KeyFailure((int)status, Text(fields, "ft"), Text(fields, "fc"), Text(fields, "fm"), Text(fields, "fr"), Time(fields["fa"]))
            : null;
        return new KeyHealth(
            (KeyState)(int)fields["s"],
            Time(fields["since"]),
            fields.TryGetValue("until", out var until) ? Time(until) : null,
            failure,
            (int)fields["n"])
        {
            Version = (long)fields[VersionField],
        };
    }

    /// <summary>A pub/sub message: pool, key name, then the hash fields, tab-separated (none of them holds a tab).</summary>
    public static string Message(string pool, string key, string identity, KeyHealth health)
        => string.Join('\t', [pool, key, .. Encode(health, identity).SelectMany(e => new[] { e.Name.ToString(), Sanitize(e.Value.ToString()) })]);

    public static (string Pool, string Key, string? Identity, KeyHealth Health)? ParseMessage(string message)
    {
        var parts = message.Split('\t');
        if (parts.Length < 4 || parts.Length % 2 != 0)
        {
            return null;
        }

        var entries = new HashEntry[(parts.Length - 2) / 2];
        for (var i = 0; i < entries.Length; i++)
        {
            entries[i] = new HashEntry(parts[2 + (2 * i)], parts[3 + (2 * i)]);
        }

        try
        {
            return Decode(entries, out var identity) is { } health ? (parts[0], parts[1], identity, health) : null;
        }
        catch (Exception ex) when (ex is KeyNotFoundException or InvalidCastException or FormatException)
        {
            return null;
        }
    }

    private static void AddIfSet(List<HashEntry> entries, string name, string? value)
    {
        if (value is not null)
        {
            entries.Add(new(name, value));
        }
    }

    /// <summary>Returns whether a record read for <paramref name="key"/> is about its secret (records that do not say are taken to be).</summary>
    public static bool IsAbout(string? identity, KeyPool.PoolKey key) => identity is null || identity == key.Identity;

    private static string? Text(Dictionary<string, RedisValue> fields, string name) => fields.TryGetValue(name, out var value) ? value.ToString() : null;

    private static DateTimeOffset Time(RedisValue value) => DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(value.ToString(), CultureInfo.InvariantCulture));

    private static string Sanitize(string value) => value.Replace('\t', ' ');
}
