using System.Buffers;
using System.IO.Compression;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;

namespace AuthFailoverProxy.Failover;

/// <summary>What an upstream error answer means for the key that got it, with the facts to record.</summary>
/// <param name="Class">The failure class.</param>
/// <param name="Failure">For an answer that moves the request past the key: what the upstream said, secrets masked.</param>
/// <param name="CoolUntil">For a cooling key: when it may serve again (latest reset any header names, bounded).</param>
internal readonly record struct UpstreamJudgement(FailureClass Class, KeyFailure? Failure, DateTimeOffset CoolUntil);

/// <summary>
/// Reads an upstream error answer and judges it for the key that received it. One place for both callers: the request
/// path (<see cref="FailoverAttempt"/>) and the credential probes, so a 403 means the same thing to both.
/// </summary>
internal static class UpstreamErrorJudge
{
    private const int ErrorBodyLimit = 64 * 1024;

    public static UpstreamJudgement Judge(ProviderKind kind, PoolKey key, HttpResponseMessage response, ReadOnlySpan<byte> body, DateTimeOffset now, FailoverOptions options)
        => Judge(kind, key, (int)response.StatusCode, ProviderError.Parse(Decode(body, response.Content.Headers.ContentEncoding)), response, now, options);

    /// <summary>Judges an error the provider sent as <paramref name="status"/> would, or as a stream's error event standing for it.</summary>
    public static UpstreamJudgement Judge(ProviderKind kind, PoolKey key, int status, ProviderError error, HttpResponseMessage response, DateTimeOffset now, FailoverOptions options)
    {
        var failureClass = FailureClassifier.Classify(kind, status, error, status == 429 && RetryAfterHeaders.RequestExceedsLimit(response.Headers));
        if (failureClass is not (FailureClass.KeyDead or FailureClass.KeyCooling or FailureClass.KeyRefusesRequest or FailureClass.KeyRefusesClient)
            && !(failureClass == FailureClass.ClientError && error.IsProviderError))
        {
            // A client error without the provider's words (a proxy's page) is counted by its status alone, elsewhere.
            return new UpstreamJudgement(failureClass, null, default);
        }

        var failure = new KeyFailure(status, error.Type, error.Code, SecretMasker.Mask(error.Message, key.Secret), RequestId(response) ?? error.RequestId, now);
        var coolUntil = default(DateTimeOffset);
        if (failureClass == FailureClass.KeyCooling)
        {
            var until = RetryAfterHeaders.CoolUntil(response.Headers, now) ?? now + options.DefaultCooldown;
            coolUntil = until > now + options.MaxCooldown ? now + options.MaxCooldown : until;
        }

        return new UpstreamJudgement(failureClass, failure, coolUntil);
    }

    /// <summary>Returns the provider's id of an answer (<c>request-id</c>, or OpenAI's <c>x-request-id</c>), if it has one.</summary>
    public static string? RequestId(HttpResponseMessage response)
    {
        var headers = response.Headers.NonValidated;
        if (headers.TryGetValues("request-id", out var id) || headers.TryGetValues("x-request-id", out id))
        {
            return id.ToString();
        }

        return null;
    }

    /// <summary>Reads up to 64 KiB of an error body; the rest (rare) stays in the stream for pass-through.</summary>
    public static async ValueTask<(ReadOnlyMemory<byte> Prefix, Stream? Remainder)> ReadErrorBodyAsync(HttpContent content, CancellationToken cancellationToken)
    {
        var stream = await content.ReadAsStreamAsync(cancellationToken);
        var buffer = new byte[content.Headers.ContentLength is { } length and <= ErrorBodyLimit ? (int)length : ErrorBodyLimit];
        var filled = 0;
        while (filled < buffer.Length)
        {
            var read = await stream.ReadAsync(buffer.AsMemory(filled), cancellationToken);
            if (read == 0)
            {
                await stream.DisposeAsync();
                return (buffer.AsMemory(0, filled), null);
            }

            filled += read;
        }

        return (buffer, stream);
    }

    /// <summary>Decompresses an error body for reading only; what the client gets is the original bytes.</summary>
    private static ReadOnlySpan<byte> Decode(ReadOnlySpan<byte> body, ICollection<string> contentEncoding)
    {
        if (contentEncoding.Count == 0 || body.IsEmpty)
        {
            return body;
        }

        try
        {
            using var compressed = new MemoryStream(body.ToArray());
            using Stream decoder = contentEncoding.Last().ToLowerInvariant() switch
            {
                "gzip" => new GZipStream(compressed, CompressionMode.Decompress),
                "deflate" => new ZLibStream(compressed, CompressionMode.Decompress),
                "br" => new BrotliStream(compressed, CompressionMode.Decompress),
                _ => compressed,
            };
            using var plain = new MemoryStream();
            var chunk = ArrayPool<byte>.Shared.Rent(8192);
            try
            {
                int read;
                while (plain.Length < ErrorBodyLimit && (read = decoder.Read(chunk, 0, chunk.Length)) > 0)
                {
                    plain.Write(chunk, 0, read);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(chunk);
            }

            return plain.ToArray();
        }
        catch (InvalidDataException)
        {
            return body;
        }
    }
}
