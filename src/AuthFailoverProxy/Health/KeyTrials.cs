using AuthFailoverProxy.Failover;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Health;

/// <summary>
/// Healing that works with any upstream. When no check can judge a key (the upstream serves no probe path, or refuses
/// the check's kind of client), a key that is dead or suspect gets a trial after its backoff: the next real request that
/// finds it is given to it, once, and the walk goes on to the next key if it fails, so that request's agent still gets
/// an answer. Success returns the key; failure leaves it as it was, and its backoff goes on.
/// </summary>
/// <remarks>
/// One trial at a time across replicas: the claim in the shared store is taken here, in the background, never on the
/// request path, and outlasts the trial's window by the longest a request may take to be answered.
/// </remarks>
internal sealed partial class KeyTrials(
    IKeyStateStore store,
    IOptions<ProbeOptions> probes,
    IOptions<FailoverOptions> failover,
    TimeProvider time,
    ILogger<KeyTrials> logger)
{
    /// <summary>Opens a trial for <paramref name="key"/>, unless another replica has one open; <paramref name="reason"/> says why no check could judge it.</summary>
    public async ValueTask OpenAsync(PoolKey key, string reason)
    {
        var window = probes.Value.HealDelay;
        if (!await store.TryClaimAsync($"trial:{key.Pool}:{key.Name}", window + failover.Value.Deadline))
        {
            return;
        }

        key.OpenTrial(time.GetUtcNow() + window);
        LogOpened(logger, key.Pool, key.Name, reason);
    }

    [LoggerMessage(EventId = 4103, Level = LogLevel.Debug, Message = "Pool '{Pool:l}': key '{KeyName:l}' gets a trial: the next request that finds it is given to it, since its check cannot judge it ({Reason:l}).")]
    private static partial void LogOpened(ILogger logger, string pool, string keyName, string reason);
}
