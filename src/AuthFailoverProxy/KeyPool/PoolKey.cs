using System.Security.Cryptography;
using System.Text;
using AuthFailoverProxy.State;

namespace AuthFailoverProxy.KeyPool;

/// <summary>A credential in a pool at runtime: identity, the secret (kept private to the request path) and its health.</summary>
internal sealed class PoolKey
{
    private const int NoTrial = 0;
    private const int TrialWaiting = 1;
    private const int TrialCarried = 2;

    private KeyHealth _health;
    private KeyScope[]? _scopes;
    private string? _organization;
    private int _organizationLooks;
    private RejectionTally? _rejections;
    private KeySuspicion? _suspicion;
    private int _trial;
    private long _trialUntilUnixMs;
    private volatile bool _retired;

    public PoolKey(string pool, string name, string secret, int priority, string source, CredentialScheme scheme, DateTimeOffset now, bool addedAtRuntime = false)
    {
        Pool = pool;
        Name = name;
        Secret = secret;
        Priority = priority;
        Source = source;
        Format = KeyFormats.Detect(secret);
        Fingerprint = KeyFormats.Fingerprint(secret);
        Identity = IdentityOf(secret);
        AddedAtRuntime = addedAtRuntime;
        Scheme = scheme;
        // Built once so the request path never concatenates strings.
        (HeaderName, HeaderValue) = scheme switch
        {
            CredentialScheme.XApiKey => ("x-api-key", secret),
            CredentialScheme.AzureApiKey => ("api-key", secret),
            _ => ("Authorization", "Bearer " + secret),
        };
        _health = Fresh(now);
    }

    public string Pool { get; }

    public string Name { get; }

    /// <summary>Gets the priority: lower is tried first. Changed only by <see cref="KeyCatalog.Rerank"/>.</summary>
    public int Priority { get; private set; }

    /// <summary>Gets where the secret came from: <c>configuration</c>, <c>environment</c>, <c>file</c>….</summary>
    public string Source { get; private set; }

    public KeyFormat Format { get; }

    /// <summary>Gets the only rendering of the secret that may be shown: <c>sk-ant-api03-…Xy7A</c>.</summary>
    public string Fingerprint { get; }

    /// <summary>Gets the secret. Read only to send it upstream and to recognise it in upstream messages.</summary>
    internal string Secret { get; }

    /// <summary>Gets how the key goes on the wire.</summary>
    public CredentialScheme Scheme { get; }

    /// <summary>Gets the account the key is pinned to (OpenAI organization and project), if any; sent with every request it carries.</summary>
    public KeyAccount? Account { get; init; }

    /// <summary>Gets the header the key goes in: <c>x-api-key</c>, <c>Authorization</c> or <c>api-key</c>.</summary>
    internal string HeaderName { get; }

    /// <summary>Gets the value of <see cref="HeaderName"/>: the secret, or <c>Bearer</c> and the secret.</summary>
    internal string HeaderValue { get; }

    /// <summary>
    /// Gets a short one-way tag of the secret (16 hex digits of a SHA-256), so shared state recorded for one secret is
    /// never applied to another secret that later takes the same name.
    /// </summary>
    public string Identity { get; }

    /// <summary>Gets a value indicating whether an operator added the key through the admin API (rather than configuration).</summary>
    public bool AddedAtRuntime { get; }

    /// <summary>Gets a value indicating whether the key has left its pool (removed, or replaced by a reload); its background work stops.</summary>
    public bool Retired => _retired;

    public KeyHealth Health => Volatile.Read(ref _health);

    /// <summary>
    /// Gets what a request saw that may mean this key is dead, while a check in the key's own scheme confirms or clears
    /// it; null when there is nothing to confirm. A suspect key is tried last, never excluded. This replica's own: only
    /// a confirmed verdict is shared.
    /// </summary>
    public KeySuspicion? Suspicion => Volatile.Read(ref _suspicion);

    /// <summary>
    /// Gets until when a trial is open, if one is: a dead key that no check can judge may carry the next request that
    /// finds it, once (see <see cref="Health.KeyHealer"/>).
    /// </summary>
    public DateTimeOffset? TrialUntil => Volatile.Read(ref _trial) == TrialWaiting
        ? DateTimeOffset.FromUnixTimeMilliseconds(Volatile.Read(ref _trialUntilUnixMs))
        : null;

