namespace AuthFailoverProxy.Failover;

/// <summary>How request bodies are kept so they can be replayed on another key. Bound from <c>RequestBody</c>.</summary>
public sealed class RequestBodyOptions
{
    /// <summary>Gets or sets the largest accepted body; larger ones get 413 before any upstream call. <value>The default value is 32 MiB, like Anthropic's.</value></summary>
    public long MaxBytes { get; set; } = 32L * 1024 * 1024;

    /// <summary>Gets or sets the size above which a body is spilled to a temporary file. <value>The default value is 1 MiB.</value></summary>
    public int MemoryThresholdBytes { get; set; } = 1024 * 1024;

    /// <summary>Gets or sets where spilled bodies go. <value>The default value is the system temporary directory.</value></summary>
    public string? TempDirectory { get; set; }
}
