using AuthFailoverProxy.KeyPool;

namespace AuthFailoverProxy.Failover;

/// <summary>What an upstream answer means for the key that got it.</summary>
internal enum FailureClass
{
    /// <summary>Not a failure: pass it to the client.</summary>
    None,

    /// <summary>The client's own mistake (a bad field, an unknown model, a request too large…): pass it through, blame no key.</summary>
    ClientError,

    /// <summary>
    /// The provider said something about the credential or its account (revoked, OAuth refused by the organization, no
    /// credit, spend cap): the key cannot serve anyone. Replay on the next key.
    /// </summary>
    KeyDead,

    /// <summary>The key is rate limited: out of service until its reset time, replay on the next key.</summary>
    KeyCooling,

    /// <summary>
    /// The key may not do what this request asks (a model, feature or beta its organization lacks: a 403 other than the
    /// OAuth refusal). It may be the key's organization, or the request: replay on the next key, and if that key
    /// answers the same, the request is at fault and the answer goes back to the agent.
    /// </summary>
    KeyRefusesRequest,

    /// <summary>
    /// The credential serves only another kind of client (a subscription token refused for anything but Claude Code):
    /// replay on the next key; the key is not dead.
    /// </summary>
    KeyRefusesClient,

    /// <summary>The upstream itself is unwell: retry with backoff, blame no key.</summary>
    UpstreamUnwell,
}

/// <summary>
/// Classifies an upstream answer from its status and error body, per provider (FACTS.md). A key is blamed only on
/// evidence about the key: the provider's own error JSON (a proxy's or firewall's HTML page is not the provider) and its
/// exact texts and codes, never a word found inside a message, since providers echo the client's field names and
/// header values back in their messages. Pure: the same inputs always give the same class, so the table is unit-tested.
/// </summary>
internal static class FailureClassifier
{
    /// <summary>The 400 that is about the account, not the request (FACTS: seen verbatim in many public reports).</summary>
    internal const string CreditBalanceTooLow = "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.";

    /// <summary>The outage's 403: the organization no longer accepts OAuth tokens for API calls.</summary>
    internal const string OAuthNotAllowed = "OAuth authentication is currently not allowed for this organization.";

    /// <summary>The 400 a subscription's OAuth token gets from anything but Claude Code.</summary>
    internal const string OnlyForClaudeCode = "This credential is only authorized for use with Claude Code and cannot be used for other API requests.";

    private static readonly HashSet<string> QuotaCodes = new(StringComparer.Ordinal)
    {
        "enforced_spend_limit_reached",
        "insufficient_quota",
        "billing_hard_limit_reached",
        "billing_not_active",
    };

    /// <summary>Returns whether an answer with this status can mean anything but success or a client error, so its body must be read.</summary>
    public static bool NeedsInspection(int status) => status is 400 or 401 or 402 or 403 or 408 or 429 || status >= 500;

    /// <param name="kind">The pool's dialect.</param>
    /// <param name="status">The answer's status.</param>
    /// <param name="error">The answer's body, parsed.</param>
    /// <param name="requestCausedRateLimit">Whether a 429's own headers show the request itself was too large for the limit.</param>
    public static FailureClass Classify(ProviderKind kind, int status, in ProviderError error, bool requestCausedRateLimit = false)
    {
        _ = kind; // Both dialects agree on the statuses that matter; the error body carries the differences.
        if (status < 400)
        {
            return FailureClass.None;
        }

        if (status is 408 or >= 500)
        {
            return FailureClass.UpstreamUnwell;
        }

        // Only the provider's own error JSON can blame a key; an HTML page from a proxy or firewall on the way says
        // nothing about it, and is the agent's to see.
        if (!error.IsProviderError)
        {
            return FailureClass.ClientError;
        }

        return status switch
        {
            // The organization's headers that could make a 401 the request's doing are the key's own, so a 401 is about the
            // credential whatever its text: revoked, expired OAuth token, OAuth not supported, the outage's text as a 401.
            401 or 402 => FailureClass.KeyDead,
            403 when IsText(error.Message, OAuthNotAllowed) => FailureClass.KeyDead,
            403 => FailureClass.KeyRefusesRequest,
            400 when IsText(error.Message, CreditBalanceTooLow) || IsQuotaCode(error.Code) => FailureClass.KeyDead,
            400 when IsText(error.Message, OnlyForClaudeCode) => FailureClass.KeyRefusesClient,
            429 when IsQuotaCode(error.Code) => FailureClass.KeyDead,
            429 when requestCausedRateLimit => FailureClass.ClientError,
            429 => FailureClass.KeyCooling,
            _ => FailureClass.ClientError,
        };
    }

    /// <summary>Returns whether a provider code says the account is out of quota, credit or spend allowance.</summary>
    public static bool IsQuotaCode(string? code) => code is not null && QuotaCodes.Contains(code);

    /// <summary>
    /// Returns whether <paramref name="message"/> is the provider's text, whole: a client can make a provider echo any
    /// word, but not make its message start and end as the provider's own statement does.
    /// </summary>
    private static bool IsText(string? message, string text) => message is not null && message.AsSpan().Trim().Equals(text, StringComparison.Ordinal);
}
