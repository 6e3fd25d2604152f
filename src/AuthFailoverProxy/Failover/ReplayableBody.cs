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
    private int _reading;
    private int _releaseRequested;
    private int _disposed;

    private ReplayableBody()
    {
    }

    /// <summary>Gets a body for requests that have none; nothing is buffered and nothing is replaced.</summary>
    public static ReplayableBody None { get; } = new();

    public bool HasBody => _memory is not null || _owned is not null || _file is not null;

    private byte[] Memory => _memory ?? _owned!;

    /// <summary>
    /// Reads the whole body of <paramref name="request"/>. Returns <see langword="null"/> when it is larger than
    /// <see cref="RequestBodyOptions.MaxBytes"/>; a declared length over the limit is refused before a byte is read.
    /// </summary>
    public static async ValueTask<ReplayableBody?> ReadAsync(HttpRequest request, RequestBodyOptions options, CancellationToken cancellationToken)
    {
        var canHaveBody = request.HttpContext.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody ?? true;
        var declared = request.ContentLength;
        if (!canHaveBody || declared == 0)
        {
            return None;
        }

        if (declared > options.MaxBytes)
        {
            return null;
        }

        var body = new ReplayableBody();
        try
        {
            return await body.FillAsync(request.Body, declared, options, cancellationToken) ? body : await DisposeAndRefuseAsync(body);
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
    public long Length => _file?.Length ?? _memoryLength;

    /// <summary>Wraps bytes made by the proxy itself (a safe-mode rewrite); nothing is rented, so nothing is returned.</summary>
    public static ReplayableBody FromBytes(byte[] bytes) => new() { _owned = bytes, _memoryLength = bytes.Length };

    /// <summary>Reads the whole body (safe mode only: the body is rewritten once, off the hot path).</summary>
    public async ValueTask<byte[]> ToArrayAsync(CancellationToken cancellationToken)
    {
        if (_file is null)
        {
            return Memory.AsSpan(0, _memoryLength).ToArray();
        }

        var bytes = new byte[_file.Length];
        _file.Position = 0;
        await _file.ReadExactlyAsync(bytes, cancellationToken);
        return bytes;
    }

    /// <summary>Returns a fresh stream positioned at the first byte; only one attempt reads at a time.</summary>
    public Stream OpenRead()
    {
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
            // DeleteOnClose: closing it removes it from the disk.
            file.Dispose();
        }
    }

    private static async ValueTask<ReplayableBody?> DisposeAndRefuseAsync(ReplayableBody body)
    {
        await body.DisposeAsync();
        return null;
    }

    private async ValueTask<bool> FillAsync(Stream source, long? declared, RequestBodyOptions options, CancellationToken cancellationToken)
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
                    return await SpillAndFillAsync(source, options, cancellationToken);
                }

                var larger = ArrayPool<byte>.Shared.Rent(Math.Min(threshold, _memory.Length * 2));
                _memory.AsSpan(0, _memoryLength).CopyTo(larger);
                ArrayPool<byte>.Shared.Return(_memory);
                _memory = larger;
            }

            var read = await source.ReadAsync(_memory.AsMemory(_memoryLength), cancellationToken);
            if (read == 0)
            {
                return true;
            }

            _memoryLength += read;
            if (_memoryLength > options.MaxBytes)
            {
                return false;
            }

            if (_memoryLength == declared)
            {
                // The server enforces Content-Length; asking for more would only grow the buffer to read the end.
                return true;
            }
        }
    }

    private async ValueTask<bool> SpillAndFillAsync(Stream source, RequestBodyOptions options, CancellationToken cancellationToken)
    {
        var directory = string.IsNullOrEmpty(options.TempDirectory) ? Path.GetTempPath() : options.TempDirectory;
        var path = Path.Combine(directory, $"afp-body-{Guid.NewGuid():N}.tmp");
        _file = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, bufferSize: 0,
            FileOptions.DeleteOnClose | FileOptions.Asynchronous | FileOptions.SequentialScan);

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
                    return true;
                }

                total += read;
                if (total > options.MaxBytes)
                {
                    return false;
                }

                await _file.WriteAsync(chunk.AsMemory(0, read), cancellationToken);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }
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
}
