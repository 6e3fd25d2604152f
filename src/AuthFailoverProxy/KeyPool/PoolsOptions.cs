namespace AuthFailoverProxy.KeyPool;

/// <summary>Every pool, by name. Bound from the configuration root's <c>Pools</c> section.</summary>
public sealed class PoolsOptions
{
    /// <summary>Gets the pools by name; the name appears in paths, logs and <c>/status</c>.</summary>
    public Dictionary<string, KeyPoolOptions> Pools { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>The upstream a pool of <paramref name="kind"/> calls when none is configured.</summary>
    public static string DefaultUpstream(ProviderKind kind)
        => kind == ProviderKind.OpenAI ? "https://api.openai.com" : "https://api.anthropic.com";
}
