namespace AuthFailoverProxy.Admin;

/// <summary>Who may manage keys through <c>/admin</c> on the management listener. Bound from <c>Admin</c>.</summary>
public sealed class AdminOptions
{
    /// <summary>
    /// Gets the admin tokens, sent as <c>Authorization: Bearer</c>; each change is recorded under the token's name.
    /// <c>AFP_ADMIN_TOKEN</c> sets one named <c>admin</c>. Without any, the admin API answers 403.
    /// </summary>
    public List<AdminTokenOptions> Tokens { get; set; } = [];
}

/// <summary>One admin token and the name changes are recorded under.</summary>
public sealed class AdminTokenOptions
{
    /// <summary>Gets or sets the operator's name, e.g. <c>ops-oncall</c>.</summary>
    public string? Name { get; set; }

    /// <summary>Gets or sets the token. Never logged or shown.</summary>
    public string? Token { get; set; }
}
