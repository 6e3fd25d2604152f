namespace AuthFailoverProxy.Events;

/// <summary>How much an event matters to a human. Alert channels pick a minimum.</summary>
internal enum EventSeverity
{
    /// <summary>Worth recording: a key recovered, an operator's change, a probe result.</summary>
    Info,

    /// <summary>Worth a look: a key rate limited, a pool degraded, a key waiting for confirmation.</summary>
    Warning,

    /// <summary>Something broke and the proxy routed around it: a key dead, the circuit open, Redis lost.</summary>
    Error,

    /// <summary>Agents are failing: a pool has no usable key.</summary>
    Critical,
}

/// <summary>The kinds of event, as written in the audit trail and named in alert channel filters.</summary>
internal static class EventKinds
{
    public const string KeyDead = "key.dead";
    public const string KeyCooling = "key.cooling";
    public const string KeyScoped = "key.scoped";
    public const string KeyFailover = "key.failover";
    public const string KeyRecovered = "key.recovered";
    public const string KeyChecked = "key.checked";
    public const string KeyAdded = "key.added";
    public const string KeyPending = "key.pending";
    public const string KeyConfirmed = "key.confirmed";
    public const string KeyDisabled = "key.disabled";
    public const string KeyEnabled = "key.enabled";
    public const string KeyRemoved = "key.removed";
    public const string UpstreamIncident = "upstream.incident";
    public const string UpstreamRecovered = "upstream.recovered";
    public const string PoolDegraded = "pool.degraded";
    public const string PoolExhausted = "pool.exhausted";
    public const string PoolRestored = "pool.restored";
    public const string SafeModeEntered = "safe_mode.entered";
    public const string SafeModeLeft = "safe_mode.left";
    public const string CircuitOpened = "circuit.opened";
    public const string CircuitClosed = "circuit.closed";
    public const string StoreLost = "store.lost";
    public const string StoreRestored = "store.restored";
    public const string StartupSummary = "startup.summary";
    public const string ConfigurationReloaded = "config.reloaded";
    public const string ConfigurationRejected = "config.rejected";
    public const string AlertFailed = "alert.failed";
    public const string AlertRestored = "alert.restored";
    public const string AlertDelivered = "alert.delivered";
    public const string AlertTest = "alert.test";
    public const string BudgetReached = "budget.reached";
    public const string UsageSummary = "usage.summary";

    /// <summary>Gets every kind, for validating channel filters.</summary>
    public static IReadOnlyList<string> All { get; } =
    [
        KeyDead, KeyCooling, KeyScoped, KeyFailover, KeyRecovered, KeyChecked, KeyAdded, KeyPending, KeyConfirmed, KeyDisabled, KeyEnabled,
        KeyRemoved, UpstreamIncident, UpstreamRecovered, PoolDegraded, PoolExhausted, PoolRestored, SafeModeEntered, SafeModeLeft, CircuitOpened, CircuitClosed,
        StoreLost, StoreRestored, StartupSummary, ConfigurationReloaded, ConfigurationRejected, AlertFailed, AlertRestored, AlertDelivered, AlertTest,
        BudgetReached, UsageSummary,
    ];
}

/// <summary>
/// Something that happened, told the way an incident report tells it: when, a plain-language sentence, what to do
/// about it where there is something to do, and the facts as fields. Never holds a secret: keys appear by name and
/// fingerprint, provider messages are masked.
/// </summary>
internal sealed record ProxyEvent
{
    /// <summary>Gets the name of this process among the replicas: host name and process id.</summary>
    public static string ThisReplica { get; } = $"{Environment.MachineName}:{Environment.ProcessId}";

    /// <summary>Gets a unique, time-ordered id.</summary>
    public string Id { get; init; } = Guid.CreateVersion7().ToString("N");

    public required string Kind { get; init; }

    public required EventSeverity Severity { get; init; }

    public required DateTimeOffset At { get; init; }

    /// <summary>Gets the sentence a human reads: "Key 'primary' (sk-ant-oat01-…AAAA) in pool 'anthropic' is out of service: …".</summary>
    public required string Message { get; init; }

    /// <summary>Gets what to do about it, where there is something to do.</summary>
    public string? Remediation { get; init; }

    public string? Pool { get; init; }

    public string? Key { get; init; }

    public string? Fingerprint { get; init; }

    /// <summary>Gets the upstream's HTTP status, when the event is about an upstream answer.</summary>
    public int? Status { get; init; }

    public string? ErrorType { get; init; }

    /// <summary>Gets what a key is out for while it serves everything else (<c>model:…</c>, <c>class:opus</c>, <c>client:not-claude-code</c>), for a <c>key.scoped</c> event.</summary>
    public string? Scope { get; init; }

    public string? ErrorCode { get; init; }

    /// <summary>Gets the provider's message, with anything that looks like a key masked.</summary>
    public string? ProviderMessage { get; init; }

    /// <summary>Gets the provider's request id, for a support ticket.</summary>
    public string? RequestId { get; init; }

    /// <summary>Gets who made the change, for operators' actions: the admin token's name.</summary>
    public string? Actor { get; init; }

    /// <summary>Gets the client (by its token's name, never the token) the event is about, for a <c>budget.reached</c> event.</summary>
    public string? Client { get; init; }

    /// <summary>
    /// Gets the problem this event opens, updates or ends, stable while it lasts (<c>key:anthropic:primary</c>,
    /// <c>pool:anthropic</c>): alerts deduplicate, remind and resolve on it.
    /// </summary>
    public string? Incident { get; init; }

    /// <summary>
    /// Gets a name for a notice (an event that opens no <see cref="Incident"/>) that several replicas may raise for one
    /// change, each from its own traffic (<c>scope:anthropic:backup:class:opus</c>): it is told once per deployment within
    /// the alerts' dedup window.
    /// </summary>
    public string? Once { get; init; }

    /// <summary>Gets a value indicating whether this event ends its <see cref="Incident"/>.</summary>
    public bool Resolves { get; init; }

    /// <summary>Gets the replica that saw it.</summary>
    public string Replica { get; init; } = ThisReplica;
}
