namespace AuthFailoverProxy.KeyPool;

/// <summary>One thing about a key an operator should know before it fails.</summary>
/// <param name="Pool">The pool.</param>
/// <param name="Key">The key's name.</param>
/// <param name="Fingerprint">The key's fingerprint.</param>
/// <param name="Message">What is wrong and what to do, in plain words.</param>
internal sealed record KeyLintFinding(string Pool, string Key, string Fingerprint, string Message);

/// <summary>
/// Recognises risky credentials before they fail: the OAuth access token of the March outage, admin keys that cannot
/// call the Messages API, secrets with spaces or quotes around them, a provider's key in another provider's pool, and
/// the same secret under two names (two names for one key are no fallback). Never quotes a secret.
/// </summary>
internal static class KeyLint
{
    public static List<KeyLintFinding> Check(IEnumerable<Pool> pools)
    {
        var findings = new List<KeyLintFinding>();
        var owners = new Dictionary<string, (string Pool, string Key)>(StringComparer.Ordinal);
        foreach (var pool in pools)
        {
            foreach (var key in pool.Keys)
            {
                void Add(string message) => findings.Add(new KeyLintFinding(pool.Name, key.Name, key.Fingerprint, message));

                var secret = key.Secret;
                if (secret.Length != secret.Trim().Length)
                {
                    Add("the secret has spaces or line breaks around it; they are sent as part of the key and the provider will reject it. Remove them.");
                }

                var trimmed = secret.Trim();
                if (trimmed.Length >= 2 && trimmed[0] is '"' or '\'' && trimmed[^1] == trimmed[0])
                {
                    Add("the secret is wrapped in quotes, which are sent as part of the key and the provider will reject it. Remove the quotes.");
                }

                switch (key.Format)
                {
                    case KeyFormat.AnthropicOAuthToken when key.Scheme == CredentialScheme.AnthropicOAuth:
                        Add("this is an Anthropic OAuth access token (sk-ant-oat01-…), the credential that failed in the March outage. It is sent as Authorization: Bearer with the OAuth beta and works while the provider accepts it, but an organization can stop accepting OAuth for API calls at any time, and subscription tokens are meant for Claude Code. Use a standard API key (sk-ant-api03-…), or at least keep one in the pool as a backup.");
                        break;
                    case KeyFormat.AnthropicOAuthToken when pool.Kind == ProviderKind.Anthropic:
                        Add($"this is an Anthropic OAuth access token (sk-ant-oat01-…) set to go as {CredentialSchemes.Name(key.Scheme)}: the provider refuses an OAuth token sent any way but Authorization: Bearer with the OAuth beta (401). Remove its Scheme setting, or set it to 'oauth'.");
                        break;
                    case KeyFormat.AnthropicApiKey when key.Scheme == CredentialScheme.AnthropicOAuth:
                        Add("this is an Anthropic API key (sk-ant-api03-…) set to go as an OAuth token (Scheme 'oauth'): the provider refuses an API key sent that way (401). Remove its Scheme setting, or set it to 'x-api-key'.");
                        break;
                    case KeyFormat.AnthropicAdminKey:
                        Add("this is an Anthropic Admin API key (sk-ant-admin01-…), which manages an organization but cannot call the Messages API. Use a standard API key (sk-ant-api03-…).");
                        break;
                }

                if (pool.Kind == ProviderKind.OpenAI && key.Format is KeyFormat.AnthropicApiKey or KeyFormat.AnthropicOAuthToken or KeyFormat.AnthropicAdminKey or KeyFormat.AnthropicOther)
                {
                    Add($"this is an Anthropic credential, but pool '{pool.Name}' speaks the OpenAI API. Move it to an Anthropic pool.");
                }
                else if (pool.Kind == ProviderKind.Anthropic && key.Format == KeyFormat.OpenAI)
                {
                    Add($"this looks like an OpenAI key (sk-…), but pool '{pool.Name}' speaks the Anthropic API. Move it to an OpenAI pool.");
                }

                if (owners.TryGetValue(trimmed, out var first))
                {
                    Add($"it holds the same secret as key '{first.Key}' in pool '{first.Pool}': the two fail together, so neither is a fallback for the other. Replace one with a different key.");
                }
                else
                {
                    owners[trimmed] = (pool.Name, key.Name);
                }
            }
        }

        return findings;
    }
}
