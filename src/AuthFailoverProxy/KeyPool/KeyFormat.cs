namespace AuthFailoverProxy.KeyPool;

/// <summary>The recognisable shapes of provider credentials.</summary>
internal enum KeyFormat
{
    /// <summary>Nothing recognisable: a gateway token or a provider we do not know.</summary>
    Unknown,

    /// <summary><c>sk-ant-api03-…</c>: a standard Anthropic API key, the right kind for a proxy.</summary>
    AnthropicApiKey,

    /// <summary><c>sk-ant-oat01-…</c>: an Anthropic OAuth access token (the credential of the March outage).</summary>
    AnthropicOAuthToken,

    /// <summary><c>sk-ant-admin01-…</c>: an Anthropic Admin API key, which cannot call the Messages API.</summary>
    AnthropicAdminKey,

    /// <summary>Any other <c>sk-ant-…</c> credential.</summary>
    AnthropicOther,

    /// <summary><c>sk-proj-…</c>, <c>sk-svcacct-…</c>, <c>sk-admin-…</c> or a legacy <c>sk-…</c> OpenAI key.</summary>
    OpenAI,
}

/// <summary>Recognises credential formats and renders the only form of a secret that may ever be shown.</summary>
internal static class KeyFormats
{
    private const string Ellipsis = "…";

    // Longest prefixes first: "sk-ant-" must win over "sk-".
    private static readonly (string Prefix, KeyFormat Format)[] KnownPrefixes =
    [
        ("sk-ant-api03-", KeyFormat.AnthropicApiKey),
        ("sk-ant-oat01-", KeyFormat.AnthropicOAuthToken),
        ("sk-ant-admin01-", KeyFormat.AnthropicAdminKey),
        ("sk-ant-", KeyFormat.AnthropicOther),
        ("sk-proj-", KeyFormat.OpenAI),
        ("sk-svcacct-", KeyFormat.OpenAI),
        ("sk-admin-", KeyFormat.OpenAI),
        ("sk-", KeyFormat.OpenAI),
    ];

    public static KeyFormat Detect(string secret) => Match(secret).Format;

    /// <summary>
    /// A fingerprint such as <c>sk-ant-api03-…Xy7A</c>: the public format prefix and the last four characters.
    /// Short secrets show no tail at all, so that a fingerprint never gives away a meaningful part of a secret.
    /// </summary>
    public static string Fingerprint(string secret)
    {
        var trimmed = secret.Trim().Trim('"', '\'');
        var (prefix, _) = Match(trimmed);
        const int MinimumLengthForTail = 20;
        var tail = trimmed.Length - prefix.Length >= MinimumLengthForTail ? trimmed[^4..] : string.Empty;
        return string.Concat(prefix, Ellipsis, tail);
    }

    public static string Describe(KeyFormat format) => format switch
    {
        KeyFormat.AnthropicApiKey => "Anthropic API key",
        KeyFormat.AnthropicOAuthToken => "Anthropic OAuth access token",
        KeyFormat.AnthropicAdminKey => "Anthropic Admin API key",
        KeyFormat.AnthropicOther => "Anthropic credential",
        KeyFormat.OpenAI => "OpenAI key",
        _ => "credential",
    };

    private static (string Prefix, KeyFormat Format) Match(string secret)
    {
        var trimmed = secret.AsSpan().Trim().Trim("\"'");
        foreach (var (prefix, format) in KnownPrefixes)
        {
            if (trimmed.StartsWith(prefix, StringComparison.Ordinal))
            {
                return (prefix, format);
            }
        }

        return (string.Empty, KeyFormat.Unknown);
    }
}
