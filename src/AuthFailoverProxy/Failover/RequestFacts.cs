using System.Text.Json;

namespace AuthFailoverProxy.Failover;

/// <summary>
/// What the proxy needs to know from an agent's request body before sending it: whether it asks for a stream (a
/// stream's headers come at once, so a stream that gets none is hung), and which model it names (only when a key has a
/// scope). Read from the buffered bytes, top-level fields only; a body that is not a JSON object yields nothing, and the
/// request goes as it is.
/// </summary>
internal static class RequestFacts
{
    /// <summary>Returns whether the body's top-level <c>stream</c> is <see langword="true"/>.</summary>
    public static bool AsksForStream(ReadOnlySpan<byte> json)
    {
        if (json.IsEmpty || json.IndexOf("\"stream\""u8) < 0)
        {
            // Most bodies say nothing of streams: no need to read them.
            return false;
        }

        var reader = ReaderFor(json);
        return TryFindTopLevel(ref reader, "stream"u8) && reader.TokenType == JsonTokenType.True;
    }

    /// <summary>A reader over a request body, as agents write them (comments allowed).</summary>
    public static Utf8JsonReader ReaderFor(ReadOnlySpan<byte> json) => new(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip });

    /// <summary>
    /// Moves <paramref name="reader"/> to the value of the top-level property <paramref name="name"/> of a JSON object.
    /// Returns false when the body is not a JSON object, has no such property, or is not JSON after all.
    /// </summary>
    public static bool TryFindTopLevel(ref Utf8JsonReader reader, ReadOnlySpan<byte> name)
    {
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var found = reader.ValueTextEquals(name);
                reader.Read();
                if (found)
                {
                    return true;
                }

                reader.Skip();
            }
        }
        catch (JsonException)
        {
            // Not JSON: the provider will say so.
        }

        return false;
    }
}
