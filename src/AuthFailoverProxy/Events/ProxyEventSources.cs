using System.Collections.Concurrent;
using AuthFailoverProxy.Failover;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Events;

/// <summary>Settings for the events the proxy raises. Bound from <c>Events</c>.</summary>
public sealed class EventOptions
{
    /// <summary>
    /// Gets or sets how many usable keys a pool should have: below this (or below its number of keys, if smaller) it is
    /// degraded. <value>The default value is 2: a pool without a spare is one failure from an outage.</value>
    /// </summary>
    public int DegradedBelow { get; set; } = 2;
}

/// <summary>
/// Turns what the key state board and the key catalog see into events: a key dead (with the classification and what to
/// do), the first failover away from it (one per transition, never one per request), a key recovered, keys added,
/// pending or removed, and the pool-level picture (degraded, exhausted, restored). Only transitions this replica made
/// raise events; a state adopted from another replica was already told by the replica that saw it, so a deployment
/// tells each change once.
/// </summary>
/// <remarks>Its dependencies are resolved when it starts: hosted services are built before the host validates options.</remarks>
internal sealed class ProxyEventSources(IServiceProvider services, ProxyEvents events, IOptions<EventOptions> options, TimeProvider time) : IHostedService
{
    private readonly ConcurrentDictionary<string, PoolLevel> _levels = new(StringComparer.Ordinal);
    private KeyStateBoard? _board;
    private KeyCatalog? _catalog;
    private KeyScopeBoard? _scopes;
    private PoolRegistry? _registry;

    private enum PoolLevel
    {
        Healthy,
        Degraded,
        Exhausted,
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _registry = services.GetRequiredService<PoolRegistry>();
        _board = services.GetRequiredService<KeyStateBoard>();
        _catalog = services.GetRequiredService<KeyCatalog>();
        var now = time.GetUtcNow();
        foreach (var pool in _registry.Pools)
        {
            _levels[pool.Name] = LevelOf(pool, now);
        }

        _scopes = services.GetRequiredService<KeyScopeBoard>();
        _board.Changed += OnKeyChanged;
        _catalog.Changed += OnKeySetChanged;
        _scopes.Changed += OnKeyScoped;
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _board!.Changed -= OnKeyChanged;
        _catalog!.Changed -= OnKeySetChanged;
        _scopes!.Changed -= OnKeyScoped;
        return Task.CompletedTask;
    }

    private void OnKeyChanged(KeyHealthChange change)
    {
        var key = change.Key;
        if (_registry!.Find(key.Pool) is not { } pool)
        {
            return;
        }

        if (change.Adopted)
        {
            // Told by the replica that saw it; keep this replica's picture of the pool current without telling again.
            _levels[pool.Name] = LevelOf(pool, time.GetUtcNow());
            return;
        }

        var (previous, current) = (change.Previous.State, change.Current.State);
        if (current == KeyState.Dead && previous != KeyState.Dead && change.Current.LastFailure is { } refused && change.Incident is { } incident)
        {
            // Part of an upstream incident, told once as such: each key's part is on record, not an alert of its own.
            events.Publish(KeyEvent(EventKinds.KeyDead, EventSeverity.Info, key, refused) with
            {
                Message = $"Key '{key.Name}' ({key.Fingerprint}) in pool '{pool.Name}' is out of service ({refused.Label}) as part of the upstream incident {incident}, not for a fault of its own; it returns as soon as a check passes.",
                Incident = null,
            });
        }
        else if (current == KeyState.Dead && previous != KeyState.Dead && change.Current.LastFailure is { } failure)
        {
            var next = pool.SelectKey(null, time);
            events.Publish(KeyEvent(EventKinds.KeyDead, EventSeverity.Error, key, failure) with
            {
                Message = $"Key '{key.Name}' ({key.Fingerprint}) in pool '{pool.Name}' is out of service: {failure.Label} \"{failure.Message}\". {NextKey(next)}",
                Remediation = Remediation.ForDeadKey(key, failure),
            });
            PublishFailover(pool, key, next, previous, failure);
        }
        else if (current == KeyState.Cooling && previous != KeyState.Cooling && change.Current.LastFailure is { } limit)
        {
            var next = pool.SelectKey(null, time);
            events.Publish(KeyEvent(EventKinds.KeyCooling, EventSeverity.Warning, key, limit) with
            {
                Message = $"Key '{key.Name}' ({key.Fingerprint}) in pool '{pool.Name}' is rate limited ({limit.Label}) until {change.Current.Until:HH:mm:ss} UTC. {NextKey(next)}",
            });
            PublishFailover(pool, key, next, previous, limit);
        }
        else if (current == KeyState.Usable && previous is KeyState.Dead or KeyState.Cooling)
        {
            events.Publish(new ProxyEvent
            {
                Kind = EventKinds.KeyRecovered,
                Severity = EventSeverity.Info,
                At = change.Current.Since,
                Message = $"Key '{key.Name}' ({key.Fingerprint}) in pool '{pool.Name}' is back in service after {Describe(change.Current.Since - change.Previous.Since)} {(previous == KeyState.Dead ? "out of service" : "rate limited")}.",
                Pool = pool.Name,
                Key = key.Name,
                Fingerprint = key.Fingerprint,
                Incident = KeyIncident(key),
                Resolves = true,
            });
        }

        UpdatePoolLevel(pool);
    }

