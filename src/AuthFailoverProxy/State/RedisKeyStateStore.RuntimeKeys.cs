using System.Collections.Concurrent;
using System.Globalization;
using AuthFailoverProxy.KeyPool;
using StackExchange.Redis;

namespace AuthFailoverProxy.State;

/// <summary>
/// Keys added at runtime, shared by every replica. Each is a hash holding the secret sealed with AES-GCM
/// (<see cref="SecretSealer"/>, bound to the hash's name) and what may be shown about it; an index set lists them, and a
/// pub/sub message tells the replicas at once. The periodic re-read is the backstop: it loads what a replica missed,
/// drops what was removed meanwhile, re-seals secrets still sealed with an older data key, and puts everything back
/// when Redis lost its data. The secret is never written in plain text.
/// </summary>
internal sealed partial class RedisKeyStateStore
{
    /// <summary>A member that keeps the index from ever being empty: an index that is missing means Redis lost its data.</summary>
    private const string IndexSentinel = "-";

    private readonly SemaphoreSlim _loading = new(1, 1);
    private readonly ConcurrentDictionary<string, byte> _unreadable = new(StringComparer.Ordinal);
    private SecretSealer? _sealer;
    private KeyCatalog? _catalog;

    public bool RuntimeKeysAccepted => _sealer is { CanSeal: true };

    public string RuntimeKeysKeptIn => RuntimeKeysAccepted
        ? $"in Redis, sealed with AES-GCM under data key {_sealer!.CurrentKeyId}: every replica puts it in its pool, and restarts keep it"
        : "nowhere yet: with Redis, keys added at runtime are stored encrypted, and no data key is configured. Set Encryption:DataKey (AFP_DATA_KEY) or Encryption:DataKeyFile on every replica (generate one with: openssl rand -base64 32)";

    private RedisChannel KeySetChanges => RedisChannel.Literal($"{_options.KeyPrefix}:keyset");

    private RedisKey RuntimeIndex => $"{Root}:rtkeys";

    public async Task SaveRuntimeKeyAsync(PoolKey key, CancellationToken cancellationToken)
    {
        if (!RuntimeKeysAccepted)
        {
            throw new KeyStoreException($"keys cannot be added at runtime: they would be kept {RuntimeKeysKeptIn}.");
        }

        if (!await TrySaveAsync(ConnectedDatabase(), key).WaitAsync(cancellationToken))
        {
            throw new KeyStoreException($"another replica added a key named '{key.Name}' to pool '{key.Pool}' a moment ago; list the keys (GET /admin/keys) and choose another name.");
        }
    }

    public async Task RemoveRuntimeKeyAsync(PoolKey key, CancellationToken cancellationToken)
    {
        var db = ConnectedDatabase();
        var transaction = db.CreateTransaction();
        _ = transaction.KeyDeleteAsync([RuntimeRecord(key.Pool, key.Name), HashKey(key)]);
        _ = transaction.SetRemoveAsync(RuntimeIndex, Member(key.Pool, key.Name));
        try
        {
            await transaction.ExecuteAsync().WaitAsync(cancellationToken);
            // After the commit, not inside the transaction: a channel belongs to no hash slot.
            await db.PublishAsync(KeySetChanges, $"-\t{key.Pool}\t{key.Name}\t{key.Identity}").WaitAsync(cancellationToken);
        }
        catch (Exception ex) when (IsUnreachable(ex))
        {
            throw Unreachable(ex);
        }
    }

    private async Task<bool> TrySaveAsync(IDatabase db, PoolKey key)
    {
        var record = RuntimeRecord(key.Pool, key.Name);
        var transaction = db.CreateTransaction();
        transaction.AddCondition(Condition.KeyNotExists(record));
        _ = transaction.HashSetAsync(record,
        [
            new("sec", _sealer!.Seal(key.Secret, record.ToString())),
            new("id", key.Identity),
            new("fp", key.Fingerprint),
            new("prio", key.Priority),
            new("src", key.Source),
            new("sch", CredentialSchemes.Name(key.Scheme)),
            new("org", key.Account?.Organization ?? string.Empty),
            new("proj", key.Account?.Project ?? string.Empty),
        ]);
        _ = transaction.SetAddAsync(RuntimeIndex, [IndexSentinel, Member(key.Pool, key.Name)]);
        try
        {
            if (!await transaction.ExecuteAsync())
            {
                return false;
            }

            await db.PublishAsync(KeySetChanges, $"+\t{key.Pool}\t{key.Name}");
            return true;
        }
        catch (Exception ex) when (IsUnreachable(ex))
        {
            throw Unreachable(ex);
        }
    }

