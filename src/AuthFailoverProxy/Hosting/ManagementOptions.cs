namespace AuthFailoverProxy.Hosting;

/// <summary>The management listener: <c>/status</c>, <c>/healthz</c>, <c>/readyz</c>. Bound from <c>Management</c>.</summary>
public sealed class ManagementOptions
{
    /// <summary>
    /// Gets or sets the management listener's addresses, separated by <c>;</c>. It must not share a port with the agent
    /// listener. <value>The default value is <c>http://localhost:9090</c>.</value>
    /// </summary>
    public string Urls { get; set; } = "http://localhost:9090";
}