    /// <summary>
    /// A key newly out for part of what it serves: told once, by the replica that saw it. A rate limit is a Warning, as a
    /// rested key is, for the key that got it; the keys of its organization rested with it, and a model or kind of client
    /// a key may not serve, are Info. It opens no incident: the key still serves everything else, and the scope ends by
    /// itself.
    /// </summary>
    private void OnKeyScoped(KeyScopeChange change)
    {
        if (change.Adopted || change.Merge != ScopeMerge.Added)
        {
            return;
        }

        var (key, scope) = (change.Key, change.Scope);
        var why = change.Because is { } because
            ? $"; its organization ({scope.Organization}) is limited, as '{because.Name}' was told"
            : scope.Organization is { } org && scope.Kind == KeyScopeKind.ModelClass ? $" (organization {org}: its other keys share the limit)" : string.Empty;
        events.Publish(KeyEvent(EventKinds.KeyScoped, scope.Kind == KeyScopeKind.ModelClass && change.Because is null ? EventSeverity.Warning : EventSeverity.Info, key, scope.Failure) with
        {
            Message = $"Key '{key.Name}' ({key.Fingerprint}) in pool '{key.Pool}' {scope.Describe()} ({scope.Failure.Label}) until {scope.Until:HH:mm:ss} UTC{why}; it serves everything else.",
            Scope = scope.Name,
            Incident = null,
            // Each replica may meet the same limit in its own traffic before it hears of the other's.
            Once = $"scope:{key.Pool}:{key.Name}:{scope.Name}",
        });
    }

    private void OnKeySetChanged(KeySetChange change)
    {
        var (pool, key) = (change.Pool, change.Key);
        if (!change.Replicated)
        {
            var added = change.Kind == KeySetChangeKind.Added;
            events.Publish(new ProxyEvent
            {
                Kind = added ? EventKinds.KeyAdded : EventKinds.KeyRemoved,
                Severity = EventSeverity.Info,
                At = time.GetUtcNow(),
                Message = added
                    ? $"Key '{key.Name}' ({key.Fingerprint}) joined pool '{pool.Name}' ({key.Health.State.ToString().ToLowerInvariant()}), by {change.By}."
                    : $"Key '{key.Name}' ({key.Fingerprint}) left pool '{pool.Name}' and carries no more traffic, by {change.By}.",
                Pool = pool.Name,
                Key = key.Name,
                Fingerprint = key.Fingerprint,
                Actor = change.By,
                // A pending key removed before it was confirmed no longer waits for anyone.
                Incident = !added && key.Health.State == KeyState.Pending ? PendingIncident(key) : null,
                Resolves = !added && key.Health.State == KeyState.Pending,
            });
            if (added && key.Health.State == KeyState.Pending)
            {
                events.Publish(new ProxyEvent
                {
                    Kind = EventKinds.KeyPending,
                    Severity = EventSeverity.Warning,
                    At = time.GetUtcNow(),
                    Message = $"Key '{key.Name}' ({key.Fingerprint}) in pool '{pool.Name}' is waiting for an operator's confirmation; it carries no traffic until then.",
                    Remediation = $"Read its check in GET /admin/keys, then confirm it (POST /admin/pools/{pool.Name}/keys/{key.Name}/confirm) or remove it (DELETE /admin/pools/{pool.Name}/keys/{key.Name}).",
                    Pool = pool.Name,
                    Key = key.Name,
                    Fingerprint = key.Fingerprint,
                    Actor = change.By,
                    Incident = PendingIncident(key),
                });
            }
        }

        UpdatePoolLevel(pool);
    }

    /// <summary>The incident a pending key opens while it waits, ended by its confirmation or removal.</summary>
    public static string PendingIncident(PoolKey key) => $"pending:{key.Pool}:{key.Name}";

    public static string KeyIncident(PoolKey key) => $"key:{key.Pool}:{key.Name}";

