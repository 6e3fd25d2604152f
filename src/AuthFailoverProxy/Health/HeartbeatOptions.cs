using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Health;

/// <summary>
/// The dead man's switch: a URL pinged every interval while the proxy is alive and every pool can serve (healthchecks.io,
/// Cronitor, Better Stack, a Prometheus Pushgateway-style receiver…), which raises the alarm when the pings stop.
/// Bound from <c>Heartbeat</c>; <c>AFP_HEARTBEAT_URL</c> sets the URL.
/// </summary>
public sealed class HeartbeatOptions
{
    /// <summary>
    /// Gets or sets the URL to ping. It often holds a token, so it is never logged or shown.
    /// <value>The default value is none: no heartbeat.</value>
    /// </summary>
    public string? Url { get; set; }

    /// <summary>Gets or sets the time between pings. <value>The default value is 60 seconds.</value></summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Gets or sets the HTTP method: <c>GET</c> or <c>POST</c> (with an empty body). <value>The default value is <c>GET</c>.</value></summary>
    public string Method { get; set; } = "GET";

    /// <summary>Gets or sets how long a ping may take before it counts as failed. <value>The default value is 10 seconds.</value></summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Gets a value indicating whether a heartbeat URL is configured.</summary>
    internal bool Enabled => !string.IsNullOrWhiteSpace(Url);
}

/// <summary>Checks <see cref="HeartbeatOptions"/>, naming the key to fix and never printing the URL.</summary>
internal sealed class HeartbeatOptionsValidator : IValidateOptions<HeartbeatOptions>
{
    public ValidateOptionsResult Validate(string? name, HeartbeatOptions options)
    {
        var errors = new List<string>();
        if (options.Enabled
            && !(Uri.TryCreate(options.Url, UriKind.Absolute, out var url) && (url.Scheme == Uri.UriSchemeHttp || url.Scheme == Uri.UriSchemeHttps)))
        {
            errors.Add("Heartbeat:Url (AFP_HEARTBEAT_URL) is not an absolute http:// or https:// URL (its value is not shown: it may hold a token).");
        }

        if (options.Interval < TimeSpan.FromSeconds(1))
        {
            errors.Add("Heartbeat:Interval must be at least 1 second, e.g. 00:01:00.");
        }

        if (options.Timeout <= TimeSpan.Zero || options.Timeout > options.Interval)
        {
            errors.Add("Heartbeat:Timeout must be more than zero and no longer than Heartbeat:Interval.");
        }

        if (!string.Equals(options.Method, "GET", StringComparison.OrdinalIgnoreCase) && !string.Equals(options.Method, "POST", StringComparison.OrdinalIgnoreCase))
        {
            errors.Add($"Heartbeat:Method must be GET or POST, not '{options.Method}'.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
