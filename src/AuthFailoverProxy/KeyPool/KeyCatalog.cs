namespace AuthFailoverProxy.KeyPool;

/// <summary>Whether a key joined or left its pool.</summary>
internal enum KeySetChangeKind
{
    /// <summary>The key joined the pool.</summary>
    Added,

    /// <summary>The key left the pool; it is retired and its background work stops.</summary>
    Removed,
}

/// <summary>A key that joined or left a pool, and who or what made it so (an operator's token name, a reload, a replica).</summary>
/// <param name="Pool">The pool.</param>
/// <param name="Key">The key that joined or left.</param>
/// <param name="Kind">Joined or left.</param>
/// <param name="By">Who or what made the change, for the log and the audit trail.</param>
/// <param name="Replicated">Whether the change was made on another replica and only followed here: that replica tells it.</param>
internal sealed record KeySetChange(Pool Pool, PoolKey Key, KeySetChangeKind Kind, string By, bool Replicated = false);

/// <summary>
/// The one place a pool's key set changes after start: keys an operator adds or removes through the admin API, keys
/// another replica added, and keys a configuration reload brings or takes away. The request path never waits for it:
/// it swaps in a new key ring that requests pick up on their next selection.
/// </summary>
internal sealed partial class KeyCatalog(PoolRegistry registry, ILogger<KeyCatalog> logger)
{
    /// <summary>Raised after each key that joined or left a pool, once the change is visible to the request path.</summary>
    public event Action<KeySetChange>? Changed;

    /// <summary>
    /// Puts <paramref name="key"/> in <paramref name="pool"/>. A key of the same name is replaced (it leaves first).
    /// Returns the key it replaced, if any.
    /// </summary>
    public PoolKey? Add(Pool pool, PoolKey key, string by, bool replicated = false)
    {
        PoolKey? replaced = null;
        pool.ChangeKeys(keys =>
        {
            replaced = keys.FirstOrDefault(k => k.Name == key.Name);
            return [.. keys.Where(k => k.Name != key.Name), key];
        });

        if (replaced is not null)
        {
            Raise(new KeySetChange(pool, replaced, KeySetChangeKind.Removed, by, replicated));
        }

        Raise(new KeySetChange(pool, key, KeySetChangeKind.Added, by, replicated));
        return replaced;
    }

    /// <summary>Takes <paramref name="key"/> out of <paramref name="pool"/>. Returns false when it was not there.</summary>
    public bool Remove(Pool pool, PoolKey key, string by, bool replicated = false)
    {
        var removed = false;
        pool.ChangeKeys(keys =>
        {
            removed = keys.Contains(key);
            return keys.Where(k => !ReferenceEquals(k, key));
        });

        if (removed)
        {
            Raise(new KeySetChange(pool, key, KeySetChangeKind.Removed, by, replicated));
        }

        return removed;
    }

    /// <summary>
    /// Gives <paramref name="key"/> another priority (and the source it now comes from) in place: the same key, its
    /// health and its background checks untouched, at its new place in line.
    /// </summary>
    public void Rerank(Pool pool, PoolKey key, int priority, string source, string by)
    {
        LogReranked(logger, pool.Name, key.Name, key.Fingerprint, key.Priority, priority, by);
        pool.ChangeKeys(keys =>
        {
            // The ring being replaced was sorted with the old priority; requests keep using it until the new one is in.
            key.SetRank(priority, source);
            return keys;
        });
    }

    /// <summary>Finds a pool and a key in it by name.</summary>
    public bool TryFind(string poolName, string keyName, out Pool pool, out PoolKey key)
    {
        pool = registry.Find(poolName)!;
        key = pool?.FindKey(keyName)!;
        return key is not null;
    }

    private void Raise(KeySetChange change)
    {
        if (change.Kind == KeySetChangeKind.Added)
        {
            LogAdded(logger, change.Pool.Name, change.Key.Name, change.Key.Fingerprint, change.Key.Health.State.ToString().ToLowerInvariant(), change.By);
        }
        else
        {
            LogRemoved(logger, change.Pool.Name, change.Key.Name, change.Key.Fingerprint, change.By);
        }

        Changed?.Invoke(change);
    }

    [LoggerMessage(EventId = 1101, Level = LogLevel.Warning, Message = "Pool '{Pool:l}': key '{KeyName:l}' ({Fingerprint:l}) joined the pool ({State:l}); by {By:l}.")]
    private static partial void LogAdded(ILogger logger, string pool, string keyName, string fingerprint, string state, string by);

    [LoggerMessage(EventId = 1103, Level = LogLevel.Information, Message = "Pool '{Pool:l}': key '{KeyName:l}' ({Fingerprint:l}) moves from priority {From} to {To}; by {By:l}.")]
    private static partial void LogReranked(ILogger logger, string pool, string keyName, string fingerprint, int from, int to, string by);

    [LoggerMessage(EventId = 1102, Level = LogLevel.Warning, Message = "Pool '{Pool:l}': key '{KeyName:l}' ({Fingerprint:l}) left the pool and carries no more traffic; by {By:l}.")]
    private static partial void LogRemoved(ILogger logger, string pool, string keyName, string fingerprint, string by);
}
