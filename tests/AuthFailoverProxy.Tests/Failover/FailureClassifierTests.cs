using System.Text;
using AuthFailoverProxy.Failover;
using AuthFailoverProxy.KeyPool;

namespace AuthFailoverProxy.Tests.Failover;

public sealed class FailureClassifierTests
{
    [Theory]
    // Anthropic (FACTS.md table)
    [InlineData("anthropic", 200, "", nameof(FailureClass.None))]
    [InlineData("anthropic", 401, """{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}""", nameof(FailureClass.KeyDead))]
    [InlineData("anthropic", 401, """{"type":"error","error":{"type":"authentication_error","message":"OAuth token has expired. Please obtain a new token or refresh your existing token."}}""", nameof(FailureClass.KeyDead))]
    [InlineData("anthropic", 402, """{"type":"error","error":{"type":"billing_error","message":"billing"}}""", nameof(FailureClass.KeyDead))]
    [InlineData("anthropic", 403, """{"type":"error","error":{"type":"permission_error","message":"OAuth authentication is currently not allowed for this organization."}}""", nameof(FailureClass.KeyDead))]
    [InlineData("anthropic", 403, """{"type":"error","error":{"type":"permission_error","message":"Your organization does not have access to the model `claude-opus-4-1`."}}""", nameof(FailureClass.KeyRefusesRequest))]
    [InlineData("anthropic", 400, """{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}}""", nameof(FailureClass.KeyDead))]
    [InlineData("anthropic", 400, """{"type":"error","error":{"type":"invalid_request_error","message":"This credential is only authorized for use with Claude Code and cannot be used for other API requests."}}""", nameof(FailureClass.KeyRefusesClient))]
    // Echoes of the client's own words prove nothing about the key.
    [InlineData("anthropic", 400, """{"type":"error","error":{"type":"invalid_request_error","message":"credit_note: Extra inputs are not permitted"}}""", nameof(FailureClass.ClientError))]
    [InlineData("anthropic", 400, """{"type":"error","error":{"type":"invalid_request_error","message":"Unexpected value(s) `billing-2026-01-01` for the `anthropic-beta` header. Please consult our documentation at docs.claude.com or try again without the header."}}""", nameof(FailureClass.ClientError))]
    [InlineData("anthropic", 400, """{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.: Extra inputs are not permitted"}}""", nameof(FailureClass.ClientError))]
    [InlineData("anthropic", 400, """{"type":"error","error":{"type":"invalid_request_error","message":"You have reached your specified API usage limits."}}""", nameof(FailureClass.ClientError))]
    [InlineData("anthropic", 400, """{"type":"error","error":{"type":"invalid_request_error","message":"messages: field required"}}""", nameof(FailureClass.ClientError))]
    [InlineData("anthropic", 404, """{"type":"error","error":{"type":"not_found_error","message":"model: claude-x"}}""", nameof(FailureClass.ClientError))]
    [InlineData("anthropic", 409, """{"type":"error","error":{"type":"conflict_error","message":"x"}}""", nameof(FailureClass.ClientError))]
    [InlineData("anthropic", 413, """{"type":"error","error":{"type":"request_too_large","message":"x"}}""", nameof(FailureClass.ClientError))]
    [InlineData("anthropic", 429, """{"type":"error","error":{"type":"rate_limit_error","message":"Number of requests has exceeded your per-minute rate limit"}}""", nameof(FailureClass.KeyCooling))]
    [InlineData("anthropic", 429, """{"type":"error","error":{"type":"rate_limit_error","message":"spend","details":{"error_code":"enforced_spend_limit_reached"}}}""", nameof(FailureClass.KeyDead))]
    [InlineData("anthropic", 500, """{"type":"error","error":{"type":"api_error","message":"x"}}""", nameof(FailureClass.UpstreamUnwell))]
    [InlineData("anthropic", 504, "", nameof(FailureClass.UpstreamUnwell))]
    [InlineData("anthropic", 529, """{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}""", nameof(FailureClass.UpstreamUnwell))]
    [InlineData("anthropic", 502, "<html>bad gateway</html>", nameof(FailureClass.UpstreamUnwell))]
    // A page from a firewall or proxy on the way is not the provider speaking about the key.
    [InlineData("anthropic", 403, "<html>Access denied</html>", nameof(FailureClass.ClientError))]
    [InlineData("anthropic", 401, "<html><body>401 Authorization Required</body></html>", nameof(FailureClass.ClientError))]
    [InlineData("anthropic", 401, """{"error":"Unauthorized"}""", nameof(FailureClass.ClientError))]
    // OpenAI-compatible
    [InlineData("openai", 401, """{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}""", nameof(FailureClass.KeyDead))]
    [InlineData("openai", 429, """{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}""", nameof(FailureClass.KeyDead))]
    [InlineData("openai", 429, """{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}""", nameof(FailureClass.KeyCooling))]
    [InlineData("openai", 400, """{"error":{"message":"Unrecognized request argument supplied: billing_hard_limit","type":"invalid_request_error","param":null,"code":null}}""", nameof(FailureClass.ClientError))]
    [InlineData("openai", 400, """{"error":{"message":"Invalid 'messages'","type":"invalid_request_error","param":"messages","code":null}}""", nameof(FailureClass.ClientError))]
    [InlineData("openai", 503, "", nameof(FailureClass.UpstreamUnwell))]
    [InlineData("openai", 422, """{"error":{"message":"x","type":"invalid_request_error"}}""", nameof(FailureClass.ClientError))]
    public void Classify_FollowsTheProviderTable(string kind, int status, string body, string expected)
    {
        var error = ProviderError.Parse(Encoding.UTF8.GetBytes(body));
        var providerKind = kind == "openai" ? ProviderKind.OpenAI : ProviderKind.Anthropic;

        Assert.Equal(Enum.Parse<FailureClass>(expected), FailureClassifier.Classify(providerKind, status, error));
    }

