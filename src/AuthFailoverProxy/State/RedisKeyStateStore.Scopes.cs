using System.Globalization;
using System.Threading.Channels;
using AuthFailoverProxy.KeyPool;
using StackExchange.Redis;

namespace AuthFailoverProxy.State;

// Scopes: what a key is out for while it serves everything else, shared like its health. One hash per key, one field per
// scope, in the same hash slot as the key's own record (a Redis Cluster keeps them on one node, and one transaction may
// touch both). Redis 7.0 has no per-field expiry: each field carries its end, readers ignore ended ones, the re-read
// deletes them, and the whole hash expires after the last of them.
internal sealed partial class RedisKeyStateStore
{
    private readonly Channel<(PoolKey Key, KeyScope Scope)> _scopeQueue = System.Threading.Channels.Channel.CreateUnbounded<(PoolKey, KeyScope)>(new() { SingleReader = true });
    private KeyScopeBoard? _scopeBoard;
    private Task? _scopeWorker;

    private RedisChannel ScopeChanges => RedisChannel.Literal($"{_options.KeyPrefix}:scopes");

    public void RecordScope(PoolKey key, KeyScope scope)
    {
        if (_scopeQueue.Writer.TryWrite((key, scope)))
        {
            Interlocked.Increment(ref _pending);
        }
    }

    /// <summary>
    /// Returns the name of the record holding the scopes of the key whose own record is <paramref name="record"/>: in
    /// the same hash slot, through the record's own hash tag when it has one (a key prefix such as <c>{afp}</c>), or by
    /// making the whole record name the tag (Redis hashes a name without a tag whole, so the slot is the same).
    /// </summary>
    internal static string ScopesRecordFor(string record)
    {
        var open = record.IndexOf('{', StringComparison.Ordinal);
        var close = open < 0 ? -1 : record.IndexOf('}', open + 1);
        return close > open + 1 ? record + ":scopes" : "{" + record + "}:scopes";
    }

    private RedisKey ScopesKey(PoolKey key) => ScopesRecordFor(HashKey(key)!);

    /// <summary>Applies recorded scopes to Redis in order; while Redis is away they wait, and those that end meanwhile are dropped.</summary>
    private async Task ApplyScopesAsync(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            var (key, scope) = await _scopeQueue.Reader.ReadAsync(stopping);
            while (!key.Retired && scope.Until > time.GetUtcNow())
            {
                try
                {
                    await ApplyScopeAsync(key, scope);
                    break;
                }
                catch (Exception ex) when (IsUnreachable(ex))
                {
                    await _restored.WaitAsync(TimeSpan.FromSeconds(1), stopping);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    LogScopeFailed(logger, key.Pool, key.Name, scope.Name, ex);
                    break;
                }
            }

            Interlocked.Decrement(ref _pending);
        }
    }

    /// <summary>Records one scope unless the shared record already holds it until then or later (then that is adopted).</summary>
    private async Task ApplyScopeAsync(PoolKey key, KeyScope scope)
    {
        var db = _redis!.GetDatabase();
        var record = ScopesKey(key);
        for (var attempt = 0; attempt < MaxTransactionAttempts; attempt++)
        {
            var stored = await db.HashGetAsync(record, scope.Name);
            if (RedisKeyScopeCodec.Decode(stored, out var identity) is { } held && identity == key.Identity && held.Until >= scope.Until)
            {
                _scopeBoard!.Adopt(key, held);
                return;
            }

            var transaction = db.CreateTransaction();
            transaction.AddCondition(stored.IsNull ? Condition.HashNotExists(record, scope.Name) : Condition.HashEqual(record, scope.Name, stored));
            var encoded = RedisKeyScopeCodec.Encode(scope, key.Identity);
            _ = transaction.HashSetAsync(record, scope.Name, encoded);
            // The hash outlives its last scope by a margin; NX sets a first expiry, GT only ever extends it.
            var ttl = scope.Until - time.GetUtcNow() + TimeSpan.FromMinutes(1);
            _ = transaction.KeyExpireAsync(record, ttl, ExpireWhen.HasNoExpiry);
            _ = transaction.KeyExpireAsync(record, ttl, ExpireWhen.GreaterThanCurrentExpiry);
            if (await transaction.ExecuteAsync())
            {
                _ = db.PublishAsync(ScopeChanges, $"{key.Pool}\t{key.Name}\t{encoded}", CommandFlags.FireAndForget);
                return;
            }
        }

        LogContended(logger, key.Pool, key.Name);
    }

    private void OnScopeMessage(RedisValue message)
    {
        var parts = message.ToString().Split('\t', 3);
        if (parts.Length == 3
            && _registry!.Find(parts[0])?.FindKey(parts[1]) is { } key
            && RedisKeyScopeCodec.Decode(parts[2], out var identity) is { } scope
            && identity == key.Identity)
        {
            _scopeBoard!.Adopt(key, scope);
        }
    }

    /// <summary>Re-reads the scopes of <paramref name="keys"/>: adopts those still running, deletes those that have ended.</summary>
    private async Task ReconcileScopesAsync(IDatabase db, List<PoolKey> keys)
    {
        var records = await Task.WhenAll(keys.Select(k => db.HashGetAllAsync(ScopesKey(k))));
        var now = time.GetUtcNow();
        for (var i = 0; i < keys.Count; i++)
        {
            List<RedisValue>? ended = null;
            foreach (var entry in records[i])
            {
                var scope = RedisKeyScopeCodec.Decode(entry.Value, out var identity);
                if (scope is null || scope.Until <= now || identity != keys[i].Identity)
                {
                    (ended ??= []).Add(entry.Name);
                }
                else
                {
                    _scopeBoard!.Adopt(keys[i], scope);
                }
            }

            if (ended is not null)
            {
                _ = db.HashDeleteAsync(ScopesKey(keys[i]), [.. ended], CommandFlags.FireAndForget);
            }
        }
    }

    [LoggerMessage(EventId = 5006, Level = LogLevel.Error, Message = "Pool '{Pool:l}': key '{KeyName:l}': recording its scope '{Scope:l}' in Redis failed; other replicas learn it from their own answers.")]
    private static partial void LogScopeFailed(ILogger logger, string pool, string keyName, string scope, Exception exception);
}

