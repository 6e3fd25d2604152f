using AuthFailoverProxy.Failover;
using AuthFailoverProxy.KeyPool;

namespace AuthFailoverProxy.State;

/// <summary>A change of a key's health, as observers (audit, alerts, replication) receive it.</summary>
internal sealed record KeyHealthChange(PoolKey Key, KeyHealth Previous, KeyHealth Current)
{
    /// <summary>Gets a value indicating whether the change was adopted from another replica rather than made here.</summary>
    public bool Adopted { get; init; }

    /// <summary>Gets the upstream incident that took the key out of service, when it was not the key's own fault.</summary>
    public string? Incident { get; init; }
}

/// <summary>
/// The one place key health changes. Reports from many concurrent requests collapse into one transition: the first
/// 403 takes the key out of service and is logged; the forty-nine in flight beside it change nothing and say nothing.
/// </summary>
internal sealed partial class KeyStateBoard(TimeProvider time, IKeyStateStore store, ILogger<KeyStateBoard> logger)
{
    /// <summary>Raised once per actual transition, after it is visible to the request path.</summary>
    public event Action<KeyHealthChange>? Changed;

    /// <summary>Takes <paramref name="key"/> out of service until it is healed. Returns whether this call changed its state.</summary>
    public bool ReportDead(PoolKey key, KeyFailure failure, string? incident = null)
    {
        var change = Apply(key, new KeyIntent(KeyIntentKind.Dead, failure.At, failure), incident);
        if (change is not null && incident is null)
        {
            LogKeyDead(logger, key.Pool, key.Name, key.Fingerprint, failure.Label, failure.Message ?? "(no message)", Remediation.ForDeadKey(key, failure));
        }
        else if (change is not null)
        {
            LogKeyDeadInIncident(logger, key.Pool, key.Name, key.Fingerprint, failure.Label, incident!);
        }

        return change is not null;
    }

    /// <summary>Rests <paramref name="key"/> until <paramref name="until"/>, never shortening a longer rest. Returns whether this call changed its state.</summary>
    public bool ReportCooling(PoolKey key, KeyFailure failure, DateTimeOffset until)
    {
        var change = Apply(key, new KeyIntent(KeyIntentKind.Cooling, failure.At, failure, until));
        if (change is not null && change.Previous.EffectiveState(failure.At) != KeyState.Cooling)
        {
            LogKeyCooling(logger, key.Pool, key.Name, key.Fingerprint, failure.Label, until);
        }

        return change is not null;
    }

    /// <summary>Returns a dead or cooling key to service. Returns whether this call changed its state.</summary>
    public bool Heal(PoolKey key, string reason)
    {
        var now = time.GetUtcNow();
        var change = Apply(key, new KeyIntent(KeyIntentKind.Heal, now));
        if (change is not null)
        {
            LogKeyHealed(logger, key.Pool, key.Name, key.Fingerprint, reason);
        }

        return change is not null;
    }

    /// <summary>Returns a cooling key to service at its deadline, without a probe. Returns whether this call changed its state.</summary>
    public bool EndCooldown(PoolKey key)
    {
        var now = time.GetUtcNow();
        var change = Apply(key, new KeyIntent(KeyIntentKind.EndCooldown, now));
        if (change is not null)
        {
            LogKeyHealed(logger, key.Pool, key.Name, key.Fingerprint, "its rate-limit window ended");
        }

        return change is not null;
    }

    /// <summary>Takes a key out of service on an operator's word. Returns whether this call changed its state.</summary>
    public bool Disable(PoolKey key, string operatorName)
    {
        var now = time.GetUtcNow();
        var change = Apply(key, new KeyIntent(KeyIntentKind.Disable, now));
        if (change is not null)
        {
            LogKeyDisabled(logger, key.Pool, key.Name, key.Fingerprint, operatorName);
        }

        return change is not null;
    }

    /// <summary>Returns a disabled key to service on an operator's word. Returns whether this call changed its state.</summary>
    public bool Enable(PoolKey key, string operatorName)
    {
        var now = time.GetUtcNow();
        var change = Apply(key, new KeyIntent(KeyIntentKind.Enable, now));
        if (change is not null)
        {
            LogKeyEnabled(logger, key.Pool, key.Name, key.Fingerprint, operatorName);
        }

        return change is not null;
    }

    /// <summary>Records that an operator added <paramref name="key"/> at runtime: it is pending, and other replicas learn so.</summary>
    public void Added(PoolKey key) => Apply(key, new KeyIntent(KeyIntentKind.Added, time.GetUtcNow()));

    /// <summary>Records what a check of a pending key found (<see langword="null"/>: it passed). Returns whether anything changed.</summary>
    public bool CheckedPending(PoolKey key, KeyFailure? failure)
        => Apply(key, new KeyIntent(KeyIntentKind.CheckedPending, failure?.At ?? time.GetUtcNow(), failure)) is not null;

