namespace AuthFailoverProxy.Proxying;

/// <summary>
/// How a pool's connections to its upstream are made, for upstreams that are not a public provider reached directly:
/// a private gateway, a TLS-inspecting corporate egress, an internal gateway that asks for a client certificate.
/// Bound from <c>Pools:{name}:Transport</c>. Files are read at start; a file that is missing or does not parse stops the
/// start, naming the setting.
/// </summary>
public sealed record UpstreamTransportOptions
{
    /// <summary>
    /// Gets or sets the path of a PEM file with one or more CA certificates to trust for this upstream, in addition to
    /// the system's. <value>The default value is <see langword="null"/>: the system's trust store only.</value>
    /// </summary>
    public string? CaBundle { get; set; }

    /// <summary>
    /// Gets or sets the path of a client certificate presented to the upstream (mTLS): a PEM file (with its key, or with
    /// <see cref="ClientCertificateKey"/>) or a PKCS#12 file (<c>.pfx</c>, <c>.p12</c>).
    /// <value>The default value is <see langword="null"/>: no client certificate.</value>
    /// </summary>
    public string? ClientCertificate { get; set; }

    /// <summary>Gets or sets the path of the PEM private key of <see cref="ClientCertificate"/>, when the certificate file has none.</summary>
    public string? ClientCertificateKey { get; set; }

    /// <summary>Gets or sets the password of a PKCS#12 client certificate or of an encrypted PEM key. Never logged.</summary>
    public string? ClientCertificatePassword { get; set; }

    /// <summary>
    /// Gets or sets the HTTP version used upstream: <c>auto</c> (HTTP/2 where the upstream offers it, else HTTP/1.1),
    /// <c>1.1</c> (HTTP/1.1 only, for gateways that misbehave on HTTP/2) or <c>2</c> (HTTP/2 only).
    /// <value>The default value is <c>auto</c>.</value>
    /// </summary>
    public string? HttpVersion { get; set; }

    /// <summary>
    /// Gets or sets an address (<c>host:port</c>) to connect to instead of the one the upstream's name resolves to
    /// (split-horizon DNS, a private endpoint, a fixed egress address). The <c>Host</c> header, the TLS server name and the
    /// certificate check stay the upstream's own. No egress proxy (<c>HTTPS_PROXY</c>) is used for such a pool.
    /// <value>The default value is <see langword="null"/>: the upstream's name is resolved as usual.</value>
    /// </summary>
    public string? ConnectTo { get; set; }
}
