using System.Buffers;
using System.IO.Compression;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;

namespace AuthFailoverProxy.Telemetry;

/// <summary>
/// An answer's content passed on unchanged while a <see cref="UsageReader"/> reads its bytes on the side; when the
/// answer ends (or is cut), <c>done</c> is called once with what was read. A compressed answer (gzip, deflate, br) is
/// decompressed on the side, through a pipe that never holds the agent back, and only for the reading: the agent gets
/// the bytes as the provider sent them.
/// </summary>
internal sealed class UsageContent : Failover.StreamedContent, UsageContent.ISideReader
{
    private readonly HttpContent _inner;
    private readonly UsageReader _reader;
    private readonly string? _encoding;
    private readonly Action<UsageReader> _done;
    private int _ended;

    /// <param name="inner">The bytes the agent gets, as the upstream sent them.</param>
    /// <param name="encoding">The upstream's content coding (<see cref="EncodingOf"/>), which <paramref name="inner"/> need not carry.</param>
    /// <param name="reader">Reads the usage.</param>
    /// <param name="done">Told once what was read, when the answer ends or is cut.</param>
    public UsageContent(HttpContent inner, string? encoding, UsageReader reader, Action<UsageReader> done)
    {
        _inner = inner;
        _reader = reader;
        _done = done;
        _encoding = encoding;
    }

    /// <summary>Returns the content coding of an answer, lower case: null when it has none, or more than one.</summary>
    public static string? EncodingOf(HttpContent content)
        => content.Headers.ContentEncoding.Count == 1 ? content.Headers.ContentEncoding.First().ToLowerInvariant() : null;

    /// <summary>Returns whether the answer's encoding can be read on the side (none, gzip, deflate or br), and that encoding (<see cref="EncodingOf"/>).</summary>
    public static bool Readable(HttpContent content, out string? encoding)
    {
        if (!content.Headers.NonValidated.Contains("Content-Encoding"))
        {
            // Most answers: asked without parsing, which would make a collection for the header on every answer.
            encoding = null;
            return true;
        }

        encoding = EncodingOf(content);
        return encoding is null ? content.Headers.ContentEncoding.Count == 0 : encoding is "gzip" or "deflate" or "br" or "identity";
    }

    Task ISideReader.Told => Task.CompletedTask;

    protected override async Task<Stream> OpenAsync(CancellationToken cancellationToken)
        => new TapStream(await _inner.ReadAsStreamAsync(cancellationToken), Side());

    void ISideReader.Feed(ReadOnlySpan<byte> bytes) => _reader.Feed(bytes);

    void ISideReader.End(bool whole)
    {
        if (Interlocked.Exchange(ref _ended, 1) == 0)
        {
            _reader.Complete();
            _done(_reader);
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _inner.Dispose();
        }

        base.Dispose(disposing);
    }

    // An answer as sent is read by this content itself: one object fewer per answer.
    private ISideReader Side() => _encoding is null or "identity" ? this : new DecompressingSide(_reader, _done, _encoding);

    /// <summary>Where the tapped bytes go.</summary>
    private interface ISideReader
    {
        void Feed(ReadOnlySpan<byte> bytes);

        /// <summary>The answer ended (<paramref name="whole"/>) or was cut: tell what was read, once.</summary>
        void End(bool whole);

        /// <summary>Gets a task that completes once what was read has been told.</summary>
        Task Told { get; }
    }

    /// <summary>Decompresses a copy of the bytes on a task of its own; the pipe never pushes back on the agent's copy.</summary>
    private sealed class DecompressingSide : ISideReader
    {
        private readonly Pipe _pipe = new(new PipeOptions(pauseWriterThreshold: 0, resumeWriterThreshold: 0, useSynchronizationContext: false));
        private int _ended;

        public DecompressingSide(UsageReader reader, Action<UsageReader> done, string encoding)
            => Told = DecodeAsync(reader, done, encoding);

        public Task Told { get; }

        public void Feed(ReadOnlySpan<byte> bytes)
        {
            _pipe.Writer.Write(bytes);
            var flushed = _pipe.Writer.FlushAsync(); // completes at once: the pipe has no threshold
            if (!flushed.IsCompleted)
            {
                _ = flushed.AsTask();
            }
        }

        public void End(bool whole)
        {
            if (Interlocked.Exchange(ref _ended, 1) == 0)
            {
                _pipe.Writer.Complete();
            }
        }

        private async Task DecodeAsync(UsageReader reader, Action<UsageReader> done, string encoding)
        {
            var buffer = new byte[16 * 1024];
            try
            {
                await using var compressed = _pipe.Reader.AsStream();
                await using Stream plain = encoding switch
                {
                    "gzip" => new GZipStream(compressed, CompressionMode.Decompress),
                    "deflate" => new ZLibStream(compressed, CompressionMode.Decompress),
                    _ => new BrotliStream(compressed, CompressionMode.Decompress),
                };
                int read;
                while ((read = await plain.ReadAsync(buffer)) > 0)
                {
                    reader.Feed(buffer.AsSpan(0, read));
                }
            }
            catch (InvalidDataException)
            {
                // Cut short, or not what it said it was: what was read counts.
            }
            finally
            {
                reader.Complete();
                done(reader);
            }
        }
    }

    /// <summary>The upstream's stream, read by the agent's copy, each read shown to the side reader.</summary>
    private sealed class TapStream(Stream inner, ISideReader side) : Failover.ForwardOnlyStream
    {
        // A read that waits takes its state machine from a pool; one that finds its bytes waiting (most) allocates none.
        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            // A zero-byte read passes through: the copier waits on a quiet stream without a buffer of its own.
            var read = await inner.ReadAsync(buffer, cancellationToken);
            if (read > 0)
            {
                side.Feed(buffer.Span[..read]);
            }
            else if (!buffer.IsEmpty)
            {
                side.End(whole: true);
                // Every byte has gone to the agent; the answer's end waits for the side to tell what it read (the rest of a
                // compressed answer is decompressed by then), so the upstream attempt, which ends with the copy, knows it.
                await side.Told.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }

            return read;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                // Cut short (the agent went, the upstream broke): what was read still counts.
                side.End(whole: false);
                inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
