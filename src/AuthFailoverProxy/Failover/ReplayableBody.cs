using System.Buffers;
using Microsoft.AspNetCore.Http.Features;

namespace AuthFailoverProxy.Failover;

/// <summary>
/// A request body kept so it can be sent again byte for byte: in a pooled array up to
/// <see cref="RequestBodyOptions.MemoryThresholdBytes"/>, in a temporary file (deleted on dispose) above it. Once no
/// replay can happen any more (the answer is going to the agent), <see cref="Release"/> lets it go as soon as the
/// upstream has read it, so memory and spill files do not grow with the length of the streams being answered.
/// </summary>
internal sealed class ReplayableBody : IAsyncDisposable
{
    private const int FirstChunk = 16 * 1024;
    private const int CopyChunk = 64 * 1024;

    private byte[]? _memory;
    private byte[]? _owned;
    private int _memoryLength;
    private FileStream? _file;
    private BodySpill? _spill;
    private long _reserved;
    private ReplayableBody? _inner;
    private IReadOnlyList<(long Start, long End)>? _cuts;
    private byte[]? _replacement;
    private bool _edited;
    private int _reading;
    private int _releaseRequested;
    private int _disposed;

    private ReplayableBody()
    {
    }

    /// <summary>Gets a body for requests that have none; nothing is buffered and nothing is replaced.</summary>
    public static ReplayableBody None { get; } = new();

    public bool HasBody => _memory is not null || _owned is not null || _file is not null || _inner is not null;

    /// <summary>Gets a value indicating whether the body was spilled to a file (it is larger than the memory threshold), or is a view of one.</summary>
    public bool IsSpilled => _file is not null || _inner is { IsSpilled: true };

    /// <summary>Gets a value indicating whether the proxy changed the agent's bytes (its length may differ from the one the agent declared).</summary>
    public bool IsRewritten => _edited || _owned is not null || _inner is not null;

    private byte[] Memory => _memory ?? _owned!;

    /// <summary>
    /// Reads the whole body of <paramref name="request"/>, spilling it through <paramref name="spill"/> above the memory
    /// threshold. A body larger than <see cref="RequestBodyOptions.MaxBytes"/> is refused (a declared length over the
    /// limit before a byte is read), and so is one the spill has no room for.
    /// </summary>
    public static async ValueTask<BodyRead> ReadAsync(HttpRequest request, BodySpill spill, CancellationToken cancellationToken)
    {
        var options = spill.Options;
        var canHaveBody = request.HttpContext.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody ?? true;
        var declared = request.ContentLength;
        if (!canHaveBody || declared == 0)
        {
            return new(None, BodyRefusal.None);
        }

        if (declared > options.MaxBytes)
        {
            return new(null, BodyRefusal.TooLarge);
        }

        var body = new ReplayableBody { _spill = spill };
        try
        {
            var refusal = await body.FillAsync(request.Body, declared, options, cancellationToken);
            if (refusal == BodyRefusal.None)
            {
                return new(body, refusal);
            }

            await body.DisposeAsync();
            return new(null, refusal);
        }
        catch
        {
            await body.DisposeAsync();
            throw;
        }
    }

    /// <summary>Gets the body when it is held in memory; empty for no body or one spilled to a file.</summary>
    public ReadOnlySpan<byte> InMemory => _file is null && (_memory is not null || _owned is not null) ? Memory.AsSpan(0, _memoryLength) : [];

    /// <summary>Gets the body's length in bytes.</summary>
    public long Length => _inner is { } inner
        ? inner.Length + _cuts!.Sum(c => _replacement!.Length - (c.End - c.Start))
        : _file?.Length ?? _memoryLength;

    /// <summary>Wraps bytes made by the proxy itself (a safe-mode rewrite); nothing is rented, so nothing is returned.</summary>
    public static ReplayableBody FromBytes(byte[] bytes) => new() { _owned = bytes, _memoryLength = bytes.Length };

    /// <summary>
    /// Returns <paramref name="inner"/> read with each of <paramref name="cuts"/> (byte ranges, in order) replaced by
    /// <paramref name="replacement"/>: a safe-mode rewrite of a spilled body without a second copy of it. Releasing or
    /// disposing it does the same to <paramref name="inner"/>.
    /// </summary>
    public static ReplayableBody Spliced(ReplayableBody inner, IReadOnlyList<(long Start, long End)> cuts, byte[] replacement)
        => new() { _inner = inner, _cuts = cuts, _replacement = replacement };

