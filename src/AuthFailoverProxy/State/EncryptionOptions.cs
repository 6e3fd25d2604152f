namespace AuthFailoverProxy.State;

/// <summary>
/// The data key that seals keys added at runtime before they are stored in Redis. Bound from <c>Encryption</c>; keys
/// from configuration are never stored, so they need no data key.
/// </summary>
public sealed class EncryptionOptions
{
    /// <summary>
    /// Gets or sets the current data key: 32 random bytes in base64 (<c>openssl rand -base64 32</c>); <c>AFP_DATA_KEY</c>
    /// sets it for a quick start. New keys are sealed with it. Set this or <see cref="DataKeyFile"/>, not both.
    /// <value>The default value is none: keys cannot be added at runtime.</value>
    /// </summary>
    public string? DataKey { get; set; }

    /// <summary>
    /// Gets or sets the path of a file holding the current data key in base64, such as a mounted Kubernetes Secret;
    /// one trailing newline is ignored. Set this or <see cref="DataKey"/>, not both.
    /// <value>The default value is none.</value>
    /// </summary>
    public string? DataKeyFile { get; set; }

    /// <summary>
    /// Gets or sets earlier data keys (32 bytes in base64 each), used only to open keys sealed before a rotation;
    /// those are re-sealed with the current key, after which the old key can be removed.
    /// <value>The default value is empty.</value>
    /// </summary>
    public List<string> PreviousDataKeys { get; set; } = [];
}
