namespace AuthFailoverProxy.Usage;

/// <summary>How token usage is kept and priced. Bound from <c>Usage</c>.</summary>
public sealed class UsageOptions
{
    public const string Section = "Usage";

    /// <summary>
    /// Gets or sets a value indicating whether the proxy reads token usage from the answers it delivers. Off, answers pass
    /// without being read: no token figures, metrics or cost, OpenAI chat streams are not asked for their usage, and a
    /// client budget may limit requests only (a token budget is refused at start). <value>The default value is
    /// <see langword="true"/>.</value>
    /// </summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// Gets or sets how often this replica adds what it counted to the shared figures (Redis) and reads the deployment's
    /// budget counters back. Budgets are enforced between syncs on the last figures plus this replica's own count, so a
    /// shorter interval means a smaller overshoot across replicas. <value>The default value is 1 second.</value>
    /// </summary>
    public TimeSpan SyncInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Gets or sets the currency the <see cref="Prices"/> are in, shown next to every cost. <value>The default value is <c>USD</c>.</value></summary>
    public string Currency { get; set; } = "USD";

    /// <summary>
    /// Gets the price of each model, per million tokens. Optional: without a price table no cost is shown. A model's price
    /// is the entry whose <see cref="ModelPrice.Model"/> equals the model the provider answered with, else the longest
    /// one it starts with (<c>claude-sonnet-4-5</c> prices <c>claude-sonnet-4-5-20250929</c>).
    /// </summary>
    public List<ModelPrice> Prices { get; set; } = [];
}

/// <summary>What one model costs per million tokens, in <see cref="UsageOptions.Currency"/>.</summary>
public sealed class ModelPrice
{
    /// <summary>Gets or sets the model name, or the start of the names it prices.</summary>
    public string? Model { get; set; }

    /// <summary>Gets or sets the price of a million input tokens that were not read from or written to a cache.</summary>
    public decimal Input { get; set; }

    /// <summary>Gets or sets the price of a million output tokens.</summary>
    public decimal Output { get; set; }

    /// <summary>Gets or sets the price of a million input tokens read from the prompt cache. <value>The default value is none: the <see cref="Input"/> price.</value></summary>
    public decimal? CacheRead { get; set; }

    /// <summary>Gets or sets the price of a million input tokens written to the prompt cache (Anthropic). <value>The default value is none: the <see cref="Input"/> price.</value></summary>
    public decimal? CacheWrite { get; set; }
}

/// <summary>
/// A client's budget: what one agent may spend, so that a runaway agent cannot burn the organization's rate limit or
/// credit for every other agent. Every limit is optional; none set, no budget. Tokens are input (cached ones included)
/// plus output. Windows are fixed: the minute and the day (UTC) on the clock.
/// </summary>
public sealed class ClientBudgetOptions
{
    /// <summary>Gets or sets how many requests the client may start per minute.</summary>
    public long? RequestsPerMinute { get; set; }

    /// <summary>Gets or sets how many tokens the client's answers may spend per minute.</summary>
    public long? TokensPerMinute { get; set; }

    /// <summary>Gets or sets how many tokens the client's answers may spend per day (UTC).</summary>
    public long? TokensPerDay { get; set; }

    internal bool IsSet => RequestsPerMinute is not null || TokensPerMinute is not null || TokensPerDay is not null;
}
