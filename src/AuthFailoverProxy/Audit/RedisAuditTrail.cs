using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using AuthFailoverProxy.Events;
using AuthFailoverProxy.State;
using StackExchange.Redis;

namespace AuthFailoverProxy.Audit;

/// <summary>
/// The trail with Redis: a stream <c>{prefix}:audit</c> capped at about <see cref="AuditOptions.MaxEvents"/> entries
/// (<c>XADD … MAXLEN ~</c>), one entry per event with the event as JSON. Every replica adds the events it saw, so the
/// stream tells the whole deployment's story; it uses the key-state store's connection and never waits for one.
/// </summary>
internal sealed class RedisAuditTrail(RedisKeyStateStore store, RedisOptions redis, AuditOptions options) : IAuditTrail
{
    private const string Field = "event";
    private const int PageSize = 1000;
    private readonly RedisKey _stream = $"{redis.KeyPrefix}:audit";

    public string Where => $"in the Redis stream '{_stream}'";

    public async Task<int> AppendAsync(IReadOnlyList<ProxyEvent> batch, CancellationToken cancellationToken)
    {
        var database = Database();
        // Sent together (pipelined, in order on one connection), then counted in order: a write that fails part-way is
        // retried from the first event not stored.
        var writes = batch
            .Select(e => database.StreamAddAsync(_stream, Field, JsonSerializer.Serialize(e, AuditJsonContext.Compact.ProxyEvent), maxLength: (long)options.MaxEvents, useApproximateMaxLength: true))
            .ToList();
        var stored = 0;
        Exception? failure = null;
        foreach (var write in writes)
        {
            try
            {
                await write;
                if (failure is null)
                {
                    stored++;
                }
            }
            catch (Exception ex) when (IsUnavailable(ex))
            {
                failure ??= ex;
            }
        }

        return stored > 0 || failure is null ? stored : throw Unavailable("written", failure);
    }

    public async IAsyncEnumerable<ProxyEvent> ReadAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var database = Database();
        RedisValue from = "-";
        while (true)
        {
            StreamEntry[] page;
            try
            {
                page = await database.StreamRangeAsync(_stream, from, "+", PageSize);
            }
            catch (Exception ex) when (IsUnavailable(ex))
            {
                throw Unavailable("read", ex);
            }

            foreach (var entry in page)
            {
                if (Parse(entry[Field]) is { } proxyEvent)
                {
                    yield return proxyEvent;
                }
            }

            if (page.Length < PageSize)
            {
                yield break;
            }

            cancellationToken.ThrowIfCancellationRequested();
            from = After(page[^1].Id);
        }
    }

    private IDatabase Database() => store.Connection is { IsConnected: true } connection
        ? connection.GetDatabase()
        : throw new AuditTrailUnavailableException($"Redis is not reachable, so the audit trail {Where} cannot be used now; events are kept in memory and written when it returns.");

    private AuditTrailUnavailableException Unavailable(string doing, Exception ex)
        => new($"the audit trail {Where} cannot be {doing} now ({ex.GetType().Name}); events are kept in memory and written when Redis returns.", ex);

    private static bool IsUnavailable(Exception ex) => ex is RedisConnectionException or RedisTimeoutException or RedisServerException or ObjectDisposedException;

    private static ProxyEvent? Parse(RedisValue value)
    {
        if (value.IsNullOrEmpty)
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize(value.ToString(), AuditJsonContext.Compact.ProxyEvent);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>The smallest stream id after <paramref name="id"/> (<c>ms-seq</c>), for paging without repeating an entry.</summary>
    private static RedisValue After(RedisValue id)
    {
        var text = id.ToString();
        var dash = text.IndexOf('-', StringComparison.Ordinal);
        var sequence = ulong.Parse(text.AsSpan(dash + 1), CultureInfo.InvariantCulture);
        return $"{text[..dash]}-{sequence + 1}";
    }
}
