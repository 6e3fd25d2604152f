using AuthFailoverProxy.Events;
using AuthFailoverProxy.Failover;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Health;

/// <summary>An upstream incident: keys that cannot share a cause failing with the same authentication error at once.</summary>
internal sealed class UpstreamIncident(string id, string upstream, KeyFailure failure, DateTimeOffset since)
{
    /// <summary>Gets the incident's name, stable while it lasts: <c>upstream:api.anthropic.com</c>.</summary>
    public string Id => id;

    public string Upstream => upstream;

    /// <summary>Gets the answer every key of the incident got.</summary>
    public KeyFailure Failure => failure;

    public DateTimeOffset Since => since;

    /// <summary>Gets the keys it took out of service and that have not returned; guarded by the tracker's lock.</summary>
    public HashSet<PoolKey> Keys { get; } = [];
}

/// <summary>
/// An incident is not N key deaths. When keys of different organizations or credential kinds are refused with the same
/// authentication error within <see cref="ProbeOptions.IncidentWindow"/> (their checks confirming it), no key is at
/// fault: the provider is (its auth service down, a deploy gone wrong). That is told once, as an upstream incident, not
/// as one alert per key; its keys are re-checked every <see cref="ProbeOptions.IncidentRecheckDelay"/> and each returns
/// as soon as a check passes; the incident ends when the last is back. An organization's policy refusal (the outage's
/// text) never counts: those keys are dead, whatever else happens.
/// </summary>
internal sealed partial class UpstreamIncidents(
    IServiceProvider services,
    ProxyEvents events,
    IOptions<ProbeOptions> options,
    TimeProvider time,
    ILogger<UpstreamIncidents> logger)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, UpstreamIncident> _open = new(StringComparer.Ordinal);
    private PoolRegistry? _registry;
    private KeyStateBoard? _board;

    private PoolRegistry Registry => _registry ??= services.GetRequiredService<PoolRegistry>();

    /// <summary>Returns whether an answer can be part of an incident: an authentication error in the provider's words, not an organization's policy.</summary>
    public static bool CanBePartOfIncident(KeyFailure failure)
        => failure.Status == 401 && !string.Equals(failure.Message?.Trim(), FailureClassifier.OAuthNotAllowed, StringComparison.Ordinal);

    /// <summary>
    /// Called when a check confirmed that <paramref name="key"/> is refused with <paramref name="failure"/>: returns the
    /// incident the death belongs to, opening one when another key that cannot share a cause with it (another
    /// organization, another kind of credential) got the same answer within the window; null for a key's own death.
    /// </summary>
    public UpstreamIncident? Observe(Pool pool, PoolKey key, KeyFailure failure)
    {
        if (!CanBePartOfIncident(failure))
        {
            return null;
        }

        var now = time.GetUtcNow();
        var since = now - options.Value.IncidentWindow;
        var upstream = new Uri(pool.DestinationPrefix).Authority;
        UpstreamIncident? opened = null;
        List<PoolKey>? partners = null;
        lock (_lock)
        {
            if (_open.TryGetValue(upstream, out var incident))
            {
                if (!SameError(incident.Failure, failure))
                {
                    return null;
                }

                incident.Keys.Add(key);
                return incident;
            }

            foreach (var other in Registry.Pools.Where(p => p.DestinationPrefix == pool.DestinationPrefix).SelectMany(p => p.Keys))
            {
                if (other != key && CannotShareACause(key, other) && RecentlyGot(other, failure, since))
                {
                    (partners ??= []).Add(other);
                }
            }

            if (partners is null)
            {
                return null;
            }

            opened = new UpstreamIncident($"upstream:{upstream}", upstream, failure, partners.Select(p => p.Suspicion?.Since ?? p.Health.LastFailure?.At ?? now).Append(failure.At).Min());
            opened.Keys.Add(key);
            foreach (var partner in partners.Where(p => p.Health.State == KeyState.Dead))
            {
                opened.Keys.Add(partner);
            }

            _open[upstream] = opened;
        }

        Announce(opened, key, partners);
        return opened;
    }

    /// <summary>Returns the open incident <paramref name="key"/> was taken out by, if any.</summary>
    public UpstreamIncident? Of(PoolKey key)
    {
        lock (_lock)
        {
            return _open.Values.FirstOrDefault(i => i.Keys.Contains(key));
        }
    }

    /// <summary>Returns the open incident of <paramref name="pool"/>'s upstream, if any.</summary>
    public UpstreamIncident? Of(Pool pool)
    {
        lock (_lock)
        {
            return _open.Count == 0 ? null : _open.GetValueOrDefault(new Uri(pool.DestinationPrefix).Authority);
        }
    }

    /// <summary>Follows the keys of open incidents back into service; the incident ends with the last of them.</summary>
    private void OnKeyChanged(KeyHealthChange change)
    {
        if (change.Current.State == KeyState.Dead)
        {
            return;
        }

        UpstreamIncident? ended = null;
        lock (_lock)
        {
            foreach (var incident in _open.Values)
            {
                if (incident.Keys.Remove(change.Key) && incident.Keys.Count == 0)
                {
                    ended = incident;
                }
            }

            if (ended is not null)
            {
                _open.Remove(ended.Upstream);
            }
        }

        if (ended is not null)
        {
            var lasted = ProxyEventSources.Describe(time.GetUtcNow() - ended.Since);
            LogEnded(logger, ended.Upstream, lasted);
            events.Publish(new ProxyEvent
            {
                Kind = EventKinds.UpstreamRecovered,
                Severity = EventSeverity.Info,
                At = time.GetUtcNow(),
                Message = $"The upstream incident at {ended.Upstream} is over after {lasted}: every key it took out of service passed its check and is back.",
                Incident = ended.Id,
                Resolves = true,
            });
        }
    }

    /// <summary>Subscribes to key changes; called once the board exists (it is built with the request path).</summary>
    internal void Start()
    {
        _board = services.GetRequiredService<KeyStateBoard>();
        _board.Changed += OnKeyChanged;
    }

    private void Announce(UpstreamIncident incident, PoolKey key, List<PoolKey> partners)
    {
        var keys = string.Join(", ", partners.Prepend(key).Select(k => $"'{k.Name}' ({k.Fingerprint}, {Describe(k)})"));
        var recheck = options.Value.IncidentRecheckDelay;
        LogOpened(logger, incident.Upstream, incident.Failure.Label, incident.Failure.Message ?? "(no message)", keys);
        events.Publish(new ProxyEvent
        {
            Kind = EventKinds.UpstreamIncident,
            Severity = EventSeverity.Error,
            At = incident.Since,
            Message = $"The upstream {incident.Upstream} refuses keys that cannot share a cause with the same answer, {incident.Failure.Label} \"{incident.Failure.Message}\": {keys}. " +
                $"This looks like an incident at the provider, not the keys. They are checked every {recheck.TotalSeconds:0} s and return as soon as a check passes.",
            Remediation = "nothing to change in the keys: check the provider's status page. If it lasts, add a key of another provider or organization as a fallback pool.",
            Pool = key.Pool,
            Status = incident.Failure.Status,
            ErrorType = incident.Failure.ErrorType,
            ErrorCode = incident.Failure.ErrorCode,
            ProviderMessage = incident.Failure.Message,
            RequestId = incident.Failure.RequestId,
            Incident = incident.Id,
        });
    }

    private static string Describe(PoolKey key) => key.Organization is { } organization
        ? $"{KeyFormats.Describe(key.Format)}, organization {organization}"
        : KeyFormats.Describe(key.Format);

    /// <summary>Keys of different organizations, or credentials of different kinds, cannot be refused for one reason of their own.</summary>
    private static bool CannotShareACause(PoolKey a, PoolKey b)
        => a.Format != b.Format || (a.Organization is { } x && b.Organization is { } y && !string.Equals(x, y, StringComparison.Ordinal));

    /// <summary>Whether <paramref name="key"/> got <paramref name="failure"/>'s error since <paramref name="since"/>: a suspect or a dead key.</summary>
    private static bool RecentlyGot(PoolKey key, KeyFailure failure, DateTimeOffset since)
        => (key.Suspicion is { } suspicion && suspicion.Since >= since && SameError(suspicion.Failure, failure))
            || (key.Health is { State: KeyState.Dead, LastFailure: { } last } && last.At >= since && SameError(last, failure));

    /// <summary>
    /// Whether two answers are the same error: status, type and code alike, and where the provider gives no code, the
    /// same words (an OpenAI 401 quotes each key's own masked form; its code says it all).
    /// </summary>
    private static bool SameError(KeyFailure a, KeyFailure b)
        => a.Status == b.Status && a.ErrorType == b.ErrorType && a.ErrorCode == b.ErrorCode
            && (a.ErrorCode is not null || string.Equals(a.Message, b.Message, StringComparison.Ordinal));

    [LoggerMessage(EventId = 4301, Level = LogLevel.Error, Message = "Upstream {Upstream:l} has an incident: keys that cannot share a cause are refused alike, {Failure:l} \"{ProviderMessage:l}\": {Keys:l}. Not the keys' fault; they are re-checked often and return as soon as a check passes.")]
    private static partial void LogOpened(ILogger logger, string upstream, string failure, string providerMessage, string keys);

    [LoggerMessage(EventId = 4302, Level = LogLevel.Information, Message = "The upstream incident at {Upstream:l} is over after {Lasted:l}: its keys are back in service.")]
    private static partial void LogEnded(ILogger logger, string upstream, string lasted);
}
