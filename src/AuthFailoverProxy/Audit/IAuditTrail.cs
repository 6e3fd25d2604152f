using AuthFailoverProxy.Events;

namespace AuthFailoverProxy.Audit;

/// <summary>
/// Where events are kept: a JSON-lines file (<see cref="FileAuditTrail"/>) or a capped Redis stream
/// (<see cref="RedisAuditTrail"/>). Written only by <see cref="AuditWriter"/>, in the background; read by the admin API.
/// </summary>
internal interface IAuditTrail
{
    /// <summary>Gets where the trail is kept, for logs and answers: "in /data/audit.jsonl".</summary>
    string Where { get; }

    /// <summary>Writes events in order and makes them durable before returning.</summary>
    /// <returns>How many events, from the first, are stored; the rest are to be written again.</returns>
    /// <exception cref="AuditTrailUnavailableException">Nothing could be written now.</exception>
    Task<int> AppendAsync(IReadOnlyList<ProxyEvent> batch, CancellationToken cancellationToken);

    /// <summary>Reads every stored event in the order written. An event may appear twice after a retried write.</summary>
    /// <exception cref="AuditTrailUnavailableException">The trail cannot be read now.</exception>
    IAsyncEnumerable<ProxyEvent> ReadAsync(CancellationToken cancellationToken);
}

/// <summary>The trail cannot be written or read right now; the message says why in plain words.</summary>
internal sealed class AuditTrailUnavailableException(string message, Exception? innerException = null) : Exception(message, innerException);