    [Fact]
    public void RequestTooLargeForTheLimit_Is429_ButTheRequestsFault()
    {
        var error = ProviderError.Parse("""{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization of 30,000 input tokens per minute."}}"""u8);

        Assert.Equal(FailureClass.ClientError, FailureClassifier.Classify(ProviderKind.Anthropic, 429, error, requestCausedRateLimit: true));
        Assert.Equal(FailureClass.KeyCooling, FailureClassifier.Classify(ProviderKind.Anthropic, 429, error, requestCausedRateLimit: false));
    }

    [Fact]
    public void ProviderError_ReadsBothDialects()
    {
        var anthropic = ProviderError.Parse("""{"type":"error","error":{"type":"rate_limit_error","message":"m","details":{"error_code":"enforced_spend_limit_reached"}},"request_id":"req_1"}"""u8);
        var openai = ProviderError.Parse("""{"error":{"message":"m2","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"""u8);

        Assert.Equal(new ProviderError("rate_limit_error", "enforced_spend_limit_reached", "m", "req_1") { IsProviderError = true }, anthropic);
        Assert.Equal(new ProviderError("insufficient_quota", "insufficient_quota", "m2", null) { IsProviderError = true }, openai);
    }

    [Theory]
    [InlineData("")]
    [InlineData("not json")]
    [InlineData("[1,2,3]")]
    [InlineData("""{"error":""")]
    [InlineData("""{"error":{"type":{"nested":true},"message":42}}""")]
    public void ProviderError_NeverThrowsOnGarbage(string body)
    {
        var error = ProviderError.Parse(Encoding.UTF8.GetBytes(body));
        Assert.Null(error.Type);
    }

    [Fact]
    public void SecretMasker_MasksKeysTheProviderEchoesBack()
    {
        const string Secret = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789wxyz";
        var masked = SecretMasker.Mask($"Incorrect API key provided: {Secret}. You can find your API key at …", Secret);

        Assert.DoesNotContain(Secret, masked, StringComparison.Ordinal);
        Assert.Contains("sk-proj-…wxyz", masked, StringComparison.Ordinal);
        Assert.Equal("sk-ant-api03-…9abc", SecretMasker.Mask("sk-ant-api03-0123456789012345678901234567899abc"));
    }
}
