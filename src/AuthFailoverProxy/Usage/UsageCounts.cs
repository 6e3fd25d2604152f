using AuthFailoverProxy.Telemetry;

namespace AuthFailoverProxy.Usage;

/// <summary>Whose spending a row of figures is: a key's (in its pool) or a client's.</summary>
internal enum UsageOf
{
    Key,
    Client,
}

/// <summary>
/// One row of the usage figures: a key of a pool, or a client, and the model the provider answered with (a label
/// bounded by <see cref="ModelLabels"/>, so a client cannot make rows by naming models). Never holds a secret.
/// </summary>
/// <param name="Of">Whether <paramref name="Name"/> is a key or a client.</param>
/// <param name="Pool">The key's pool; empty for a client.</param>
/// <param name="Name">The key's name or the client token's name.</param>
/// <param name="Model">The model label.</param>
internal readonly record struct UsageRow(UsageOf Of, string Pool, string Name, string Model);

/// <summary>What was spent: answers delivered and their tokens, input counting cached tokens in every dialect.</summary>
internal readonly record struct UsageCounts(long Requests, long Input, long Output, long CacheRead, long CacheCreation)
{
    /// <summary>Gets the tokens a budget counts: every input token, cached ones included, and every output token.</summary>
    public long Tokens => Input + Output;

    public bool IsZero => Requests == 0 && Input == 0 && Output == 0 && CacheRead == 0 && CacheCreation == 0;

    public static UsageCounts operator +(UsageCounts a, UsageCounts b)
        => new(a.Requests + b.Requests, a.Input + b.Input, a.Output + b.Output, a.CacheRead + b.CacheRead, a.CacheCreation + b.CacheCreation);

    public static UsageCounts Of(TokenUsage usage) => new(1, usage.Input, usage.Output, usage.CacheRead, usage.CacheCreation);
}
