using AuthFailoverProxy.KeyPool;

namespace AuthFailoverProxy.Tests.KeyPool;

public sealed class KeyFormatsTests
{
    [Theory]
    [InlineData("sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789Xy7A", "sk-ant-api03-…Xy7A", nameof(KeyFormat.AnthropicApiKey))]
    [InlineData("sk-ant-oat01-abcdefghijklmnopqrstuvwxyz0123456789Xy7A", "sk-ant-oat01-…Xy7A", nameof(KeyFormat.AnthropicOAuthToken))]
    [InlineData("sk-ant-admin01-abcdefghijklmnopqrstuvwxyz0123456789Q", "sk-ant-admin01-…789Q", nameof(KeyFormat.AnthropicAdminKey))]
    [InlineData("sk-proj-abcdefghijklmnopqrstuvwxyz0123456789", "sk-proj-…6789", nameof(KeyFormat.OpenAI))]
    [InlineData("gateway-token-abcdefghijklmnopqrstuvwxyz", "…wxyz", nameof(KeyFormat.Unknown))]
    // Short secrets show no tail at all.
    [InlineData("sk-ant-api03-short", "sk-ant-api03-…", nameof(KeyFormat.AnthropicApiKey))]
    [InlineData("tiny", "…", nameof(KeyFormat.Unknown))]
    public void Fingerprint_ShowsPrefixAndLastFourOnly(string secret, string fingerprint, string format)
    {
        Assert.Equal(fingerprint, KeyFormats.Fingerprint(secret));
        Assert.Equal(Enum.Parse<KeyFormat>(format), KeyFormats.Detect(secret));
    }
}
