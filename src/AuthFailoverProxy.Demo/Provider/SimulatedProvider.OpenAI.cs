using System.Text.Json;

namespace AuthFailoverProxy.Demo.Provider;

// The OpenAI API: chat completions (whole and as SSE chunks), completions, embeddings and responses.
internal sealed partial class SimulatedProvider
{
    /// <summary>The models the OpenAI dialect lists and serves.</summary>
    internal static readonly string[] OpenAIModels = ["gpt-4o", "gpt-4o-mini", "gpt-5", "text-embedding-3-small", "gpt-3.5-turbo-instruct"];

    /// <summary>How a stream is laid out: the Messages API's events, chat completion chunks, or the Responses API's events.</summary>
    private enum StreamFormat
    {
        AnthropicMessages,
        ChatCompletions,
        Responses,
    }

    private Task ChatCompletionsAsync(HttpContext context, RequestShape shape)
    {
        if (!shape.IsValidJson)
        {
            WriteInvalidOpenAIBody(context);
            return Task.CompletedTask;
        }

        if (RefuseChatCompletion(context, shape) is { } refused)
        {
            WriteError(context, Dialect.OpenAI, refused);
            return Task.CompletedTask;
        }

        if (shape.Stream)
        {
            // The role chunk, the deltas, the finish chunk, the usage chunk when asked for, and [DONE].
            return StreamAsync(context, Dialect.OpenAI, shape, (shape.IncludeUsage ? 4 : 3) + Math.Max(0, StreamDeltas));
        }

        WriteJson(context, Dialect.OpenAI, 200, shape, static (json, shape, upstream) =>
        {
            json.WriteString("id"u8, NewId("chatcmpl-", 24));
            json.WriteString("object"u8, "chat.completion"u8);
            json.WriteNumber("created"u8, upstream._time.GetUtcNow().ToUnixTimeSeconds());
            json.WriteString("model"u8, shape.Model ?? DefaultOpenAIModel);
            json.WriteStartArray("choices"u8);
            json.WriteStartObject();
            json.WriteNumber("index"u8, 0);
            json.WriteStartObject("message"u8);
            json.WriteString("role"u8, "assistant"u8);
            json.WriteString("content"u8, ReplyText);
            json.WriteNull("refusal"u8);
            json.WriteEndObject();
            json.WriteNull("logprobs"u8);
            json.WriteString("finish_reason"u8, "stop"u8);
            json.WriteEndObject();
            json.WriteEndArray();
            WriteOpenAIUsage(json, shape, details: true);
        });
        return Task.CompletedTask;
    }

    private Task WithValidBodyAsync(HttpContext context, RequestShape shape, Action<Utf8JsonWriter, RequestShape, SimulatedProvider> write)
    {
        if (!shape.IsValidJson)
        {
            WriteInvalidOpenAIBody(context);
        }
        else if (RefuseModel(context, Dialect.OpenAI, shape.Model) is { } refused)
        {
            WriteError(context, Dialect.OpenAI, refused);
        }
        else
        {
            WriteJson(context, Dialect.OpenAI, 200, shape, write);
        }

        return Task.CompletedTask;
    }

    /// <summary>The Responses API: the whole response, or its events (<c>response.created</c> … <c>response.completed</c>).</summary>
    private Task ResponsesAsync(HttpContext context, RequestShape shape)
        => shape is { IsValidJson: true, Stream: true } && RefuseModel(context, Dialect.OpenAI, shape.Model) is null
            ? StreamAsync(context, StreamFormat.Responses, shape, 8 + Math.Max(0, StreamDeltas))
            : WithValidBodyAsync(context, shape, WriteResponse);

    private static void WriteOpenAIModels(Utf8JsonWriter json, RequestShape shape, SimulatedProvider upstream)
    {
        json.WriteString("object"u8, "list"u8);
        json.WriteStartArray("data"u8);
        foreach (var model in OpenAIModels)
        {
            json.WriteStartObject();
            WriteOpenAIModel(json, model);
            json.WriteEndObject();
        }

        json.WriteEndArray();
    }

