using System.Text.Json;

namespace AuthFailoverProxy.KeyPool;

/// <summary>
/// What a request asks for that a key can be out for while the rest of it serves (<see cref="State.KeyScope"/>): the
/// model, the model's rate-limit class, and whether the request comes from Claude Code. Read once per request, when the
/// walk first needs it (a key of its pool has a scope) or its first upstream call is labelled with the requested model
/// (the GenAI metrics): a scan of the body's top level for <c>"model"</c>, which is near its start in every SDK's body.
/// </summary>
/// <param name="Model">The body's top-level <c>model</c>, if it names one.</param>
/// <param name="FromClaudeCode">Whether the request carries Claude Code's own beta, as Claude Code's requests do.</param>
internal readonly record struct RequestScope(string? Model, bool FromClaudeCode)
{
    /// <summary>Gets the class the provider limits the model with (<see cref="ModelClasses"/>), worked out when a scope asks.</summary>
    public string? ModelClass => ModelClasses.Of(Model);

    /// <summary>The <c>anthropic-beta</c> value Claude Code sends with every request, and a subscription token is accepted with.</summary>
    public const string ClaudeCodeBeta = "claude-code-20250219";

    /// <summary>Reads the scope of a request from its buffered body (top-level fields only) and headers.</summary>
    public static RequestScope Of(ReadOnlySpan<byte> body, IHeaderDictionary headers)
    {
        var model = ModelOf(body);
        var fromClaudeCode = false;
        foreach (var value in headers["anthropic-beta"])
        {
            if (value is not null && value.Contains(ClaudeCodeBeta, StringComparison.Ordinal))
            {
                fromClaudeCode = true;
                break;
            }
        }

        return new RequestScope(model, fromClaudeCode);
    }

    /// <summary>Returns the top-level <c>model</c> of a JSON object, or null when there is none (or no JSON).</summary>
    public static string? ModelOf(ReadOnlySpan<byte> json)
    {
        if (json.IsEmpty || json.IndexOf("\"model\""u8) < 0)
        {
            return null;
        }

        var reader = Failover.RequestFacts.ReaderFor(json);
        // Bounded: a model name is short, and it may end up in /status and the audit trail.
        if (!Failover.RequestFacts.TryFindTopLevel(ref reader, "model"u8) || reader.TokenType != JsonTokenType.String || reader.ValueSpan.Length > ModelClasses.MaxModelLength)
        {
            return null;
        }

        try
        {
            return reader.GetString();
        }
        catch (InvalidOperationException)
        {
            // Not UTF-8: no model the provider serves.
            return null;
        }
    }
}

/// <summary>A request whose <see cref="RequestScope"/> is read only when a key it meets has scopes.</summary>
internal interface IScopedRequest
{
    RequestScope Scope { get; }
}

/// <summary>
/// The classes a provider's rate limits are kept by. Anthropic limits Opus, Sonnet and Haiku models separately (FACTS):
/// a 429 on one says nothing about another. Any other model (an OpenAI model, whose limits are per model) is its own class.
/// </summary>
internal static class ModelClasses
{
    /// <summary>The longest model name taken from a request; a longer one is no model the provider serves.</summary>
    public const int MaxModelLength = 128;

    public static string? Of(string? model)
    {
        if (model is null)
        {
            return null;
        }

        foreach (var family in (ReadOnlySpan<string>)["opus", "sonnet", "haiku"])
        {
            if (model.Contains(family, StringComparison.OrdinalIgnoreCase))
            {
                return family;
            }
        }

        return model;
    }
}
