using System.Text;
using System.Text.Json;

namespace AuthFailoverProxy.Failover;

/// <summary>
/// Replaces the top-level <c>"model"</c> value of a JSON request body for safe mode, every time it occurs: a body with
/// <c>model</c> twice is read by the provider's parser as its last one, so rewriting only the first would let the
/// original model through. Every other byte of the agent's request is sent exactly as it came. A body that is not a
/// JSON object, or has no top-level model, is left alone: the proxy never breaks a request it does not understand.
/// A spilled body is not copied: the rewrite is a view that splices the new value into the file as it is read.
/// </summary>
internal static class ModelRewriter
{
    /// <summary>Returns <paramref name="json"/> with every top-level model replaced, or null when there is none to replace.</summary>
    public static byte[]? TryRewrite(ReadOnlySpan<byte> json, string model)
    {
        var scanner = new JsonTopLevelScanner(0, "model");
        scanner.Feed(json);
        if (scanner.Complete() is not { Count: > 0 } found)
        {
            return null;
        }

        var value = Encoded(model);
        var ranges = found.Select(f => (f.Start, f.End)).ToList();
        var result = new byte[json.Length + ranges.Sum(r => value.Length - (int)(r.End - r.Start))];
        var (from, to) = (0, 0);
        foreach (var (start, end) in ranges)
        {
            json[from..(int)start].CopyTo(result.AsSpan(to));
            to += (int)start - from;
            value.CopyTo(result.AsSpan(to));
            to += value.Length;
            from = (int)end;
        }

        json[from..].CopyTo(result.AsSpan(to));
        return result;
    }

    /// <summary>
    /// Returns <paramref name="body"/> with every top-level model replaced, or null when there is none. A body held in
    /// memory (1 MiB at most) is copied once; a spilled one is read once to find the values, then served as a view.
    /// </summary>
    public static async ValueTask<ReplayableBody?> TryRewriteAsync(ReplayableBody body, string model, CancellationToken cancellationToken)
    {
        if (!body.IsSpilled)
        {
            return TryRewrite(body.InMemory, model) is { } bytes ? ReplayableBody.FromBytes(bytes) : null;
        }

        var scanner = new JsonTopLevelScanner(0, "model");
        await using (var read = body.OpenRead())
        {
            await scanner.FeedAsync(read, cancellationToken);
        }

        return scanner.Complete() is { Count: > 0 } values ? ReplayableBody.Spliced(body, [.. values.Select(v => (v.Start, v.End))], Encoded(model)) : null;
    }

    private static byte[] Encoded(string model) => Encoding.UTF8.GetBytes("\"" + JsonEncodedText.Encode(model).Value + "\"");
}
