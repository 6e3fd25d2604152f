using System.Net.Http.Headers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using AuthFailoverProxy.Events;
using Microsoft.Extensions.Http.Resilience;
using Polly;
using Polly.Timeout;

namespace AuthFailoverProxy.Alerts;

/// <summary>
/// A channel that posts JSON: retries with exponential backoff and jitter (honouring the receiver's Retry-After, capped
/// at <see cref="AlertOptions.MaxRetryDelay"/>) and a per-attempt timeout, by a Polly pipeline on the injected clock
/// (<see cref="AlertDelivery"/>). Each attempt builds its own request, so what carries the time is as fresh as the
/// attempt, and each failed attempt is one log line. Failures are told by status and error class, never with the URL,
/// which may be a credential.
/// </summary>
internal abstract class HttpAlertChannel(string name, Uri url, AlertDelivery delivery, IEnumerable<string?> sensitive) : IAlertChannel
{
    private const int MaxDetail = 200;

    /// <summary>Receivers read JSON, not HTML: quotes and accents are written as they are.</summary>
    private static readonly JsonSerializerOptions Json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly AlertRedactor _redactor = new([url.ToString(), url.PathAndQuery.Length > 1 ? url.PathAndQuery : null, url.AbsolutePath.Length > 1 ? url.AbsolutePath : null, url.Query.Length > 1 ? url.Query : null, .. sensitive]);

    private readonly ResiliencePipeline<HttpResponseMessage> _pipeline = delivery.HttpPipeline();

    public string Name => name;

    protected AlertDelivery Delivery => delivery;

    public abstract string Type { get; }

    public virtual bool TakesReminders => true;

    public virtual bool Takes(ProxyEvent e) => true;

    public async Task<int?> SendAsync(Alert alert, CancellationToken cancellationToken)
    {
        var client = delivery.CreateClient();
        int? status = null;
        foreach (var payload in Payloads(alert))
        {
            var body = Serialize(payload);
            var attempt = 0;
            HttpResponseMessage response;
            try
            {
                response = await _pipeline.ExecuteAsync(ct => AttemptAsync(client, alert, body, ++attempt, cancellationToken, ct), cancellationToken);
            }
            catch (HttpRequestException ex)
            {
                throw new AlertDeliveryException(Unreachable(ex));
            }
            catch (TimeoutRejectedException)
            {
                throw new AlertDeliveryException("the receiver did not answer in time (Alerts:AttemptTimeout)");
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
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

    /// <summary>One attempt, with a request of its own: its headers are written when it is sent.</summary>
    private async ValueTask<HttpResponseMessage> AttemptAsync(HttpClient client, Alert alert, byte[] body, int attempt, CancellationToken stopping, CancellationToken cancellationToken)
    {
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
            delivery.AttemptFailed(this, alert, attempt, Unreachable(ex), HttpClientResiliencePredicates.IsTransient(Outcome.FromException<HttpResponseMessage>(ex)));
            throw;
        }
        catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
        {
            delivery.AttemptFailed(this, alert, attempt, "the receiver did not answer in time (Alerts:AttemptTimeout)", retryable: true);
            throw;
        }

        if (!response.IsSuccessStatusCode)
        {
            var detail = await DetailAsync(response, cancellationToken);
            delivery.AttemptFailed(this, alert, attempt, $"HTTP {(int)response.StatusCode}{detail}", HttpClientResiliencePredicates.IsTransient(Outcome.FromResult(response)));
        }

        return response;
    }

    /// <summary>The exception's message names host and port; its error class says enough.</summary>
    private static string Unreachable(HttpRequestException ex) => $"the receiver could not be reached ({ex.HttpRequestError})";

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
