using System.Net.Http.Headers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Timeout;

namespace AuthFailoverProxy.Alerts;

/// <summary>
/// A channel that posts JSON: retries with exponential backoff and jitter (honouring the receiver's Retry-After, capped
/// at <see cref="AlertOptions.MaxRetryDelay"/>) and a per-attempt timeout, by Microsoft.Extensions.Http.Resilience on
/// the injected clock. Failures are told by status and error class, never with the URL, which may be a credential.
/// </summary>
internal abstract class HttpAlertChannel(string name, Uri url, IHttpClientFactory clients, IEnumerable<string?> sensitive) : IAlertChannel
{
    /// <summary>The named client every HTTP channel uses; its handler holds the resilience pipeline.</summary>
    public const string ClientName = "afp-alerts";

    private const int MaxDetail = 200;

    /// <summary>Receivers read JSON, not HTML: quotes and accents are written as they are.</summary>
    private static readonly JsonSerializerOptions Json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly AlertRedactor _redactor = new([url.ToString(), url.PathAndQuery.Length > 1 ? url.PathAndQuery : null, url.AbsolutePath.Length > 1 ? url.AbsolutePath : null, url.Query.Length > 1 ? url.Query : null, .. sensitive]);

    public string Name => name;

    public abstract string Type { get; }

    public virtual bool TakesReminders => true;

    public async Task<int?> SendAsync(Alert alert, CancellationToken cancellationToken)
    {
        var client = clients.CreateClient(ClientName);
        int? status = null;
        foreach (var payload in Payloads(alert))
        {
            var body = Serialize(payload);
            using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
            AddHeaders(request, alert, body);
            HttpResponseMessage response;
            try
            {
                response = await client.SendAsync(request, cancellationToken);
            }
            catch (HttpRequestException ex)
            {
                // The exception's message names host and port; its error class says enough.
                throw new AlertDeliveryException($"the receiver could not be reached ({ex.HttpRequestError})");
            }
            catch (TimeoutRejectedException)
            {
                throw new AlertDeliveryException("the receiver did not answer in time (Alerts:AttemptTimeout)");
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new AlertDeliveryException("the receiver did not answer in time");
            }

            using (response)
            {
                status = (int)response.StatusCode;
                if (!response.IsSuccessStatusCode)
                {
                    throw new AlertDeliveryException($"HTTP {status}{await DetailAsync(response, cancellationToken)}", status);
                }
            }
        }

        return status;
    }

    /// <summary>Sets the retry and timeout strategies of <see cref="ClientName"/> from <see cref="AlertOptions"/>, on the injected clock.</summary>
    public static void ConfigureResilience(ResiliencePipelineBuilder<HttpResponseMessage> builder, IServiceProvider services)
    {
        var options = services.GetRequiredService<IOptions<AlertOptions>>().Value;
        builder.TimeProvider = services.GetRequiredService<TimeProvider>();
        if (options.Retries > 0)
        {
            var retry = new HttpRetryStrategyOptions
            {
                MaxRetryAttempts = options.Retries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.RetryDelay,
                MaxDelay = options.MaxRetryDelay,
                ShouldRetryAfterHeader = true,
            };

            // MaxDelay does not bound a delay the receiver asks for; a Retry-After of an hour must not stall the queue.
            var retryAfter = retry.DelayGenerator;
            retry.DelayGenerator = async args => retryAfter is not null && await retryAfter(args) is { } asked
                ? (asked > options.MaxRetryDelay ? options.MaxRetryDelay : asked)
                : null;
            builder.AddRetry(retry);
        }

        builder.AddTimeout(options.AttemptTimeout);
    }

    /// <summary>Returns the bodies to post for one alert, in order (PagerDuty's test is a trigger and its resolve).</summary>
    protected abstract IEnumerable<JsonObject> Payloads(Alert alert);

    protected virtual void AddHeaders(HttpRequestMessage request, Alert alert, byte[] body)
    {
    }

    internal static byte[] Serialize(JsonObject payload) => Encoding.UTF8.GetBytes(payload.ToJsonString(Json));

    /// <summary>Adds a property only when it has a value.</summary>
    protected static void AddIfSet(JsonObject target, string name, string? value)
    {
        if (value is not null)
        {
            target[name] = value;
        }
    }

    /// <summary>The start of the receiver's answer ("invalid_token", PagerDuty's error list), which says what to fix.</summary>
    private async Task<string> DetailAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            text = string.Join(' ', text.Split((char[])['\r', '\n', '\t'], StringSplitOptions.RemoveEmptyEntries)).Trim();
            return text.Length == 0 ? string.Empty : ": " + AlertText.Cut(_redactor.Redact(text), MaxDetail);
        }
        catch (HttpRequestException)
        {
            return string.Empty;
        }
    }
}
