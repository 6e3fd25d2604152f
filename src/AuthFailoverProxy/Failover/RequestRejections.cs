using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;
using AuthFailoverProxy.Telemetry;

namespace AuthFailoverProxy.Failover;

/// <summary>Why a key's answer was about the request rather than the key.</summary>
internal enum RejectionReason
{
    /// <summary>The provider refused the request itself (a bad field, an unknown model, too large): passed to the agent.</summary>
    ClientError,

    /// <summary>Two keys gave the same refusal: the request is at fault, and the answer went to the agent.</summary>
    RequestAtFault,

    /// <summary>The key may not serve this request (a model its organization lacks, a kind of client); the next key was asked.</summary>
    Refused,

    /// <summary>The key looked dead to a request, and a check found it fine.</summary>
    Cleared,
}

/// <summary>
/// Request-specific rejections, counted per key, model and reason over a sliding window rather than recorded one by one:
/// a buggy agent's bad requests, a model one organization lacks, a blip a check cleared. Never a key's state, never an
/// alert; an operator sees them in <c>/status</c> (<see cref="RejectionTally"/>) and the <c>afp_rejections_total</c>
/// counter.
/// </summary>
internal sealed class RequestRejections(TimeProvider time, ProxyMetrics metrics)
{
    private static readonly string[] ReasonNames = ["client_error", "request_at_fault", "refused", "cleared"];

    public static string NameOf(RejectionReason reason) => ReasonNames[(int)reason];

    /// <summary>Counts one rejection <paramref name="key"/> gave a request for <paramref name="model"/>.</summary>
    public void Count(Pool pool, PoolKey key, string? model, KeyFailure answer, RejectionReason reason)
    {
        var name = NameOf(reason);
        metrics.Rejected(pool.Name, key.Name, answer.Status, FamilyOf(model), name);
        key.Rejections.Add(time.GetUtcNow(), model, name, answer);
    }

    /// <summary>A bounded label for metrics: the model family the provider limits by, or <c>other</c>.</summary>
    private static string FamilyOf(string? model) => model is null ? "none" : ModelClasses.Of(model) switch
    {
        "opus" => "opus",
        "sonnet" => "sonnet",
        "haiku" => "haiku",
        _ => "other",
    };
}