    private void PublishFailover(Pool pool, PoolKey from, PoolKey? to, KeyState previous, KeyFailure reason)
    {
        if (to is null || previous != KeyState.Usable)
        {
            return;
        }

        events.Publish(new ProxyEvent
        {
            Kind = EventKinds.KeyFailover,
            Severity = EventSeverity.Info,
            At = reason.At,
            Message = $"Pool '{pool.Name}' fails over from '{from.Name}' to '{to.Name}' ({reason.Label}); agents are not affected.",
            Pool = pool.Name,
            Key = from.Name,
            Fingerprint = from.Fingerprint,
            Status = reason.Status,
            ErrorType = reason.ErrorType,
        });
    }

    private void UpdatePoolLevel(Pool pool)
    {
        var now = time.GetUtcNow();
        PoolLevel level;
        while (true)
        {
            // Keys change on several threads at once (an incident takes them together): whoever loses the race looks
            // again, so the last level reached is always told.
            level = LevelOf(pool, now);
            var previous = _levels.GetValueOrDefault(pool.Name, PoolLevel.Healthy);
            if (level == previous)
            {
                return;
            }

            if (_levels.TryUpdate(pool.Name, level, previous))
            {
                break;
            }
        }

        var usable = pool.CountUsable(now);
        var total = ServingKeys(pool);
        var incident = $"pool:{pool.Name}";
        events.Publish(level switch
        {
            PoolLevel.Exhausted => new ProxyEvent
            {
                Kind = EventKinds.PoolExhausted,
                // With a fallback the agents still get answers (safe mode): serious, not yet an outage.
                Severity = pool.Fallback is null ? EventSeverity.Critical : EventSeverity.Error,
                At = now,
                Message = pool.Fallback is { } fallback
                    ? $"Pool '{pool.Name}' has no usable key ({total} configured): its requests go to fallback pool '{fallback.Name}' (safe mode)."
                    : $"Pool '{pool.Name}' has no usable key ({total} configured): every agent request to it fails with a 503 naming each key and why.",
                Remediation = "read each key's last error in GET /status, then fix or replace the keys: add a working key (POST /admin/pools/{pool}/keys) or enable a disabled one.".Replace("{pool}", pool.Name, StringComparison.Ordinal),
                Pool = pool.Name,
                Incident = incident,
            },
            PoolLevel.Degraded => new ProxyEvent
            {
                Kind = EventKinds.PoolDegraded,
                Severity = EventSeverity.Warning,
                At = now,
                Message = $"Pool '{pool.Name}' is degraded: {usable} of {total} keys usable. Agents are served, with less to fall back on.",
                Remediation = "look at the keys out of service in GET /status and fix or replace them before the last one fails.",
                Pool = pool.Name,
                Incident = incident,
            },
            _ => new ProxyEvent
            {
                Kind = EventKinds.PoolRestored,
                Severity = EventSeverity.Info,
                At = now,
                Message = $"Pool '{pool.Name}' is healthy again: {usable} of {total} keys usable.",
                Pool = pool.Name,
                Incident = incident,
                Resolves = true,
            },
        });
    }

    private PoolLevel LevelOf(Pool pool, DateTimeOffset now)
    {
        var total = ServingKeys(pool);
        var usable = pool.CountUsable(now);
        return total > 0 && usable == 0 ? PoolLevel.Exhausted
            : usable < Math.Min(options.Value.DegradedBelow, total) ? PoolLevel.Degraded
            : PoolLevel.Healthy;
    }

    /// <summary>Keys that are meant to serve: pending keys never served yet and count for nothing.</summary>
    private static int ServingKeys(Pool pool) => pool.Keys.Count(k => k.Health.State != KeyState.Pending);

    private static ProxyEvent KeyEvent(string kind, EventSeverity severity, PoolKey key, KeyFailure failure) => new()
    {
        Kind = kind,
        Severity = severity,
        At = failure.At,
        Message = string.Empty,
        Pool = key.Pool,
        Key = key.Name,
        Fingerprint = key.Fingerprint,
        Status = failure.Status,
        ErrorType = failure.ErrorType,
        ErrorCode = failure.ErrorCode,
        ProviderMessage = failure.Message,
        RequestId = failure.RequestId,
        Incident = KeyIncident(key),
    };

    private static string NextKey(PoolKey? next) => next is null ? "No other key of the pool can serve." : $"Requests now go to '{next.Name}'.";

    internal static string Describe(TimeSpan duration) => duration switch
    {
        { TotalSeconds: < 90 } => $"{Math.Max(0, (int)duration.TotalSeconds)} s",
        { TotalMinutes: < 90 } => $"{(int)duration.TotalMinutes} min",
        _ => $"{duration.TotalHours:0.#} h",
    };
}
