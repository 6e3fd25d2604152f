using System.Runtime.InteropServices;
using System.Text.Json;
using AuthFailoverProxy.Failover;

namespace AuthFailoverProxy.Telemetry;

/// <summary>
/// Tokens an answer spent, normalised across dialects: <see cref="Input"/> counts every input token, cached ones
/// included (OpenAI's <c>prompt_tokens</c> and <c>input_tokens</c> do; Anthropic's <c>input_tokens</c> excludes the
/// cache, so its cache reads and writes are added), and the cache's part is told apart.
/// </summary>
internal readonly record struct TokenUsage(long Input, long Output, long CacheRead, long CacheCreation);

/// <summary>Where an answer's tokens count: its pool, key and client, the model the agent asked for, and the GenAI provider and operation. Never a secret.</summary>
internal readonly record struct UsageWhere(string Pool, string Key, string Client, string? RequestedModel, string Provider, string Operation);

/// <summary>
/// Reads the token usage of an answer as its bytes pass to the agent, keeping nothing but a few numbers: a JSON answer
/// through a top-level scan that keeps only its <c>usage</c> and <c>model</c> values, an event stream line by line,
/// parsing only the lines that carry usage (Anthropic's <c>message_start</c> and <c>message_delta</c>, whose usage is
/// cumulative: the last one counts, never the sum; the chat-completions chunk with <c>usage</c>; the Responses API's
/// <c>response.completed</c>). A stream cut short counts what it had shown.
/// </summary>
internal sealed class UsageReader
{
    private const int MaxValue = 4096;
    private const int MaxLine = 64 * 1024;
    private static readonly byte[][] Names = JsonTopLevelScanner.Utf8("usage", "model");

    private readonly JsonTopLevelScanner? _json;
    private byte[]? _line;
    private int _lineLength;

    // As the provider said them; normalised by Usage.
    private long _input;
    private long _output;
    private long _cacheRead;
    private long _cacheCreation;
    private bool _inputIncludesCache;

    private UsageReader(bool eventStream)
    {
        if (!eventStream)
        {
            _json = new JsonTopLevelScanner(MaxValue, Names);
        }
    }

    /// <summary>Gets or sets the attempt whose delivered answer this is, told what was read once it has passed.</summary>
    public FailoverAttempt? Attempt { get; set; }

    /// <summary>Gets or sets the labels the answer's tokens count under.</summary>
    public UsageWhere Where { get; set; }

    /// <summary>Gets or sets the labels the answer's models are known by, if any (<see cref="Complete"/> finds a known one without a string made).</summary>
    public ModelLabels? Labels { get; set; }

    /// <summary>
    /// Gets or sets the bounded labels of the answering and the requested model, once its tokens were counted (the
    /// answering one sooner when it is a known label).
    /// </summary>
    public string? ResponseLabel { get; set; }

    /// <inheritdoc cref="ResponseLabel"/>
    public string? RequestLabel { get; set; }

    /// <summary>Gets a value indicating whether the answer said what it spent.</summary>
    public bool Seen { get; private set; }

    /// <summary>Gets the model that answered, as the provider named it.</summary>
    public string? Model { get; private set; }

    /// <summary>Gets what the answer spent, normalised (see <see cref="TokenUsage"/>).</summary>
    public TokenUsage Usage => new(_inputIncludesCache ? _input : _input + _cacheRead + _cacheCreation, _output, _cacheRead, _cacheCreation);

    /// <summary>Returns a reader for a JSON answer or an event stream; null for anything else (no usage in it).</summary>
    public static UsageReader? For(string? mediaType) => mediaType switch
    {
        "application/json" => new UsageReader(eventStream: false),
        "text/event-stream" => new UsageReader(eventStream: true),
        _ => null,
    };

    public void Feed(ReadOnlySpan<byte> bytes)
    {
        if (_json is not null)
        {
            _json.Feed(bytes);
            return;
        }

        while (!bytes.IsEmpty)
        {
            var end = bytes.IndexOf((byte)'\n');
            if (end < 0)
            {
                Append(bytes);
                return;
            }

            if (_lineLength == 0)
            {
                // The usual case: the whole line is in this read, and is looked at where it lies.
                Line(bytes[..end]);
            }
            else
            {
                Append(bytes[..end]);
                if (_lineLength <= MaxLine)
                {
                    Line(_line.AsSpan(0, _lineLength));
                }

                _lineLength = 0;
            }

            bytes = bytes[(end + 1)..];
        }
    }

    /// <summary>Reads what the answer's end tells (a JSON answer's usage is known only then).</summary>
    public void Complete()
    {
        if (_json is null)
        {
            return;
        }

        // By index: a foreach over the read-only list would box its enumerator, on every answer.
        var found = _json.Found;
        for (var i = 0; i < found.Count; i++)
        {
            var value = found[i];
            if (value.Value is not { } bytes)
            {
                continue;
            }

            try
            {
                if (value.Name == 0)
                {
                    Take(bytes.Span);
                }
                else
                {
                    var reader = new Utf8JsonReader(bytes.Span);
                    if (reader.Read() && reader.TokenType == JsonTokenType.String)
                    {
                        // A model answered for before is its label already: the same instance, not a string per answer.
                        Model = ResponseLabel = Labels?.Known(in reader);
                        Model ??= Decoded(ref reader);
                    }
                }
            }
            catch (JsonException)
            {
                // Not the provider's usage after all.
            }
        }
    }

