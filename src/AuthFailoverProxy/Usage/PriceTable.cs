using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Usage;

/// <summary>
/// Turns tokens into an estimated amount with the configured prices (<see cref="UsageOptions.Prices"/>). No table, no
/// cost: <see cref="Cost"/> is null, and nothing shows an amount. A model without a price is left out of the amount and
/// counted as unpriced, so a partial figure says it is partial.
/// </summary>
internal sealed class PriceTable(IOptions<UsageOptions> options)
{
    // Longest first, so the most specific entry that a model name starts with wins.
    private readonly ModelPrice[] _prices = [.. options.Value.Prices.Where(p => !string.IsNullOrEmpty(p.Model)).OrderByDescending(p => p.Model!.Length)];

    /// <summary>Gets the currency of every amount, or null when there is no price table.</summary>
    public string? Currency => _prices.Length == 0 ? null : options.Value.Currency;

    /// <summary>Returns the price of <paramref name="model"/>: the entry that names it, else the longest one it starts with.</summary>
    public ModelPrice? PriceOf(string model)
        => Array.Find(_prices, p => p.Model == model) ?? Array.Find(_prices, p => model.StartsWith(p.Model!, StringComparison.Ordinal));

    /// <summary>Returns what <paramref name="counts"/> of <paramref name="model"/> cost, or null when the model has no price.</summary>
    public decimal? Cost(string model, UsageCounts counts)
    {
        if (PriceOf(model) is not { } price)
        {
            return null;
        }

        // Input counts cached tokens in every dialect; the cache's part is priced at its own rate.
        var uncached = Math.Max(0, counts.Input - counts.CacheRead - counts.CacheCreation);
        var amount = (uncached * price.Input)
            + (counts.CacheRead * (price.CacheRead ?? price.Input))
            + (counts.CacheCreation * (price.CacheWrite ?? price.Input))
            + (counts.Output * price.Output);
        return amount / 1_000_000m;
    }
}
