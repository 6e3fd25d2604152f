namespace AuthFailoverProxy.State;

/// <summary>The shared store for several replicas. Bound from <c>Redis</c>; without a configuration the store is embedded.</summary>
public sealed class RedisOptions
{
    /// <summary>
    /// Gets or sets the StackExchange.Redis configuration string, e.g. <c>redis:6379,password=…</c>; <c>AFP_REDIS</c> sets it
    /// for a quick start. <value>The default value is none: key health stays in this process.</value>
    /// </summary>
    public string? Configuration { get; set; }

    /// <summary>
    /// Gets or sets a PEM file holding the CA that issued the Redis server's TLS certificate (with <c>ssl=true</c> in
    /// <see cref="Configuration"/>), for a private CA the system does not trust. <value>The default value is none: the system's trust store.</value>
    /// </summary>
    public string? CaCertificateFile { get; set; }

    /// <summary>Gets or sets the prefix of every Redis key and channel, so deployments can share a server. <value>The default value is <c>afp</c>.</value></summary>
    public string KeyPrefix { get; set; } = "afp";

    /// <summary>Gets or sets how often every key is re-read from Redis, a backstop for lost pub/sub messages. <value>The default value is 10 seconds.</value></summary>
    public TimeSpan ReconcileInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Gets or sets the connect and command timeout: Redis being slow must never slow requests. <value>The default value is 1 second.</value></summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Gets or sets how many transitions are kept while Redis is unreachable. <value>The default value is 10,000.</value></summary>
    public int MaxPending { get; set; } = 10_000;
}