    /// <summary>
    /// Returns the body with the bytes from <paramref name="start"/> to <paramref name="end"/> replaced by
    /// <paramref name="replacement"/> (an insertion where they are equal), before any attempt has read it: a body in
    /// memory is edited where it lies (moving only what follows the cut, in the array it already has when that has room),
    /// a spilled one is read through a view that splices the replacement in (<see cref="Spliced"/>).
    /// </summary>
    public ReplayableBody Splice(long start, long end, byte[] replacement)
    {
        if (_file is not null || _inner is not null)
        {
            return Spliced(this, [(start, end)], replacement);
        }

        var (from, to) = ((int)start, (int)end);
        var length = _memoryLength + replacement.Length - (to - from);
        var memory = Memory;
        if (memory.Length < length)
        {
            var larger = ArrayPool<byte>.Shared.Rent(length);
            memory.AsSpan(0, from).CopyTo(larger);
            memory.AsSpan(to, _memoryLength - to).CopyTo(larger.AsSpan(from + replacement.Length));
            if (_memory is not null)
            {
                ArrayPool<byte>.Shared.Return(_memory);
            }

            (_memory, _owned) = (larger, null);
        }
        else
        {
            memory.AsSpan(to, _memoryLength - to).CopyTo(memory.AsSpan(from + replacement.Length));
        }

        replacement.CopyTo(Memory.AsSpan(from));
        _memoryLength = length;
        _edited = true;
        return this;
    }

    /// <summary>Returns a fresh stream positioned at the first byte; only one attempt reads at a time.</summary>
    public Stream OpenRead()
    {
        if (_inner is { } inner)
        {
            return new SplicedStream(inner.OpenRead(), _cuts!, _replacement!);
        }

        Interlocked.Exchange(ref _reading, 1);
        if (_file is not null)
        {
            _file.Position = 0;
        }

        return new ReplayStream(this);
    }

    /// <summary>
    /// Says no attempt will read the body again: it is let go once the current attempt has read it to the end (at once
    /// when it already has), or at <see cref="DisposeAsync"/> at the latest.
    /// </summary>
    public void Release()
    {
        if (_inner is { } inner)
        {
            inner.Release();
            return;
        }

        if (!HasBody || ReferenceEquals(this, None))
        {
            return;
        }

        Interlocked.Exchange(ref _releaseRequested, 1);
        if (Volatile.Read(ref _reading) == 0)
        {
            Free();
        }
    }

