using AuthFailoverProxy.KeyPool;

namespace AuthFailoverProxy.State;

/// <summary>Where key health is kept beyond this process: nowhere (embedded, one machine) or Redis (replicas).</summary>
internal interface IKeyStateStore
{
    /// <summary>Gets what the store is and whether it is reachable, for <c>/status</c>.</summary>
    KeyStateStoreStatus Status { get; }

    /// <summary>
    /// Records a transition this replica applied locally. Never blocks and never fails: a shared store sends it on in
    /// the background and keeps it while the store is unreachable.
    /// </summary>
    void Record(PoolKey key, KeyIntent intent);

    /// <summary>
    /// Asks for the right to check a dead key in the background for <paramref name="lease"/>, so that N replicas check it
    /// about once per interval in total rather than N times. Granted when the store cannot tell (no sharing, or
    /// unreachable): checking locally is better than never healing.
    /// </summary>
    ValueTask<bool> TryLeaseProbeAsync(PoolKey key, TimeSpan lease);
}

/// <summary>The store as <c>/status</c> shows it.</summary>
/// <param name="Kind"><c>memory</c> or <c>redis</c>.</param>
/// <param name="Connected">Whether a shared store is reachable now.</param>
/// <param name="Since">When it became reachable or unreachable.</param>
/// <param name="Pending">Transitions waiting to reach the shared store.</param>
internal sealed record KeyStateStoreStatus(string Kind, bool Connected, DateTimeOffset? Since, int Pending);

/// <summary>The embedded store: key health lives in this process only.</summary>
internal sealed class InMemoryKeyStateStore : IKeyStateStore
{
    public KeyStateStoreStatus Status { get; } = new("memory", Connected: true, Since: null, Pending: 0);

    public void Record(PoolKey key, KeyIntent intent)
    {
    }

    public ValueTask<bool> TryLeaseProbeAsync(PoolKey key, TimeSpan lease) => ValueTask.FromResult(true);
}
