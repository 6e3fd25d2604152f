using AuthFailoverProxy.Hosting;
using AuthFailoverProxy.Proxying;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Admin;

/// <summary>
/// An admin token that is also a client token hands every agent the power to add, disable and remove keys: the start
/// stops. So does a management token that is a client token (every agent could read the night's story).
/// </summary>
internal sealed class AdminOptionsValidator(IOptions<ClientOptions> clients, IOptions<ManagementOptions> management) : IValidateOptions<AdminOptions>
{
    /// <summary>Tokens shorter than this are guessable; the start says so (<see cref="TokenStrength"/>).</summary>
    internal const int ShortestSafeToken = 16;

    public ValidateOptionsResult Validate(string? name, AdminOptions options)
    {
        var clientTokens = new TokenSet(clients.Value.Tokens.Select((t, i) => (t.Name ?? $"token-{i + 1}", t.Token ?? string.Empty)));
        var errors = new List<string>();
        for (var i = 0; i < options.Tokens.Count; i++)
        {
            if (options.Tokens[i].Token is { Length: > 0 } token && clientTokens.Match(token) is { } client)
            {
                errors.Add($"Admin:Tokens:{i}:Token is also the client token '{client}' (Clients:Tokens): every agent could change keys. Give the admin a token of its own.");
            }
        }

        if (management.Value.Token is { Length: > 0 } reader && clientTokens.Match(reader) is { } same)
        {
            errors.Add($"Management:Token is also the client token '{same}' (Clients:Tokens): every agent could read /status and the events. Give it a token of its own.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

/// <summary>Names the configured tokens that are too short to be safe, for a warning at start (never the tokens).</summary>
internal static class TokenStrength
{
    public static IEnumerable<string> ShortTokens(ClientOptions clients, AdminOptions admin, ManagementOptions management)
    {
        for (var i = 0; i < clients.Tokens.Count; i++)
        {
            if (clients.Tokens[i].Token is { Length: > 0 and < AdminOptionsValidator.ShortestSafeToken })
            {
                yield return $"Clients:Tokens:{i} ('{clients.Tokens[i].Name ?? $"token-{i + 1}"}')";
            }
        }

        for (var i = 0; i < admin.Tokens.Count; i++)
        {
            if (admin.Tokens[i].Token is { Length: > 0 and < AdminOptionsValidator.ShortestSafeToken })
            {
                yield return $"Admin:Tokens:{i} ('{admin.Tokens[i].Name ?? $"admin-{i + 1}"}')";
            }
        }

        if (management.Token is { Length: > 0 and < AdminOptionsValidator.ShortestSafeToken })
        {
            yield return "Management:Token";
        }
    }
}
