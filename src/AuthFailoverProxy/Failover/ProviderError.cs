using System.Text.Json;

namespace AuthFailoverProxy.Failover;

/// <summary>
/// The fields of a provider error body that matter to a key pool. Parses both dialects:
/// Anthropic <c>{"type":"error","error":{"type","message","details":{"error_code"}},"request_id"}</c> and
/// OpenAI <c>{"error":{"message","type","param","code"}}</c>.
/// </summary>
internal readonly record struct ProviderError(string? Type, string? Code, string? Message, string? RequestId)
{
    /// <summary>
    /// Gets a value indicating whether the body is a provider's own error: an <c>error</c> object with a type, a code or a
    /// message. An HTML page, plain text or <c>{"error":"…"}</c> from a proxy or firewall on the way is not.
    /// </summary>
    public bool IsProviderError { get; init; }

    /// <summary>Reads an error body; anything that is not a provider error yields an empty result, never an exception.</summary>
    public static ProviderError Parse(ReadOnlySpan<byte> json)
    {
        string? type = null, code = null, message = null, requestId = null;
        var isProviderError = false;
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, MaxDepth = 16 });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return default;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("error"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartObject)
                    {
                        ReadErrorObject(ref reader, ref type, ref code, ref message);
                        isProviderError = type is not null || code is not null || message is not null;
                    }
                    else
                    {
                        // Some gateways send {"error":"text"}.
                        message = ReadScalar(ref reader);
                    }
                }
                else if (reader.ValueTextEquals("request_id"u8))
                {
                    reader.Read();
                    requestId = ReadScalar(ref reader);
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
        }
        catch (JsonException)
        {
            // A truncated or malformed body: keep whatever was read before the damage.
        }

        return new ProviderError(type, code, message, requestId) { IsProviderError = isProviderError };
    }

    private static void ReadErrorObject(ref Utf8JsonReader reader, ref string? type, ref string? code, ref string? message)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                type = ReadScalar(ref reader);
            }
            else if (reader.ValueTextEquals("message"u8))
            {
                reader.Read();
                message = ReadScalar(ref reader);
            }
            else if (reader.ValueTextEquals("code"u8))
            {
                reader.Read();
                code = ReadScalar(ref reader) ?? code;
            }
            else if (reader.ValueTextEquals("details"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                    {
                        var isCode = reader.ValueTextEquals("error_code"u8);
                        reader.Read();
                        if (isCode)
                        {
                            code = ReadScalar(ref reader);
                        }
                        else
                        {
                            reader.Skip();
                        }
                    }
                }
                else
                {
                    reader.Skip();
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    private static string? ReadScalar(ref Utf8JsonReader reader) => reader.TokenType switch
    {
        JsonTokenType.String => reader.GetString(),
        JsonTokenType.Number => System.Text.Encoding.UTF8.GetString(reader.ValueSpan),
        JsonTokenType.StartObject or JsonTokenType.StartArray => SkipAndReturnNull(ref reader),
        _ => null,
    };

    private static string? SkipAndReturnNull(ref Utf8JsonReader reader)
    {
        reader.Skip();
        return null;
    }
}
