using System.Collections.Concurrent;
using AuthFailoverProxy.Events;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;

namespace AuthFailoverProxy.Failover;

/// <summary>
/// Which pools are in safe mode: none of their own keys could serve, so their fallback pool does. Entering and leaving
/// are said once each, at Warning; a pool leaves by itself the moment one of its keys is back in service.
/// </summary>
internal sealed partial class SafeMode
{
    private readonly ConcurrentDictionary<string, DateTimeOffset> _since = new(StringComparer.OrdinalIgnoreCase);
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ProxyEvents _events;

    public SafeMode(KeyStateBoard board, KeyCatalog catalog, ProxyEvents events, TimeProvider time, ILogger<SafeMode> logger)
    {
        _time = time;
        _logger = logger;
        _events = events;
        board.Changed += OnChanged;
        // A usable key can also arrive without a health change: a configuration reload puts it in service directly.
        catalog.Changed += change =>
        {
            if (change.Kind == KeySetChangeKind.Added)
            {
                Leave(change.Key, change.Key.Health);
            }
        };
    }

    /// <summary>Returns when <paramref name="pool"/> entered safe mode, or <see langword="null"/> when it is not in it.</summary>
    public DateTimeOffset? Since(Pool pool) => _since.TryGetValue(pool.Name, out var since) ? since : null;

    public void Enter(Pool pool, Pool fallback)
    {
        var now = _time.GetUtcNow();
        if (_since.TryAdd(pool.Name, now))
        {
            var model = pool.FallbackModel ?? "the requested model";
            LogEntered(_logger, pool.Name, fallback.Name, model);
            _events.Publish(new ProxyEvent
            {
                Kind = EventKinds.SafeModeEntered,
                Severity = EventSeverity.Error,
                At = now,
                Message = $"Pool '{pool.Name}' entered safe mode: none of its keys can serve, so pool '{fallback.Name}' serves its requests (asking for {model}).",
                Remediation = $"Agents are answered, possibly by another model. Fix pool '{pool.Name}''s keys (GET /status says why each is out); it leaves safe mode by itself when one is back.",
                Pool = pool.Name,
                Incident = $"safe-mode:{pool.Name}",
            });
        }
    }

    private void OnChanged(KeyHealthChange change) => Leave(change.Key, change.Current);

    private void Leave(PoolKey key, KeyHealth health)
    {
        if (health.IsUsable && _since.TryRemove(key.Pool, out var since))
        {
            var now = _time.GetUtcNow();
            LogLeft(_logger, key.Pool, now - since, key.Name);
            _events.Publish(new ProxyEvent
            {
                Kind = EventKinds.SafeModeLeft,
                Severity = EventSeverity.Info,
                At = now,
                Message = $"Pool '{key.Pool}' left safe mode after {ProxyEventSources.Describe(now - since)}: key '{key.Name}' is back in service.",
                Pool = key.Pool,
                Incident = $"safe-mode:{key.Pool}",
                Resolves = true,
            });
        }
    }

    [LoggerMessage(EventId = 3020, Level = LogLevel.Warning,
        Message = "Pool '{Pool:l}' entered safe mode: none of its keys can serve, so pool '{Fallback:l}' serves its requests (asking for {Model:l}). Responses carry x-afp-safe-mode.")]
    private static partial void LogEntered(ILogger logger, string pool, string fallback, string model);

    [LoggerMessage(EventId = 3021, Level = LogLevel.Warning,
        Message = "Pool '{Pool:l}' left safe mode after {Duration}: key '{KeyName:l}' is back in service.")]
    private static partial void LogLeft(ILogger logger, string pool, TimeSpan duration, string keyName);
}
