namespace AuthFailoverProxy.Alerts;

/// <summary>Where problems are told to humans, and how hard the proxy tries. Bound from <c>Alerts</c>.</summary>
internal sealed class AlertOptions
{
    public const string Section = "Alerts";

    /// <summary>The deployment name used when <see cref="Deployment"/> is not set.</summary>
    public const string DefaultDeployment = "afp";

    /// <summary>
    /// Gets or sets the name of this deployment: the same on all its replicas, different from every other deployment
    /// that alerts to the same place (<c>prod-eu/afp</c>: the Helm chart sets the namespace and release). PagerDuty's
    /// <c>dedup_key</c> starts with it, so one cluster's resolve never closes another's incident. At most 100
    /// characters. <value>The default is <c>afp</c>.</value>
    /// </summary>
    public string? Deployment { get; set; }

    /// <summary>Gets or sets the channels by name (<c>Alerts:Channels:{name}</c>); each is independent of the others. <value>The default is none.</value></summary>
    public Dictionary<string, AlertChannelOptions> Channels { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Gets or sets how often a digest of what is still wrong goes to each channel while problems stay open; zero turns
    /// reminders off. <value>The default value is 1 hour.</value>
    /// </summary>
    public TimeSpan ReminderInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Gets or sets a value indicating whether a test alert goes to every channel at start. <value>The default value is <see langword="false"/>.</value></summary>
    public bool TestAtStartup { get; set; }

    /// <summary>
    /// Gets or sets how far apart two replicas may see the same change and still tell it once: an alert claims the
    /// change for this long on either side of when it happened; zero claims nothing (every replica sends).
    /// <value>The default value is 10 seconds.</value>
    /// </summary>
    public TimeSpan DedupWindow { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Gets or sets how many alerts wait per channel; past that the oldest is dropped (and counted in /status). <value>The default value is 100.</value></summary>
    public int QueueCapacity { get; set; } = 100;

    /// <summary>Gets or sets how many times a failed delivery is retried before the channel counts as failing. <value>The default value is 3.</value></summary>
    public int Retries { get; set; } = 3;

    /// <summary>Gets or sets the first wait before a retry; later ones grow exponentially, with jitter. <value>The default value is 2 seconds.</value></summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Gets or sets the longest wait before a retry, a receiver's <c>Retry-After</c> included. <value>The default value is 30 seconds.</value></summary>
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Gets or sets how long one delivery attempt may take. <value>The default value is 10 seconds.</value></summary>
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(10);
}

/// <summary>One alert channel: <c>Alerts:Channels:{name}</c>.</summary>
internal sealed class AlertChannelOptions
{
    /// <summary>Gets or sets the kind of channel: <c>webhook</c>, <c>slack</c>, <c>discord</c>, <c>teams</c>, <c>pagerduty</c> or <c>email</c>.</summary>
    public string? Type { get; set; }

    /// <summary>Gets or sets where to post (every type but email). Slack and Discord URLs hold a token: it is never logged or shown.</summary>
    public string? Url { get; set; }

    /// <summary>Gets or sets the Standard Webhooks signing secret (<c>whsec_</c> + base64) of a <c>webhook</c> channel. <value>The default is none: requests are not signed.</value></summary>
    public string? Secret { get; set; }

    /// <summary>Gets or sets the PagerDuty Events v2 integration (routing) key of a <c>pagerduty</c> channel.</summary>
    public string? RoutingKey { get; set; }

    /// <summary>Gets or sets the SMTP server of an <c>email</c> channel.</summary>
    public string? Host { get; set; }

    /// <summary>Gets or sets the SMTP port. <value>The default value is 587.</value></summary>
    public int Port { get; set; } = 587;

    /// <summary>Gets or sets the SMTP transport security: <c>None</c>, <c>StartTls</c> or <c>SslOnConnect</c>. <value>The default value is <c>StartTls</c>.</value></summary>
    public string Security { get; set; } = "StartTls";

    /// <summary>Gets or sets the SMTP user name. <value>The default is none: no authentication.</value></summary>
    public string? Username { get; set; }

    /// <summary>Gets or sets the SMTP password.</summary>
    public string? Password { get; set; }

    /// <summary>Gets or sets the sender address of an <c>email</c> channel.</summary>
    public string? From { get; set; }

    /// <summary>Gets or sets the recipients of an <c>email</c> channel.</summary>
    public List<string> To { get; set; } = [];

    /// <summary>Gets or sets the event kinds this channel receives, exact (<c>key.dead</c>) or by prefix (<c>key.*</c>). <value>The default is every kind.</value></summary>
    public List<string> Events { get; set; } = [];

    /// <summary>
    /// Gets or sets the least severity this channel receives: <c>Info</c>, <c>Warning</c>, <c>Error</c> or <c>Critical</c>.
    /// A resolve always reaches a channel that received the trigger. <value>The default value is <c>Warning</c>.</value>
    /// </summary>
    public string MinSeverity { get; set; } = "Warning";
}

/// <summary>The channel types, as written in <c>Alerts:Channels:{name}:Type</c>.</summary>
internal static class AlertChannelTypes
{
    public const string Webhook = "webhook";
    public const string Slack = "slack";
    public const string Discord = "discord";
    public const string Teams = "teams";
    public const string PagerDuty = "pagerduty";
    public const string Email = "email";

    public static IReadOnlyList<string> All { get; } = [Webhook, Slack, Discord, Teams, PagerDuty, Email];

    /// <summary>Gets PagerDuty's Events API v2 endpoint, the default <c>Url</c> of a <c>pagerduty</c> channel.</summary>
    public const string PagerDutyEnqueueUrl = "https://events.pagerduty.com/v2/enqueue";
}
