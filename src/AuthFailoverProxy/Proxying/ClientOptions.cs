namespace AuthFailoverProxy.Proxying;

/// <summary>Who may use the proxy. Bound from <c>Clients</c>.</summary>
public sealed class ClientOptions
{
    /// <summary>Gets the client tokens agents present as <c>x-api-key</c> or <c>Authorization: Bearer</c>.</summary>
    public List<ClientTokenOptions> Tokens { get; set; } = [];

    /// <summary>
    /// Gets or sets a value indicating whether requests without a valid client token are served. This makes the proxy an
    /// open relay to paid keys, so it is off by default and a warning is logged at every start while it is on.
    /// <value>The default value is <see langword="false"/>.</value>
    /// </summary>
    public bool AllowAnonymous { get; set; }
}

/// <summary>One client token and the name the audit trail knows it by.</summary>
public sealed class ClientTokenOptions
{
    /// <summary>Gets or sets the client's name, e.g. <c>claude-code</c>.</summary>
    public string? Name { get; set; }

    /// <summary>Gets or sets the token. Never logged or shown.</summary>
    public string? Token { get; set; }

    /// <summary>Gets or sets what this client may spend (requests and tokens per minute, tokens per day). <value>The default value is none: no budget.</value></summary>
    public Usage.ClientBudgetOptions? Budget { get; set; }
}
