namespace AuthFailoverProxy.Usage;

/// <summary>
/// Usage as <c>GET /status</c> shows it: tokens per key and per client over the last hour and the last day, for the
/// whole deployment when Redis holds the figures, else this replica's own, and said which.
/// </summary>
/// <param name="Scope"><c>deployment</c> (every replica's answers, from Redis) or <c>replica</c> (this process's own).</param>
/// <param name="Note">Why the figures are this replica's only, when they are.</param>
/// <param name="Currency">The currency of every cost; null without a price table, and then no cost is shown.</param>
/// <param name="LastHour">The last 60 minutes, by the minute.</param>
/// <param name="LastDay">The current hour and the 23 before it, by the hour.</param>
/// <param name="Budgets">Each client's budget and what was used of it.</param>
internal sealed record UsageReport(string Scope, string? Note, string? Currency, UsageWindow LastHour, UsageWindow LastDay, IReadOnlyList<BudgetStatus> Budgets);

/// <summary>A window's figures: the total, each key, each client, largest first.</summary>
internal sealed record UsageWindow(DateTimeOffset From, DateTimeOffset To, UsageFigure Total, IReadOnlyList<UsageFigure> Keys, IReadOnlyList<UsageFigure> Clients);

/// <summary>
/// What a key (<see cref="Pool"/> and <see cref="Key"/>), a client (<see cref="Client"/>) or everyone spent. Input counts
/// every input token, cached ones included; the cache's part is also shown on its own.
/// </summary>
internal sealed record UsageFigure(long Requests, long InputTokens, long OutputTokens, long CacheReadTokens, long CacheCreationTokens)
{
    public string? Pool { get; init; }

    public string? Key { get; init; }

    public string? Client { get; init; }

    /// <summary>Gets the estimated cost of the priced models' tokens; null without a price table.</summary>
    public decimal? Cost { get; init; }

    /// <summary>Gets the tokens of models the price table has no price for (not in <see cref="Cost"/>); null without a price table.</summary>
    public long? UnpricedTokens { get; init; }

    /// <summary>Gets the same figures by the model the provider answered with (<c>other</c> for models beyond the bounded labels).</summary>
    public IReadOnlyList<UsageModelFigure>? Models { get; init; }

    public long Tokens => InputTokens + OutputTokens;
}

/// <summary>One model's part of a <see cref="UsageFigure"/>.</summary>
internal sealed record UsageModelFigure(string Model, long Requests, long InputTokens, long OutputTokens, long CacheReadTokens, long CacheCreationTokens, decimal? Cost);
