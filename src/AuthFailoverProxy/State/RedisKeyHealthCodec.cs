using System.Globalization;
using StackExchange.Redis;

namespace AuthFailoverProxy.State;

/// <summary>How key health is written in Redis: one hash per key, and the same fields flattened into pub/sub messages.</summary>
internal static class RedisKeyHealthCodec
{
    public const string VersionField = "v";

    public static HashEntry[] Encode(KeyHealth health)
    {
        var entries = new List<HashEntry>(11)
        {
            new(VersionField, health.Version),
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

    public static KeyHealth? Decode(HashEntry[] entries)
    {
        if (entries.Length == 0)
        {
            return null;
        }

        var fields = entries.ToDictionary(e => e.Name.ToString(), e => e.Value, StringComparer.Ordinal);
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
    public static string Message(string pool, string key, KeyHealth health)
        => string.Join('\t', [pool, key, .. Encode(health).SelectMany(e => new[] { e.Name.ToString(), Sanitize(e.Value.ToString()) })]);

    public static (string Pool, string Key, KeyHealth Health)? ParseMessage(string message)
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
            return Decode(entries) is { } health ? (parts[0], parts[1], health) : null;
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

    private static string? Text(Dictionary<string, RedisValue> fields, string name) => fields.TryGetValue(name, out var value) ? value.ToString() : null;

    private static DateTimeOffset Time(RedisValue value) => DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(value.ToString(), CultureInfo.InvariantCulture));

    private static string Sanitize(string value) => value.Replace('\t', ' ');
}
