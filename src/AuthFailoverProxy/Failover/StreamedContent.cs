using System.Net;

namespace AuthFailoverProxy.Failover;

/// <summary>
/// Response content the proxy puts in place of the upstream's while passing the same bytes on (a held stream opening,
/// an answer whose usage is read on the side): the original's headers, no length of its own, and a stream opened once.
/// </summary>
internal abstract class StreamedContent : HttpContent
{
    protected StreamedContent(HttpContent original)
    {
        foreach (var header in original.Headers.NonValidated)
        {
            // One value at a time: handing the values over as an IEnumerable boxes them, on every answer.
            foreach (var value in header.Value)
            {
                Headers.TryAddWithoutValidation(header.Key, value);
            }
        }
    }

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
