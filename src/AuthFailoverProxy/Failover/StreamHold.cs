using System.Buffers;
using System.Net;
using System.Text.Json;
using AuthFailoverProxy.KeyPool;

namespace AuthFailoverProxy.Failover;

/// <summary>How the opening of a stream ended, as far as the proxy held it.</summary>
internal enum StreamOpening
{
    /// <summary>The first content event came: from here everything passes as it comes.</summary>
    Content,

    /// <summary>An error event came before any content: nothing the agent acts on was sent, so the request can be replayed.</summary>
    Error,

    /// <summary>The stream ended before any content.</summary>
    Ended,

    /// <summary>No content within the hold time (or too much before it): the stream passes through as it is.</summary>
    TimedOut,
}

/// <summary>
/// Holds the opening of a streamed answer (its status, headers and lifecycle events: <c>message_start</c>,
/// <c>content_block_start</c>, <c>ping</c>, a role-only chunk, <c>response.created</c>…) until its first content event, for
/// at most a capped time. The provider under load sends a 200 whose first event is <c>error: overloaded_error</c>; until
/// content arrives the agent has received nothing it acts on, so such an error is judged like the same error as a
/// status and the request replayed, instead of reaching the agent. Content is passed on the moment it arrives: the
/// agent's time to first content does not grow.
/// </summary>
internal sealed class StreamHold : IDisposable
{
    private const int MaxHeldBytes = 64 * 1024;

    private readonly TimeProvider _time;
    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(4096);
    private int _filled;
    private int _scanned;

    private StreamHold(Stream upstream, TimeProvider time)
    {
        Upstream = upstream;
        _time = time;
    }

    /// <summary>Gets the upstream's body stream; whatever was not read yet is still in it.</summary>
    public Stream Upstream { get; }

    /// <summary>Gets a read started while holding and not finished when the hold time ran out, whose bytes come after the held ones.</summary>
    public Task<int>? Pending { get; private set; }

    /// <summary>Gets how the opening ended.</summary>
    public StreamOpening Opening { get; private set; }

    /// <summary>Gets, for <see cref="StreamOpening.Error"/>, the error event's body and the status it stands for.</summary>
    public (int Status, ProviderError Error) ErrorEvent { get; private set; }

    /// <summary>
    /// Gets when the first content came, as a <see cref="TimeProvider"/> timestamp: the content event that ended the
    /// opening, or, for an opening that outlasted the hold, the first bytes passed on after it (the stream is not read
    /// twice to find its first content event); 0 while none came (telemetry: the time to first chunk).
    /// </summary>
    public long ContentAt { get; private set; }

    /// <summary>Gets the bytes read and held so far.</summary>
    public ReadOnlyMemory<byte> Held => _buffer.AsMemory(0, _filled);

    /// <summary>Returns whether an answer is a stream whose opening is worth holding: a 200 of <c>text/event-stream</c>.</summary>
    public static bool Applies(HttpResponseMessage response)
        => response.StatusCode == HttpStatusCode.OK && response.Content.Headers.ContentType?.MediaType is "text/event-stream";

    /// <summary>Reads the stream's opening until its first content event, an error event, its end, or <paramref name="cap"/>.</summary>
    public static async Task<StreamHold> ReadOpeningAsync(HttpContent content, ProviderKind kind, TimeSpan cap, TimeProvider time, CancellationToken cancellationToken)
    {
        var hold = new StreamHold(await content.ReadAsStreamAsync(cancellationToken), time);
        try
        {
            using var timer = new CancellationTokenSource(cap, time);
            var expired = Task.Delay(Timeout.InfiniteTimeSpan, timer.Token);
            while (true)
            {
                if (hold._filled == hold._buffer.Length)
                {
                    if (hold._filled >= MaxHeldBytes)
                    {
                        hold.Opening = StreamOpening.TimedOut;
                        return hold;
                    }

                    hold.Grow();
                }

                var read = hold.Upstream.ReadAsync(hold._buffer.AsMemory(hold._filled), cancellationToken).AsTask();
                if (!read.IsCompleted && await Task.WhenAny(read, expired) == expired)
                {
                    // Cancelling the read would break the connection: its bytes are passed on when they come.
                    hold.Pending = read;
                    hold.Opening = StreamOpening.TimedOut;
                    return hold;
                }

                var count = await read;
                if (count == 0)
                {
                    hold.Opening = StreamOpening.Ended;
                    return hold;
                }

                hold._filled += count;
                if (hold.ScanEvents(kind) is { } opening)
                {
                    hold.Opening = opening;
                    hold.ContentAt = opening == StreamOpening.Content ? time.GetTimestamp() : 0;
                    return hold;
                }
            }
        }
        catch
        {
            hold.Dispose();
            throw;
        }
    }