    public ValueTask DisposeAsync()
    {
        if (_inner is { } inner)
        {
            return inner.DisposeAsync();
        }

        if (!ReferenceEquals(this, None))
        {
            Free();
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>Called by the reading attempt when it reached the end of the body.</summary>
    private void ReadToTheEnd()
    {
        Interlocked.Exchange(ref _reading, 0);
        if (Volatile.Read(ref _releaseRequested) == 1)
        {
            Free();
        }
    }

    /// <summary>Returns the array to the pool and deletes the spill file, once, from whichever side gets here first.</summary>
    private void Free()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        if (_memory is { } memory)
        {
            _memory = null;
            ArrayPool<byte>.Shared.Return(memory);
        }

        if (_file is { } file)
        {
            _file = null;
            // Unlinked when it was made (or DeleteOnClose): closing it gives its space back.
            file.Dispose();
        }

        if (_reserved > 0)
        {
            _spill!.Return(Interlocked.Exchange(ref _reserved, 0));
        }
    }

    private async ValueTask<BodyRefusal> FillAsync(Stream source, long? declared, RequestBodyOptions options, CancellationToken cancellationToken)
    {
        var threshold = Math.Max(FirstChunk, options.MemoryThresholdBytes);
        // A declared length that fits in memory is read into one exactly-sized buffer: no growth, no copy.
        _memory = ArrayPool<byte>.Shared.Rent(declared is { } length && length <= threshold ? (int)length : Math.Min(FirstChunk, threshold));

        while (true)
        {
            if (_memoryLength == _memory.Length)
            {
                if (_memoryLength >= threshold)
                {
                    return await SpillAndFillAsync(source, declared, options, cancellationToken);
                }

                var larger = ArrayPool<byte>.Shared.Rent(Math.Min(threshold, _memory.Length * 2));
                _memory.AsSpan(0, _memoryLength).CopyTo(larger);
                ArrayPool<byte>.Shared.Return(_memory);
                _memory = larger;
            }

            var read = await source.ReadAsync(_memory.AsMemory(_memoryLength), cancellationToken);
            if (read == 0)
            {
                return BodyRefusal.None;
            }

            _memoryLength += read;
            if (_memoryLength > options.MaxBytes)
            {
                return BodyRefusal.TooLarge;
            }

            if (_memoryLength == declared)
            {
                // The server enforces Content-Length; asking for more would only grow the buffer to read the end.
                return BodyRefusal.None;
            }
        }
    }

    private async ValueTask<BodyRefusal> SpillAndFillAsync(Stream source, long? declared, RequestBodyOptions options, CancellationToken cancellationToken)
    {
        // A declared length is reserved whole, so a body the spill cannot hold is refused before it is read on.
        if (!Reserve(declared ?? _memoryLength))
        {
            return BodyRefusal.SpillFull;
        }

        _file = _spill!.Create();
        await _file.WriteAsync(_memory.AsMemory(0, _memoryLength), cancellationToken);
        long total = _memoryLength;
        ArrayPool<byte>.Shared.Return(_memory!);
        _memory = null;
        _memoryLength = 0;

        var chunk = ArrayPool<byte>.Shared.Rent(CopyChunk);
        try
        {
            while (true)
            {
                var read = await source.ReadAsync(chunk.AsMemory(), cancellationToken);
                if (read == 0)
                {
                    await _file.FlushAsync(cancellationToken);
                    return BodyRefusal.None;
                }

                total += read;
                if (total > options.MaxBytes)
                {
                    return BodyRefusal.TooLarge;
                }

                if (total > _reserved && !Reserve(total))
                {
                    return BodyRefusal.SpillFull;
                }

                await _file.WriteAsync(chunk.AsMemory(0, read), cancellationToken);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }
    }

    /// <summary>Raises this body's share of the spill capacity to <paramref name="total"/> bytes.</summary>
    private bool Reserve(long total)
    {
        // Ahead in steps of 1 MiB, so a body without a declared length does not reserve per read; near the cap, exactly.
        var ahead = Math.Max(total, _reserved + (1024 * 1024));
        if (_spill!.TryReserve(ahead - _reserved))
        {
            _reserved = ahead;
            return true;
        }

        if (_spill.TryReserve(total - _reserved))
        {
            _reserved = total;
            return true;
        }

        return false;
    }

    /// <summary>
    /// One attempt's read of the body, from the array or the spilled file, which it never closes (the next attempt may
    /// need it). Reaching the end tells the body, so a released body is let go the moment the upstream has it all.
    /// </summary>
    private sealed class ReplayStream(ReplayableBody body) : Stream
    {
        private readonly byte[]? _memory = body._file is null ? body.Memory : null;
        private readonly FileStream? _file = body._file;
        private int _position;
        private bool _ended;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => body.Length;

        public override long Position { get => _file?.Position ?? _position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (_ended)
            {
                return 0;
            }

            int read;
            if (_memory is not null)
            {
                read = Math.Min(buffer.Length, body._memoryLength - _position);
                _memory.AsSpan(_position, read).CopyTo(buffer);
                _position += read;
            }
            else
            {
                read = _file!.Read(buffer);
            }

            return Ended(read, buffer.Length);
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
            => _memory is not null || _ended ? Read(buffer.Span) : Ended(await _file!.ReadAsync(buffer, cancellationToken), buffer.Length);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
            => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        private int Ended(int read, int asked)
        {
            if (read == 0 && asked > 0 && !_ended)
            {
                _ended = true;
                body.ReadToTheEnd();
            }

            return read;
        }
    }

    /// <summary>The inner body's bytes with each cut replaced; the cut bytes (a model name) are read and dropped.</summary>
    private sealed class SplicedStream(Stream inner, IReadOnlyList<(long Start, long End)> cuts, byte[] replacement) : ForwardOnlyStream
    {
        private long _position;
        private int _cut;
        private int _replaced = -1;

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (buffer.IsEmpty)
            {
                return 0;
            }

            if (_cut < cuts.Count && _position == cuts[_cut].Start)
            {
                if (_replaced < 0)
                {
                    // At a cut: drop the original value, then hand out the replacement.
                    var skip = new byte[(int)(cuts[_cut].End - cuts[_cut].Start)];
                    await inner.ReadExactlyAsync(skip, cancellationToken);
                    _replaced = 0;
                }

                var count = Math.Min(buffer.Length, replacement.Length - _replaced);
                replacement.AsMemory(_replaced, count).CopyTo(buffer);
                _replaced += count;
                if (_replaced == replacement.Length)
                {
                    _position = cuts[_cut].End;
                    (_cut, _replaced) = (_cut + 1, -1);
                }

                return count;
            }

            var limit = _cut < cuts.Count ? (int)Math.Min(buffer.Length, cuts[_cut].Start - _position) : buffer.Length;
            var read = await inner.ReadAsync(buffer[..limit], cancellationToken);
            _position += read;
            return read;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}

/// <summary>Why a request body was not taken.</summary>
internal enum BodyRefusal
{
    /// <summary>It was taken.</summary>
    None,

    /// <summary>It is larger than <see cref="RequestBodyOptions.MaxBytes"/>.</summary>
    TooLarge,

    /// <summary>The spill for large bodies is full (<see cref="RequestBodyOptions.MaxSpillBytes"/>).</summary>
    SpillFull,
}

/// <summary>A request body read, or why it was refused.</summary>
internal readonly record struct BodyRead(ReplayableBody? Body, BodyRefusal Refusal);
