namespace AuthFailoverProxy.State;

/// <summary>
/// The merge rules for key health, written once so every store (in memory now, Redis later) applies the same ones:
/// a dead key stays dead until it is healed on purpose, a cooldown is never shortened (the later deadline wins),
/// and an operator's choice (disabled, pending) is never overridden by traffic.
/// </summary>
internal static class KeyHealthRules
{
    /// <summary>Returns the state after a report that the key is dead, or <see langword="null"/> when nothing changes.</summary>
    public static KeyHealth? ReportDead(KeyHealth current, KeyFailure failure) => current.State switch
    {
        KeyState.Dead or KeyState.Disabled or KeyState.Pending => null,
        _ => new KeyHealth(KeyState.Dead, failure.At, Until: null, failure, current.Failures + 1),
    };

    /// <summary>Returns the state after a report that the key is rate limited until <paramref name="until"/>, or <see langword="null"/> when nothing changes.</summary>
    public static KeyHealth? ReportCooling(KeyHealth current, KeyFailure failure, DateTimeOffset until) => current.State switch
    {
        KeyState.Dead or KeyState.Disabled or KeyState.Pending => null,
        KeyState.Cooling when current.Until >= until => null,
        // Still cooling: push the deadline out but keep when the episode began.
        KeyState.Cooling when current.Until > failure.At => current with { Until = until, LastFailure = failure },
        _ => new KeyHealth(KeyState.Cooling, failure.At, until, failure, current.Failures + 1),
    };

    /// <summary>Returns the state after a successful check of a dead or cooling key, or <see langword="null"/> when nothing changes.</summary>
    public static KeyHealth? Heal(KeyHealth current, DateTimeOffset now) => current.State switch
    {
        KeyState.Dead or KeyState.Cooling => new KeyHealth(KeyState.Usable, now, Until: null, current.LastFailure, current.Failures),
        _ => null,
    };

    /// <summary>
    /// Returns a cooling key to service once its deadline has passed, or <see langword="null"/>: never a key that died
    /// meanwhile, and never before a deadline that was pushed out.
    /// </summary>
    public static KeyHealth? EndCooldown(KeyHealth current, DateTimeOffset now) => current.State == KeyState.Cooling && now >= current.Until
        ? new KeyHealth(KeyState.Usable, now, Until: null, current.LastFailure, current.Failures)
        : null;

    /// <summary>Takes a key out of service on an operator's word; nothing but an operator brings it back.</summary>
    public static KeyHealth? Disable(KeyHealth current, DateTimeOffset now) => current.State == KeyState.Disabled
        ? null
        : new KeyHealth(KeyState.Disabled, now, Until: null, current.LastFailure, current.Failures);

    /// <summary>Returns a disabled key to service on an operator's word.</summary>
    public static KeyHealth? Enable(KeyHealth current, DateTimeOffset now) => current.State == KeyState.Disabled
        ? new KeyHealth(KeyState.Usable, now, Until: null, current.LastFailure, current.Failures)
        : null;

    /// <summary>The state of a key an operator has just added at runtime: pending, carrying no traffic until confirmed.</summary>
    public static KeyHealth Added(DateTimeOffset now) => new(KeyState.Pending, now, Until: null, LastFailure: null, Failures: 0);

    /// <summary>
    /// Records what a check of a pending key found (<paramref name="failure"/>, or <see langword="null"/> when it passed),
    /// without putting it in service.
    /// </summary>
    public static KeyHealth? CheckedPending(KeyHealth current, KeyFailure? failure) => current.State == KeyState.Pending && current.LastFailure != failure
        ? current with { LastFailure = failure }
        : null;

    /// <summary>Puts a pending key in service on an operator's word.</summary>
    public static KeyHealth? Confirm(KeyHealth current, DateTimeOffset now) => current.State == KeyState.Pending
        ? new KeyHealth(KeyState.Usable, now, Until: null, current.LastFailure, current.Failures)
        : null;
}
