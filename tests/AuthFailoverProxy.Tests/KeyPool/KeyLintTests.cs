using AuthFailoverProxy.KeyPool;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Forwarder;

namespace AuthFailoverProxy.Tests.KeyPool;

public sealed class KeyLintTests
{
    private const string ApiKey = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789ABCD";

    [Theory]
    [InlineData("anthropic", "sk-ant-oat01-abcdefghijklmnopqrstuvwxyz0123456789ABCD", "OAuth access token (sk-ant-oat01-…)", "keep one in the pool as a backup")]
    [InlineData("anthropic", "sk-ant-admin01-abcdefghijklmnopqrstuvwxyz0123456789AB", "Admin API key", "cannot call the Messages API")]
    [InlineData("anthropic", " " + ApiKey + "\n", "spaces or line breaks around it", "Remove them")]
    [InlineData("anthropic", "\"" + ApiKey + "\"", "wrapped in quotes", "Remove the quotes")]
    [InlineData("openai", ApiKey, "Anthropic credential", "speaks the OpenAI API")]
    [InlineData("anthropic", "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789", "looks like an OpenAI key", "speaks the Anthropic API")]
    public void RiskyKey_IsNamedInPlainWords_WithoutQuotingTheSecret(string kind, string secret, string what, string remedy)
    {
        var findings = KeyLint.Check([Pool(kind, ("primary", secret))]);

        var finding = Assert.Single(findings);
        Assert.Equal("primary", finding.Key);
        Assert.Contains(what, finding.Message, StringComparison.Ordinal);
        Assert.Contains(remedy, finding.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(secret.Trim().Trim('"')[..^4], finding.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("sk-ant-oat01-abcdefghijklmnopqrstuvwxyz0123456789ABCD", CredentialScheme.XApiKey, "set to go as x-api-key")]
    [InlineData("sk-ant-oat01-abcdefghijklmnopqrstuvwxyz0123456789ABCD", CredentialScheme.Bearer, "set to go as bearer")]
    [InlineData(ApiKey, CredentialScheme.AnthropicOAuth, "set to go as an OAuth token")]
    public void KeyInTheWrongScheme_IsNamed_BeforeTheProviderRefusesIt(string secret, CredentialScheme scheme, string what)
    {
        var findings = KeyLint.Check([Pool("anthropic", scheme, ("primary", secret))]);

        var finding = Assert.Single(findings);
        Assert.Contains(what, finding.Message, StringComparison.Ordinal);
        Assert.Contains("Remove its Scheme setting", finding.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SameSecretUnderTwoNames_IsNoFallback()
    {
        var findings = KeyLint.Check([Pool("anthropic", ("primary", ApiKey), ("backup", ApiKey))]);

        var finding = Assert.Single(findings);
        Assert.Equal("backup", finding.Key);
        Assert.Contains("same secret as key 'primary'", finding.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void StandardKeys_AreFine()
        => Assert.Empty(KeyLint.Check([Pool("anthropic", ("a", ApiKey), ("b", ApiKey.Replace("ABCD", "WXYZ", StringComparison.Ordinal)))]));

    private static Pool Pool(string kind, params (string Name, string Secret)[] keys) => Pool(kind, null, keys);

    private static Pool Pool(string kind, CredentialScheme? scheme, params (string Name, string Secret)[] keys)
    {
        var providerKind = kind == "openai" ? ProviderKind.OpenAI : ProviderKind.Anthropic;
        return new Pool(
            kind,
            providerKind,
            new Uri("http://127.0.0.1:1"),
            new PathString("/" + kind),
            isDefault: true,
            KeySelection.Priority,
            [.. keys.Select((k, i) => new PoolKey(kind, k.Name, k.Secret, i, "test", scheme ?? CredentialSchemes.Default(providerKind, KeyFormats.Detect(k.Secret)), DateTimeOffset.UnixEpoch))],
            new HttpMessageInvoker(new SocketsHttpHandler()),
            new ForwarderRequestConfig());
    }
}
