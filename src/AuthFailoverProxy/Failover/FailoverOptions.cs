namespace AuthFailoverProxy.Failover;

/// <summary>How hard the proxy tries before it gives up on a request. Bound from <c>Failover</c>.</summary>
public sealed class FailoverOptions
{
    /// <summary>
    /// Gets or sets the overall budget for walking the pool: no new attempt (next key or retry) starts after it.
    /// An attempt already under way is never cut short by it. <value>The default value is 60 seconds.</value>
    /// </summary>
    public TimeSpan Deadline { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Gets or sets how many times a request is retried on the same key when the upstream itself is unwell
    /// (529, 500, 502, 503, 504, connection failures). <value>The default value is 2.</value>
    /// </summary>
    public int UpstreamRetries { get; set; } = 2;

    /// <summary>Gets or sets the first retry delay; later ones grow exponentially with jitter. <value>The default value is 500 ms.</value></summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Gets or sets the longest single retry delay, including a <c>retry-after</c> the upstream asks for. <value>The default value is 10 seconds.</value></summary>
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Gets or sets how long a rate-limited key rests when the upstream names no reset time. <value>The default value is 30 seconds.</value></summary>
    public TimeSpan DefaultCooldown { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Gets or sets the longest cooldown accepted from upstream headers. <value>The default value is 1 hour.</value></summary>
    public TimeSpan MaxCooldown { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Gets or sets the TCP/TLS connect timeout to the upstream. <value>The default value is 10 seconds.</value></summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Gets or sets how long an upstream call may go without a byte in either direction, including the wait for response
    /// headers. LLM calls are slow: a non-streaming response can take 10 minutes before its first byte.
    /// <value>The default value is 15 minutes.</value>
    /// </summary>
    public TimeSpan ActivityTimeout { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>
    /// Gets or sets how long a request that asks for a stream (<c>"stream": true</c>) may wait for the upstream's response
    /// headers. A stream's headers come at once, so one that gets none is hung: the call is given up, no key is blamed, and
    /// the next key is tried within <see cref="Deadline"/>. Once the headers are in, <see cref="ActivityTimeout"/> governs.
    /// <value>The default value is 20 seconds.</value>
    /// </summary>
    public TimeSpan StreamHeadersTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// Gets or sets how long the opening of a stream (its status, headers and lifecycle events) is held waiting for its
    /// first content event. Until content arrives the agent has nothing it acts on, so an error event in that time
    /// (<c>overloaded_error</c>, a rate limit, a rejected key) is judged like the same error as a status and the request
    /// replayed. Content passes on the moment it arrives; past this time the stream passes through as it is.
    /// <c>00:00:00</c> turns the hold off. <value>The default value is 5 seconds.</value>
    /// </summary>
    public TimeSpan StreamHoldTime { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Gets or sets how long a key stays out for one model after a 403 for it that another key did not give (its
    /// organization lacks the model), and out for other clients than Claude Code after a subscription token is refused to
    /// them. The key serves everything else meanwhile; after it, the next such request tries the key again.
    /// <value>The default value is 15 minutes.</value>
    /// </summary>
    public TimeSpan ScopedRefusalTime { get; set; } = TimeSpan.FromMinutes(15);
}
