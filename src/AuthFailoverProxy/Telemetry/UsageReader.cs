using System.Text.Json;
using AuthFailoverProxy.Failover;

namespace AuthFailoverProxy.Telemetry;

/// <summary>
/// Tokens an answer spent, normalised across dialects: <see cref="Input"/> counts every input token, cached ones
/// included (OpenAI's <c>prompt_tokens</c> and <c>input_tokens</c> do; Anthropic's <c>input_tokens</c> excludes the
/// cache, so its cache reads and writes are added), and the cache's part is told apart.
/// </summary>
internal readonly record struct TokenUsage(long Input, long Output, long CacheRead, long CacheCreation);

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

        foreach (var value in _json.Found)
        {
            if (value.Value is not { } bytes)
            {
                continue;
            }

            try
            {
                using var document = JsonDocument.Parse(bytes);
                if (value.Name == 0)
                {
                    Take(document.RootElement);
                }
                else if (document.RootElement.ValueKind == JsonValueKind.String)
                {
                    Model = document.RootElement.GetString();
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
                Model = model.GetString();
            }

            if (body.TryGetProperty("usage", out var spent) || root.TryGetProperty("usage", out spent))
            {
                Take(spent);
            }
        }
        catch (JsonException)
        {
            // A line that is not JSON: not usage.
        }
    }

    /// <summary>Takes what a usage object says; a later one (cumulative) replaces what an earlier one said.</summary>
    private void Take(JsonElement usage)
    {
        if (usage.ValueKind != JsonValueKind.Object)
        {
            return;
        }

        Seen = true;
        foreach (var property in usage.EnumerateObject())
        {
            switch (property.Name)
            {
                case "input_tokens" when property.Value.TryGetInt64(out var input):
                    _input = input;
                    break;
                case "prompt_tokens" when property.Value.TryGetInt64(out var prompt):
                    (_input, _inputIncludesCache) = (prompt, true);
                    break;
                case "output_tokens" or "completion_tokens" when property.Value.TryGetInt64(out var output):
                    _output = output;
                    break;
                case "cache_read_input_tokens" when property.Value.TryGetInt64(out var read):
                    _cacheRead = read;
                    break;
                case "cache_creation_input_tokens" when property.Value.TryGetInt64(out var created):
                    _cacheCreation = created;
                    break;
                case "input_tokens_details" or "prompt_tokens_details" when property.Value.ValueKind == JsonValueKind.Object:
                    // OpenAI: the input already counts its cached part.
                    _inputIncludesCache = true;
                    if (property.Value.TryGetProperty("cached_tokens", out var cached) && cached.TryGetInt64(out var cachedTokens))
                    {
                        _cacheRead = cachedTokens;
                    }

                    break;
            }
        }
    }
}
