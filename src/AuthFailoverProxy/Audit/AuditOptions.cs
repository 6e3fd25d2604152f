namespace AuthFailoverProxy.Audit;

/// <summary>
/// The audit trail: every event the proxy raises, kept durably and bounded. Bound from <c>Audit</c>. Without Redis it
/// is a JSON-lines file in <see cref="Directory"/>; with Redis (<c>Redis:Configuration</c>) it is a capped stream
/// shared by the replicas.
/// </summary>
public sealed class AuditOptions
{
    /// <summary>Gets or sets a value indicating whether events are recorded. <value>The default value is <see langword="true"/>.</value></summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// Gets or sets the directory of <c>audit.jsonl</c> (and <c>audit.1.jsonl</c>, the previous file) without Redis. It
    /// is created if missing. <value>The default value is none: a <c>data</c> directory under the content root.</value>
    /// </summary>
    public string? Directory { get; set; }

    /// <summary>
    /// Gets or sets the most the two files take together, in bytes: the current file is rotated when it reaches half,
    /// dropping the oldest half of the trail. <value>The default value is 64 MiB.</value>
    /// </summary>
    public long MaxBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>
    /// Gets or sets about how many events the Redis stream keeps (<c>XADD … MAXLEN ~</c>); Redis trims whole blocks, so
    /// it may hold up to about a hundred more. <value>The default value is 100,000.</value>
    /// </summary>
    public int MaxEvents { get; set; } = 100_000;

    /// <summary>
    /// Gets or sets how many events are kept in memory while the trail cannot be written (Redis unreachable, disk
    /// full); beyond it the oldest are dropped, and that is logged. <value>The default value is 10,000.</value>
    /// </summary>
    public int MaxBuffered { get; set; } = 10_000;

    /// <summary>Gets or sets how often writing is retried while the trail cannot be written. <value>The default value is 2 seconds.</value></summary>
    public TimeSpan RetryInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Gets the smallest <see cref="MaxBytes"/> accepted: a few dozen events per file.</summary>
    internal const long MinBytes = 16 * 1024;

    /// <summary>Gets the directory the file trail is kept in: <see cref="Directory"/>, or <c>data</c> under the content root.</summary>
    internal string ResolveDirectory(string contentRoot) => Path.GetFullPath(string.IsNullOrWhiteSpace(Directory) ? Path.Combine(contentRoot, "data") : Directory, contentRoot);
}
