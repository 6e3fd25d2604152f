using System.Text.Json;
using System.Text.Json.Serialization;
using AuthFailoverProxy.Alerts;
using AuthFailoverProxy.Failover;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;

namespace AuthFailoverProxy.Admin;

/// <summary>What <c>GET /status</c> answers: every pool and key by name and fingerprint, never a secret.</summary>
internal sealed record StatusReport(string Status, DateTimeOffset Time, KeyStateStoreStatus Store, IReadOnlyList<PoolStatus> Pools)
{
    /// <summary>Gets the heartbeat (dead man's switch), when <c>Heartbeat:Url</c> is configured.</summary>
    public HeartbeatStatus? Heartbeat { get; init; }

    /// <summary>Gets the alert channels by name and type (never a URL or secret), how their deliveries go, and how many problems are open.</summary>
    public AlertsStatus? Alerts { get; init; }

    /// <summary>Gets the replica that answered (host name and process id): behind a Service each replica answers for itself.</summary>
    public string Replica { get; init; } = Events.ProxyEvent.ThisReplica;

    /// <summary>Gets the tokens spent per key and client over the last hour and day, and the client budgets.</summary>
    public Usage.UsageReport? Usage { get; init; }

    public static StatusReport Capture(PoolRegistry registry, SafeMode safeMode, IKeyStateStore store, DateTimeOffset now)
    {
        var pools = registry.Pools.OrderBy(p => p.Name, StringComparer.Ordinal).Select(p => PoolStatus.Capture(p, safeMode, now)).ToList();
        // A pool whose fallback can serve for it is degraded, not exhausted: its agents still get answers.
        bool Exhausted(PoolStatus p) => p.UsableKeys == 0 && !(p.SafeMode is { } safe && pools.Any(f => f.Name == safe.Fallback && f.UsableKeys > 0));
        // A pending key was never in service: waiting for an operator's confirmation degrades nothing.
        var status = pools.Any(Exhausted) ? "exhausted" : pools.Any(p => p.UsableKeys < p.Keys.Count(k => k.State != "pending")) ? "degraded" : "ok";
        return new StatusReport(status, now, store.Status, pools);
    }
}

internal sealed record PoolStatus(
    string Name,
    string Kind,
    string Upstream,
    string PathPrefix,
    bool Default,
    string Selection,
    int UsableKeys,
    string Circuit,
    SafeModeStatus? SafeMode,
    IReadOnlyList<KeyStatus> Keys)
{
    public static PoolStatus Capture(Pool pool, SafeMode safeMode, DateTimeOffset now) => new(
        pool.Name,
        pool.Kind.ToString().ToLowerInvariant(),
        pool.DestinationPrefix,
        pool.PathPrefix.Value!,
        pool.IsDefault,
        pool.Selection.ToString(),
        pool.CountUsable(now),
        pool.Circuit?.State switch
        {
            null => "off",
            Polly.CircuitBreaker.CircuitState.HalfOpen => "half-open",
            var state => state.Value.ToString().ToLowerInvariant(),
        },
        pool.Fallback is { } fallback ? new SafeModeStatus(safeMode.Since(pool) is not null, fallback.Name, pool.FallbackModel, safeMode.Since(pool)) : null,
        [.. pool.Keys.Select(k => KeyStatus.Capture(k, now))]);
}

