using System.Threading.Channels;
using AuthFailoverProxy.KeyPool;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace AuthFailoverProxy.State;

/// <summary>
/// Key health shared by every replica through Redis. The request path never waits for it: transitions are applied
/// locally at once and recorded here; a background worker applies each one to the shared record with the same rules
/// (an optimistic transaction on the record's version, so concurrent replicas can neither resurrect a dead key nor
/// shorten a cooldown) and publishes the result, which every replica adopts within milliseconds. A periodic re-read is
/// the backstop for lost messages. While Redis is unreachable the proxy serves from local state and keeps what it
/// learns; when Redis returns, the kept transitions are applied in order and the rest is re-read, so nothing learned on
/// either side is lost or rolled back.
/// </summary>
/// <remarks>Its dependencies are resolved when it starts: hosted services are built before the host validates options.</remarks>
internal sealed partial class RedisKeyStateStore(IServiceProvider services, IOptions<RedisOptions> options, Events.ProxyEvents events, TimeProvider time, ILogger<RedisKeyStateStore> logger)
    : IKeyStateStore, IHostedService, IAsyncDisposable
{
    private const int MaxTransactionAttempts = 16;
    private readonly RedisOptions _options = options.Value;
    private readonly Channel<(PoolKey Key, KeyIntent Intent)> _queue = System.Threading.Channels.Channel.CreateUnbounded<(PoolKey, KeyIntent)>(new() { SingleReader = true });
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _restored = new(0);
    private readonly SemaphoreSlim _resync = new(0);
    private ConnectionMultiplexer? _redis;
    private KeyStateBoard? _board;
    private PoolRegistry? _registry;
    private Task? _worker;
    private Task? _reconciler;
    private volatile bool _connected;
    private volatile string? _root;
    private volatile string? _problem = NotReachable;
    private bool _lostTold;
    private DateTimeOffset? _since;
    private int _pending;
    private readonly string _replica = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid():N}";

    public KeyStateStoreStatus Status => new("redis", _connected, _since, Volatile.Read(ref _pending), _connected ? null : _problem);

    /// <summary>
    /// Gets the start of every key's name. On a Redis Cluster it is the prefix as a hash tag (<c>{afp}</c>), so every
    /// record lies in one hash slot and a transaction may touch several (across slots a cluster answers CROSSSLOT); a
    /// single server keeps the plain prefix, so what earlier versions wrote there stays where it is, with nothing to
    /// migrate. A prefix that holds a tag of its own is used as it is. Chosen at the first connection.
    /// </summary>
    private string Root => _root ?? _options.KeyPrefix;

    private const string NotReachable = "unreachable";
    private const string AuthenticationFailed = "authentication failed";

    private RedisChannel Changes => RedisChannel.Literal($"{_options.KeyPrefix}:changes");

    public void Record(PoolKey key, KeyIntent intent)
    {
        if (_queue.Writer.TryWrite((key, intent)))
        {
            Interlocked.Increment(ref _pending);
        }
    }

    /// <summary>
    /// Gets the connection, once made, for other shared records (the audit trail): null until the first connect. Callers
    /// name their keys under <see cref="RedisOptions.KeyPrefix"/> and treat every command as one that may fail.
    /// </summary>
    internal IConnectionMultiplexer? Connection => _redis;

    public ValueTask<bool> TryLeaseProbeAsync(PoolKey key, TimeSpan lease) => TryClaimAsync($"probe:{key.Pool}:{key.Name}", lease);

    public async ValueTask<bool> TryClaimAsync(string what, TimeSpan ttl)
    {
        if (_redis is not { IsConnected: true } redis)
        {
            return true;
        }

        try
        {
            return await redis.GetDatabase().StringSetAsync($"{Root}:{what}", _replica, ttl, When.NotExists);
        }
        catch (Exception ex) when (IsUnreachable(ex))
        {
            return true;
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _board = services.GetRequiredService<KeyStateBoard>();
        _registry = services.GetRequiredService<PoolRegistry>();
        _sealer = services.GetRequiredService<SecretSealer>();
        _catalog = services.GetRequiredService<KeyCatalog>();
        _scopeBoard = services.GetRequiredService<KeyScopeBoard>();
        // Connecting happens in the background: a Redis that is down must not delay the start.
        _worker = Task.Run(() => RunAsync(_stopping.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        await Task.WhenAll(new[] { _worker, _reconciler, _scopeWorker }.OfType<Task>()).WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    public async ValueTask DisposeAsync()
    {
        _stopping.Dispose();
        _restored.Dispose();
        _resync.Dispose();
        _loading.Dispose();
        if (_redis is not null)
        {
            await _redis.DisposeAsync();
        }
    }

    private async Task RunAsync(CancellationToken stopping)
    {
        try
        {
            await ConnectAsync();
            _reconciler = Task.Run(() => ReconcileLoopAsync(stopping), CancellationToken.None);
            _scopeWorker = Task.Run(() => ApplyScopesAsync(stopping), CancellationToken.None);
            await ApplyRecordedAsync(stopping);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
    }

    private async Task ConnectAsync()
    {
        var configuration = ConfigurationOptions.Parse(_options.Configuration!);
        var timeout = (int)_options.Timeout.TotalMilliseconds;
        configuration.AbortOnConnectFail = false;
        configuration.ConnectTimeout = timeout;
        configuration.SyncTimeout = timeout;
        configuration.AsyncTimeout = timeout;
        // Fail at once while disconnected: the worker keeps the transition and waits for the connection itself.
        configuration.BacklogPolicy = BacklogPolicy.FailFast;
        configuration.ClientName ??= "auth-failover-proxy";
        if (!string.IsNullOrEmpty(_options.CaCertificateFile))
        {
            configuration.TrustIssuer(_options.CaCertificateFile);
        }
        _redis = await ConnectionMultiplexer.ConnectAsync(configuration);
        _redis.ConnectionFailed += (_, e) => OnConnectionChanged(connected: false, e.EndPoint, e.FailureType);
        _redis.ConnectionRestored += (_, e) => OnConnectionChanged(connected: true, e.EndPoint);
        // Subscriptions are restored by the client after a reconnect.
        await _redis.GetSubscriber().SubscribeAsync(Changes, (_, message) => OnMessage(message)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await _redis.GetSubscriber().SubscribeAsync(KeySetChanges, (_, message) => OnKeySetMessage(message)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await _redis.GetSubscriber().SubscribeAsync(ScopeChanges, (_, message) => OnScopeMessage(message)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        OnConnectionChanged(_redis.IsConnected, endPoint: null, _redis.IsConnected ? ConnectionFailureType.None : await WhyNotConnectedAsync(configuration));
    }

    /// <summary>
    /// Tells a refused password from a server that is not there, when the first connection failed: the client's own
    /// failure event came before anyone listened. One more attempt, which fails with the reason.
    /// </summary>
    private static async Task<ConnectionFailureType> WhyNotConnectedAsync(ConfigurationOptions configuration)
    {
        var once = configuration.Clone();
        once.AbortOnConnectFail = true;
        try
        {
            await using var check = await ConnectionMultiplexer.ConnectAsync(once);
            return ConnectionFailureType.None;
        }
        catch (RedisConnectionException ex)
        {
            return ex.FailureType;
        }
    }

    private void OnConnectionChanged(bool connected, System.Net.EndPoint? endPoint, ConnectionFailureType failure = ConnectionFailureType.None)
    {
        var was = _connected;
        _connected = connected;
        var problem = _problem;
        if (!connected && failure != ConnectionFailureType.None)
        {
            // A refused password is no network fault: say which it is, once each time it changes.
            _problem = failure == ConnectionFailureType.AuthenticationFailure ? AuthenticationFailed : NotReachable;
            if (_problem == AuthenticationFailed && problem != AuthenticationFailed)
            {
                LogAuthenticationFailed(logger, endPoint?.ToString() ?? "?");
            }
        }

        if (was == connected && _since is not null)
        {
            return;
        }

        _since = time.GetUtcNow();
        if (connected)
        {
            _root ??= ChooseRoot();
            _restored.Release();
            _resync.Release();
        }

        PublishConnectionChange(connected, was);

        if (logger.IsEnabled(LogLevel.Warning))
        {
            var where = endPoint?.ToString() ?? string.Join(", ", _redis?.GetEndPoints().Select(e => e.ToString()) ?? []);
            var pending = Volatile.Read(ref _pending);
            if (connected)
            {
                LogConnected(logger, where, pending);
            }
            else if (_problem != AuthenticationFailed)
            {
                LogUnreachable(logger, where);
            }
        }
    }

    private void PublishConnectionChange(bool connected, bool was)
    {
        // The first answer at start is news only when it is bad; "restored" follows only a "lost".
        if (connected && (!_lostTold || was))
        {
            return;
        }

        _lostTold = !connected;
        events.Publish(new Events.ProxyEvent
        {
            Kind = connected ? Events.EventKinds.StoreRestored : Events.EventKinds.StoreLost,
            Severity = connected ? Events.EventSeverity.Info : Events.EventSeverity.Error,
            At = _since!.Value,
            Message = connected
                ? $"Redis is reachable again from replica {Events.ProxyEvent.ThisReplica}; what it learned meanwhile is being shared."
                : _problem == AuthenticationFailed
                ? $"Redis refused the credentials of replica {Events.ProxyEvent.ThisReplica} (authentication failed): it keeps serving from its own key state, but other replicas do not see what it learns."
                : $"Redis is unreachable from replica {Events.ProxyEvent.ThisReplica}: it keeps serving from its own key state, but other replicas do not see what it learns until Redis returns.",
            Remediation = connected ? null : "Check the Redis server and the network path to it (Redis:Configuration / AFP_REDIS). Agents are not affected.",
            Incident = $"store:{Events.ProxyEvent.ThisReplica}",
            Resolves = connected,
        });
    }

    /// <summary>Applies recorded transitions to Redis in order; while Redis is away they wait, none is dropped or reordered.</summary>
    private async Task ApplyRecordedAsync(CancellationToken stopping)
    {
        var kept = new Queue<(PoolKey Key, KeyIntent Intent)>();
        while (!stopping.IsCancellationRequested)
        {
            if (kept.Count == 0)
            {
                kept.Enqueue(await _queue.Reader.ReadAsync(stopping));
            }

            while (_queue.Reader.TryRead(out var more))
            {
                kept.Enqueue(more);
            }

            while (kept.Count > _options.MaxPending)
            {
                kept.Dequeue();
                Interlocked.Decrement(ref _pending);
            }

            var (key, intent) = kept.Peek();
            if (key.Retired && key.AddedAtRuntime)
            {
                // Removed meanwhile: recording it now would bring back a record the removal deleted.
                kept.Dequeue();
                Interlocked.Decrement(ref _pending);
                continue;
            }

            try
            {
                await ApplyAsync(key, intent);
            }
            catch (Exception ex) when (IsUnreachable(ex))
            {
                // Keep it; wait for the client to report the connection back (or look again after a while).
                await _restored.WaitAsync(TimeSpan.FromSeconds(1), stopping);
                continue;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Never let one bad transition stop the others: say so and move on.
                LogApplyFailed(logger, key.Pool, key.Name, intent.Kind, ex);
            }

            kept.Dequeue();
            Interlocked.Decrement(ref _pending);
        }
    }

    /// <summary>Applies one transition to the shared record by the same rules, retrying when another replica got there first.</summary>
    private async Task ApplyAsync(PoolKey key, KeyIntent intent)
    {
        var db = _redis!.GetDatabase();
        var hashKey = HashKey(key);
        for (var attempt = 0; attempt < MaxTransactionAttempts; attempt++)
        {
            var (stored, identity) = await ReadRecordAsync(db, key);
            // A record about another secret of this name (a rotated key) says nothing about this one: it is overwritten.
            var about = stored is not null && RedisKeyHealthCodec.IsAbout(identity, key) ? stored : null;
            var current = about ?? key.Fresh(intent.At);
            if (intent.ApplyTo(current) is not { } next)
            {
                // The shared record already says as much, or more (a later deadline, a dead key, an operator's choice).
                if (about is not null)
                {
                    _board!.Adopt(key, about);
                }

                return;
            }

            // Versions are hybrid, never below the transition's time in microseconds: a Redis that restarts empty
            // (no persistence) starts again from 1, and plain counters would then look older than what replicas hold.
            next = next with { Version = Math.Max((stored?.Version ?? 0) + 1, intent.At.ToUnixTimeMilliseconds() * 1000) };
            var transaction = db.CreateTransaction();
            transaction.AddCondition(stored is null
                ? Condition.KeyNotExists(hashKey)
                : Condition.HashEqual(hashKey, RedisKeyHealthCodec.VersionField, stored.Version));
            _ = transaction.HashSetAsync(hashKey, RedisKeyHealthCodec.Encode(next, key.Identity));
            if (await transaction.ExecuteAsync())
            {
                // Published after the commit, not inside the transaction: a channel is no key and belongs to no slot.
                _ = db.PublishAsync(Changes, RedisKeyHealthCodec.Message(key.Pool, key.Name, key.Identity, next), CommandFlags.FireAndForget);
                _board!.Adopt(key, next);
                return;
            }
        }

        LogContended(logger, key.Pool, key.Name);
    }

    private void OnMessage(RedisValue message)
    {
        if (RedisKeyHealthCodec.ParseMessage(message.ToString()) is { } change
            && _registry!.Find(change.Pool)?.FindKey(change.Key) is { } key
            && RedisKeyHealthCodec.IsAbout(change.Identity, key))
        {
            _board!.Adopt(key, change.Health);
        }
    }

    /// <summary>
    /// Re-reads every key every <see cref="RedisOptions.ReconcileInterval"/>, and at once when Redis comes back, after
    /// the transitions kept during the outage have reached it: re-reading first would briefly roll this replica back to
    /// what the others knew.
    /// </summary>
    private async Task ReconcileLoopAsync(CancellationToken stopping)
    {
        Task? reconnected = null;
        while (!stopping.IsCancellationRequested)
        {
            var failed = false;
            try
            {
                await ReconcileAsync();
            }
            catch (Exception ex) when (IsUnreachable(ex))
            {
                // Reported by the connection events. One connection may be back before another (the restored event
                // that woke this round can be the subscriber's): try again shortly rather than a whole interval later.
                failed = true;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Never let the backstop die: say so and go on with the next round.
                failed = true;
                LogReconcileFailed(logger, ex);
            }

            reconnected ??= _resync.WaitAsync(stopping);
            await Task.WhenAny(Task.Delay(failed ? TimeSpan.FromSeconds(1) : _options.ReconcileInterval, time, stopping), reconnected);
            if (reconnected.IsCompleted)
            {
                reconnected = null;
                for (var waited = 0; Volatile.Read(ref _pending) > 0 && waited < 100; waited++)
                {
                    await Task.Delay(50, stopping);
                }
            }
        }
    }

    /// <summary>
    /// Re-reads every key's shared record and adopts the newer ones. A key this replica holds out of service with no
    /// shared record at all (Redis restarted empty) is recorded again, so what was learned before is not lost.
    /// </summary>
    private async Task ReconcileAsync()
    {
        var db = _redis!.GetDatabase();
        await SyncRuntimeKeysAsync(db);
        var keys = _registry!.Pools.SelectMany(p => p.Keys).ToList();
        var records = await Task.WhenAll(keys.Select(k => ReadRecordAsync(db, k)));
        var now = time.GetUtcNow();
        for (var i = 0; i < keys.Count; i++)
        {
            if (records[i] is ({ } shared, var identity) && RedisKeyHealthCodec.IsAbout(identity, keys[i]))
            {
                _board!.Adopt(keys[i], shared);
            }
            else if (IntentFor(keys[i], now) is { } intent)
            {
                Record(keys[i], intent);
            }
        }

        await ReconcileScopesAsync(db, keys);
    }

    /// <summary>
    /// Reads a key's shared record. One that is not a record (another type under its name, a field that does not parse)
    /// is deleted, with one warning, and read as missing: the replicas then write it again from what they hold, and one
    /// bad record never stops every other key's sync.
    /// </summary>
    private async Task<(KeyHealth? Health, string? Identity)> ReadRecordAsync(IDatabase db, PoolKey key)
    {
        var record = HashKey(key);
        try
        {
            var health = RedisKeyHealthCodec.Decode(await db.HashGetAllAsync(record), out var identity);
            return (health, identity);
        }
        catch (Exception ex) when (ex is KeyNotFoundException or InvalidCastException or FormatException or OverflowException
            || (ex is RedisServerException server && server.Message.StartsWith("WRONGTYPE", StringComparison.Ordinal)))
        {
            var pool = key.Pool;
            var name = key.Name;
            var problem = ex.GetType().Name;
            WarnOnce($"malformed:{record}", () => LogMalformed(logger, pool, name, problem));
            await db.KeyDeleteAsync(record);
            return (null, null);
        }
    }

    /// <summary>The transition that would recreate a state this replica holds, for a shared record that went missing.</summary>
    private static KeyIntent? IntentFor(PoolKey key, DateTimeOffset now) => key.Health switch
    {
        { State: KeyState.Dead, LastFailure: { } failure } => new KeyIntent(KeyIntentKind.Dead, failure.At, failure),
        { State: KeyState.Cooling, LastFailure: { } failure, Until: { } until } when until > now => new KeyIntent(KeyIntentKind.Cooling, failure.At, failure, until),
        { State: KeyState.Disabled } health => new KeyIntent(KeyIntentKind.Disable, health.Since),
        // A key added at runtime starts pending wherever it is loaded: one in service needs its confirmation on record.
        { State: KeyState.Usable } health when key.AddedAtRuntime => new KeyIntent(KeyIntentKind.Confirm, health.Since),
        _ => null,
    };

    private RedisKey HashKey(PoolKey key) => $"{Root}:key:{key.Pool}:{key.Name}";

    /// <summary>The key names' start for the servers connected now (see <see cref="Root"/>); null while none is.</summary>
    private string? ChooseRoot()
    {
        var servers = _redis?.GetServers().Where(s => s.IsConnected).ToList();
        if (servers is not { Count: > 0 })
        {
            return null;
        }

        var prefix = _options.KeyPrefix;
        var open = prefix.IndexOf('{', StringComparison.Ordinal);
        var tagged = open >= 0 && prefix.IndexOf('}', open + 1) > open + 1;
        return tagged || !servers.Exists(s => s.ServerType == ServerType.Cluster) ? prefix : "{" + prefix + "}";
    }

    private static bool IsUnreachable(Exception ex) => ex is RedisConnectionException or RedisTimeoutException
        || (ex is RedisServerException server && server.Message.StartsWith("LOADING", StringComparison.Ordinal));

    [LoggerMessage(EventId = 5001, Level = LogLevel.Information, Message = "Key health is shared through Redis at {EndPoint:l}; {Pending} transition(s) learned while it was away are being applied.")]
    private static partial void LogConnected(ILogger logger, string endPoint, int pending);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Warning, Message = "Redis at {EndPoint:l} is unreachable: this replica serves from its own key state and keeps what it learns until Redis returns. Other replicas do not see its findings meanwhile.")]
    private static partial void LogUnreachable(ILogger logger, string endPoint);

    [LoggerMessage(EventId = 5004, Level = LogLevel.Error, Message = "Pool '{Pool:l}': key '{KeyName:l}': recording a {Intent} transition in Redis failed; the shared record may lag until the next re-read.")]
    private static partial void LogApplyFailed(ILogger logger, string pool, string keyName, KeyIntentKind intent, Exception exception);

    [LoggerMessage(EventId = 5005, Level = LogLevel.Error, Message = "Re-reading the shared key state from Redis failed; the next round tries again.")]
    private static partial void LogReconcileFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 5007, Level = LogLevel.Warning, Message = "Pool '{Pool:l}': key '{KeyName:l}': its shared record in Redis is malformed ({Problem:l}); it was deleted and is written again from this replica's own state. Other keys are not affected.")]
    private static partial void LogMalformed(ILogger logger, string pool, string keyName, string problem);

    [LoggerMessage(EventId = 5008, Level = LogLevel.Error, Message = "Redis at {EndPoint:l} refused this replica's credentials (authentication failed): check the password (and user) in Redis:Configuration (AFP_REDIS). This replica serves from its own key state meanwhile.")]
    private static partial void LogAuthenticationFailed(ILogger logger, string endPoint);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Warning, Message = "Pool '{Pool:l}': key '{KeyName:l}': the shared record kept changing under this replica; its transition was not recorded (the next re-read adopts the shared state).")]
    private static partial void LogContended(ILogger logger, string pool, string keyName);
}
