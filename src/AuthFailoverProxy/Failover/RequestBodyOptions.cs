namespace AuthFailoverProxy.Failover;

/// <summary>How request bodies are kept so they can be replayed on another key. Bound from <c>RequestBody</c>.</summary>
public sealed class RequestBodyOptions
{
    /// <summary>Gets or sets the largest accepted body; larger ones get 413 before any upstream call. <value>The default value is 32 MiB, like Anthropic's.</value></summary>
    public long MaxBytes { get; set; } = 32L * 1024 * 1024;

    /// <summary>Gets or sets the size above which a body is spilled to a temporary file. <value>The default value is 1 MiB.</value></summary>
    public int MemoryThresholdBytes { get; set; } = 1024 * 1024;

    /// <summary>
    /// Gets or sets where spilled bodies go: each process makes a private folder (0700) under it.
    /// <value>The default value is the system temporary directory.</value>
    /// </summary>
    public string? TempDirectory { get; set; }

    /// <summary>
    /// Gets or sets how many bytes of spilled bodies may be on disk at once; a body that would pass it gets 503 with
    /// <c>retry-after</c>. Keep it below the disk or the pod's ephemeral-storage limit.
    /// <value>The default value is 512 MiB.</value>
    /// </summary>
    public long MaxSpillBytes { get; set; } = 512L * 1024 * 1024;
}
