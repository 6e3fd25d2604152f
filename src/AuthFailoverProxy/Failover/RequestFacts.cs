using System.Text.Json;

namespace AuthFailoverProxy.Failover;

/// <summary>
/// What the proxy needs to know from an agent's request body before sending it: whether it asks for a stream (a
/// stream's headers come at once, so a stream that gets none is hung). Read once per request from the buffered bytes,
/// top-level fields only; a body that is not a JSON object yields nothing, and the request goes as it is.
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

        var reader = new Utf8JsonReader(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isStream = reader.ValueTextEquals("stream"u8);
                reader.Read();
                if (isStream)
                {
                    return reader.TokenType == JsonTokenType.True;
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
