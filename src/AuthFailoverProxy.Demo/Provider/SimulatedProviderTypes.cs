namespace AuthFailoverProxy.Demo.Provider;

/// <summary>How the simulated upstream treats one key. Statuses and bodies follow FACTS.md.</summary>
internal enum KeyFault
{
    /// <summary>The key works.</summary>
    None,

    /// <summary>401 <c>authentication_error</c> "invalid x-api-key" (OpenAI: 401 <c>invalid_api_key</c>).</summary>
    Revoked,

    /// <summary>403 <c>permission_error</c>: OAuth tokens refused by organization policy (the outage).</summary>
    OAuthRejected,

    /// <summary>402 <c>billing_error</c>.</summary>
    Billing,

    /// <summary>400 <c>invalid_request_error</c> "Your credit balance is too low…".</summary>
    NoCredit,

    /// <summary>429 with <c>error.details.error_code = enforced_spend_limit_reached</c> and no <c>retry-after</c>.</summary>
    SpendLimit,

    /// <summary>
    /// OpenAI's 429 <c>insufficient_quota</c>. Anthropic has no such answer; in its dialect this is a 429
    /// <c>rate_limit_error</c> carrying <c>details.error_code = insufficient_quota</c>, so the status and meaning stay the same.
    /// </summary>
    InsufficientQuota,

    /// <summary>429 rate limited, with <c>retry-after</c> and the provider's reset headers.</summary>
    RateLimited,

    /// <summary>
    /// A subscription's OAuth token: accepted from Claude Code (the <c>claude-code-20250219</c> beta), refused for any
    /// other client with 400 "This credential is only authorized for use with Claude Code…".
    /// </summary>
    ClaudeCodeOnly,
}

/// <summary>How the organization treats one model, for every key (access and limits are the organization's, per model class).</summary>
internal enum ModelFault
{
    /// <summary>The model is served.</summary>
    None,

    /// <summary>The organization may not use it: 403 <c>permission_error</c> (OpenAI: 404 <c>model_not_found</c>).</summary>
    Forbidden,

    /// <summary>The organization's limit for this model is spent: 429 with <c>retry-after</c>; other models are unaffected.</summary>
    RateLimited,
}

/// <summary>A failure of the upstream itself, not of any key.</summary>
internal enum UpstreamFault
{
    /// <summary>529 <c>overloaded_error</c>.</summary>
    Overloaded,

    /// <summary>500 <c>api_error</c>.</summary>
    InternalError,

    /// <summary>502.</summary>
    BadGateway,

    /// <summary>503.</summary>
    Unavailable,

    /// <summary>504 <c>timeout_error</c>.</summary>
    GatewayTimeout,

    /// <summary>The connection is aborted before any header is sent.</summary>
    ResetConnection,

    /// <summary>No answer at all until the caller gives up; the request then counts in <see cref="SimulatedProvider.AbortedRequests"/>.</summary>
    Hang,

    /// <summary>
    /// What the provider really sends under load: a 200 stream whose first event is an <c>overloaded_error</c>, before any
    /// content (OpenAI chat: an <c>error</c> chunk). A request that does not stream gets 529.
    /// </summary>
    OverloadedInStream,
}

/// <summary>One request as the simulated upstream received it.</summary>
/// <param name="Method">The HTTP method.</param>
/// <param name="PathAndQuery">The request target exactly as sent, e.g. <c>/v1/messages?beta=true</c>.</param>
/// <param name="Headers">The headers by lower-case name (looked up case-insensitively); repeated values joined with ", ".</param>
/// <param name="Body">The exact bytes received; empty when <see cref="SimulatedProvider.RecordBodies"/> is off.</param>
/// <param name="Key">The credential used: the <c>x-api-key</c> value, else the Bearer token.</param>
internal sealed record RecordedRequest(
    string Method,
    string PathAndQuery,
    IReadOnlyDictionary<string, string> Headers,
    byte[] Body,
    string? Key)
{
    /// <summary>Gets the <c>Host</c> it was sent for (<c>:authority</c> over HTTP/2), port included.</summary>
    public string Host { get; init; } = string.Empty;

    /// <summary>Gets the TLS server name (SNI) of its connection; null over plain HTTP.</summary>
    public string? ServerName { get; init; }

    /// <summary>Gets the HTTP version it came in, such as <c>HTTP/2</c>.</summary>
    public string Protocol { get; init; } = string.Empty;

    /// <summary>Gets when it arrived, by the provider's clock (a test's fake clock, when it drives one).</summary>
    public DateTimeOffset At { get; init; }
}
