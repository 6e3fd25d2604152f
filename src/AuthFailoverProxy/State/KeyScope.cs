using AuthFailoverProxy.KeyPool;

namespace AuthFailoverProxy.State;

/// <summary>What a scope takes a key out for.</summary>
internal enum KeyScopeKind
{
    /// <summary>One model id: the key's organization may not use it (a 403 another key did not give).</summary>
    Model,

    /// <summary>One model class (Opus, Sonnet, Haiku, or another provider's model): its rate limit is exhausted.</summary>
    ModelClass,

    /// <summary>Every request but Claude Code's: a subscription token only Claude Code may use.</summary>
    OtherClients,
}

/// <summary>What merging a scope into a key's changed.</summary>
internal enum ScopeMerge
{
    /// <summary>Nothing: the key already holds it until then or later.</summary>
    None,

    /// <summary>The key is newly out for it.</summary>
    Added,

    /// <summary>The key was out for it already; now until later.</summary>
    Extended,
}

/// <summary>
/// A part of what a key serves that it is out for until <see cref="Until"/>, while it stays in service for everything
/// else: a model its organization lacks, a model class whose rate limit is spent, the clients a subscription token is not
/// for. Immutable; a key holds a small capped set of them (<see cref="PoolKey.MaxScopes"/>).
/// </summary>
/// <param name="Kind">What it takes the key out for.</param>
/// <param name="Value">The model id or class; empty for <see cref="KeyScopeKind.OtherClients"/>.</param>
/// <param name="Until">When the key serves it again.</param>
/// <param name="Failure">What the provider said.</param>
internal sealed record KeyScope(KeyScopeKind Kind, string Value, DateTimeOffset Until, KeyFailure Failure)
{
    /// <summary>Gets the organization whose limit or policy it is, when the provider named it.</summary>
    public string? Organization { get; init; }

    /// <summary>Gets the scope's name, as <c>/status</c>, metrics, the audit trail and Redis write it: <c>model:…</c>, <c>class:opus</c>, <c>client:not-claude-code</c>.</summary>
    public string Name => NameOf(Kind, Value);

    /// <summary>Gets <see cref="Until"/> in Unix milliseconds, for the request path.</summary>
    public long UntilUnixMs => Until.ToUnixTimeMilliseconds();

    public static string NameOf(KeyScopeKind kind, string value) => kind switch
    {
        KeyScopeKind.Model => "model:" + value,
        KeyScopeKind.ModelClass => "class:" + value,
        _ => "client:not-claude-code",
    };

    /// <summary>
    /// Gets how it reads after a key's name: "is rate limited for opus models", "is out for model claude-opus-4-1 (its
    /// organization may not use it)", "serves only Claude Code".
    /// </summary>
    public string Describe() => Kind switch
    {
        KeyScopeKind.Model => $"is out for model {Value} (its organization may not use it)",
        KeyScopeKind.ModelClass => $"is rate limited for {Value} models",
        _ => "serves only Claude Code",
    };

    /// <summary>Returns whether this scope keeps the key from <paramref name="request"/>.</summary>
    public bool Blocks(in RequestScope request) => Kind switch
    {
        KeyScopeKind.Model => request.Model is { } model && string.Equals(model, Value, StringComparison.Ordinal),
        KeyScopeKind.ModelClass => request.ModelClass is { } modelClass && string.Equals(modelClass, Value, StringComparison.Ordinal),
        _ => !request.FromClaudeCode,
    };
}
