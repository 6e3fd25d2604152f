using System.Globalization;
using System.Text;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;

namespace AuthFailoverProxy.Failover;

/// <summary>
/// The plain-words answer when no key can serve: which keys failed, why, since when, and what to do next. Agents
/// show it to their human, so it says everything a person needs without opening a log.
/// </summary>
internal static class NoUsableKeyReport
{
    public static (string Message, TimeSpan? RetryAfter) Build(Pool pool, DateTimeOffset now, bool deadlineExceeded, int attempts, IScopedRequest? request = null, Health.UpstreamIncident? incident = null, TimeSpan incidentRecheck = default)
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"no key in pool '{pool.Name}' can serve this request");
        if (deadlineExceeded)
        {
            text.Append(CultureInfo.InvariantCulture, $" (gave up after {attempts} upstream attempts: the failover deadline passed)");
        }

        text.Append('.');
        DateTimeOffset? soonest = null;
        var checking = false;
        var remedies = new List<string>();
        var nowUnixMs = now.ToUnixTimeMilliseconds();
        foreach (var key in pool.Keys)
        {
            var health = key.Health;
            text.Append(' ').Append(key.ToString()).Append(' ');
            var scope = request is not null && key.Scopes is not null ? key.BlockingScope(request.Scope, nowUnixMs) : null;
            switch (health.EffectiveState(now))
            {
                case KeyState.Usable when scope is not null:
                    text.Append(CultureInfo.InvariantCulture, $"{scope.Describe()} ({scope.Failure.Label}) until {scope.Until:HH:mm:ss}Z; it serves other requests.");
                    if (scope.Kind == KeyScopeKind.ModelClass)
                    {
                        soonest = soonest is null || scope.Until < soonest ? scope.Until : soonest;
                    }

                    break;
                case KeyState.Dead:
                    var failure = health.LastFailure!;
                    text.Append(CultureInfo.InvariantCulture, $"was rejected at {failure.At:yyyy-MM-dd HH:mm:ss}Z: {failure.Label}");
                    if (!string.IsNullOrEmpty(failure.Message))
                    {
                        text.Append(CultureInfo.InvariantCulture, $" \"{failure.Message.TrimEnd('.')}\"");
                    }

                    text.Append('.');
                    var remedy = Remediation.ForDeadKey(key, failure);
                    if (!remedies.Contains(remedy))
                    {
                        remedies.Add(remedy);
                    }

                    break;
                case KeyState.Cooling:
                    text.Append(CultureInfo.InvariantCulture, $"is rate limited ({health.LastFailure?.Label ?? "429"}) until {health.Until:HH:mm:ss}Z.");
                    soonest = soonest is null || health.Until < soonest ? health.Until : soonest;
                    break;
                case KeyState.Disabled:
                    text.Append("was disabled by an operator.");
                    break;
                case KeyState.Pending:
                    text.Append("is waiting for an operator to confirm it.");
                    break;
                case KeyState.Usable when key.Suspicion is { } suspicion:
                    text.Append(CultureInfo.InvariantCulture, $"was refused on this request: {suspicion.Failure.Label}");
                    if (!string.IsNullOrEmpty(suspicion.Failure.Message))
                    {
                        text.Append(CultureInfo.InvariantCulture, $" \"{suspicion.Failure.Message.TrimEnd('.')}\"");
                    }

                    var underWay = !suspicion.Check.IsCompleted;
                    checking |= underWay;
                    text.Append(underWay
                        ? "; a check of the key is under way."
                        : "; no check can tell whether the key is at fault, so it stays in service, tried last.");
                    break;
                default:
                    text.Append(deadlineExceeded ? "was not tried before the deadline." : "failed on this request.");
                    break;
            }
        }

        if (pool.Keys.Count == 0)
        {
            text.Append(" The pool has no keys.");
        }

        text.Append(" Next step: ");
        if (incident is not null)
        {
            // Not the keys: the provider refuses keys that cannot share a cause alike. They return as soon as it does.
            text.Append(CultureInfo.InvariantCulture, $"retry shortly. The upstream {incident.Upstream} refuses keys of different organizations or kinds alike since {incident.Since:HH:mm:ss}Z ({incident.Failure.Label}): an incident at the provider, not the keys. They are checked every {incidentRecheck.TotalSeconds:0} s and serve again as soon as a check passes.");
        }
        else if (remedies.Count > 0)
        {
            text.AppendJoin(" ", remedies.Select(r => char.ToUpperInvariant(r[0]) + r[1..]));
            if (soonest is not null)
            {
                text.Append(CultureInfo.InvariantCulture, $" Or wait: a rate-limited key returns at {soonest:HH:mm:ss}Z.");
            }
        }
        else if (soonest is not null)
        {
            text.Append(CultureInfo.InvariantCulture, $"wait until {soonest:HH:mm:ss}Z, when a rate-limited key returns, or add a key from another organization (keys of one organization share rate limits).");
        }
        else
        {
            text.Append("add a working key to the pool.");
        }

        text.Append(" Details: GET /status on the management port.");
        var retryAfter = soonest is { } at && at > now ? at - now : (TimeSpan?)null;
        if (incident is not null && (retryAfter is null || retryAfter > incidentRecheck))
        {
            retryAfter = incidentRecheck;
        }

        if (checking && (retryAfter is null || retryAfter > Health.KeySuspicions.RetryAfterWhileChecking))
        {
            // Until the check says, a retry soon may well be served: never tell the agent not to retry.
            retryAfter = Health.KeySuspicions.RetryAfterWhileChecking;
        }

        return (text.ToString(), retryAfter);
    }
}
