using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Usage;

/// <summary>Names the <c>Usage</c> setting that is wrong, before the proxy starts.</summary>
internal sealed class UsageOptionsValidator : IValidateOptions<UsageOptions>
{
    public ValidateOptionsResult Validate(string? name, UsageOptions options)
    {
        var errors = new List<string>();
        if (options.SyncInterval <= TimeSpan.Zero || options.SyncInterval > TimeSpan.FromMinutes(1))
        {
            errors.Add("Usage:SyncInterval must be more than zero and at most a minute: budgets per minute are shared at that pace.");
        }

        if (string.IsNullOrWhiteSpace(options.Currency) || options.Currency.Length > 8)
        {
            errors.Add("Usage:Currency must be a short currency name such as USD or EUR.");
        }

        var models = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < options.Prices.Count; i++)
        {
            var price = options.Prices[i];
            var path = $"Usage:Prices:{i}";
            if (string.IsNullOrWhiteSpace(price.Model))
            {
                errors.Add($"{path}:Model is empty: name the model (or the start of the model names) this price is for.");
            }
            else if (!models.Add(price.Model))
            {
                errors.Add($"{path}:Model '{price.Model}' is priced twice.");
            }

            if (price.Input < 0 || price.Output < 0 || price.CacheRead < 0 || price.CacheWrite < 0)
            {
                errors.Add($"{path}: a price is negative.");
            }
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
