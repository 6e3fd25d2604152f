using AuthFailoverProxy.KeyPool;

namespace AuthFailoverProxy.State;

/// <summary>A scope a key was put out for, as observers (events, audit, metrics) receive it.</summary>
/// <param name="Key">The key.</param>
/// <param name="Scope">The scope.</param>
/// <param name="Merge">Whether the key is newly out for it or out for longer.</param>
internal sealed record KeyScopeChange(PoolKey Key, KeyScope Scope, ScopeMerge Merge)
{
    /// <summary>Gets a value indicating whether it came from another replica rather than from an answer seen here.</summary>
    public bool Adopted { get; init; }

    /// <summary>Gets the key whose answer it was, when another key of the same organization got it (they share its limit).</summary>
    public PoolKey? Because { get; init; }
}

/// <summary>
/// The one place keys are put out for part of what they serve (<see cref="KeyScope"/>): a model the organization lacks,
/// a model class whose rate limit is spent (for every key of the organization, since keys of one organization share its
/// limits), the clients a subscription token is not for. Applied locally at once; recorded in the shared store in the
/// background, which shares it with the other replicas.
/// </summary>
internal sealed partial class KeyScopeBoard(TimeProvider time, IKeyStateStore store, ILogger<KeyScopeBoard> logger)
{
    /// <summary>Raised when a key is newly out for a scope, or out for it longer, after the request path sees it.</summary>
    public event Action<KeyScopeChange>? Changed;

    /// <summary>Puts <paramref name="key"/> out for <paramref name="scope"/>; returns whether that changed anything.</summary>
    public bool Report(PoolKey key, KeyScope scope) => Report(key, scope, because: null);

    private bool Report(PoolKey key, KeyScope scope, PoolKey? because)
    {
        var merge = key.MergeScope(scope, time.GetUtcNow());
        if (merge == ScopeMerge.None)
        {
            return false;
        }

        if (merge == ScopeMerge.Added)
        {
            LogScoped(logger, key.Pool, key.Name, key.Fingerprint, scope.Describe(), scope.Failure.Label, scope.Until);
        }

        Changed?.Invoke(new KeyScopeChange(key, scope, merge) { Because = because });
        store.RecordScope(key, scope);
        return true;
    }

    /// <summary>
    /// Cools every key of <paramref name="organization"/> among <paramref name="pools"/> for <paramref name="scope"/>'s
    /// model class: they share the organization's limit. <paramref name="key"/>, which got the 429, is cooled whatever is
    /// known of its organization. Returns how many keys it cooled.
    /// </summary>
    public int ReportForOrganization(IEnumerable<Pool> pools, PoolKey key, string? organization, KeyScope scope)
    {
        var cooled = Report(key, scope) ? 1 : 0;
        if (organization is null)
        {
            return cooled;
        }

        foreach (var pool in pools)
        {
            foreach (var other in pool.Keys)
            {
                if (other != key && string.Equals(other.Organization, organization, StringComparison.Ordinal) && Report(other, scope, because: key))
                {
                    cooled++;
                }
            }
        }

        return cooled;
    }

    /// <summary>Takes in a scope another replica recorded.</summary>
    public void Adopt(PoolKey key, KeyScope scope)
    {
        var merge = key.MergeScope(scope, time.GetUtcNow());
        if (merge != ScopeMerge.None)
        {
            Changed?.Invoke(new KeyScopeChange(key, scope, merge) { Adopted = true });
        }
    }

    [LoggerMessage(EventId = 1010, Level = LogLevel.Warning,
        Message = "Pool '{Pool:l}': key '{KeyName:l}' ({Fingerprint:l}) {Scope:l} ({Failure:l}) until {Until:O}; it serves everything else.")]
    private static partial void LogScoped(ILogger logger, string pool, string keyName, string fingerprint, string scope, string failure, DateTimeOffset until);
}
