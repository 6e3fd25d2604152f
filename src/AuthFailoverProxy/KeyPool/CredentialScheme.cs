namespace AuthFailoverProxy.KeyPool;

/// <summary>How a key goes on the wire. Each provider refuses a credential sent the wrong way.</summary>
public enum CredentialScheme
{
    /// <summary><c>x-api-key: &lt;key&gt;</c>: Anthropic API keys (<c>sk-ant-api03-…</c>).</summary>
    XApiKey,

    /// <summary>
    /// <c>Authorization: Bearer &lt;token&gt;</c> plus <c>anthropic-beta: oauth-2025-04-20</c> added to the client's
    /// own betas: Anthropic OAuth access tokens (<c>sk-ant-oat01-…</c>). Sent as <c>x-api-key</c> they get 401.
    /// </summary>
    AnthropicOAuth,

    /// <summary><c>Authorization: Bearer &lt;key&gt;</c>: OpenAI and OpenAI-compatible APIs, many gateways.</summary>
    Bearer,

    /// <summary><c>api-key: &lt;key&gt;</c>: Azure OpenAI.</summary>
    AzureApiKey,
}

/// <summary>Names, defaults and the wire form of <see cref="CredentialScheme"/>.</summary>
internal static class CredentialSchemes
{
    /// <summary>The beta an Anthropic OAuth access token needs to be accepted by the Messages API.</summary>
    public const string OAuthBeta = "oauth-2025-04-20";

    /// <summary>The names a configuration may use, for error messages.</summary>
    public const string Names = "'x-api-key', 'oauth', 'bearer' or 'api-key'";

    /// <summary>Returns the configuration name of <paramref name="scheme"/>.</summary>
    public static string Name(CredentialScheme scheme) => scheme switch
    {
        CredentialScheme.XApiKey => "x-api-key",
        CredentialScheme.AnthropicOAuth => "oauth",
        CredentialScheme.Bearer => "bearer",
        CredentialScheme.AzureApiKey => "api-key",
        _ => throw new ArgumentOutOfRangeException(nameof(scheme), scheme, null),
    };

    public static bool TryParse(string? text, out CredentialScheme scheme)
    {
        switch (text?.Trim().ToLowerInvariant())
        {
            case "x-api-key" or "xapikey":
                scheme = CredentialScheme.XApiKey;
                return true;
            case "oauth" or "anthropic-oauth" or "anthropicoauth":
                scheme = CredentialScheme.AnthropicOAuth;
                return true;
            case "bearer":
                scheme = CredentialScheme.Bearer;
                return true;
            case "api-key" or "azure" or "azureapikey":
                scheme = CredentialScheme.AzureApiKey;
                return true;
            default:
                scheme = default;
                return false;
        }
    }

    /// <summary>The scheme a key goes in when nothing is configured: what its format and its pool's dialect call for.</summary>
    public static CredentialScheme Default(ProviderKind kind, KeyFormat format) => (kind, format) switch
    {
        (ProviderKind.Anthropic, KeyFormat.AnthropicOAuthToken) => CredentialScheme.AnthropicOAuth,
        (ProviderKind.Anthropic, _) => CredentialScheme.XApiKey,
        _ => CredentialScheme.Bearer,
    };

    /// <summary>
    /// Resolves a key's scheme: its own setting, else its pool's, else the default for its format. A setting that is not
    /// a scheme, or one the pool's dialect cannot carry, goes to <paramref name="errors"/> and the default is returned.
    /// </summary>
    public static CredentialScheme Resolve(string pool, ProviderKind kind, string secret, string? keyScheme, string? keySetting, string? poolScheme, List<string> errors)
    {
        var (text, setting) = keyScheme is not null ? (keyScheme, keySetting ?? $"Pools:{pool}:Keys:?:Scheme") : (poolScheme, $"Pools:{pool}:Scheme");
        var fallback = Default(kind, KeyFormats.Detect(secret));
        if (text is null)
        {
            return fallback;
        }

        if (!TryParse(text, out var scheme))
        {
            errors.Add($"{setting} '{text}' must be {Names}.");
            return fallback;
        }

        if (scheme == CredentialScheme.AnthropicOAuth && kind != ProviderKind.Anthropic)
        {
            errors.Add($"{setting} 'oauth' is the scheme of Anthropic OAuth tokens; pool '{pool}' speaks the OpenAI API (use 'bearer').");
            return fallback;
        }

        return scheme;
    }
}