    /// <summary>Returns content that passes on the held bytes, then the pending read's, then the rest of the stream; it owns this hold from then on.</summary>
    public HttpContent ToContent() => new HeldContent(this);

    public void Dispose()
    {
        Upstream.Dispose();
        ReleaseBuffer();
    }

    /// <summary>
    /// Gives the hold's buffer back once its bytes are passed on: a stream open for minutes holds none of it (a thousand
    /// open streams would otherwise keep a thousand buffers).
    /// </summary>
    private void ReleaseBuffer()
    {
        _filled = 0;
        var buffer = Interlocked.Exchange(ref _buffer, []);
        if (buffer.Length > 0 && Pending is not { IsCompleted: false })
        {
            // A read still running may write into the buffer: then it is left to the collector, not the pool.
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Maps an error event's type to the status the provider gives the same error outside a stream.</summary>
    internal static int StatusOf(in ProviderError error) => (error.Type, error.Code) switch
    {
        ("overloaded_error", _) or (_, "overloaded") => 529,
        ("rate_limit_error", _) or (_, "rate_limit_exceeded") or ("insufficient_quota", _) or (_, "insufficient_quota") => 429,
        ("authentication_error", _) or (_, "invalid_api_key") => 401,
        ("permission_error", _) => 403,
        ("billing_error", _) => 402,
        ("not_found_error", _) => 404,
        ("request_too_large", _) => 413,
        ("timeout_error", _) => 504,
        ("invalid_request_error", _) => 400,
        _ => 500,
    };

    /// <summary>Notes bytes passed on after an opening that outlasted the hold: the first of them stand for its first content.</summary>
    private void Passed(int count)
    {
        if (count > 0 && ContentAt == 0 && Opening == StreamOpening.TimedOut)
        {
            ContentAt = _time.GetTimestamp();
        }
    }

    private void Grow()
    {
        var larger = ArrayPool<byte>.Shared.Rent(Math.Min(_buffer.Length * 2, MaxHeldBytes));
        _buffer.AsSpan(0, _filled).CopyTo(larger);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = larger;
    }

    /// <summary>Looks at each complete event not looked at yet; returns how the opening ends, or null to read on.</summary>
    private StreamOpening? ScanEvents(ProviderKind kind)
    {
        while (true)
        {
            var rest = _buffer.AsSpan(_scanned, _filled - _scanned);
            var end = EventEnd(rest, out var separator);
            if (end < 0)
            {
                return null;
            }

            var block = rest[..end];
            _scanned += end + separator;
            switch (Classify(block, kind))
            {
                case EventKind.Content:
                    return StreamOpening.Content;
                case EventKind.Error:
                    var error = ProviderError.Parse(Data(block));
                    ErrorEvent = (StatusOf(error), error with { IsProviderError = true });
                    return StreamOpening.Error;
            }
        }
    }

    private static int EventEnd(ReadOnlySpan<byte> text, out int separator)
    {
        var lf = text.IndexOf("\n\n"u8);
        var crlf = text.IndexOf("\r\n\r\n"u8);
        if (crlf >= 0 && (lf < 0 || crlf < lf))
        {
            separator = 4;
            return crlf;
        }

        separator = 2;
        return lf;
    }

    private enum EventKind
    {
        Lifecycle,
        Content,
        Error,
    }

    /// <summary>Tells an event that carries what the agent acts on from the stream's frame, in each dialect.</summary>
    private static EventKind Classify(ReadOnlySpan<byte> block, ProviderKind kind)
    {
        var name = Field(block, "event:"u8);
        if (!name.IsEmpty)
        {
            // Anthropic Messages and the OpenAI Responses API name their events.
            if (name.SequenceEqual("error"u8) || name.SequenceEqual("response.failed"u8))
            {
                return EventKind.Error;
            }

            return name.SequenceEqual("content_block_delta"u8) || name.EndsWith(".delta"u8) ? EventKind.Content : EventKind.Lifecycle;
        }

        // Chat completions: unnamed chunks; an error chunk, or the first delta that carries something.
        var data = Data(block);
        if (data.IsEmpty || data.SequenceEqual("[DONE]"u8))
        {
            return EventKind.Lifecycle;
        }

        if (data.StartsWith("{\"error\""u8))
        {
            return EventKind.Error;
        }

        return kind == ProviderKind.OpenAI && !CarriesDelta(data) ? EventKind.Lifecycle : EventKind.Content;
    }

    /// <summary>Returns whether a chat completion chunk's delta carries content, a tool call or a refusal (not only the role).</summary>
    private static bool CarriesDelta(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        try
        {
            var inDelta = 0;
            while (reader.Read())
            {
                if (reader.TokenType == JsonTokenType.PropertyName && reader.ValueTextEquals("delta"u8))
                {
                    inDelta = reader.CurrentDepth + 1;
                    continue;
                }

                if (inDelta > 0 && reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == inDelta)
                {
                    var isRole = reader.ValueTextEquals("role"u8);
                    reader.Read();
                    if (!isRole && reader.TokenType is not (JsonTokenType.Null or JsonTokenType.False) && !(reader.TokenType == JsonTokenType.String && reader.ValueSpan.IsEmpty))
                    {
                        return true;
                    }

                    reader.Skip();
                }
            }
        }
        catch (JsonException)
        {
            // Not JSON: pass it on as it is.
            return true;
        }

        // A chunk with no delta at all (usage only, say) is a frame too.
        return false;
    }

    private static ReadOnlySpan<byte> Field(ReadOnlySpan<byte> block, ReadOnlySpan<byte> name)
    {
        foreach (var range in block.Split((byte)'\n'))
        {
            var line = block[range].TrimEnd((byte)'\r');
            if (line.StartsWith(name))
            {
                return line[name.Length..].Trim((byte)' ');
            }
        }

        return [];
    }

    private static ReadOnlySpan<byte> Data(ReadOnlySpan<byte> block) => Field(block, "data:"u8);

    /// <summary>The held bytes, then the pending read's, then the rest of the upstream's stream.</summary>
    private sealed class HeldContent(StreamHold hold) : StreamedContent
    {
        private readonly StreamHold _hold = hold;

        protected override Task<Stream> OpenAsync(CancellationToken cancellationToken) => Task.FromResult<Stream>(new HeldStream(_hold));

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _hold.Dispose();
            }

            base.Dispose(disposing);
        }
    }

    private sealed class HeldStream(StreamHold hold) : ForwardOnlyStream
    {
        private int _served;
        private int _end = hold._filled;
        private Task<int>? _pending = hold.Pending;

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_served == _end && _pending is { } pending)
            {
                // The read the hold left running writes its bytes after the held ones.
                _pending = null;
                var pendingCount = await pending;
                hold.Passed(pendingCount);
                _end += pendingCount;
            }

            if (_served < _end)
            {
                if (buffer.IsEmpty)
                {
                    // A zero-byte read asks "is there data?": there is.
                    return 0;
                }

                var count = Math.Min(buffer.Length, _end - _served);
                hold._buffer.AsSpan(_served, count).CopyTo(buffer.Span);
                _served += count;
                if (_served == _end && _pending is null)
                {
                    // A read the hold left running still writes into the buffer: it goes once that read is passed on.
                    hold.ReleaseBuffer();
                }

                return count;
            }

            // Everything held is passed on: reads go to the upstream, zero-byte ones too, so the copier waiting on a quiet
            // stream holds no buffer of its own meanwhile (YARP's copy returns its buffer while such a read waits).
            var read = await hold.Upstream.ReadAsync(buffer, cancellationToken);
            hold.Passed(read);
            return read;
        }

    }
}
