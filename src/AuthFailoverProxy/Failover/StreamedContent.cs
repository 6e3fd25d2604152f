using System.Net;

namespace AuthFailoverProxy.Failover;

/// <summary>
/// Response content the proxy puts in place of the upstream's while passing the same bytes on (a held stream opening,
/// an answer whose usage is read on the side): no length of its own, and a stream opened once. It carries no headers:
/// the agent's are the upstream content's, copied before this is put in its place (<see cref="FailoverAttempt"/>'s
/// delivery), so no answer pays for a second header collection.
/// </summary>
internal abstract class StreamedContent : HttpContent
{
    /// <summary>Opens the stream the agent's copy reads.</summary>
    protected abstract Task<Stream> OpenAsync(CancellationToken cancellationToken);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        await using var read = await OpenAsync(cancellationToken);
        await read.CopyToAsync(stream, cancellationToken);
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override Task<Stream> CreateContentReadStreamAsync(CancellationToken cancellationToken) => OpenAsync(cancellationToken);

    protected override Task<Stream> CreateContentReadStreamAsync() => OpenAsync(CancellationToken.None);

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }
}
