using System.Text.Json;

namespace AuthFailoverProxy.Demo.Provider;

// The Anthropic Messages API: the whole answer and its SSE events.
internal sealed partial class SimulatedProvider
{
    private Task MessagesAsync(HttpContext context, RequestShape shape)
    {
        if (shape.Stream)
        {
            return StreamAsync(context, Dialect.Anthropic, shape, 6 + Math.Max(0, StreamDeltas));
        }

        WriteJson(context, Dialect.Anthropic, 200, shape, static (json, shape, upstream) =>
        {
            json.WriteString("id"u8, NewId("msg_01", 22));
            json.WriteString("type"u8, "message"u8);
            json.WriteString("role"u8, "assistant"u8);
            json.WriteString("model"u8, shape.Model ?? DefaultAnthropicModel);
            json.WriteStartArray("content"u8);
            json.WriteStartObject();
            json.WriteString("type"u8, "text"u8);
            json.WriteString("text"u8, ReplyText);
            json.WriteEndObject();
            json.WriteEndArray();
            json.WriteString("stop_reason"u8, "end_turn"u8);
            json.WriteNull("stop_sequence"u8);
            json.WriteStartObject("usage"u8);
            json.WriteNumber("input_tokens"u8, shape.InputTokens);
            json.WriteNumber("output_tokens"u8, OutputTokens);
            json.WriteEndObject();
        });
        return Task.CompletedTask;
    }

    private static void WriteAnthropicEvent(ReplyBuffer buffer, int index, int deltas, string id, RequestShape shape)
    {
        switch (index < 3 ? index : index < 3 + deltas ? 3 : index - deltas + 1)
        {
            case 0:
                buffer.Raw("event: message_start\ndata: "u8);
                var json = buffer.BeginJson();
                json.WriteStartObject();
                json.WriteString("type"u8, "message_start"u8);
                json.WriteStartObject("message"u8);
                json.WriteString("id"u8, id);
                json.WriteString("type"u8, "message"u8);
                json.WriteString("role"u8, "assistant"u8);
                json.WriteString("model"u8, shape.Model ?? DefaultAnthropicModel);
                json.WriteStartArray("content"u8);
                json.WriteEndArray();
                json.WriteNull("stop_reason"u8);
                json.WriteNull("stop_sequence"u8);
                json.WriteStartObject("usage"u8);
                json.WriteNumber("input_tokens"u8, shape.InputTokens);
                json.WriteNumber("output_tokens"u8, 1);
                json.WriteEndObject();
                json.WriteEndObject();
                json.WriteEndObject();
                buffer.EndJson();
                buffer.Raw("\n\n"u8);
                break;
            case 1:
                buffer.Raw("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"u8);
                break;
            case 2:
                buffer.Raw("event: ping\ndata: {\"type\":\"ping\"}\n\n"u8);
                break;
            case 3:
                buffer.Raw("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":"u8);
                var text = buffer.BeginJson();
                text.WriteStringValue(DeltaText(index - 3));
                buffer.EndJson();
                buffer.Raw("}}\n\n"u8);
                break;
            case 4:
                buffer.Raw("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"u8);
                break;
            case 5:
                // output_tokens is OutputTokens, as in the non-streaming answer.
                buffer.Raw("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":9}}\n\n"u8);
                break;
            default:
                buffer.Raw("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"u8);
                break;
        }
    }

    private static void WriteAnthropicModels(Utf8JsonWriter json, RequestShape shape, SimulatedProvider upstream)
    {
        json.WriteStartArray("data"u8);
        foreach (var model in AnthropicModels)
        {
            json.WriteStartObject();
            WriteAnthropicModel(json, model);
            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteBoolean("has_more"u8, false);
        json.WriteString("first_id"u8, AnthropicModels[0].Id);
        json.WriteString("last_id"u8, AnthropicModels[^1].Id);
    }

    private static void WriteAnthropicModel(Utf8JsonWriter json, (string Id, string DisplayName, string Created) model)
    {
        json.WriteString("type"u8, "model"u8);
        json.WriteString("id"u8, model.Id);
        json.WriteString("display_name"u8, model.DisplayName);
        json.WriteString("created_at"u8, model.Created);
    }

    /// <summary><c>GET /v1/models/{id}</c> in either dialect: the model, or the provider's 404 naming it.</summary>
    private static void WriteModel(HttpContext context, Dialect dialect, string id)
    {
        if (dialect == Dialect.OpenAI)
        {
            if (Array.IndexOf(OpenAIModels, id) < 0)
            {
                WriteError(context, dialect, new ErrorReply(404, "invalid_request_error", $"The model '{id}' does not exist", "model_not_found"));
                return;
            }

            WriteJsonBody(context, dialect, 200, id, static (json, id, _) => WriteOpenAIModel(json, id));
            return;
        }

        var index = Array.FindIndex(AnthropicModels, m => m.Id == id);
        if (index < 0)
        {
            WriteError(context, dialect, new ErrorReply(404, "not_found_error", $"model: {id}", null));
            return;
        }

        WriteJsonBody(context, dialect, 200, AnthropicModels[index], static (json, model, _) => WriteAnthropicModel(json, model));
    }
}
