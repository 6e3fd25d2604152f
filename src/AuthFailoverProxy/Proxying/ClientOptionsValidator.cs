using AuthFailoverProxy.KeyPool;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Proxying;

/// <summary>Refuses to start an open relay by accident, and names the client token entry that is wrong.</summary>
internal sealed class ClientOptionsValidator(IOptions<Usage.UsageOptions> usage) : IValidateOptions<ClientOptions>
{
    public ValidateOptionsResult Validate(string? name, ClientOptions options)
    {
        var errors = new List<string>();
        if (options.Tokens.Count == 0 && !options.AllowAnonymous)
        {
            errors.Add("Clients:Tokens is empty: agents must present a client token. Set AFP_CLIENT_TOKENS (comma-separated) or Clients:Tokens:0:Name and :Token; " +
                       "only to run an open relay on a trusted network, set Clients:AllowAnonymous=true.");
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < options.Tokens.Count; i++)
        {
            var token = options.Tokens[i];
            var path = $"Clients:Tokens:{i}";
            if (string.IsNullOrEmpty(token.Token))
            {
                errors.Add($"{path}:Token is empty.");
            }
            else if (KeySource.CheckSecret(token.Token) is { } problem)
            {
                errors.Add($"{path}:Token {problem}");
            }
            else if (token.Token.Length > 1024)
            {
                errors.Add($"{path}:Token is longer than 1024 characters.");
            }

            if (token.Name is not null && !names.Add(token.Name))
            {
                errors.Add($"{path}:Name '{token.Name}' is used twice.");
            }

            if (token.Budget is { } budget)
            {
                foreach (var (setting, limit) in new[] { ("RequestsPerMinute", budget.RequestsPerMinute), ("TokensPerMinute", budget.TokensPerMinute), ("TokensPerDay", budget.TokensPerDay) })
                {
                    if (limit is <= 0)
                    {
                        errors.Add($"{path}:Budget:{setting} must be more than zero, or left out for no limit.");
                    }
                    else if (limit is not null && setting != "RequestsPerMinute" && !usage.Value.Enabled)
                    {
                        errors.Add($"{path}:Budget:{setting} counts tokens, and Usage:Enabled is false, so no answer's tokens are read: " +
                                   "remove the token budget or set Usage:Enabled to true.");
                    }
                }
            }
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
