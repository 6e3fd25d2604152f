using System.Text;
using System.Text.Json;

namespace AuthFailoverProxy.Failover;

/// <summary>
/// Replaces the top-level <c>"model"</c> value of a JSON request body for safe mode. The value's byte range is found
/// with a reader and spliced, so every other byte of the agent's request is sent exactly as it came. A body that is not
/// a JSON object, or has no top-level model, is left alone: the proxy never breaks a request it does not understand.
/// </summary>
internal static class ModelRewriter
{
    public static byte[]? TryRewrite(ReadOnlySpan<byte> json, string model)
    {
        var reader = RequestFacts.ReaderFor(json);
        if (!RequestFacts.TryFindTopLevel(ref reader, "model"u8))
        {
            return null;
        }

        try
        {
            var start = (int)reader.TokenStartIndex;
            reader.Skip();
            var end = (int)reader.BytesConsumed;
            var value = Encoding.UTF8.GetBytes("\"" + JsonEncodedText.Encode(model).Value + "\"");
            return [.. json[..start], .. value, .. json[end..]];
        }
        catch (JsonException)
        {
            // Not JSON after all: send it as it is.
            return null;
        }
    }
}
