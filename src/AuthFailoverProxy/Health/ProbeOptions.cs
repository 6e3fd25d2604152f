namespace AuthFailoverProxy.Health;

/// <summary>How keys are checked without a client's request. Bound from <c>Probes</c>.</summary>
public sealed class ProbeOptions
{
    /// <summary>Gets or sets a value indicating whether every key is checked when the proxy starts. <value>The default value is <see langword="true"/>.</value></summary>
    public bool AtStartup { get; set; } = true;

    /// <summary>Gets or sets how long one check may take before its key is judged "unknown" (kept in service). <value>The default value is 10 seconds.</value></summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Gets or sets the path of the cheapest authenticated call. <value>The default value is <c>/v1/models</c>.</value></summary>
    public string Path { get; set; } = "/v1/models";

    /// <summary>
    /// Gets or sets the model named in the check of an Anthropic key whose credit is in question: a free
    /// <c>POST /v1/messages/count_tokens</c>, which answers the credit-balance 400 when the account has none.
    /// <value>The default value is <c>claude-haiku-4-5</c>.</value>
    /// </summary>
    public string CreditCheckModel { get; set; } = "claude-haiku-4-5";

    /// <summary>Gets or sets the wait before a dead key's first re-check; later waits double, with jitter. <value>The default value is 30 seconds.</value></summary>
    public TimeSpan HealDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Gets or sets the longest wait between two re-checks of a dead key. <value>The default value is 30 minutes.</value></summary>
    public TimeSpan MaxHealDelay { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>
    /// Gets or sets how close together keys of different organizations or credential kinds must fail with the same
    /// authentication error for the proxy to call it an upstream incident rather than so many dead keys.
    /// <value>The default value is 60 seconds.</value>
    /// </summary>
    public TimeSpan IncidentWindow { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Gets or sets the wait between two re-checks of a key taken out by an upstream incident: it returns as soon as one
    /// passes. <value>The default value is 5 seconds.</value>
    /// </summary>
    public TimeSpan IncidentRecheckDelay { get; set; } = TimeSpan.FromSeconds(5);
}
