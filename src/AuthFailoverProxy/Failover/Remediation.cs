using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;

namespace AuthFailoverProxy.Failover;

/// <summary>What a human should do about a key the upstream rejected, in plain words.</summary>
internal static class Remediation
{
    public static string ForDeadKey(PoolKey key, KeyFailure failure)
    {
        var console = key.Format is KeyFormat.OpenAI ? "the provider's dashboard" : "the Anthropic Console";
        return failure switch
        {
            { Status: 401 or 403 } when key.Format == KeyFormat.AnthropicOAuthToken =>
                "this key is an OAuth access token (sk-ant-oat01-…) and the organization rejects OAuth for API calls: " +
                "create a standard API key (sk-ant-api03-…) in the Anthropic Console and add it to the pool.",
            { Status: 401 or 403 } when key.Format == KeyFormat.AnthropicAdminKey =>
                "this is an Admin API key (sk-ant-admin01-…), which cannot call the Messages API: use a standard API key (sk-ant-api03-…).",
            { Status: 401 } => $"the key is malformed, revoked or expired: create a new key in {console} and replace it.",
            { Status: 403 } => $"the key is not allowed to make this call: check its organization, workspace and permissions in {console}, or replace it.",
            { ErrorCode: "enforced_spend_limit_reached" } => $"the organization reached its monthly spend limit: raise the limit in {console} or wait for the next month.",
            { ErrorCode: "insufficient_quota" or "billing_hard_limit_reached" or "billing_not_active" } =>
                $"the account has no quota left: add credit or raise the limit in {console}.",
            { Status: 402 } or { Status: 400 } or { Status: 429 } => $"the account is out of credit or over its spend limit: add credit or raise the limit in {console}.",
            _ => $"check the key in {console} and replace it if it no longer works.",
        };
    }
}
