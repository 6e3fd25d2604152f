namespace AuthFailoverProxy.Failover;

/// <summary>When to stop sending to an upstream that is down. Bound from <c>CircuitBreaker</c>; one breaker per pool.</summary>
public sealed class CircuitBreakerOptions
{
    /// <summary>Gets or sets a value indicating whether pools have a circuit breaker. <value>The default value is <see langword="true"/>.</value></summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Gets or sets the share of upstream calls that must fail (5xx, no connection, no answer) to open the circuit. <value>The default value is 0.5.</value></summary>
    public double FailureRatio { get; set; } = 0.5;

    /// <summary>Gets or sets how many calls the sampling window needs before the ratio counts. <value>The default value is 10.</value></summary>
    public int MinimumThroughput { get; set; } = 10;

    /// <summary>Gets or sets the window the failure ratio is measured over. <value>The default value is 30 seconds.</value></summary>
    public TimeSpan SamplingDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Gets or sets how long an open circuit refuses calls before one trial call is let through. <value>The default value is 30 seconds.</value></summary>
    public TimeSpan BreakDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Gets or sets how often an open circuit checks the upstream; an answer closes it. <value>The default value is 10 seconds.</value></summary>
    public TimeSpan ProbeInterval { get; set; } = TimeSpan.FromSeconds(10);
}
