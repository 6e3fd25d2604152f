using System.Text.Json;

namespace AuthFailoverProxy.Telemetry;

/// <summary>
/// Takes out of an OpenAI chat-completions stream what the proxy caused by asking for its usage
/// (<see cref="StreamUsageRequest"/>): the usage chunk (<c>"choices":[]</c> and a usage object) with the blank line that
/// ends its event, and the <c>"usage":null</c> every other chunk then carries. The agent gets the stream the provider
/// would have sent it, byte for byte; the usage was read on the way in (see <see cref="UsageContent"/>).
/// </summary>
/// <remarks>
/// Nothing is buffered but the line being read: a line that is not a data line passes as it comes, a data line (one
/// event, which a client acts on only whole) is held until its end, and one over 64 KiB passes unchanged. The reader's
/// own buffer is filtered where the bytes lie; only what does not fit there (a line that began in an earlier read) waits
/// in a small buffer of its own for the next read.
/// </remarks>
internal sealed class UsageChunkFilter(Stream inner) : Failover.ForwardOnlyStream
{
    private const int MaxLine = 64 * 1024;

    private byte[]? _line;
    private int _lineLength;
    private bool _passing;
    private byte[]? _out;
    private int _outStart;
    private int _outEnd;
    private bool _eventStart = true;
    private bool _dropBlank;
    private bool _ended;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            if (_outEnd > _outStart)
            {
                if (buffer.IsEmpty)
                {
                    // A zero-byte read asks "is there data?": there is.
                    return 0;
                }

                var count = Math.Min(buffer.Length, _outEnd - _outStart);
                _out.AsSpan(_outStart, count).CopyTo(buffer.Span);
                _outStart += count;
                if (_outStart == _outEnd)
                {
                    (_outStart, _outEnd) = (0, 0);
                }

                return count;
            }

            if (_ended || buffer.IsEmpty)
            {
                // A zero-byte read passes through: the copier waits on a quiet stream without a buffer of its own.
                return _ended ? 0 : await inner.ReadAsync(buffer, cancellationToken);
            }

            var read = await inner.ReadAsync(buffer, cancellationToken);
            if (read == 0)
            {
                _ended = true;
                if (_lineLength > 0)
                {
                    // A last line without its newline: judged as it is.
                    var none = 0;
                    Line(buffer.Span, ref none, 0, _line.AsSpan(0, _lineLength));
                    _lineLength = 0;
                }

                continue;
            }

            var written = Filter(buffer.Span, read);
            if (written > 0)
            {
                return written;
            }

