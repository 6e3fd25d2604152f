using System.Collections.Immutable;
using System.Threading.Channels;

namespace AuthFailoverProxy.Events;

/// <summary>
/// Where events are published and where the audit trail and the alert channels read them. Publishing never blocks and
/// never fails: each reader has its own bounded queue, and a reader that falls far behind loses its oldest events
/// (counted in <see cref="Dropped"/>) rather than slowing whoever published.
/// </summary>
internal sealed class ProxyEvents
{
    private ImmutableArray<Channel<ProxyEvent>> _readers = [];
    private long _dropped;

    /// <summary>Gets how many events a reader lost because its queue was full.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Returns a reader that receives every event published from now on.</summary>
    public ChannelReader<ProxyEvent> Subscribe(int capacity = 10_000)
    {
        var channel = Channel.CreateBounded<ProxyEvent>(
            new BoundedChannelOptions(capacity) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true },
            _ => Interlocked.Increment(ref _dropped));
        ImmutableInterlocked.Update(ref _readers, readers => readers.Add(channel));
        return channel.Reader;
    }

    /// <summary>
    /// Returns a reader that receives every event published from now until <paramref name="until"/> is cancelled (a
    /// console's live view), after which it is forgotten.
    /// </summary>
    public ChannelReader<ProxyEvent> SubscribeUntil(int capacity, CancellationToken until)
    {
        var reader = Subscribe(capacity);
        until.Register(() =>
        {
            ImmutableInterlocked.Update(ref _readers, readers => readers.RemoveAll(c => c.Reader == reader));
        });
        return reader;
    }

    public void Publish(ProxyEvent proxyEvent)
    {
        foreach (var reader in _readers)
        {
            reader.Writer.TryWrite(proxyEvent);
        }
    }
}
