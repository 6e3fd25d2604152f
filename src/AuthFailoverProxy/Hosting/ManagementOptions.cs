namespace AuthFailoverProxy.Hosting;

/// <summary>The management listener: <c>/status</c>, <c>/healthz</c>, <c>/readyz</c>. Bound from <c>Management</c>.</summary>
public sealed class ManagementOptions
{
    /// <summary>
    /// Gets or sets the management listener's addresses, separated by <c>;</c>. It must not share a port with the agent
    /// listener. <value>The default value is <c>http://localhost:9090</c>.</value>
    /// </summary>
    public string Urls { get; set; } = "http://localhost:9090";

    /// <summary>
    /// Gets or sets a token that <c>/status</c>, <c>/metrics</c> and <c>GET /admin/events</c> then require, as
    /// <c>Authorization: Bearer &lt;token&gt;</c> (an admin token works too); <c>/healthz</c> and <c>/readyz</c> stay open
    /// for probes. Set it from <c>AFP_MANAGEMENT_TOKEN</c> or a secret. <value>The default value is none: open to
    /// whoever reaches the management port.</value>
    /// </summary>
    public string? Token { get; set; }
}