    private static void WriteOpenAIModel(Utf8JsonWriter json, string id)
    {
        json.WriteString("id"u8, id);
        json.WriteString("object"u8, "model"u8);
        json.WriteNumber("created"u8, 1715367049);
        json.WriteString("owned_by"u8, "system"u8);
    }

    private static void WriteInvalidOpenAIBody(HttpContext context)
        => WriteError(context, Dialect.OpenAI, new ErrorReply(400, "invalid_request_error",
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)", null));

    private static void WriteTextCompletion(Utf8JsonWriter json, RequestShape shape, SimulatedProvider upstream)
    {
        json.WriteString("id"u8, NewId("cmpl-", 24));
        json.WriteString("object"u8, "text_completion"u8);
        json.WriteNumber("created"u8, upstream._time.GetUtcNow().ToUnixTimeSeconds());
        json.WriteString("model"u8, shape.Model ?? "gpt-3.5-turbo-instruct");
        json.WriteStartArray("choices"u8);
        json.WriteStartObject();
        json.WriteString("text"u8, ReplyText);
        json.WriteNumber("index"u8, 0);
        json.WriteNull("logprobs"u8);
        json.WriteString("finish_reason"u8, "stop"u8);
        json.WriteEndObject();
        json.WriteEndArray();
        WriteOpenAIUsage(json, shape);
    }

    private static void WriteEmbeddings(Utf8JsonWriter json, RequestShape shape, SimulatedProvider upstream)
    {
        json.WriteString("object"u8, "list"u8);
        json.WriteStartArray("data"u8);
        json.WriteStartObject();
        json.WriteString("object"u8, "embedding"u8);
        json.WriteNumber("index"u8, 0);
        var vector = new float[8];
        for (var i = 0; i < vector.Length; i++)
        {
            vector[i] = (float)Math.Round(Math.Sin(i + 1) / 10, 6);
        }

        if (shape.EncodingFormat == "base64")
        {
            // What the OpenAI SDKs ask for by default: the float32 values, little-endian, in base64.
            json.WriteString("embedding"u8, Convert.ToBase64String(System.Runtime.InteropServices.MemoryMarshal.AsBytes(vector.AsSpan())));
        }
        else
        {
            json.WriteStartArray("embedding"u8);
            foreach (var value in vector)
            {
                json.WriteNumberValue(value);
            }

            json.WriteEndArray();
        }

        json.WriteEndObject();
        json.WriteEndArray();
        json.WriteString("model"u8, shape.Model ?? "text-embedding-3-small");
        json.WriteStartObject("usage"u8);
        json.WriteNumber("prompt_tokens"u8, shape.InputTokens);
        json.WriteNumber("total_tokens"u8, shape.InputTokens);
        json.WriteEndObject();
    }

    private static void WriteResponse(Utf8JsonWriter json, RequestShape shape, SimulatedProvider upstream)
        => WriteResponseFields(json, NewId("resp_", 32), upstream._time.GetUtcNow().ToUnixTimeSeconds(), shape, completed: true, ReplyText);

    /// <summary>Usage as chat and text completions give it; chat's with the details' parts (<paramref name="details"/>), in whole answers and in a stream's usage chunk.</summary>
    private static void WriteOpenAIUsage(Utf8JsonWriter json, RequestShape shape, bool details = false)
    {
        json.WriteStartObject("usage"u8);
        json.WriteNumber("prompt_tokens"u8, shape.InputTokens);
        json.WriteNumber("completion_tokens"u8, OutputTokens);
        json.WriteNumber("total_tokens"u8, shape.InputTokens + OutputTokens);
        if (!details)
        {
            json.WriteEndObject();
            return;
        }

        json.WriteStartObject("prompt_tokens_details"u8);
        json.WriteNumber("cached_tokens"u8, 0);
        json.WriteNumber("audio_tokens"u8, 0);
        json.WriteEndObject();
        json.WriteStartObject("completion_tokens_details"u8);
        json.WriteNumber("reasoning_tokens"u8, 0);
        json.WriteNumber("audio_tokens"u8, 0);
        json.WriteNumber("accepted_prediction_tokens"u8, 0);
        json.WriteNumber("rejected_prediction_tokens"u8, 0);
        json.WriteEndObject();
        json.WriteEndObject();
    }

    /// <summary>
    /// One chunk of a chat stream: the role, the deltas, the finish reason, then, when the request set
    /// <c>stream_options.include_usage</c>, the usage chunk (no choices) before <c>[DONE]</c>; under that option every
    /// other chunk carries <c>"usage":null</c>, as the API's do.
    /// </summary>
    private static void WriteChatChunk(ReplyBuffer buffer, int index, int deltas, string id, long created, RequestShape shape)
    {
        if (index == deltas + (shape.IncludeUsage ? 3 : 2))
        {
            buffer.Raw("data: [DONE]\n\n"u8);
            return;
        }

        buffer.Raw("data: "u8);
        var json = buffer.BeginJson();
        json.WriteStartObject();
        json.WriteString("id"u8, id);
        json.WriteString("object"u8, "chat.completion.chunk"u8);
        json.WriteNumber("created"u8, created);
        json.WriteString("model"u8, shape.Model ?? DefaultOpenAIModel);
        if (index == deltas + 2)
        {
            json.WriteStartArray("choices"u8);
            json.WriteEndArray();
            WriteOpenAIUsage(json, shape, details: true);
            json.WriteEndObject();
            buffer.EndJson();
            buffer.Raw("\n\n"u8);
            return;
        }

        json.WriteStartArray("choices"u8);
        json.WriteStartObject();
        json.WriteNumber("index"u8, 0);
        json.WriteStartObject("delta"u8);
        if (index == 0)
        {
            json.WriteString("role"u8, "assistant"u8);
            json.WriteString("content"u8, ""u8);
        }
        else if (index <= deltas)
        {
            json.WriteString("content"u8, DeltaText(index - 1));
        }

        json.WriteEndObject();
        json.WriteNull("logprobs"u8);
        if (index == deltas + 1)
        {
            json.WriteString("finish_reason"u8, "stop"u8);
        }
        else
        {
            json.WriteNull("finish_reason"u8);
        }

        json.WriteEndObject();
        json.WriteEndArray();
        if (shape.IncludeUsage)
        {
            json.WriteNull("usage"u8);
        }

        json.WriteEndObject();
        buffer.EndJson();
        buffer.Raw("\n\n"u8);
    }

    /// <summary>One event of a Responses API stream: created, in progress, the message's item and part, the text deltas, then the closing events.</summary>
    private static void WriteResponseEvent(ReplyBuffer buffer, int index, int deltas, string id, long created, RequestShape shape)
    {
        var itemId = "msg_" + id[5..];
        var type = index switch
        {
            0 => "response.created",
            1 => "response.in_progress",
            2 => "response.output_item.added",
            3 => "response.content_part.added",
            _ when index < 4 + deltas => "response.output_text.delta",
            _ when index == 4 + deltas => "response.output_text.done",
            _ when index == 5 + deltas => "response.content_part.done",
            _ when index == 6 + deltas => "response.output_item.done",
            _ => "response.completed",
        };
        var text = string.Concat(Enumerable.Range(0, deltas).Select(DeltaText));
        buffer.Raw("event: "u8);
        buffer.Raw(System.Text.Encoding.UTF8.GetBytes(type));
        buffer.Raw("\ndata: "u8);
        var json = buffer.BeginJson();
        json.WriteStartObject();
        json.WriteString("type"u8, type);
        json.WriteNumber("sequence_number"u8, index);
        switch (index)
        {
            case 0 or 1:
                WriteResponseObject(json, id, created, shape, completed: false, text);
                break;
            case 2:
                json.WriteNumber("output_index"u8, 0);
                WriteMessageItem(json, itemId, text, completed: false);
                break;
            case 3:
                WritePartRef(json, itemId);
                WriteTextPart(json, string.Empty);
                break;
            case var _ when index < 4 + deltas:
                WritePartRef(json, itemId);
                json.WriteString("delta"u8, DeltaText(index - 4));
                break;
            case var _ when index == 4 + deltas:
                WritePartRef(json, itemId);
                json.WriteString("text"u8, text);
                break;
            case var _ when index == 5 + deltas:
                WritePartRef(json, itemId);
                WriteTextPart(json, text);
                break;
            case var _ when index == 6 + deltas:
                json.WriteNumber("output_index"u8, 0);
                WriteMessageItem(json, itemId, text, completed: true);
                break;
            default:
                WriteResponseObject(json, id, created, shape, completed: true, text);
                break;
        }

        json.WriteEndObject();
        buffer.EndJson();
        buffer.Raw("\n\n"u8);

        static void WritePartRef(Utf8JsonWriter json, string itemId)
        {
            json.WriteString("item_id"u8, itemId);
            json.WriteNumber("output_index"u8, 0);
            json.WriteNumber("content_index"u8, 0);
        }

        static void WriteTextPart(Utf8JsonWriter json, string text)
        {
            json.WriteStartObject("part"u8);
            json.WriteString("type"u8, "output_text"u8);
            json.WriteString("text"u8, text);
            json.WriteStartArray("annotations"u8);
            json.WriteEndArray();
            json.WriteEndObject();
        }
    }

    private static void WriteMessageItem(Utf8JsonWriter json, string itemId, string text, bool completed)
    {
        json.WriteStartObject("item"u8);
        WriteMessageFields(json, itemId, text, completed);
        json.WriteEndObject();
    }

    /// <summary>A message output item: its text part once it is complete.</summary>
    private static void WriteMessageFields(Utf8JsonWriter json, string itemId, string text, bool completed)
    {
        json.WriteString("type"u8, "message"u8);
        json.WriteString("id"u8, itemId);
        json.WriteString("status"u8, completed ? "completed"u8 : "in_progress"u8);
        json.WriteString("role"u8, "assistant"u8);
        json.WriteStartArray("content"u8);
        if (completed)
        {
            json.WriteStartObject();
            json.WriteString("type"u8, "output_text"u8);
            json.WriteString("text"u8, text);
            json.WriteStartArray("annotations"u8);
            json.WriteEndArray();
            json.WriteEndObject();
        }

        json.WriteEndArray();
    }

    private static void WriteResponseObject(Utf8JsonWriter json, string id, long created, RequestShape shape, bool completed, string text)
    {
        json.WriteStartObject("response"u8);
        WriteResponseFields(json, id, created, shape, completed, text);
        json.WriteEndObject();
    }

    /// <summary>A Responses API response: the whole answer when not streamed, and inside the stream's events.</summary>
    private static void WriteResponseFields(Utf8JsonWriter json, string id, long created, RequestShape shape, bool completed, string text)
    {
        json.WriteString("id"u8, id);
        json.WriteString("object"u8, "response"u8);
        json.WriteNumber("created_at"u8, created);
        json.WriteString("status"u8, completed ? "completed"u8 : "in_progress"u8);
        json.WriteString("model"u8, shape.Model ?? DefaultOpenAIModel);
        json.WriteStartArray("output"u8);
        if (completed)
        {
            json.WriteStartObject();
            WriteMessageFields(json, "msg_" + id[5..], text, completed: true);
            json.WriteEndObject();
        }

        json.WriteEndArray();
        if (completed)
        {
            json.WriteStartObject("usage"u8);
            json.WriteNumber("input_tokens"u8, shape.InputTokens);
            json.WriteNumber("output_tokens"u8, OutputTokens);
            json.WriteNumber("total_tokens"u8, shape.InputTokens + OutputTokens);
            json.WriteEndObject();
        }
        else
        {
            json.WriteNull("usage"u8);
        }
    }
}
