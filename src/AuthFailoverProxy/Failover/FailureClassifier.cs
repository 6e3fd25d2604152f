using AuthFailoverProxy.KeyPool;

namespace AuthFailoverProxy.Failover;

/// <summary>What an upstream answer means for the key that got it.</summary>
internal enum FailureClass
{
    /// <summary>Not a failure: pass it to the client.</summary>
    None,

    /// <summary>The client's own mistake (404 model, 422, 413…): pass it through untouched, blame no key.</summary>
    ClientError,

    /// <summary>The key is unusable (revoked, forbidden, out of credit): out of service, replay on the next key.</summary>
    KeyDead,

    /// <summary>The key is rate limited: out of service until its reset time, replay on the next key.</summary>
    KeyCooling,

    /// <summary>The upstream itself is unwell: retry with backoff, blame no key.</summary>
    UpstreamUnwell,
}

/// <summary>
/// Classifies an upstream answer from its status and error body, per provider (see FACTS.md). Pure: the same inputs
/// always give the same class, so the whole table is unit-tested.
/// </summary>
internal static class FailureClassifier
{
    private static readonly string[] CreditPhrases = ["credit", "spend limit", "spending limit", "usage limit", "billing"];

    private static readonly HashSet<string> QuotaCodes = new(StringComparer.Ordinal)
    {
        "enforced_spend_limit_reached",
        "insufficient_quota",
        "billing_hard_limit_reached",
        "billing_not_active",
    };

    /// <summary>Returns whether an answer with this status can mean anything but success or a client error, so its body must be read.</summary>
    public static bool NeedsInspection(int status) => status is 400 or 401 or 402 or 403 or 408 or 429 || status >= 500;

    public static FailureClass Classify(ProviderKind kind, int status, in ProviderError error)
    {
        _ = kind; // Both dialects agree on the statuses that matter; the error body carries the differences.
        return status switch
        {
            < 400 => FailureClass.None,
            401 or 402 => FailureClass.KeyDead,
            // A 403 that is not the provider's own error (a firewall's HTML page, say) would blame every key in turn.
            403 => error.IsRecognised ? FailureClass.KeyDead : FailureClass.ClientError,
            400 => IsQuotaCode(error.Code) || MentionsCredit(error.Message) ? FailureClass.KeyDead : FailureClass.ClientError,
            429 => IsQuotaCode(error.Code) ? FailureClass.KeyDead : FailureClass.KeyCooling,
            408 or >= 500 => FailureClass.UpstreamUnwell,
            _ => FailureClass.ClientError,
        };
    }

    /// <summary>Returns whether a provider code says the account is out of quota, credit or spend allowance.</summary>
    public static bool IsQuotaCode(string? code) => code is not null && QuotaCodes.Contains(code);

    private static bool MentionsCredit(string? message)
    {
        if (string.IsNullOrEmpty(message))
        {
            return false;
        }

        foreach (var phrase in CreditPhrases)
        {
            if (message.Contains(phrase, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }
}
