using System.Text.Json;

namespace AuthFailoverProxy.Demo.Provider;

// The OpenAI API: chat completions (whole and as SSE chunks), completions, embeddings and responses.
internal sealed partial class SimulatedProvider
{
    private Task ChatCompletionsAsync(HttpContext context, RequestShape shape)
    {
        if (!shape.IsValidJson)
        {
            WriteInvalidOpenAIBody(context);
            return Task.CompletedTask;
        }

        if (shape.Stream)
        {
            return StreamAsync(context, Dialect.OpenAI, shape, 3 + Math.Max(0, StreamDeltas));
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
            WriteOpenAIUsage(json, shape);
        });
        return Task.CompletedTask;
    }

    private Task WithValidBodyAsync(HttpContext context, RequestShape shape, Action<Utf8JsonWriter, RequestShape, SimulatedProvider> write)
    {
        if (shape.IsValidJson)
        {
            WriteJson(context, Dialect.OpenAI, 200, shape, write);
        }
        else
        {
            WriteInvalidOpenAIBody(context);
        }

        return Task.CompletedTask;
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
        json.WriteStartArray("embedding"u8);
        for (var i = 0; i < 8; i++)
        {
            json.WriteNumberValue(Math.Round(Math.Sin(i + 1) / 10, 6));
        }

        json.WriteEndArray();
        json.WriteEndObject();
        json.WriteEndArray();
        json.WriteString("model"u8, shape.Model ?? "text-embedding-3-small");
        json.WriteStartObject("usage"u8);
        json.WriteNumber("prompt_tokens"u8, shape.InputTokens);
        json.WriteNumber("total_tokens"u8, shape.InputTokens);
        json.WriteEndObject();
    }

    private static void WriteResponse(Utf8JsonWriter json, RequestShape shape, SimulatedProvider upstream)
    {
        json.WriteString("id"u8, NewId("resp_", 32));
        json.WriteString("object"u8, "response"u8);
        json.WriteNumber("created_at"u8, upstream._time.GetUtcNow().ToUnixTimeSeconds());
        json.WriteString("status"u8, "completed"u8);
        json.WriteString("model"u8, shape.Model ?? DefaultOpenAIModel);
        json.WriteStartArray("output"u8);
        json.WriteStartObject();
        json.WriteString("type"u8, "message"u8);
        json.WriteString("id"u8, NewId("msg_", 32));
        json.WriteString("status"u8, "completed"u8);
        json.WriteString("role"u8, "assistant"u8);
        json.WriteStartArray("content"u8);
        json.WriteStartObject();
        json.WriteString("type"u8, "output_text"u8);
        json.WriteString("text"u8, ReplyText);
        json.WriteStartArray("annotations"u8);
        json.WriteEndArray();
        json.WriteEndObject();
        json.WriteEndArray();
        json.WriteEndObject();
        json.WriteEndArray();
        json.WriteStartObject("usage"u8);
        json.WriteNumber("input_tokens"u8, shape.InputTokens);
        json.WriteNumber("output_tokens"u8, OutputTokens);
        json.WriteNumber("total_tokens"u8, shape.InputTokens + OutputTokens);
        json.WriteEndObject();
    }

    private static void WriteOpenAIUsage(Utf8JsonWriter json, RequestShape shape)
    {
        json.WriteStartObject("usage"u8);
        json.WriteNumber("prompt_tokens"u8, shape.InputTokens);
        json.WriteNumber("completion_tokens"u8, OutputTokens);
        json.WriteNumber("total_tokens"u8, shape.InputTokens + OutputTokens);
        json.WriteEndObject();
    }

    private static void WriteChatChunk(ReplyBuffer buffer, int index, int deltas, string id, long created, RequestShape shape)
    {
        if (index == deltas + 2)
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
        json.WriteEndObject();
        buffer.EndJson();
        buffer.Raw("\n\n"u8);
    }
}
