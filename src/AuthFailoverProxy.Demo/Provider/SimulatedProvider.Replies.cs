using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace AuthFailoverProxy.Demo.Provider;

// Writing replies in either dialect: JSON bodies, the SSE loop, ids, headers and the reusable buffer.
internal sealed partial class SimulatedProvider
{
    /// <summary>Streams <paramref name="events"/> SSE events, each flushed on its own so a proxy that buffers shows up in tests.</summary>
    private Task StreamAsync(HttpContext context, Dialect dialect, RequestShape shape, int events)
        => StreamAsync(context, dialect == Dialect.Anthropic ? StreamFormat.AnthropicMessages : StreamFormat.ChatCompletions, shape, events);

    private async Task StreamAsync(HttpContext context, StreamFormat format, RequestShape shape, int events)
    {
        var dialect = format == StreamFormat.AnthropicMessages ? Dialect.Anthropic : Dialect.OpenAI;
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        AddDialectHeaders(context, dialect);
        var deltas = events - format switch { StreamFormat.AnthropicMessages => 6, StreamFormat.ChatCompletions => shape.IncludeUsage ? 4 : 3, _ => 8 };
        var id = format switch { StreamFormat.AnthropicMessages => NewId("msg_01", 22), StreamFormat.ChatCompletions => NewId("chatcmpl-", 24), _ => NewId("resp_", 32) };
        var created = _time.GetUtcNow().ToUnixTimeSeconds();
        var gate = BeforeStreamEvent;
        var completed = false;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _stopping.Token);
        var cancellationToken = linked.Token;
        try
        {
            // Headers go out before the first event, so a caller sees the response start even while event 0 is held back.
            await response.StartAsync(cancellationToken);
            await response.BodyWriter.FlushAsync(cancellationToken);
            for (var index = 0; index < events; index++)
            {
                if (gate is not null)
                {
                    await gate(index, cancellationToken);
                }

                var buffer = ReplyBuffer.Rent();
                try
                {
                    switch (format)
                    {
                        case StreamFormat.AnthropicMessages:
                            WriteAnthropicEvent(buffer, index, deltas, id, shape);
                            break;
                        case StreamFormat.ChatCompletions:
                            WriteChatChunk(buffer, index, deltas, id, created, shape);
                            break;
                        default:
                            WriteResponseEvent(buffer, index, deltas, id, created, shape);
                            break;
                    }

                    response.BodyWriter.Write(buffer.Written);
                }
                finally
                {
                    buffer.Return();
                }

                await response.BodyWriter.FlushAsync(cancellationToken);
                cancellationToken.ThrowIfCancellationRequested();
            }

            completed = true;
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // The caller left or the server is stopping; EndAbandoned tells which.
        }

        EndAbandoned(context, completed);
    }

    // With the default five deltas the text reassembles to ReplyText.
    private static string DeltaText(int delta) => delta < ReplyWords.Length ? ReplyWords[delta] : " more";

    /// <summary>Settles a request that did not finish normally: a caller that left is counted, a stopping server cuts the connection.</summary>
    private void EndAbandoned(HttpContext context, bool completed)
    {
        if (completed)
        {
            return;
        }

        if (context.RequestAborted.IsCancellationRequested)
        {
            if (Interlocked.Increment(ref _abortedRequests) == 1)
            {
                _firstAbort.TrySetResult();
            }
        }
        else
        {
            context.Abort();
        }
    }

    private void WriteJson(HttpContext context, Dialect dialect, int status, RequestShape shape, Action<Utf8JsonWriter, RequestShape, SimulatedProvider> write)
        => WriteJsonBody(context, dialect, status, (Shape: shape, Self: this, Write: write), static (json, state, _) => state.Write(json, state.Shape, state.Self));

    /// <summary>Writes a whole JSON object body with its Content-Length; Kestrel sends it with the headers when the handler returns.</summary>
    private static void WriteJsonBody<TState>(HttpContext context, Dialect dialect, int status, TState state, Action<Utf8JsonWriter, TState, string> writeMembers)
    {
        var response = context.Response;
        var requestId = AddDialectHeaders(context, dialect);
        var buffer = ReplyBuffer.Rent();
        try
        {
            var json = buffer.BeginJson();
            json.WriteStartObject();
            writeMembers(json, state, requestId);
            json.WriteEndObject();
            buffer.EndJson();
            response.StatusCode = status;
            response.ContentType = "application/json";
            response.ContentLength = buffer.Written.Length;
            response.BodyWriter.Write(buffer.Written);
        }
        finally
        {
            buffer.Return();
        }
    }

    private static void WriteConstant(HttpContext context, Dialect dialect, ReadOnlySpan<byte> body)
    {
        AddDialectHeaders(context, dialect);
        var response = context.Response;
        response.ContentType = "application/json";
        response.ContentLength = body.Length;
        response.BodyWriter.Write(body);
    }

    private static string AddDialectHeaders(HttpContext context, Dialect dialect)
    {
        var requestId = NewId("req_011C", 20);
        var headers = context.Response.Headers;
        var organization = context.Items[OrganizationItem] as string;
        if (dialect == Dialect.Anthropic)
        {
            headers["request-id"] = requestId;
            headers["anthropic-organization-id"] = organization ?? OrganizationId;
        }
        else
        {
            headers["x-request-id"] = requestId;
            headers["openai-organization"] = organization ?? OpenAIOrganization;
        }

        return requestId;
    }

    private static string NewId(string prefix, int randomChars)
        => string.Create(prefix.Length + randomChars, prefix, static (span, prefix) =>
        {
            prefix.AsSpan().CopyTo(span);
            Random.Shared.GetItems("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", span[prefix.Length..]);
        });

    /// <summary>A reusable buffer and JSON writer per thread: the hot path builds a reply without allocating one.</summary>
    private sealed class ReplyBuffer : IDisposable
    {
        private const int KeepCapacity = 64 * 1024;
        private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

        [ThreadStatic]
        private static ReplyBuffer? _cached;

        private readonly ArrayBufferWriter<byte> _bytes = new(2048);
        private readonly Utf8JsonWriter _json;

        private ReplyBuffer() => _json = new Utf8JsonWriter(_bytes, WriterOptions);

        public ReadOnlySpan<byte> Written => _bytes.WrittenSpan;

        public static ReplyBuffer Rent()
        {
            var buffer = _cached ?? new ReplyBuffer();
            _cached = null;
            return buffer;
        }

        public void Raw(ReadOnlySpan<byte> bytes) => _bytes.Write(bytes);

        public Utf8JsonWriter BeginJson()
        {
            _json.Reset(_bytes);
            return _json;
        }

        public void EndJson() => _json.Flush();

        public void Return()
        {
            _bytes.ResetWrittenCount();
            if (_bytes.Capacity <= KeepCapacity)
            {
                _cached = this;
            }
            else
            {
                Dispose();
            }
        }

        public void Dispose() => _json.Dispose();
    }
}
