using System.Collections.Frozen;
using System.Text.Json;

namespace AuthFailoverProxy.Demo.Provider;

internal sealed partial class SimulatedProvider
{
    /// <summary>
    /// What the fake needs from a request body: whether it is a JSON object, its top-level field names (the provider
    /// refuses fields it does not know, echoing their names), <c>stream</c>, <c>model</c>, <c>encoding_format</c> and its size.
    /// </summary>
    private readonly record struct RequestShape(bool IsValidJson, bool Stream, string? Model, int Length, string[] Fields, string? EncodingFormat = null)
    {
        /// <summary>Gets a value indicating whether the body holds what the front's firewall blocks (a script tag).</summary>
        public bool TripsTheFirewall { get; init; }

        /// <summary>Gets a value indicating whether the body holds an image block whose data is not the image it claims.</summary>
        public bool HasBadImage { get; init; }

        /// <summary>Gets a value indicating whether the body has a <c>stream_options</c> that is not null.</summary>
        public bool HasStreamOptions { get; init; }

        /// <summary>Gets a value indicating whether <c>stream_options.include_usage</c> is true: a chat stream then ends with a usage chunk.</summary>
        public bool IncludeUsage { get; init; }

        public int InputTokens => Math.Max(1, Length / 4);

        public static RequestShape Parse(ReadOnlySpan<byte> body)
        {
            var stream = false;
            string? model = null;
            string? encodingFormat = null;
            var (streamOptions, includeUsage) = (false, false);
            var fields = new List<string>(12);
            try
            {
                var reader = new Utf8JsonReader(body);
                if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                {
                    return new RequestShape(false, false, null, body.Length, []);
                }

                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var name = reader.GetString()!;
                    fields.Add(name);
                    reader.Read();
                    switch (name)
                    {
                        case "stream":
                            stream = reader.TokenType == JsonTokenType.True;
                            break;
                        case "model" when reader.TokenType == JsonTokenType.String:
                            model = reader.GetString();
                            break;
                        case "encoding_format" when reader.TokenType == JsonTokenType.String:
                            encodingFormat = reader.GetString();
                            break;
                        case "stream_options":
                            streamOptions = reader.TokenType != JsonTokenType.Null;
                            includeUsage = reader.TokenType == JsonTokenType.StartObject && IncludesUsage(reader);
                            break;
                    }

                    reader.Skip();
                }

                // Reading past the object makes the reader reject trailing garbage.
                while (reader.Read())
                {
                }

                return new RequestShape(true, stream, model, body.Length, [.. fields], encodingFormat)
                {
                    HasStreamOptions = streamOptions,
                    IncludeUsage = includeUsage,
                    TripsTheFirewall = body.IndexOf("<script"u8) >= 0,
                    // A PNG in base64 starts "iVBORw0KGgo"; anything else labelled image/png is not one.
                    HasBadImage = body.IndexOf("\"media_type\":\"image/png\""u8) >= 0 && body.IndexOf("\"data\":\"iVBORw0KGgo"u8) < 0,
                };
            }
            catch (JsonException)
            {
                return new RequestShape(false, false, null, body.Length, []);
            }
        }

        /// <summary>Reads <c>include_usage</c> in the <c>stream_options</c> object the reader is at (a copy: the caller skips it); the last one counts, as in the provider's parser.</summary>
        private static bool IncludesUsage(Utf8JsonReader reader)
        {
            var include = false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isInclude = reader.ValueTextEquals("include_usage"u8);
                reader.Read();
                if (isInclude)
                {
                    include = reader.TokenType == JsonTokenType.True;
                }

                reader.Skip();
            }

            return include;
        }

        /// <summary>Returns the first field not in <paramref name="known"/>, as the provider names the first it refuses.</summary>
        public string? FirstUnknown(FrozenSet<string> known) => Array.Find(Fields, f => !known.Contains(f));

        /// <summary>Returns the first of <paramref name="required"/> the body lacks.</summary>
        public string? FirstMissing(params string[] required)
        {
            var fields = Fields;
            return Array.Find(required, r => Array.IndexOf(fields, r) < 0);
        }
    }
}
