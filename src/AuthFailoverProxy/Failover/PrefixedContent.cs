using System.Net;

namespace AuthFailoverProxy.Failover;

/// <summary>
/// Response content whose first bytes were already read to classify it. Passing it on re-plays those bytes and then
/// the rest of the original stream, so the client gets the upstream's answer untouched. Like <see cref="StreamedContent"/>
/// it carries no headers: the agent's are the upstream content's.
/// </summary>
internal sealed class PrefixedContent : HttpContent
{
    private readonly ReadOnlyMemory<byte> _prefix;
    private readonly Stream? _rest;

    public PrefixedContent(ReadOnlyMemory<byte> prefix, Stream? rest)
    {
        _prefix = prefix;
        _rest = rest;
    }

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        await stream.WriteAsync(_prefix, cancellationToken);
        if (_rest is not null)
        {
            await _rest.CopyToAsync(stream, cancellationToken);
        }
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        => SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override Task<Stream> CreateContentReadStreamAsync()
        => Task.FromResult<Stream>(_rest is null ? new MemoryStream(_prefix.ToArray(), writable: false) : new PrefixedStream(_prefix, _rest));

    protected override bool TryComputeLength(out long length)
    {
        length = _prefix.Length;
        return _rest is null;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _rest?.Dispose();
        }

        base.Dispose(disposing);
    }

    private sealed class PrefixedStream(ReadOnlyMemory<byte> prefix, Stream rest) : Stream
    {
        private ReadOnlyMemory<byte> _remainingPrefix = prefix;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_remainingPrefix.IsEmpty)
            {
                return await rest.ReadAsync(buffer, cancellationToken);
            }

            var count = Math.Min(buffer.Length, _remainingPrefix.Length);
            _remainingPrefix[..count].CopyTo(buffer);
            _remainingPrefix = _remainingPrefix[count..];
            return count;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
            => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_remainingPrefix.IsEmpty)
            {
                return rest.Read(buffer, offset, count);
            }

            var copied = Math.Min(count, _remainingPrefix.Length);
            _remainingPrefix[..copied].CopyTo(buffer.AsMemory(offset, copied));
            _remainingPrefix = _remainingPrefix[copied..];
            return copied;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                rest.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