    private void OnKeySetMessage(RedisValue message)
    {
        var parts = message.ToString().Split('\t');
        if (parts.Length < 3 || _registry!.Find(parts[1]) is not { } pool)
        {
            return;
        }

        if (parts[0] == "+")
        {
            _ = Task.Run(async () =>
            {
                try
                {
                    await LoadRuntimeKeyAsync(_redis!.GetDatabase(), pool, parts[2]);
                }
                catch (Exception ex) when (IsUnreachable(ex))
                {
                    // The next re-read loads it.
                }
            });
        }
        else if (parts[0] == "-" && parts.Length == 4 && pool.FindKey(parts[2]) is { AddedAtRuntime: true } key && key.Identity == parts[3])
        {
            _catalog!.Remove(pool, key, "its removal on another replica", replicated: true);
        }
    }

    /// <summary>
    /// Makes this replica's runtime keys match Redis: loads the ones it lacks, drops the ones removed meanwhile. When the
    /// index is gone (Redis restarted empty) it records again what it holds, so no key an operator added is lost.
    /// </summary>
    private async Task SyncRuntimeKeysAsync(IDatabase db)
    {
        var members = await db.SetMembersAsync(RuntimeIndex);
        var local = _registry!.Pools.SelectMany(p => p.Keys).Where(k => k.AddedAtRuntime).ToList();
        if (members.Length == 0)
        {
            if (local.Count > 0 && RuntimeKeysAccepted)
            {
                foreach (var key in local)
                {
                    await TrySaveAsync(db, key);
                }

                LogRuntimeKeysRestored(logger, local.Count);
            }

            return;
        }

        var listed = members.Select(m => m.ToString()).Where(m => m != IndexSentinel).ToHashSet(StringComparer.Ordinal);
        foreach (var member in listed)
        {
            var separator = member.IndexOf('\t', StringComparison.Ordinal);
            if (separator > 0 && _registry.Find(member[..separator]) is { } pool)
            {
                await LoadRuntimeKeyAsync(db, pool, member[(separator + 1)..]);
            }
        }

        foreach (var key in local.Where(k => !listed.Contains(Member(k.Pool, k.Name))))
        {
            if (_registry.Find(key.Pool) is { } pool)
            {
                _catalog!.Remove(pool, key, "its removal on another replica", replicated: true);
            }
        }
    }

