namespace AuthFailoverProxy.KeyPool;

/// <summary>The API dialect a pool speaks: how its keys are sent and how its errors look.</summary>
public enum ProviderKind
{
    /// <summary>Anthropic Messages API: key in <c>x-api-key</c>, errors as <c>{"type":"error","error":{…}}</c>.</summary>
    Anthropic,

    /// <summary>OpenAI-compatible API: key as <c>Authorization: Bearer</c>, errors as <c>{"error":{…}}</c>.</summary>
    OpenAI,
}
