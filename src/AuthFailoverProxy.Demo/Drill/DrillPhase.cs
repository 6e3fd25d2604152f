namespace AuthFailoverProxy.Demo.Drill;

/// <summary>The lengths of a drill: <c>--short</c> for CI (under a minute), the full one for a human watching.</summary>
/// <param name="Warm">Steady load before the first fault (the outage replay revokes the primary at this time).</param>
/// <param name="Hold">How long each fault is held, or the load observed after it.</param>
/// <param name="StormRetryAfter">The wait each 429 of the storm announces.</param>
/// <param name="RequestsPerSecond">The steady load over all replicas.</param>
/// <param name="AlertBound">The longest acceptable time from a fault to its alert.</param>
/// <param name="RecoveryBound">The longest acceptable time from a fix to the first request served as before.</param>
internal sealed record DrillTimings(TimeSpan Warm, TimeSpan Hold, TimeSpan StormRetryAfter, int RequestsPerSecond, TimeSpan AlertBound, TimeSpan RecoveryBound)
{
    public static DrillTimings Short { get; } = new(TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(2.5), TimeSpan.FromSeconds(3), 30, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(10));

    public static DrillTimings Full { get; } = new(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(8), 40, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(20));

    /// <summary>Gets the bound on the whole load, far above what the phases take, so no run can go on for ever.</summary>
    public TimeSpan LoadBound => Warm + (Hold * 12) + (StormRetryAfter * 2) + (RecoveryBound * 4);
}

/// <summary>An alert a phase must produce: <paramref name="Count"/> messages of <paramref name="Kind"/> (about <paramref name="Key"/>).</summary>
internal sealed record ExpectedAlert(string Kind, string? Key = null, int Count = 1)
{
    public override string ToString() => (Key is null ? Kind : $"{Kind} '{Key}'") + (Count == 1 ? string.Empty : $" ×{Count}");
}

/// <summary>One phase of the drill: the fault, what it promises, and what was observed.</summary>
internal sealed class DrillPhase(string name, string fault)
{
    public string Name => name;

    public string Fault => fault;

    public TimeSpan Start { get; set; }

    public TimeSpan End { get; set; }

    /// <summary>Gets or sets when the fault was injected.</summary>
    public TimeSpan? FaultAt { get; set; }

    /// <summary>Gets or sets when the fault was removed (none for a fault nobody fixes, such as the outage's revoked key).</summary>
    public TimeSpan? FixAt { get; set; }

    /// <summary>Gets or sets when the first request was served as before the fault, after <see cref="FixAt"/>.</summary>
    public TimeSpan? RecoveredAt { get; set; }

    /// <summary>Gets or sets the kind whose first alert times "fault to alert".</summary>
    public string? AlertKind { get; set; }

    public TimeSpan? AlertAt { get; set; }

    /// <summary>Gets or sets the window in which no key could serve: 503s sent in it are the promise, not a failure.</summary>
    public (TimeSpan From, TimeSpan Until)? NoKeyUsable { get; set; }

    public List<ExpectedAlert> Expected { get; } = [];

    /// <summary>Gets the kinds that must not be alerted in this phase (a 529 burst is not the keys' fault).</summary>
    public List<string> Forbidden { get; } = [];

    /// <summary>Gets or sets calls the upstream got with the revoked primary in this phase.</summary>
    public int DeadKeyCalls { get; set; }

    /// <summary>Gets or sets the upstream's <c>POST</c> calls in this phase (attempts, replays and retries).</summary>
    public int UpstreamCalls { get; set; }

    /// <summary>Gets the promises broken in this phase, in plain words.</summary>
    public List<string> Broken { get; } = [];

    /// <summary>Gets what is worth a reader's attention without breaking a promise.</summary>
    public List<string> Notes { get; } = [];

    public bool Contains(TimeSpan at) => at >= Start && at < End;

    public bool InNoKeyWindow(TimeSpan at) => NoKeyUsable is { } window && at >= window.From && at < window.Until;

    /// <summary>Returns whether <paramref name="request"/> was sent or answered while no key was usable: one in flight when the last key went can meet that too.</summary>
    public bool MetNoKey(DrillRequest request) => InNoKeyWindow(request.SentAt) || InNoKeyWindow(request.SentAt + request.Took);
}