    private void Append(ReadOnlySpan<byte> bytes)
    {
        if (_lineLength + bytes.Length <= MaxLine)
        {
            _line ??= new byte[4096];
            if (_line.Length < _lineLength + bytes.Length)
            {
                Array.Resize(ref _line, Math.Min(MaxLine, Math.Max(_line.Length * 2, _lineLength + bytes.Length)));
            }

            bytes.CopyTo(_line.AsSpan(_lineLength));
        }

        // Past the limit only the length is kept: such a line (a long content delta) is not read.
        _lineLength += bytes.Length;
    }

    private void Line(ReadOnlySpan<byte> line)
    {
        if (!line.StartsWith("data:"u8))
        {
            return;
        }

        var data = line[5..].Trim((byte)' ').TrimEnd((byte)'\r');
        var usage = data.IndexOf("\"usage\":"u8) is var at and >= 0 && !data[(at + 8)..].TrimStart((byte)' ').StartsWith("null"u8);
        if (!usage && (Model is not null || data.IndexOf("\"model\""u8) < 0))
        {
            return;
        }

        try
        {
            using var document = JsonDocument.Parse(data.ToArray());
            var root = document.RootElement;
            // Anthropic's message_start carries the message; the Responses API's events carry the response.
            var body = root.TryGetProperty("message", out var message) && message.ValueKind == JsonValueKind.Object ? message
                : root.TryGetProperty("response", out var response) && response.ValueKind == JsonValueKind.Object ? response
                : root;
            if (Model is null && body.TryGetProperty("model", out var model) && model.ValueKind == JsonValueKind.String)
            {
                Model = Decoded(model);
            }

            if (body.TryGetProperty("usage", out var spent) || root.TryGetProperty("usage", out spent))
            {
                Take(JsonMarshal.GetRawUtf8Value(spent));
            }
        }
        catch (JsonException)
        {
            // A line that is not JSON: not usage.
        }
    }

    /// <summary>
    /// Takes what a usage object (its JSON) says; a later one (cumulative) replaces what an earlier one said. Read with a
    /// reader over the bytes: nothing is allocated.
    /// </summary>
    private void Take(ReadOnlySpan<byte> usage)
    {
        var reader = new Utf8JsonReader(usage);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            return;
        }

        // Taken whole or not at all: a usage object that turns out not to be JSON (it throws) changes nothing.
        var (input, output, cacheRead, cacheCreation, inputIncludesCache) = (_input, _output, _cacheRead, _cacheCreation, _inputIncludesCache);
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var field = FieldOf(ref reader);
            if (!reader.Read())
            {
                return;
            }

            if (field == UsageField.Details && reader.TokenType == JsonTokenType.StartObject)
            {
                // OpenAI: the input already counts its cached part.
                inputIncludesCache = true;
                cacheRead = CachedTokens(ref reader) ?? cacheRead;
                continue;
            }

            if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
            {
                // Anthropic's cache_creation breakdown, server tool use and the like.
                reader.Skip();
                continue;
            }

            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out var count))
            {
                continue;
            }

            switch (field)
            {
                case UsageField.Input:
                    input = count;
                    break;
                case UsageField.Prompt:
                    (input, inputIncludesCache) = (count, true);
                    break;
                case UsageField.Output:
                    output = count;
                    break;
                case UsageField.CacheRead:
                    cacheRead = count;
                    break;
                case UsageField.CacheCreation:
                    cacheCreation = count;
                    break;
            }
        }

        if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
        {
            // Not one whole object.
            return;
        }

        (_input, _output, _cacheRead, _cacheCreation, _inputIncludesCache) = (input, output, cacheRead, cacheCreation, inputIncludesCache);
        Seen = true;
    }

    /// <summary>
    /// Returns a JSON string's text, or null when it is not UTF-8 (which a reader finds only when asked for the text, and
    /// reports with an <see cref="InvalidOperationException"/>): a model name the reader cannot decode names nothing, and
    /// must never break the answer it is read from.
    /// </summary>
    private static string? Decoded(ref Utf8JsonReader reader)
    {
        try
        {
            return reader.GetString();
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }

    /// <inheritdoc cref="Decoded(ref Utf8JsonReader)"/>
    private static string? Decoded(JsonElement value)
    {
        try
        {
            return value.GetString();
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }

    private static UsageField FieldOf(ref Utf8JsonReader reader)
        => reader.ValueTextEquals("input_tokens"u8) ? UsageField.Input
        : reader.ValueTextEquals("output_tokens"u8) || reader.ValueTextEquals("completion_tokens"u8) ? UsageField.Output
        : reader.ValueTextEquals("prompt_tokens"u8) ? UsageField.Prompt
        : reader.ValueTextEquals("cache_read_input_tokens"u8) ? UsageField.CacheRead
        : reader.ValueTextEquals("cache_creation_input_tokens"u8) ? UsageField.CacheCreation
        : reader.ValueTextEquals("input_tokens_details"u8) || reader.ValueTextEquals("prompt_tokens_details"u8) ? UsageField.Details
        : UsageField.Other;

    /// <summary>Reads an OpenAI <c>*_tokens_details</c> object (the reader on its start) to its end; returns its <c>cached_tokens</c>.</summary>
    private static long? CachedTokens(ref Utf8JsonReader reader)
    {
        long? cached = null;
        var depth = reader.CurrentDepth;
        while (reader.Read() && reader.CurrentDepth > depth)
        {
            if (reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == depth + 1 && reader.ValueTextEquals("cached_tokens"u8))
            {
                if (reader.Read() && reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var count))
                {
                    cached = count;
                }
                else if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
                {
                    reader.Skip();
                }
            }
            else if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
            {
                reader.Skip();
            }
        }

        return cached;
    }

    private enum UsageField
    {
        Other,
        Input,
        Prompt,
        Output,
        CacheRead,
        CacheCreation,
        Details,
    }
}
