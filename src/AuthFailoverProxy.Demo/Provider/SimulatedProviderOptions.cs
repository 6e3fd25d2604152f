using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace AuthFailoverProxy.Demo.Provider;

/// <summary>How the simulated provider presents itself on the network.</summary>
internal sealed class SimulatedProviderOptions
{
    /// <summary>Gets or sets the name it answers to. <value>The default value is <c>api.anthropic.test</c>.</value></summary>
    public string Name { get; set; } = "api.anthropic.test";

    /// <summary>
    /// Gets or sets other sites the same front serves on the same address (a CDN front for many customers): a request
    /// that names one in <c>Host</c> reaches that site, with whatever credential it carries.
    /// <value>The default value is one such site, <c>billing.other-tenant.test</c>.</value>
    /// </summary>
    public IReadOnlyList<string> OtherSites { get; set; } = ["billing.other-tenant.test"];

    /// <summary>
    /// Gets or sets the path the API is mounted under, as on a gateway (<c>/llm</c>, <c>/api</c>): requests outside it
    /// get the gateway's 404. <value>The default value is empty: the API at the root, as the provider serves it.</value>
    /// </summary>
    public string BasePath { get; set; } = string.Empty;

    /// <summary>
    /// Gets or sets the organization's input-token limit per minute: a Messages request whose input alone is larger
    /// (about 4 bytes a token) gets the 429 that is the request's own fault, with the input-token budget still above 0.
    /// <value>The default value is 1,000,000 (bodies up to about 4 MB pass).</value>
    /// </summary>
    public int InputTokensPerMinute { get; set; } = 1_000_000;

    /// <summary>
    /// Gets or sets a value indicating whether it serves the model list (<c>GET /v1/models</c>). Some OpenAI-compatible
    /// servers and gateways do not: they answer 404 before looking at the credential, so a check there cannot tell
    /// anything about a key. Read on every request, so a test may change it while the provider runs.
    /// <value>The default value is <see langword="true"/>.</value>
    /// </summary>
    public bool ServesModels { get; set; } = true;

    /// <summary>
    /// Gets or sets a value indicating whether chat completions take <c>stream_options</c>. Some OpenAI-compatible servers
    /// do not, and refuse it as any unknown field ("Unrecognized request argument supplied: stream_options").
    /// <value>The default value is <see langword="true"/>, as the OpenAI API.</value>
    /// </summary>
    public bool TakesStreamOptions { get; set; } = true;

    /// <summary>Gets or sets a value indicating whether it speaks HTTPS. <value>The default value is <see langword="true"/>.</value></summary>
    public bool Https { get; set; } = true;

    /// <summary>Gets or sets the HTTP versions it offers (over TLS, chosen by ALPN). <value>The default value is HTTP/1.1 and HTTP/2, as the real API.</value></summary>
    public HttpProtocols Protocols { get; set; } = HttpProtocols.Http1AndHttp2;

    /// <summary>
    /// Gets or sets a value indicating whether a client certificate issued by its CA is required, as an internal
    /// gateway with mutual TLS does. <value>The default value is <see langword="false"/>.</value>
    /// </summary>
    public bool RequireClientCertificate { get; set; }
}