            // Everything read was held, taken out, or waits in the overflow: serve that, or read on.
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }

    /// <summary>Returns whether a chunk is the usage chunk: its choices an empty array, its usage an object.</summary>
    internal static bool IsUsageChunk(ReadOnlySpan<byte> json)
    {
        if (json.IndexOf("\"usage\""u8) < 0 || json.IndexOf("\"choices\""u8) < 0)
        {
            return false;
        }

        var reader = new Utf8JsonReader(json);
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            var (noChoices, usage) = (false, false);
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var name = reader.ValueTextEquals("choices"u8) ? 1 : reader.ValueTextEquals("usage"u8) ? 2 : 0;
                reader.Read();
                var (type, start) = (reader.TokenType, reader.TokenStartIndex);
                reader.Skip();
                if (name == 1)
                {
                    // Empty: nothing but white space between its brackets.
                    noChoices = type == JsonTokenType.StartArray && json[(int)(start + 1)..(int)reader.TokenStartIndex].Trim(" \t\r\n"u8).IsEmpty;
                }
                else if (name == 2)
                {
                    usage = type == JsonTokenType.StartObject;
                }
            }

            return noChoices && usage;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>Returns the bytes to cut to take a top-level <c>"usage":null</c> out of a chunk (with the comma that joins it), or null.</summary>
    internal static (int From, int To)? NullUsage(ReadOnlySpan<byte> json)
    {
        if (json.IndexOf("\"usage\""u8) < 0)
        {
            return null;
        }

        var reader = new Utf8JsonReader(json);
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return null;
            }

            var previousEnd = -1L;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var start = reader.TokenStartIndex;
                var isUsage = reader.ValueTextEquals("usage"u8);
                reader.Read();
                if (isUsage && reader.TokenType == JsonTokenType.Null)
                {
                    var end = reader.BytesConsumed;
                    if (previousEnd >= 0)
                    {
                        // From the end of the member before it: the comma goes too.
                        return ((int)previousEnd, (int)end);
                    }

                    // The first member: up to the next one's name, comma included.
                    return reader.Read() && reader.TokenType == JsonTokenType.PropertyName ? ((int)start, (int)reader.TokenStartIndex) : ((int)start, (int)end);
                }

                reader.Skip();
                previousEnd = reader.BytesConsumed;
            }
        }
        catch (JsonException)
        {
            // Not JSON: passed as it is.
        }

        return null;
    }

    /// <summary>Filters the <paramref name="read"/> bytes at the start of <paramref name="buffer"/> where they lie; returns how many are left there to pass on.</summary>
    private int Filter(Span<byte> buffer, int read)
    {
        var written = 0;
        var at = 0;
        while (at < read)
        {
            var rest = buffer[at..read];
            var newline = rest.IndexOf((byte)'\n');
            var length = newline < 0 ? rest.Length : newline + 1;
            var end = at + length;
            if (_passing)
            {
                Emit(buffer, ref written, end, rest[..length]);
                _passing = newline < 0;
            }
            else if (newline >= 0 && _lineLength == 0)
            {
                // The usual case: the whole line is in this read, and is judged where it lies.
                Line(buffer, ref written, end, rest[..length]);
            }
            else if (newline >= 0)
            {
                Hold(rest[..length]);
                Line(buffer, ref written, end, _line.AsSpan(0, _lineLength));
                _lineLength = 0;
            }
            else if (_lineLength + length > MaxLine)
            {
                PassLine(buffer, ref written, at);
                Emit(buffer, ref written, end, rest);
            }
            else
            {
                Hold(rest);
                if (_lineLength >= 5 && !_line.AsSpan(0, 5).SequenceEqual("data:"u8))
                {
                    // Not a data line: nothing in it is the proxy's to take out.
                    PassLine(buffer, ref written, end);
                }
            }

            at = end;
        }

        return written;
    }

    /// <summary>Passes the held start of a line on, and the rest of the line as it comes.</summary>
    private void PassLine(Span<byte> buffer, ref int written, int limit)
    {
        Emit(buffer, ref written, limit, _line.AsSpan(0, _lineLength));
        (_lineLength, _passing, _eventStart, _dropBlank) = (0, true, false, false);
    }

    /// <summary>Judges one whole line (its newline included, if it had one) and passes on what the agent is to get of it.</summary>
    private void Line(Span<byte> buffer, ref int written, int limit, ReadOnlySpan<byte> line)
    {
        var content = line.TrimEnd((byte)'\n').TrimEnd((byte)'\r');
        if (content.IsEmpty)
        {
            _eventStart = true;
            if (_dropBlank)
            {
                // The end of the usage chunk's event goes with it.
                _dropBlank = false;
                return;
            }

            Emit(buffer, ref written, limit, line);
            return;
        }

        var eventStart = _eventStart;
        (_eventStart, _dropBlank) = (false, false);
        if (!content.StartsWith("data:"u8))
        {
            Emit(buffer, ref written, limit, line);
            return;
        }

        var data = content[5..].TrimStart((byte)' ');
        if (eventStart && IsUsageChunk(data))
        {
            _dropBlank = true;
            return;
        }

        if (NullUsage(data) is { } cut)
        {
            var offset = content.Length - data.Length;
            Emit(buffer, ref written, limit, line[..(offset + cut.From)]);
            Emit(buffer, ref written, limit, line[(offset + cut.To)..]);
            return;
        }

        Emit(buffer, ref written, limit, line);
    }

    /// <summary>
    /// Passes bytes on: into the reader's buffer where they fit before <paramref name="limit"/> (the first byte not yet
    /// filtered), otherwise, and from then on in this read, into the overflow the next read serves.
    /// </summary>
    private void Emit(Span<byte> buffer, ref int written, int limit, ReadOnlySpan<byte> bytes)
    {
        if (_outEnd == 0 && written + bytes.Length <= limit)
        {
            bytes.CopyTo(buffer[written..]);
            written += bytes.Length;
            return;
        }

        Grow(ref _out, _outEnd + bytes.Length);
        bytes.CopyTo(_out.AsSpan(_outEnd));
        _outEnd += bytes.Length;
    }

    private void Hold(ReadOnlySpan<byte> bytes)
    {
        Grow(ref _line, _lineLength + bytes.Length);
        bytes.CopyTo(_line.AsSpan(_lineLength));
        _lineLength += bytes.Length;
    }

    private static void Grow(ref byte[]? array, int size)
    {
        if (array is null || array.Length < size)
        {
            Array.Resize(ref array, Math.Max(size, Math.Max(1024, (array?.Length ?? 0) * 2)));
        }
    }

    /// <summary>
    /// An answer's content with the proxy's usage chunk taken out (see <see cref="UsageChunkFilter"/>); its length is no
    /// longer the upstream's, so whoever puts it in place drops the upstream's <c>Content-Length</c> from the agent's answer.
    /// </summary>
    internal sealed class FilteredContent(HttpContent inner) : Failover.StreamedContent
    {
        private readonly HttpContent _inner = inner;

        protected override async Task<Stream> OpenAsync(CancellationToken cancellationToken)
            => new UsageChunkFilter(await _inner.ReadAsStreamAsync(cancellationToken));

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
