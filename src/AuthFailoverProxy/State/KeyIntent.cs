namespace AuthFailoverProxy.State;

/// <summary>What a replica learned or decided about a key.</summary>
internal enum KeyIntentKind
{
    /// <summary>The upstream rejected the key.</summary>
    Dead,

    /// <summary>The upstream rate limited the key until <see cref="KeyIntent.Until"/>.</summary>
    Cooling,

    /// <summary>A check passed: a dead or cooling key may serve again.</summary>
    Heal,

    /// <summary>A cooling key's deadline passed.</summary>
    EndCooldown,

    /// <summary>An operator took the key out of service.</summary>
    Disable,

    /// <summary>An operator put the key back.</summary>
    Enable,

    /// <summary>An operator added the key at runtime: it starts pending.</summary>
    Added,

    /// <summary>A pending key was checked; <see cref="KeyIntent.Failure"/> says what was wrong, if anything.</summary>
    CheckedPending,

    /// <summary>An operator confirmed a pending key: it enters service.</summary>
    Confirm,
}

/// <summary>
/// A transition as an intent rather than a resulting state, so it can be applied to whatever state a store holds:
/// locally at once, and later against the shared record in Redis, by the same <see cref="KeyHealthRules"/>.
/// </summary>
/// <param name="Kind">What happened.</param>
/// <param name="At">When it happened.</param>
/// <param name="Failure">For <see cref="KeyIntentKind.Dead"/> and <see cref="KeyIntentKind.Cooling"/>: what the upstream said.</param>
/// <param name="Until">For <see cref="KeyIntentKind.Cooling"/>: when the key may serve again.</param>
internal sealed record KeyIntent(KeyIntentKind Kind, DateTimeOffset At, KeyFailure? Failure = null, DateTimeOffset Until = default)
{
    /// <summary>Returns the state after this intent, or <see langword="null"/> when the rules change nothing.</summary>
    public KeyHealth? ApplyTo(KeyHealth current) => Kind switch
    {
        KeyIntentKind.Dead => KeyHealthRules.ReportDead(current, Failure!),
        KeyIntentKind.Cooling => KeyHealthRules.ReportCooling(current, Failure!, Until),
        KeyIntentKind.Heal => KeyHealthRules.Heal(current, At),
        KeyIntentKind.EndCooldown => KeyHealthRules.EndCooldown(current, At),
        KeyIntentKind.Disable => KeyHealthRules.Disable(current, At),
        KeyIntentKind.Enable => KeyHealthRules.Enable(current, At),
        KeyIntentKind.Added => KeyHealthRules.Added(At),
        KeyIntentKind.CheckedPending => KeyHealthRules.CheckedPending(current, Failure),
        KeyIntentKind.Confirm => KeyHealthRules.Confirm(current, At),
        _ => throw new InvalidOperationException($"Unknown key intent {Kind}."),
    };
}