/// <summary>How a scope is written in Redis: one tab-separated field value, also the body of its pub/sub message.</summary>
internal static class RedisKeyScopeCodec
{
    private const string Format = "1";

    public static string Encode(KeyScope scope, string identity)
    {
        var f = scope.Failure;
        return string.Join('\t',
            Format,
            identity,
            ((int)scope.Kind).ToString(CultureInfo.InvariantCulture),
            scope.Until.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture),
            Clean(scope.Organization),
            f.Status.ToString(CultureInfo.InvariantCulture),
            f.At.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture),
            Clean(f.ErrorType),
            Clean(f.ErrorCode),
            Clean(f.Message),
            Clean(f.RequestId),
            Clean(scope.Value));
    }

    /// <summary>Reads a scope; <paramref name="identity"/> says which secret it is about. Null for anything that is not one.</summary>
    public static KeyScope? Decode(RedisValue value, out string? identity)
    {
        identity = null;
        if (value.IsNullOrEmpty)
        {
            return null;
        }

        var parts = value.ToString().Split('\t');
        if (parts.Length != 12 || parts[0] != Format
            || !int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var kind) || !Enum.IsDefined((KeyScopeKind)kind)
            || !long.TryParse(parts[3], NumberStyles.None, CultureInfo.InvariantCulture, out var until)
            || !int.TryParse(parts[5], NumberStyles.None, CultureInfo.InvariantCulture, out var status)
            || !long.TryParse(parts[6], NumberStyles.None, CultureInfo.InvariantCulture, out var at))
        {
            return null;
        }

        identity = parts[1];
        var failure = new KeyFailure(status, Text(parts[7]), Text(parts[8]), Text(parts[9]), Text(parts[10]), DateTimeOffset.FromUnixTimeMilliseconds(at));
        return new KeyScope((KeyScopeKind)kind, parts[11], DateTimeOffset.FromUnixTimeMilliseconds(until), failure) { Organization = Text(parts[4]) };
    }

    private static string Clean(string? value) => value?.Replace('\t', ' ').Replace('\n', ' ') ?? string.Empty;

    private static string? Text(string value) => value.Length == 0 ? null : value;
}
