using System.Net;
using AuthFailoverProxy.Failover;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Health;

/// <summary>What a check of one key found.</summary>
internal enum ProbeOutcome
{
    /// <summary>The upstream accepted the key.</summary>
    Usable,

    /// <summary>The upstream rejected the key (revoked, forbidden, out of credit).</summary>
    Dead,

    /// <summary>The key is rate limited.</summary>
    Cooling,

    /// <summary>Nothing was learned about the key (upstream unreachable, unwell or without the probe path): it stays in service.</summary>
    Unknown,
}

/// <summary>The result of one check, with the facts for the log and <c>/status</c>.</summary>
internal sealed record ProbeResult(ProbeOutcome Outcome, KeyFailure? Failure = null, DateTimeOffset CoolUntil = default, string? Reason = null)
{
    /// <summary>Gets a value indicating whether the upstream answered the check, but nothing about the key could be told from it (a 404, a refusal of this kind of client).</summary>
    public bool Inconclusive { get; init; }
}

/// <summary>
/// Checks a key with the cheapest authenticated call (<c>GET /v1/models</c>: no tokens spent) through the pool's own
/// connection pool, and judges the answer exactly as the request path would (<see cref="UpstreamErrorJudge"/>).
/// </summary>
internal sealed partial class KeyProber(IOptions<ProbeOptions> options, IOptions<FailoverOptions> failover, TimeProvider time, ILogger<KeyProber> logger)
{
    // The pools whose checks were found unable to judge a key, each said once at Warning.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> _cannotJudge = new(StringComparer.Ordinal);

    /// <summary>The <c>User-Agent</c> of the proxy's own checks, so a provider's logs (and a gateway's) tell them from agents' calls.</summary>
    public const string UserAgent = "AuthFailoverProxy (key check)";

    /// <summary>
    /// Returns whether a check can tell anything about <paramref name="failure"/>: authentication is always checked, but
    /// only an Anthropic pool has a free call that answers about credit (<c>count_tokens</c>).
    /// </summary>
    public static bool CanJudge(Pool pool, KeyFailure failure) => !IsAboutCredit(failure) || pool.Kind == ProviderKind.Anthropic;

    /// <summary>Returns whether a failure is about the account's credit, billing or spend, which a passing authentication check does not disprove.</summary>
    public static bool IsAboutCredit(KeyFailure? failure) => failure is { Status: 400 or 402 } || FailureClassifier.IsQuotaCode(failure?.ErrorCode);

    /// <summary>Checks <paramref name="key"/>; <paramref name="about"/>, when given, is the failure to confirm, which decides what is checked.</summary>
    public async Task<ProbeResult> ProbeAsync(Pool pool, PoolKey key, CancellationToken cancellationToken, KeyFailure? about = null)
    {
        var probe = options.Value;
        var credit = pool.Kind == ProviderKind.Anthropic && IsAboutCredit(about);
        var path = pool.ProbePath ?? probe.Path;
        using var request = new HttpRequestMessage(credit ? HttpMethod.Post : HttpMethod.Get, pool.DestinationPrefix + (credit ? "/v1/messages/count_tokens" : path))
        {
            // The same HTTP version as the pool's forwarded requests, so a check sees the upstream as they do.
            Version = pool.RequestConfig.Version ?? HttpVersion.Version20,
            VersionPolicy = pool.RequestConfig.VersionPolicy ?? HttpVersionPolicy.RequestVersionOrLower,
        };
        pool.Authorize(request.Headers, key);
        request.Headers.TryAddWithoutValidation("User-Agent", UserAgent);
        if (credit)
        {
            // Free, and answered with the credit-balance 400 when the account has no credit.
            request.Content = new StringContent($$"""{"model":"{{probe.CreditCheckModel}}","messages":[{"role":"user","content":"."}]}""", System.Text.Encoding.UTF8, "application/json");
        }

        using var timeout = new CancellationTokenSource(probe.Timeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, cancellationToken);
        try
        {
            using var response = await pool.Client.SendAsync(request, linked.Token);
            Failover.Organizations.Learn(key, response);
            var status = (int)response.StatusCode;
            if (status is >= 200 and < 300)
            {
                return new ProbeResult(ProbeOutcome.Usable);
            }

            var (body, rest) = await UpstreamErrorJudge.ReadErrorBodyAsync(response.Content, linked.Token);
            rest?.Dispose();
            var judgement = UpstreamErrorJudge.Judge(pool.Kind, key, response, body.Span, time.GetUtcNow(), failover.Value);
            return judgement.Class switch
            {
                FailureClass.KeyDead => new ProbeResult(ProbeOutcome.Dead, judgement.Failure),
                FailureClass.KeyCooling => new ProbeResult(ProbeOutcome.Cooling, judgement.Failure, judgement.CoolUntil),
                FailureClass.UpstreamUnwell => new ProbeResult(ProbeOutcome.Unknown, Reason: $"the upstream answered {status}"),
                _ => CannotJudge(pool, $"the upstream answered {status} to {request.Method} {request.RequestUri!.AbsolutePath}"),
            };
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            return new ProbeResult(ProbeOutcome.Unknown, Reason: $"no answer within {probe.Timeout.TotalSeconds:0} s");
        }
        catch (HttpRequestException ex)
        {
            return new ProbeResult(ProbeOutcome.Unknown, Reason: $"the upstream could not be reached ({SecretMasker.Mask(ex.Message, key.Secret)})");
        }
    }

    /// <summary>An answer that says nothing about the key (a 404, a refusal of this kind of client): said once per pool, at Warning.</summary>
    private ProbeResult CannotJudge(Pool pool, string reason)
    {
        if (_cannotJudge.TryAdd(pool.Name, true))
        {
            LogCannotJudge(logger, pool.Name, reason);
        }

        return new ProbeResult(ProbeOutcome.Unknown, Reason: reason) { Inconclusive = true };
    }

    [LoggerMessage(EventId = 4110, Level = LogLevel.Warning, Message = "Pool '{Pool:l}': key checks cannot tell whether a key works here: {Reason:l}. Set Pools:{Pool:l}:ProbePath to an authenticated GET this upstream serves. Until then a key found dead returns to service through a trial: after its backoff, one real request is given to it.")]
    private static partial void LogCannotJudge(ILogger logger, string pool, string reason);
}