    /// <summary>Puts one runtime key from Redis in its pool (pending until its shared record says otherwise), unless it is there.</summary>
    private async Task LoadRuntimeKeyAsync(IDatabase db, Pool pool, string name)
    {
        await _loading.WaitAsync(_stopping.Token);
        try
        {
            var record = RuntimeRecord(pool.Name, name);
            var fields = (await db.HashGetAllAsync(record)).ToDictionary(e => e.Name.ToString(), e => e.Value.ToString(), StringComparer.Ordinal);
            if (!fields.TryGetValue("sec", out var @sealed) || !fields.TryGetValue("id", out var identity))
            {
                return;
            }

            var local = pool.FindKey(name);
            if (local is not null && local.Identity == identity)
            {
                await ResealAsync(db, record, @sealed, local.Secret);
                return;
            }

            if (local is { AddedAtRuntime: false })
            {
                WarnOnce($"conflict:{pool.Name}:{name}", () => LogNameTaken(logger, pool.Name, name));
                return;
            }

            if (!_sealer!.TryOpen(@sealed, record.ToString(), out var secret, out var keyId))
            {
                WarnOnce($"unreadable:{pool.Name}:{name}:{keyId}", () => LogUnreadable(logger, pool.Name, name, keyId ?? "unknown"));
                return;
            }

            var priority = int.TryParse(fields.GetValueOrDefault("prio"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var p) ? p : 0;
            // Records written before keys had a scheme have none: the key's format decides, as it did then.
            var scheme = CredentialSchemes.TryParse(fields.GetValueOrDefault("sch"), out var saved) ? saved : CredentialSchemes.Default(pool.Kind, KeyFormats.Detect(secret));
            var key = new PoolKey(pool.Name, name, secret, priority, fields.GetValueOrDefault("src") ?? "admin API", scheme, time.GetUtcNow(), addedAtRuntime: true)
            {
                Account = KeyAccount.From(fields.GetValueOrDefault("org"), fields.GetValueOrDefault("proj"), "org", []),
            };
            if (RedisKeyHealthCodec.Decode(await db.HashGetAllAsync(HashKey(key)), out var healthIdentity) is { } shared && RedisKeyHealthCodec.IsAbout(healthIdentity, key))
            {
                _board!.Adopt(key, shared);
            }

            _catalog!.Add(pool, key, "another replica", replicated: true);
            await ResealAsync(db, record, @sealed, secret);
        }
        finally
        {
            _loading.Release();
        }
    }

    /// <summary>
    /// Seals a secret again under the current data key when it was sealed under one this replica keeps for reading
    /// only: how a rotation finishes. A value this replica cannot open is left alone, so a replica not yet rolled to the
    /// new data key never seals back what a rolled one re-sealed.
    /// </summary>
    private async Task ResealAsync(IDatabase db, RedisKey record, string @sealed, string secret)
    {
        if (!_sealer!.CanSeal || _sealer.IsCurrent(@sealed) || !_sealer.TryOpen(@sealed, record.ToString(), out _, out _))
        {
            return;
        }

        var transaction = db.CreateTransaction();
        transaction.AddCondition(Condition.HashEqual(record, "sec", @sealed));
        _ = transaction.HashSetAsync(record, "sec", _sealer.Seal(secret, record.ToString()));
        if (await transaction.ExecuteAsync())
        {
            LogResealed(logger, record, _sealer.CurrentKeyId!);
        }
    }

    private void WarnOnce(string what, Action log)
    {
        if (_unreadable.TryAdd(what, 0))
        {
            log();
        }
    }

    private IDatabase ConnectedDatabase() => _redis is { IsConnected: true } redis
        ? redis.GetDatabase()
        : throw new KeyStoreException("Redis is unreachable, so the change would reach this replica only. Nothing was changed; try again when GET /status shows the store connected.");

    private static KeyStoreException Unreachable(Exception ex)
        => new("Redis did not answer, so the change may not have reached the other replicas. Look at GET /admin/keys and try again when GET /status shows the store connected.", ex);

    private RedisKey RuntimeRecord(string pool, string name) => $"{Root}:rtkey:{pool}:{name}";

    private static string Member(string pool, string name) => $"{pool}\t{name}";

    [LoggerMessage(EventId = 5010, Level = LogLevel.Warning, Message = "Redis had no record of the {Count} key(s) added at runtime that this replica holds (it restarted empty?); they were recorded again, sealed, so none is lost.")]
    private static partial void LogRuntimeKeysRestored(ILogger logger, int count);

    [LoggerMessage(EventId = 5011, Level = LogLevel.Error, Message = "Pool '{Pool:l}': key '{KeyName:l}', added at runtime and kept in Redis, cannot be read by this replica: it is sealed with data key {KeyId:l}, which this replica does not have. Give every replica the same Encryption:DataKey, and during a rotation the old one in Encryption:PreviousDataKeys.")]
    private static partial void LogUnreadable(ILogger logger, string pool, string keyName, string keyId);

    [LoggerMessage(EventId = 5012, Level = LogLevel.Warning, Message = "Pool '{Pool:l}': a key named '{KeyName:l}' was added at runtime on another replica, but this replica's configuration has a key of that name; the configured key stays. Remove one of the two.")]
    private static partial void LogNameTaken(ILogger logger, string pool, string keyName);

    [LoggerMessage(EventId = 5013, Level = LogLevel.Information, Message = "Re-sealed {Record} under the current data key {KeyId:l}.")]
    private static partial void LogResealed(ILogger logger, RedisKey record, string keyId);
}
