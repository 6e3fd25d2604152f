namespace AuthFailoverProxy.KeyPool;

/// <summary>How a pool picks among keys of equal priority.</summary>
public enum KeySelection
{
    /// <summary>Always the first usable key in priority order (keeps the provider's prompt cache warm).</summary>
    Priority,

    /// <summary>Rotate among usable keys that share the best priority.</summary>
    RoundRobin,
}

/// <summary>One upstream and the ordered keys that may call it. Bound from <c>Pools:{name}</c>.</summary>
public sealed class KeyPoolOptions
{
    /// <summary>Gets or sets the API dialect. <value>The default value is <see cref="ProviderKind.Anthropic"/>.</value></summary>
    public ProviderKind Kind { get; set; } = ProviderKind.Anthropic;

    /// <summary>
    /// Gets or sets the upstream base URL, e.g. <c>https://api.anthropic.com</c>. The client's path after the pool prefix
    /// is appended to it. <value>The default value is <c>https://api.anthropic.com</c> for Anthropic and
    /// <c>https://api.openai.com</c> for OpenAI.</value>
    /// </summary>
    public string? Upstream { get; set; }

    /// <summary>
    /// Gets or sets the path of the cheapest authenticated call on this pool's upstream, for its key checks (a gateway
    /// may serve no <c>/v1/models</c>). <value>The default value is <c>Probes:Path</c> (<c>/v1/models</c>).</value>
    /// </summary>
    public string? ProbePath { get; set; }

    /// <summary>Gets or sets the path prefix agents use for this pool. <value>The default value is <c>/{pool name}</c>.</value></summary>
    public string? PathPrefix { get; set; }

    /// <summary>Gets or sets a value indicating whether this pool also serves every path no other prefix claims (<c>/</c>).</summary>
    public bool Default { get; set; }

    /// <summary>Gets or sets how keys of equal priority are chosen. <value>The default value is <see cref="KeySelection.Priority"/>.</value></summary>
    public KeySelection Selection { get; set; } = KeySelection.Priority;

    /// <summary>
    /// Gets or sets how the pool's keys go on the wire, for keys that do not say: <c>x-api-key</c>, <c>oauth</c>
    /// (Bearer plus the OAuth beta), <c>bearer</c> or <c>api-key</c> (Azure OpenAI).
    /// <value>The default value is <see langword="null"/>: each key's format decides (see <see cref="KeyOptions.Scheme"/>).</value>
    /// </summary>
    public string? Scheme { get; set; }

    /// <summary>Gets the keys, in priority order unless each names its <see cref="KeyOptions.Priority"/>.</summary>
    public List<KeyOptions> Keys { get; set; } = [];

    /// <summary>
    /// Gets or sets a directory holding one file per key, as a Kubernetes Secret is mounted: the file name is the key's
    /// name and its content the secret. A key listed in <see cref="Keys"/> with the same name and no secret takes its
    /// priority from there; other files follow the listed keys in name order.
    /// </summary>
    public string? KeysDirectory { get; set; }

    /// <summary>
    /// Gets or sets the pool that serves this pool's requests when none of its own keys can (safe mode): a second
    /// organization, another region, a compatible gateway. It must speak the same API. Responses served this way carry
    /// <c>x-afp-safe-mode</c>; the pool leaves safe mode by itself as soon as one of its keys heals.
    /// </summary>
    public string? Fallback { get; set; }

    /// <summary>Gets or sets the model to ask the fallback pool for instead of the request's own (rewrites the body's top-level <c>model</c>).</summary>
    public string? FallbackModel { get; set; }

    /// <summary>
    /// Gets or sets a value indicating whether an OpenAI pool asks chat-completion streams for their token usage when the
    /// agent did not: the proxy adds <c>"stream_options":{"include_usage":true}</c> to the body it sends, counts the extra
    /// usage chunk the upstream then sends, and takes that chunk out of the agent's stream. Turn it off for an
    /// OpenAI-compatible server that refuses <c>stream_options</c>; such streams are then not counted. Anthropic pools
    /// ignore it (their streams always carry usage).
    /// <value>The default value is <see langword="true"/>.</value>
    /// </summary>
    public bool AskForStreamUsage { get; set; } = true;

    /// <summary>Gets or sets how connections to the upstream are made: extra CA certificates, a client certificate, the HTTP version, the address.</summary>
    public Proxying.UpstreamTransportOptions Transport { get; set; } = new();
}

/// <summary>One credential in a pool.</summary>
public sealed class KeyOptions
{
    /// <summary>Gets or sets the key's name: what logs, headers and <c>/status</c> call it.</summary>
    public string? Name { get; set; }

    /// <summary>Gets or sets the secret. Never logged or shown; only its fingerprint is.</summary>
    public string? Secret { get; set; }

    /// <summary>
    /// Gets or sets the priority: lower is tried first. <value>The default value is the key's position in the list.</value>
    /// </summary>
    public int? Priority { get; set; }

    /// <summary>
    /// Gets or sets how the key goes on the wire: <c>x-api-key</c>, <c>oauth</c> (<c>Authorization: Bearer</c> plus
    /// <c>anthropic-beta: oauth-2025-04-20</c>), <c>bearer</c> or <c>api-key</c> (Azure OpenAI).
    /// <value>The default value is <see langword="null"/>: the pool's <see cref="KeyPoolOptions.Scheme"/>, else what the
    /// key's format calls for (<c>oauth</c> for <c>sk-ant-oat01-…</c> in an Anthropic pool, <c>x-api-key</c> for other
    /// keys of an Anthropic pool, <c>bearer</c> in an OpenAI pool).</value>
    /// </summary>
    public string? Scheme { get; set; }

    /// <summary>
    /// Gets or sets the OpenAI organization this key spends, sent as <c>OpenAI-Organization</c> with every request it
    /// carries. An agent's own <c>OpenAI-Organization</c> never goes upstream. <value>The default value is <see langword="null"/>:
    /// the key's default organization.</value>
    /// </summary>
    public string? OpenAIOrganization { get; set; }

    /// <summary>Gets or sets the OpenAI project this key spends, sent as <c>OpenAI-Project</c>. <value>The default value is <see langword="null"/>.</value></summary>
    public string? OpenAIProject { get; set; }
}
