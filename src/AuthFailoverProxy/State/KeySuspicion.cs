namespace AuthFailoverProxy.State;

/// <summary>
/// What a request saw that may mean a key is dead, held until a check that does not depend on any request (the probe,
/// in the key's own scheme) confirms or clears it. Only a confirmed verdict becomes the key's recorded state.
/// </summary>
/// <param name="Failure">The provider's answer to the request.</param>
/// <param name="Since">When the request saw it.</param>
internal sealed record KeySuspicion(KeyFailure Failure, DateTimeOffset Since)
{
    /// <summary>Gets the check under way, while there is one; awaited before the proxy gives up on a request.</summary>
    public Task Check { get; set; } = Task.CompletedTask;

    /// <summary>Gets the walk of the request that raised it, done when that request has its answer.</summary>
    public Task? Walk { get; init; }

    /// <summary>Gets or sets a value indicating whether a check could not judge the key; it then stays a suspect, tried last.</summary>
    public bool Unjudged { get; set; }
}
