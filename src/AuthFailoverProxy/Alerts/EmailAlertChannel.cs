using System.Net.Sockets;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace AuthFailoverProxy.Alerts;

/// <summary>
/// Mail through an SMTP server (MailKit): subject "[ERROR] key.dead: the sentence", body with what to do and the facts.
/// Retried by a Polly pipeline on the injected clock, each attempt a fresh connection with its own timeout. A refused
/// login or a permanent (5xx) refusal is not retried: it will not change by itself.
/// </summary>
internal sealed class EmailAlertChannel : IAlertChannel
{
    private const int SubjectLimit = 200;
    private readonly AlertChannelOptions _options;
    private readonly SecureSocketOptions _security;
    private readonly ResiliencePipeline _pipeline;
    private readonly TimeSpan _attemptTimeout;
    private readonly AlertRedactor _redactor;
    private readonly AlertDelivery _delivery;

    public EmailAlertChannel(string name, AlertChannelOptions options, AlertDelivery delivery)
    {
        var alerts = delivery.Options;
        _delivery = delivery;
        Name = name;
        _options = options;
        _security = TryParseSecurity(options.Security, out var security) ? security : SecureSocketOptions.StartTls;
        _attemptTimeout = alerts.AttemptTimeout;
        _redactor = new AlertRedactor([options.Password]);
        var builder = new ResiliencePipelineBuilder { TimeProvider = delivery.Time };
        if (alerts.Retries > 0)
        {
            builder.AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = alerts.Retries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = alerts.RetryDelay,
                MaxDelay = alerts.MaxRetryDelay,
                ShouldHandle = new PredicateBuilder().Handle<Exception>(IsTransient),
            });
        }

        _pipeline = builder.AddTimeout(alerts.AttemptTimeout).Build();
    }

    public string Name { get; }

    public string Type => AlertChannelTypes.Email;

    public bool TakesReminders => true;

    public static bool TryParseSecurity(string? text, out SecureSocketOptions security)
    {
        security = text?.Trim().ToLowerInvariant() switch
        {
            "none" => SecureSocketOptions.None,
            "starttls" => SecureSocketOptions.StartTls,
            "sslonconnect" => SecureSocketOptions.SslOnConnect,
            _ => SecureSocketOptions.Auto,
        };
        return security != SecureSocketOptions.Auto;
    }

    internal static MimeMessage Message(Alert alert, AlertChannelOptions options)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(options.From!));
        foreach (var to in options.To)
        {
            message.To.Add(MailboxAddress.Parse(to));
        }

        // One line: a subject cannot hold a line break.
        var sentence = alert.Event.Message.ReplaceLineEndings(" ");
        message.Subject = AlertText.Cut($"{AlertText.Title(alert)}: {sentence}", SubjectLimit);
        message.Date = alert.Event.At;
        message.Headers.Add("X-AFP-Kind", alert.Event.Kind);
        if (alert.Event.Incident is { } incident)
        {
            message.Headers.Add("X-AFP-Incident", incident);
        }

        message.Body = new TextPart("plain") { Text = AlertText.Title(alert) + "\n\n" + AlertText.PlainText(alert) + "\n" };
        return message;
    }

    public async Task<int?> SendAsync(Alert alert, CancellationToken cancellationToken)
    {
        var message = Message(alert, _options);
        var attempt = 0;
        try
        {
            await _pipeline.ExecuteAsync(
                async ct =>
                {
                    attempt++;
                    try
                    {
                        using var smtp = new SmtpClient { Timeout = (int)_attemptTimeout.TotalMilliseconds };
                        await smtp.ConnectAsync(_options.Host!, _options.Port, _security, ct);
                        if (!string.IsNullOrEmpty(_options.Username))
                        {
                            await smtp.AuthenticateAsync(_options.Username, _options.Password ?? string.Empty, ct);
                        }

                        await smtp.SendAsync(message, ct);
                        await smtp.DisconnectAsync(quit: true, ct);
                    }
                    catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
                    {
                        // One line per attempt; the attempt's own timeout shows here as a cancellation.
                        var reason = ex is OperationCanceledException ? Describe(new TimeoutException()) : Describe(ex);
                        _delivery.AttemptFailed(this, alert, attempt, reason, IsTransient(ex));
                        throw;
                    }
                },
                cancellationToken);
            return null;
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested && ex is not AlertDeliveryException)
        {
            throw new AlertDeliveryException(Describe(ex));
        }
    }

    private static bool IsTransient(Exception ex) => ex switch
    {
        AuthenticationException => false,
        SmtpCommandException command => (int)command.StatusCode < 500,
        _ => true,
    };

    private string Describe(Exception ex) => ex switch
    {
        AuthenticationException => "the SMTP server refused the login (Username/Password)",
        SmtpCommandException command => $"the SMTP server refused: {(int)command.StatusCode} {_redactor.Redact(command.Message)}",
        SslHandshakeException => "the TLS handshake with the SMTP server failed (check Security and Port)",
        SocketException socket => $"the SMTP server could not be reached ({socket.SocketErrorCode})",
        TimeoutRejectedException or TimeoutException => "the SMTP server did not answer in time (Alerts:AttemptTimeout)",
        ServiceNotConnectedException or SmtpProtocolException or IOException => $"the SMTP conversation broke off ({ex.GetType().Name})",
        _ => $"{ex.GetType().Name}: {AlertText.Cut(_redactor.Redact(ex.Message), 200)}",
    };
}
