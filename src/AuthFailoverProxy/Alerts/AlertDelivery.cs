using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Options;
using Polly;

namespace AuthFailoverProxy.Alerts;

/// <summary>
/// What every channel delivers with: the HTTP client, the retry settings of <see cref="AlertOptions"/>, the injected
/// clock, and the one log line each failed attempt gets.
/// </summary>
/// <remarks>
/// The pipelines are built here, not registered with the HTTP client: each attempt is made by the channel (a Standard
/// Webhooks signature carries the time of its own attempt, not of the first), and a pipeline built outside dependency
/// injection has no Polly telemetry, whose Warning per attempt carries a stack trace. The channel logs the attempt instead.
/// </remarks>
internal sealed partial class AlertDelivery(IHttpClientFactory clients, IOptions<AlertOptions> options, TimeProvider time, ILogger<AlertDelivery> logger)
{
    /// <summary>The named client every HTTP channel uses: no handler of its own logs (a URL may be a credential), none retries.</summary>
    public const string ClientName = "afp-alerts";

    public HttpClient CreateClient() => clients.CreateClient(ClientName);

    public AlertOptions Options => options.Value;

    public TimeProvider Time => time;

    /// <summary>Gets how many attempts one delivery makes: the first and <see cref="AlertOptions.Retries"/>.</summary>
    public int Attempts => Options.Retries + 1;

    /// <summary>Retries with exponential backoff and jitter (a receiver's Retry-After honoured up to MaxRetryDelay), each attempt under AttemptTimeout.</summary>
    public ResiliencePipeline<HttpResponseMessage> HttpPipeline()
    {
        var alerts = Options;
        var builder = new ResiliencePipelineBuilder<HttpResponseMessage> { TimeProvider = time };
        if (alerts.Retries > 0)
        {
            var retry = new HttpRetryStrategyOptions
            {
                MaxRetryAttempts = alerts.Retries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = alerts.RetryDelay,
                MaxDelay = alerts.MaxRetryDelay,
                ShouldRetryAfterHeader = true,
            };

            // MaxDelay does not bound a delay the receiver asks for; a Retry-After of an hour must not stall the queue.
            var retryAfter = retry.DelayGenerator;
            retry.DelayGenerator = async args => retryAfter is not null && await retryAfter(args) is { } asked
                ? (asked > alerts.MaxRetryDelay ? alerts.MaxRetryDelay : asked)
                : null;
            builder.AddRetry(retry);
        }

        return builder.AddTimeout(alerts.AttemptTimeout).Build();
    }

    /// <summary>Logs one failed attempt, in one line: the channel, which attempt, what went wrong, and whether another follows.</summary>
    public void AttemptFailed(IAlertChannel channel, Alert alert, int attempt, string reason, bool retryable)
    {
        var attempts = Attempts;
        LogAttemptFailed(logger, channel.Name, channel.Type, attempt, attempts, alert.Event.Kind, reason, retryable && attempt < attempts ? "retried" : "not retried");
    }

    [LoggerMessage(EventId = 7013, Level = LogLevel.Warning, Message = "Alert channel '{Channel:l}' ({Type:l}): attempt {Attempt} of {Attempts} to deliver {Kind:l} failed: {Reason:l}; it is {Retry:l}.")]
    private static partial void LogAttemptFailed(ILogger logger, string channel, string type, int attempt, int attempts, string kind, string reason, string retry);
}
