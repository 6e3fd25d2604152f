using AuthFailoverProxy.KeyPool;

namespace AuthFailoverProxy.Admin;

/// <summary>
/// What <c>GET /admin/config</c> answers: the shape of the configuration in force (pools, upstreams, keys by name,
/// fingerprint, scheme and priority), never a secret. <c>afp check-config --probe</c> captures a configuration file the
/// same way and compares the two, so an operator sees what a change would do before it is applied.
/// </summary>
/// <param name="Replica">The replica that answered: behind a Service each one answers for itself.</param>
/// <param name="Pools">The pools in name order.</param>
internal sealed record ConfigurationReport(string Replica, IReadOnlyList<PoolShape> Pools)
{
    public static ConfigurationReport Capture(PoolRegistry registry)
        => new(Events.ProxyEvent.ThisReplica, [.. registry.Pools.OrderBy(p => p.Name, StringComparer.Ordinal).Select(PoolShape.Capture)]);
}

/// <summary>One pool's settings as they are in force, and its keys in priority order.</summary>
internal sealed record PoolShape(
    string Name,
    string Kind,
    string Upstream,
    string PathPrefix,
    bool Default,
    string Selection,
    string? ProbePath,
    string? Fallback,
    string? FallbackModel,
    IReadOnlyList<KeyShape> Keys)
{
    public static PoolShape Capture(Pool pool) => new(
        pool.Name,
        pool.Kind.ToString().ToLowerInvariant(),
        pool.DestinationPrefix,
        pool.PathPrefix.Value!,
        pool.IsDefault,
        pool.Selection.ToString(),
        pool.ProbePath,
        pool.Fallback?.Name,
        pool.FallbackModel,
        [.. pool.Keys.OrderBy(k => k.Priority).ThenBy(k => k.Name, StringComparer.Ordinal).Select(KeyShape.Capture)]);
}

/// <summary>A key as configured: its name, the fingerprint of its secret (never the secret), how it goes on the wire and its rank.</summary>
/// <param name="Name">The key's name.</param>
/// <param name="Fingerprint">The only rendering of the secret that is shown: <c>sk-ant-api03-…Xy7A</c>.</param>
/// <param name="Scheme">How it goes on the wire: <c>x-api-key</c>, <c>oauth</c>, <c>bearer</c> or <c>api-key</c>.</param>
/// <param name="Priority">Lower is tried first.</param>
/// <param name="Source">Where the secret came from: <c>configuration</c>, <c>environment</c>, <c>file</c>, <c>admin API (…)</c>.</param>
/// <param name="AddedAtRuntime">Whether it was added through the admin API: a configuration change never touches such a key.</param>
/// <param name="OpenAIOrganization">The OpenAI organization the key is pinned to, if any.</param>
/// <param name="OpenAIProject">The OpenAI project the key is pinned to, if any.</param>
internal sealed record KeyShape(
    string Name,
    string Fingerprint,
    string Scheme,
    int Priority,
    string Source,
    bool AddedAtRuntime,
    string? OpenAIOrganization = null,
    string? OpenAIProject = null)
{
    public static KeyShape Capture(PoolKey key) => new(
        key.Name,
        key.Fingerprint,
        CredentialSchemes.Name(key.Scheme),
        key.Priority,
        key.Source,
        key.AddedAtRuntime,
        key.Account?.Organization,
        key.Account?.Project);
}
