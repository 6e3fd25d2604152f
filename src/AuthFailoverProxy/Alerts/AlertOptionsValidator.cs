using AuthFailoverProxy.KeyPool;
using Microsoft.Extensions.Options;
using MimeKit;

namespace AuthFailoverProxy.Alerts;

/// <summary>
/// Checks every alert channel at start and reports every problem at once, each naming the configuration key to fix.
/// Never quotes a secret, a routing key or a URL: Slack and Discord URLs carry their token.
/// </summary>
internal sealed class AlertOptionsValidator : IValidateOptions<AlertOptions>
{
    public ValidateOptionsResult Validate(string? name, AlertOptions options)
    {
        var errors = new List<string>();
        if (options.ReminderInterval < TimeSpan.Zero || options.ReminderInterval > TimeSpan.FromDays(7))
        {
            errors.Add("Alerts:ReminderInterval must be between 00:00:00 (no reminders) and 7.00:00:00.");
        }

        if (options.DedupWindow < TimeSpan.Zero || options.DedupWindow > TimeSpan.FromHours(1))
        {
            errors.Add("Alerts:DedupWindow must be between 00:00:00 (no claims) and 01:00:00.");
        }

        if (options.QueueCapacity < 1)
        {
            errors.Add("Alerts:QueueCapacity must be 1 or more.");
        }

        if (options.Retries is < 0 or > 10)
        {
            errors.Add($"Alerts:Retries is {options.Retries}: use 0 to 10.");
        }

        if (options.RetryDelay < TimeSpan.Zero || options.MaxRetryDelay < options.RetryDelay)
        {
            errors.Add("Alerts:RetryDelay must not be negative, and Alerts:MaxRetryDelay not shorter than it.");
        }

        // Polly's own bounds for a timeout.
        if (options.AttemptTimeout < TimeSpan.FromMilliseconds(10) || options.AttemptTimeout > TimeSpan.FromDays(1))
        {
            errors.Add("Alerts:AttemptTimeout must be between 00:00:00.010 and 1.00:00:00.");
        }

        if (options.Deployment is { } deployment && (string.IsNullOrWhiteSpace(deployment) || deployment.Length > 100 || deployment.Any(char.IsControl)))
        {
            errors.Add("Alerts:Deployment must be a name of 1 to 100 printable characters, such as prod-eu/afp.");
        }

        foreach (var (channel, channelOptions) in options.Channels)
        {
            ValidateChannel($"Alerts:Channels:{channel}", channel, channelOptions, errors);
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void ValidateChannel(string path, string channel, AlertChannelOptions options, List<string> errors)
    {
        if (!KeySource.IsValidName(channel))
        {
            errors.Add($"{path}: a channel name may contain only letters, digits, '.', '_' and '-'.");
            return;
        }

        var type = options.Type?.Trim().ToLowerInvariant();
        if (string.IsNullOrEmpty(type))
        {
            errors.Add($"{path}:Type is missing: use {string.Join(", ", AlertChannelTypes.All)}.");
        }
        else if (!AlertChannelTypes.All.Contains(type))
        {
            errors.Add($"{path}:Type '{options.Type}' is not a channel type: use {string.Join(", ", AlertChannelTypes.All)}.");
        }
        else if (type == AlertChannelTypes.Email)
        {
            ValidateEmail(path, options, errors);
        }
        else
        {
            ValidateUrl(path, type, options, errors);
        }

        // The quick start's AFP_ALERT_WEBHOOK_SECRET makes the channel named webhook.
        var secretKey = string.Equals(channel, "webhook", StringComparison.OrdinalIgnoreCase) ? $"{path}:Secret (AFP_ALERT_WEBHOOK_SECRET)" : $"{path}:Secret";
        if (type == AlertChannelTypes.Webhook && options.Secret is not null)
        {
            if (!WebhookSignature.TryParseSecret(options.Secret, out var key))
            {
                errors.Add($"{secretKey} is not a Standard Webhooks secret: it must be 'whsec_' followed by base64 (the value is not shown).");
            }
            else if (key.Length < WebhookSignature.MinimumKeyBytes)
            {
                errors.Add($"{secretKey} is too short: a Standard Webhooks secret holds {WebhookSignature.MinimumKeyBytes} to 64 bytes after 'whsec_' (make one with: echo whsec_$(openssl rand -base64 32)); the value is not shown.");
            }
        }

        if (type == AlertChannelTypes.PagerDuty && string.IsNullOrWhiteSpace(options.RoutingKey))
        {
            errors.Add($"{path}:RoutingKey is missing: the integration key of a PagerDuty Events API v2 integration.");
        }

        for (var i = 0; i < options.Events.Count; i++)
        {
            if (!AlertFilter.IsValidPattern(options.Events[i]))
            {
                errors.Add($"{path}:Events:{i} '{options.Events[i]}' is not an event kind: use a kind such as key.dead or pool.exhausted, a prefix such as key.*, or *.");
            }
        }

        if (!AlertFilter.TryParseSeverity(options.MinSeverity, out _))
        {
            errors.Add($"{path}:MinSeverity '{options.MinSeverity}' is not a severity: use Info, Warning, Error or Critical.");
        }
    }

    private static void ValidateUrl(string path, string type, AlertChannelOptions options, List<string> errors)
    {
        var url = options.Url ?? (type == AlertChannelTypes.PagerDuty ? AlertChannelTypes.PagerDutyEnqueueUrl : null);
        if (string.IsNullOrWhiteSpace(url))
        {
            errors.Add($"{path}:Url is missing: the {type} channel needs the URL to post to.");
        }
        else if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            // The value is not quoted: Slack and Discord URLs are credentials.
            errors.Add($"{path}:Url is not an absolute http:// or https:// URL (the value is not shown).");
        }
    }

    private static void ValidateEmail(string path, AlertChannelOptions options, List<string> errors)
    {
        if (string.IsNullOrWhiteSpace(options.Host))
        {
            errors.Add($"{path}:Host is missing: the SMTP server to send through.");
        }

        if (options.Port is < 1 or > 65535)
        {
            errors.Add($"{path}:Port is {options.Port}: use 1 to 65535 (587 for StartTls, 465 for SslOnConnect).");
        }

        if (!EmailAlertChannel.TryParseSecurity(options.Security, out _))
        {
            errors.Add($"{path}:Security '{options.Security}' is not a choice: use None, StartTls or SslOnConnect.");
        }

        if (!string.IsNullOrEmpty(options.Username) && string.IsNullOrEmpty(options.Password))
        {
            errors.Add($"{path}:Password is missing while {path}:Username is set.");
        }

        if (string.IsNullOrWhiteSpace(options.From))
        {
            errors.Add($"{path}:From is missing: the sender address.");
        }
        else if (!IsAddress(options.From))
        {
            errors.Add($"{path}:From is not an email address.");
        }

        if (options.To.Count == 0)
        {
            errors.Add($"{path}:To is missing: list at least one recipient ({path}:To:0).");
        }

        for (var i = 0; i < options.To.Count; i++)
        {
            if (!IsAddress(options.To[i]))
            {
                errors.Add($"{path}:To:{i} is not an email address.");
            }
        }
    }

    /// <summary>MimeKit accepts a bare local part; a recipient needs a domain.</summary>
    private static bool IsAddress(string text) => MailboxAddress.TryParse(text, out var address) && address.Address.Contains('@', StringComparison.Ordinal);
}