    /// <summary>Puts a pending key in service on an operator's word. Returns whether this call changed its state.</summary>
    public bool Confirm(PoolKey key, string operatorName)
    {
        var change = Apply(key, new KeyIntent(KeyIntentKind.Confirm, time.GetUtcNow()));
        if (change is not null)
        {
            LogKeyConfirmed(logger, key.Pool, key.Name, key.Fingerprint, operatorName);
        }

        return change is not null;
    }

    /// <summary>
    /// Adopts a state another replica recorded in the shared store, when it is newer than what this replica holds.
    /// Returns whether it changed anything. Adoptions are not recorded back: they came from the store.
    /// </summary>
    public bool Adopt(PoolKey key, KeyHealth shared)
    {
        while (!key.Retired)
        {
            var current = key.Health;
            if (shared.Version <= current.Version || shared == current)
            {
                return false;
            }

            if (key.TryTransition(current, shared))
            {
                // What the deployment recorded supersedes this replica's unconfirmed suspicion.
                key.ClearSuspicion();
                if (current.State != shared.State)
                {
                    if (logger.IsEnabled(LogLevel.Information))
                    {
                        var state = shared.State.ToString().ToLowerInvariant();
                        LogAdopted(logger, key.Pool, key.Name, key.Fingerprint, state, shared.LastFailure?.Label ?? "no error");
                    }

                    Changed?.Invoke(new KeyHealthChange(key, current, shared) { Adopted = true });
                }

                return true;
            }
        }

        return false;
    }

    private KeyHealthChange? Apply(PoolKey key, KeyIntent intent, string? incident = null)
    {
        // A key that has left its pool changes no more: a late answer to a request it served says nothing useful.
        while (!key.Retired)
        {
            var current = key.Health;
            if (intent.ApplyTo(current) is not { } next)
            {
                return null;
            }

            // A local transition keeps the shared version it started from: only the store's answer moves it on.
            next = next with { Version = current.Version };
            if (key.TryTransition(current, next))
            {
                // A recorded change (dead, cooling, healed, disabled…) supersedes an unconfirmed suspicion.
                key.ClearSuspicion();
                var change = new KeyHealthChange(key, current, next) { Incident = incident };
                Changed?.Invoke(change);
                store.Record(key, intent);
                return change;
            }
        }

        return null;
    }

    [LoggerMessage(EventId = 1007, Level = LogLevel.Warning,
        Message = "Pool '{Pool:l}': key '{KeyName:l}' ({Fingerprint:l}) was confirmed by {Operator:l} and is in service.")]
    private static partial void LogKeyConfirmed(ILogger logger, string pool, string keyName, string fingerprint, string @operator);

    [LoggerMessage(EventId = 1001, Level = LogLevel.Error,
        Message = "Pool '{Pool:l}': key '{KeyName:l}' ({Fingerprint:l}) is out of service: {Failure:l} \"{ProviderMessage:l}\". Requests go to the next key. To fix: {Remediation:l}")]
    private static partial void LogKeyDead(ILogger logger, string pool, string keyName, string fingerprint, string failure, string providerMessage, string remediation);

    [LoggerMessage(EventId = 1008, Level = LogLevel.Warning,
        Message = "Pool '{Pool:l}': key '{KeyName:l}' ({Fingerprint:l}) is out of service ({Failure:l}) as part of {Incident:l}, not for a fault of its own; it returns as soon as a check passes.")]
    private static partial void LogKeyDeadInIncident(ILogger logger, string pool, string keyName, string fingerprint, string failure, string incident);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Warning,
        Message = "Pool '{Pool:l}': key '{KeyName:l}' ({Fingerprint:l}) is rate limited ({Failure:l}) until {Until:O}. Requests go to the next key meanwhile.")]
    private static partial void LogKeyCooling(ILogger logger, string pool, string keyName, string fingerprint, string failure, DateTimeOffset until);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Warning,
        Message = "Pool '{Pool:l}': key '{KeyName:l}' ({Fingerprint:l}) was disabled by {Operator:l}; it stays out of service until an operator enables it.")]
    private static partial void LogKeyDisabled(ILogger logger, string pool, string keyName, string fingerprint, string @operator);

    [LoggerMessage(EventId = 1005, Level = LogLevel.Information,
        Message = "Pool '{Pool:l}': key '{KeyName:l}' ({Fingerprint:l}) was enabled by {Operator:l} and is back in service.")]
    private static partial void LogKeyEnabled(ILogger logger, string pool, string keyName, string fingerprint, string @operator);

    [LoggerMessage(EventId = 1006, Level = LogLevel.Information,
        Message = "Pool '{Pool:l}': key '{KeyName:l}' ({Fingerprint:l}) is {State:l} as another replica found ({Failure:l}).")]
    private static partial void LogAdopted(ILogger logger, string pool, string keyName, string fingerprint, string state, string failure);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Information,
        Message = "Pool '{Pool:l}': key '{KeyName:l}' ({Fingerprint:l}) is back in service: {Reason:l}.")]
    private static partial void LogKeyHealed(ILogger logger, string pool, string keyName, string fingerprint, string reason);
}