internal sealed record KeyStatus(
    string Name,
    string Fingerprint,
    string Format,
    string Scheme,
    int Priority,
    string Source,
    string State,
    DateTimeOffset Since,
    DateTimeOffset? Until,
    int Failures,
    KeyErrorStatus? LastError,
    KeySuspicionStatus? Suspicion = null,
    DateTimeOffset? TrialUntil = null,
    string? Organization = null,
    IReadOnlyList<KeyScopeStatus>? Scopes = null,
    IReadOnlyList<RejectionCount>? Rejections = null,
    string? Remediation = null,
    bool AddedAtRuntime = false)
{
    public static KeyStatus Capture(PoolKey key, DateTimeOffset now)
    {
        var health = key.Health;
        var state = health.EffectiveState(now);
        return new KeyStatus(
            key.Name,
            key.Fingerprint,
            KeyFormats.Describe(key.Format),
            CredentialSchemes.Name(key.Scheme),
            key.Priority,
            key.Source,
            state.ToString().ToLowerInvariant(),
            health.Since,
            state == KeyState.Cooling ? health.Until : null,
            health.Failures,
            health.LastFailure is { } f ? new KeyErrorStatus(f.Status, f.ErrorType, f.ErrorCode, f.Message, f.RequestId, f.At) : null,
            state == KeyState.Usable && key.Suspicion is { Failure: var s } suspicion
                ? new KeySuspicionStatus(suspicion.Since, new KeyErrorStatus(s.Status, s.ErrorType, s.ErrorCode, s.Message, s.RequestId, s.At), !suspicion.Check.IsCompleted, suspicion.Unjudged)
                : null,
            // A dead key no check can judge: until then, the next request that finds it is given to it, once.
            state == KeyState.Dead && key.TrialUntil is { } trial && trial > now ? trial : null,
            key.Organization,
            KeyScopeStatus.Capture(key, now),
            // Answers about requests, not the key, of the last RejectionTally.Window: counted, never held against it.
            key.RejectionCounts(now),
            // What to do about a key out of service, in the words the key.dead event and alert used.
            state == KeyState.Dead && health.LastFailure is { } dead ? Failover.Remediation.ForDeadKey(key, dead) : null,
            key.AddedAtRuntime);
    }
}

/// <summary>What a key is out for while it serves everything else, until when, and what the provider said.</summary>
internal sealed record KeyScopeStatus(string Scope, DateTimeOffset Until, string? Organization, KeyErrorStatus Failure)
{
    /// <summary>The key's scopes still running at <paramref name="now"/>; null when there are none.</summary>
    public static IReadOnlyList<KeyScopeStatus>? Capture(PoolKey key, DateTimeOffset now)
    {
        if (key.Scopes is not { } scopes)
        {
            return null;
        }

        var running = scopes.Where(s => s.Until > now)
            .Select(s => new KeyScopeStatus(s.Name, s.Until, s.Organization, new KeyErrorStatus(s.Failure.Status, s.Failure.ErrorType, s.Failure.ErrorCode, s.Failure.Message, s.Failure.RequestId, s.Failure.At)))
            .ToList();
        return running.Count == 0 ? null : running;
    }
}

/// <summary>
/// A key a request found failing, not yet blamed: what the request got, whether the check that confirms or clears it is
/// under way, and whether no check can tell (the key is then tried last until a check or a request says otherwise).
/// </summary>
internal sealed record KeySuspicionStatus(DateTimeOffset Since, KeyErrorStatus Failure, bool Checking, bool Unjudged);

/// <summary>A pool's safe mode: whether its fallback is serving for it right now, and since when.</summary>
internal sealed record SafeModeStatus(bool Active, string Fallback, string? FallbackModel, DateTimeOffset? Since);

/// <summary>
/// The heartbeat as <c>/status</c> shows it: when it last pinged and how that went, and why it is paused (a pool has no
/// usable key), if it is. The URL is never shown: it may hold a token.
/// </summary>
internal sealed record HeartbeatStatus(
    string Method,
    double IntervalSeconds,
    DateTimeOffset? LastPing,
    string? LastOutcome,
    DateTimeOffset? LastSuccess,
    int ConsecutiveFailures,
    string? PausedBecause);

internal sealed record KeyErrorStatus(int Status, string? Type, string? Code, string? Message, string? RequestId, DateTimeOffset At);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(StatusReport))]
[JsonSerializable(typeof(OperatorConsole.ConsoleAccess))]
[JsonSerializable(typeof(AdminKeyList))]
[JsonSerializable(typeof(AdminChange))]
[JsonSerializable(typeof(AdminError))]
[JsonSerializable(typeof(AdminAdded))]
[JsonSerializable(typeof(AddKeyRequest))]
[JsonSerializable(typeof(ConfigurationReport))]
internal sealed partial class AdminJsonContext : JsonSerializerContext
{
    /// <summary>
    /// Gets the context the management endpoints write with: operators read this JSON in a terminal, so quotes and
    /// non-ASCII letters are written as they are rather than as <c>\u0027</c> (it is never embedded in HTML).
    /// </summary>
    public static AdminJsonContext Readable { get; } = new(ReadableOptions());

    /// <summary>Returns new options for JSON that people read (the management endpoints', afp's): indented, nulls left out, quotes as they are.</summary>
    internal static JsonSerializerOptions ReadableOptions() => new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}