    /// <summary>Gets a value indicating whether a request is carrying this key's trial now.</summary>
    internal bool TrialTaken => Volatile.Read(ref _trial) == TrialCarried;

    /// <summary>Opens a trial until <paramref name="until"/>: the next request that finds this dead key is sent to it, once.</summary>
    internal void OpenTrial(DateTimeOffset until)
    {
        Volatile.Write(ref _trialUntilUnixMs, until.ToUnixTimeMilliseconds());
        Interlocked.CompareExchange(ref _trial, TrialWaiting, NoTrial);
    }

    /// <summary>
    /// Takes the open trial for the calling request. Returns false when there is none, it has expired, or another
    /// request took it. The clock is read only when a trial is open.
    /// </summary>
    internal bool TryTakeTrial(TimeProvider time) =>
        Volatile.Read(ref _trial) == TrialWaiting
        && time.GetUtcNow().ToUnixTimeMilliseconds() < Volatile.Read(ref _trialUntilUnixMs)
        && Interlocked.CompareExchange(ref _trial, TrialCarried, TrialWaiting) == TrialWaiting;

    /// <summary>Ends the trial a request carried, once it has its answer or is gone; returns whether one was under way.</summary>
    internal bool EndTrial() => Interlocked.CompareExchange(ref _trial, NoTrial, TrialCarried) == TrialCarried;

    /// <summary>Gets the key's request-specific rejections of the last minutes (<see cref="Failover.RequestRejections"/>), made on first use.</summary>
    internal RejectionTally Rejections => Volatile.Read(ref _rejections) ?? Interlocked.CompareExchange(ref _rejections, new RejectionTally(), null) ?? _rejections!;

    /// <summary>Gets the rejection counts within the window ending at <paramref name="now"/>, for <c>/status</c>; null when there are none.</summary>
    public IReadOnlyList<RejectionCount>? RejectionCounts(DateTimeOffset now) => Volatile.Read(ref _rejections)?.Counts(now);

    /// <summary>The most scopes one key holds: clients choose model names, so the set is capped; past it, the scope that ends first goes.</summary>
    public const int MaxScopes = 16;

    /// <summary>
    /// Gets what the key is out for while it serves everything else (a model, a model class, a kind of client); null when
    /// nothing, as almost always, so the request path pays nothing for scopes it does not have. Expired scopes may linger
    /// until the next change; readers compare <see cref="KeyScope.Until"/> with the clock.
    /// </summary>
    public KeyScope[]? Scopes => Volatile.Read(ref _scopes);

    /// <summary>
    /// Gets the organization the key belongs to, as the provider names it in its answers (<c>anthropic-organization-id</c>,
    /// <c>openai-organization</c>) or as configured: keys of one organization share its rate limits.
    /// </summary>
    public string? Organization => Volatile.Read(ref _organization) ?? Account?.Organization;

    /// <summary>
    /// Gets a value indicating whether answers should still be read for the key's organization: not once it is known, and
    /// only a few times for an upstream that never names one (most OpenAI-compatible servers), so it costs the request
    /// path nothing for long.
    /// </summary>
    internal bool LearnsOrganization => Volatile.Read(ref _organization) is null && Account?.Organization is null && Volatile.Read(ref _organizationLooks) < 8;

    /// <summary>Counts one answer read for the key's organization.</summary>
    internal void LookedForOrganization() => Interlocked.Increment(ref _organizationLooks);

    /// <summary>Records the organization an answer named for this key.</summary>
    internal void LearnOrganization(string organization)
    {
        if (!string.Equals(Volatile.Read(ref _organization), organization, StringComparison.Ordinal))
        {
            Volatile.Write(ref _organization, organization);
        }
    }

    /// <summary>Returns whether a scope keeps this key from <paramref name="request"/> at <paramref name="nowUnixMs"/>.</summary>
    public bool IsScopedOut(in RequestScope request, long nowUnixMs) => BlockingScope(request, nowUnixMs) is not null;

