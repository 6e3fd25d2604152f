namespace AuthFailoverProxy.Demo.Provider;

// Telling the credential, and refusing one sent the wrong way, with the providers' own words (FACTS.md).
internal sealed partial class SimulatedProvider
{
    private const string OAuthBeta = "oauth-2025-04-20";

    /// <summary>How a request presented its credential.</summary>
    private enum CredentialPlace
    {
        None,
        XApiKey,
        Bearer,
        AzureApiKey,
    }

    /// <summary>The credential a request carries and where it carried it.</summary>
    private readonly record struct Credential(string? Key, CredentialPlace Place)
    {
        public bool IsOAuthToken => Key?.StartsWith("sk-ant-oat01-", StringComparison.Ordinal) == true;

        public bool IsAnthropic => Place == CredentialPlace.XApiKey || Key?.StartsWith("sk-ant-", StringComparison.Ordinal) == true;

        public static Credential From(IHeaderDictionary headers)
        {
            if (headers.TryGetValue("x-api-key", out var apiKey) && apiKey.ToString() is { Length: > 0 } key)
            {
                return new Credential(key, CredentialPlace.XApiKey);
            }

            if (headers.Authorization.ToString() is { Length: > 7 } authorization && authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)
                && authorization.AsSpan(7).Trim() is { IsEmpty: false } token)
            {
                return new Credential(token.ToString(), CredentialPlace.Bearer);
            }

            if (headers.TryGetValue("api-key", out var azure) && azure.ToString() is { Length: > 0 } azureKey)
            {
                return new Credential(azureKey, CredentialPlace.AzureApiKey);
            }

            return new Credential(null, CredentialPlace.None);
        }

        /// <summary>
        /// What the provider answers a credential it cannot take, whatever the key: none at all, an OAuth token as
        /// <c>x-api-key</c> (<c>invalid x-api-key</c>, what LiteLLM's users met), an OAuth token without the OAuth
        /// beta, an API key as a bearer token. Null when the credential is presented the right way.
        /// </summary>
        public ErrorReply? Refusal(Dialect dialect, IHeaderDictionary headers)
        {
            if (dialect == Dialect.OpenAI)
            {
                return Place is CredentialPlace.Bearer or CredentialPlace.AzureApiKey ? null : new ErrorReply(401, "invalid_request_error",
                    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.",
                    null);
            }

            return Place switch
            {
                CredentialPlace.XApiKey when IsOAuthToken => new ErrorReply(401, "authentication_error", "invalid x-api-key", null),
                CredentialPlace.XApiKey => null,
                CredentialPlace.Bearer when IsOAuthToken && !HasBeta(headers, OAuthBeta) => new ErrorReply(401, "authentication_error", "OAuth authentication is currently not supported.", null),
                CredentialPlace.Bearer when IsOAuthToken => null,
                CredentialPlace.Bearer => new ErrorReply(401, "authentication_error", "Invalid bearer token", null),
                _ => new ErrorReply(401, "authentication_error", "x-api-key header is required", null),
            };
        }
    }

    /// <summary>Returns whether the request's <c>anthropic-beta</c> values (one header or several, comma-separated) include <paramref name="beta"/>.</summary>
    private static bool HasBeta(IHeaderDictionary headers, string beta)
    {
        foreach (var value in headers["anthropic-beta"])
        {
            foreach (var part in (value ?? string.Empty).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                if (string.Equals(part, beta, StringComparison.Ordinal))
                {
                    return true;
                }
            }
        }

        return false;
    }
}
