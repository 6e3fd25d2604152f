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
    /// Records a scope this replica put a key out for (<see cref="KeyScope"/>). Never blocks and never fails, like
    /// <see cref="Record"/>; a scope that has ended before the store is reachable again is dropped.
    /// </summary>
    void RecordScope(PoolKey key, KeyScope scope);

    /// <summary>
    /// Asks for the right to check a dead key in the background for <paramref name="lease"/>, so that N replicas check it
    /// about once per interval in total rather than N times. Granted when the store cannot tell (no sharing, or
    /// unreachable): checking locally is better than never healing.
    /// </summary>
    ValueTask<bool> TryLeaseProbeAsync(PoolKey key, TimeSpan lease);

    /// <summary>
    /// Claims the right to do <paramref name="what"/> once for the whole deployment within <paramref name="ttl"/> (send
    /// an alert for a state change, say), so N replicas that saw the same change act once. Granted when the store cannot
    /// tell (no sharing, or unreachable): doing it twice is better than never.
    /// </summary>
    ValueTask<bool> TryClaimAsync(string what, TimeSpan ttl);

    /// <summary>
    /// Gets where keys added at runtime are kept, in words for the admin API's answer, or the reason they cannot be added
    /// (<see cref="RuntimeKeysAccepted"/> is then false).
    /// </summary>
    string RuntimeKeysKeptIn { get; }

    /// <summary>Gets a value indicating whether keys can be added at runtime now.</summary>
    bool RuntimeKeysAccepted { get; }

    /// <summary>
    /// Keeps a key an operator added at runtime, so that every replica puts it in its pool (pending) and a restart keeps
    /// it. Throws <see cref="KeyStoreException"/> when it cannot, with the reason in plain words.
    /// </summary>
    Task SaveRuntimeKeyAsync(PoolKey key, CancellationToken cancellationToken);

    /// <summary>Forgets a key added at runtime, on every replica. Throws <see cref="KeyStoreException"/> when it cannot.</summary>
    Task RemoveRuntimeKeyAsync(PoolKey key, CancellationToken cancellationToken);
}

/// <summary>The shared store could not do what an operator asked; the message says why in plain words.</summary>
internal sealed class KeyStoreException(string message, Exception? innerException = null) : Exception(message, innerException);

/// <summary>The store as <c>/status</c> shows it.</summary>
/// <param name="Kind"><c>memory</c> or <c>redis</c>.</param>
/// <param name="Connected">Whether a shared store is reachable now.</param>
/// <param name="Since">When it became reachable or unreachable.</param>
/// <param name="Pending">Transitions waiting to reach the shared store.</param>
/// <param name="Problem">Why it is not connected: <c>unreachable</c>, or <c>authentication failed</c> when it refused the credentials.</param>
internal sealed record KeyStateStoreStatus(string Kind, bool Connected, DateTimeOffset? Since, int Pending, string? Problem = null);

/// <summary>The embedded store: key health lives in this process only.</summary>
internal sealed class InMemoryKeyStateStore : IKeyStateStore
{
    public KeyStateStoreStatus Status { get; } = new("memory", Connected: true, Since: null, Pending: 0);

    public void Record(PoolKey key, KeyIntent intent)
    {
    }

    public void RecordScope(PoolKey key, KeyScope scope)
    {
    }

    public ValueTask<bool> TryLeaseProbeAsync(PoolKey key, TimeSpan lease) => ValueTask.FromResult(true);

    public ValueTask<bool> TryClaimAsync(string what, TimeSpan ttl) => ValueTask.FromResult(true);

    public string RuntimeKeysKeptIn => "in this process only: the embedded store keeps no copy, so the key is gone after a restart (add it to the configuration to keep it)";

    public bool RuntimeKeysAccepted => true;

    public Task SaveRuntimeKeyAsync(PoolKey key, CancellationToken cancellationToken) => Task.CompletedTask;

    public Task RemoveRuntimeKeyAsync(PoolKey key, CancellationToken cancellationToken) => Task.CompletedTask;
}
