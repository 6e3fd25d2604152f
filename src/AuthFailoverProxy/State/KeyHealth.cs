namespace AuthFailoverProxy.State;

/// <summary>Where a key stands. The request path reads it; transitions follow <see cref="KeyHealthRules"/>.</summary>
internal enum KeyState
{
    /// <summary>In service.</summary>
    Usable,

    /// <summary>Rate limited: out of service until <see cref="KeyHealth.Until"/>, then back without a probe.</summary>
    Cooling,

    /// <summary>Rejected by the upstream (revoked, no credit, not allowed): out of service until it heals.</summary>
    Dead,

    /// <summary>Added at runtime and not yet confirmed by an operator: carries no traffic.</summary>
    Pending,

    /// <summary>Taken out of service by an operator; never re-enabled automatically.</summary>
    Disabled,
}

/// <summary>What the upstream said when it rejected a key: the facts, never the secret.</summary>
/// <param name="Status">The HTTP status, or 0 when there was no response.</param>
/// <param name="ErrorType">The provider's <c>error.type</c>, e.g. <c>permission_error</c>.</param>
/// <param name="ErrorCode">The provider's finer code (<c>error.details.error_code</c> or OpenAI's <c>error.code</c>).</param>
/// <param name="Message">The provider's message with anything that looks like a key masked.</param>
/// <param name="RequestId">The provider's request id, for a support ticket.</param>
/// <param name="At">When it happened.</param>
internal sealed record KeyFailure(int Status, string? ErrorType, string? ErrorCode, string? Message, string? RequestId, DateTimeOffset At)
{
    /// <summary>Gets a short label such as <c>403 permission_error</c> or <c>429 rate_limit_error (enforced_spend_limit_reached)</c>.</summary>
    public string Label
    {
        get
        {
            var label = ErrorType is null ? Status.ToString(System.Globalization.CultureInfo.InvariantCulture) : $"{Status} {ErrorType}";
            return ErrorCode is null || ErrorCode == ErrorType ? label : $"{label} ({ErrorCode})";
        }
    }

    /// <summary>Returns whether <paramref name="other"/> is the same answer: status, type, code and message alike, whenever and wherever it came.</summary>
    public bool IsSameAnswer(KeyFailure? other)
        => other is not null && Status == other.Status && ErrorType == other.ErrorType && ErrorCode == other.ErrorCode && Message == other.Message;
}

/// <summary>An immutable snapshot of a key's health; replaced whole, so readers never see half a transition.</summary>
/// <param name="State">The state.</param>
/// <param name="Since">When the key entered this state.</param>
/// <param name="Until">For <see cref="KeyState.Cooling"/>: when it returns to service.</param>
/// <param name="LastFailure">The last rejection that changed the state, if any.</param>
/// <param name="Failures">How many times the key has been taken out of service.</param>
internal sealed record KeyHealth(KeyState State, DateTimeOffset Since, DateTimeOffset? Until, KeyFailure? LastFailure, int Failures)
{
    private readonly long _untilUnixMs = Until?.ToUnixTimeMilliseconds() ?? long.MaxValue;

    public static KeyHealth Initial(DateTimeOffset now) => new(KeyState.Usable, now, Until: null, LastFailure: null, Failures: 0);

    /// <summary>
    /// Gets the version of the shared record this state came from (0: never shared). A replica adopts a shared state
    /// only when its version is higher than the one it holds.
    /// </summary>
    public long Version { get; init; }

    /// <summary>Gets a value indicating whether the key is usable without asking the clock.</summary>
    public bool IsUsable => State == KeyState.Usable;

    /// <summary>Gets a value indicating whether the key is cooling and may be back at some instant.</summary>
    public bool IsCooling => State == KeyState.Cooling;

    /// <summary>Returns whether the key can carry a request at <paramref name="nowUnixMs"/>: usable, or cooled down.</summary>
    public bool CanServeAt(long nowUnixMs) => State == KeyState.Usable || (State == KeyState.Cooling && nowUnixMs >= _untilUnixMs);

    /// <summary>The state as an operator should read it at <paramref name="now"/>: a cooldown that has passed reads as usable.</summary>
    public KeyState EffectiveState(DateTimeOffset now) => State == KeyState.Cooling && now >= Until ? KeyState.Usable : State;
}