    /// <summary>Returns the scope that keeps this key from <paramref name="request"/> at <paramref name="nowUnixMs"/>, if one does.</summary>
    public KeyScope? BlockingScope(in RequestScope request, long nowUnixMs)
    {
        if (Scopes is not { } scopes)
        {
            return null;
        }

        foreach (var scope in scopes)
        {
            if (nowUnixMs < scope.UntilUnixMs && scope.Blocks(request))
            {
                return scope;
            }
        }

        return null;
    }

    /// <summary>
    /// Adds <paramref name="scope"/>, or extends the scope of the same name; a later end always wins, so no report can
    /// shorten another's. Expired scopes are dropped, and past <see cref="MaxScopes"/> the one that ends first. Returns
    /// what changed.
    /// </summary>
    internal ScopeMerge MergeScope(KeyScope scope, DateTimeOffset now)
    {
        var nowUnixMs = now.ToUnixTimeMilliseconds();
        if (scope.UntilUnixMs <= nowUnixMs)
        {
            return ScopeMerge.None;
        }

        while (true)
        {
            var current = Volatile.Read(ref _scopes);
            var next = new List<KeyScope>((current?.Length ?? 0) + 1);
            var merge = ScopeMerge.Added;
            foreach (var held in current ?? [])
            {
                if (held.Name == scope.Name && held.UntilUnixMs > nowUnixMs)
                {
                    if (held.UntilUnixMs >= scope.UntilUnixMs)
                    {
                        return ScopeMerge.None;
                    }

                    merge = ScopeMerge.Extended;
                }
                else if (held.UntilUnixMs > nowUnixMs)
                {
                    next.Add(held);
                }
            }

            next.Add(scope);
            while (next.Count > MaxScopes)
            {
                next.Remove(next.MinBy(s => s.UntilUnixMs)!);
            }

            if (Interlocked.CompareExchange(ref _scopes, [.. next], current) == current)
            {
                return merge;
            }
        }
    }

    /// <summary>Drops the scope named <paramref name="name"/>, if the key holds it (a request of that scope was served).</summary>
    internal bool ClearScope(string name)
    {
        while (true)
        {
            var current = Volatile.Read(ref _scopes);
            if (current is null || Array.FindIndex(current, s => s.Name == name) < 0)
            {
                return false;
            }

            KeyScope[]? next = [.. current.Where(s => s.Name != name)];
            if (Interlocked.CompareExchange(ref _scopes, next.Length == 0 ? null : next, current) == current)
            {
                return true;
            }
        }
    }

    /// <summary>Makes the key a suspect unless it already is one. Returns whether this call did.</summary>
    internal bool TrySuspect(KeySuspicion suspicion) => Interlocked.CompareExchange(ref _suspicion, suspicion, null) is null;

    /// <summary>Drops the suspicion: a check cleared it, a request succeeded on the key, or its recorded state moved on.</summary>
    internal void ClearSuspicion() => Volatile.Write(ref _suspicion, null);

    internal void Retire() => _retired = true;

    /// <summary>Gives the key another rank; only its pool's next key ring reads it (see <see cref="KeyCatalog.Rerank"/>).</summary>
    internal void SetRank(int priority, string source)
    {
        Priority = priority;
        Source = source;
    }

    /// <summary>
    /// Returns the state of this key before anything is known about it: usable for a configured key; pending for one
    /// added at runtime, since nothing enables itself because credentials merely exist.
    /// </summary>
    internal KeyHealth Fresh(DateTimeOffset now) => AddedAtRuntime ? KeyHealthRules.Added(now) : KeyHealth.Initial(now);

    /// <summary>Returns the identity tag of <paramref name="secret"/>: one-way; API keys carry far too much entropy to be guessed from it.</summary>
    internal static string IdentityOf(string secret)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes("afp-key-identity:" + secret), hash);
        return Convert.ToHexStringLower(hash[..8]);
    }

    /// <summary>Atomically replaces <paramref name="expected"/> with <paramref name="next"/>.</summary>
    internal bool TryTransition(KeyHealth expected, KeyHealth next)
        => ReferenceEquals(Interlocked.CompareExchange(ref _health, next, expected), expected);

    /// <summary>Names the key for people and logs: never the secret.</summary>
    public override string ToString() => $"'{Name}' ({Fingerprint})";
}
