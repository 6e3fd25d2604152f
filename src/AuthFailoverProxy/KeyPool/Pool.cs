using System.Net.Http.Headers;
using Yarp.ReverseProxy.Forwarder;

namespace AuthFailoverProxy.KeyPool;

/// <summary>A pool at runtime: where to send, how to talk, and which key to use next.</summary>
internal sealed class Pool
{
    private readonly Lock _changing = new();
    private volatile KeyRing _ring;

    public Pool(
        string name,
        ProviderKind kind,
        Uri upstream,
        PathString pathPrefix,
        bool isDefault,
        KeySelection selection,
        IReadOnlyList<PoolKey> keys,
        HttpMessageInvoker client,
        ForwarderRequestConfig requestConfig)
    {
        Name = name;
        Kind = kind;
        DestinationPrefix = upstream.GetLeftPart(UriPartial.Path).TrimEnd('/');
        BasePathEndsWithVersion = DestinationPrefix.EndsWith("/v1", StringComparison.OrdinalIgnoreCase);
        PathPrefix = pathPrefix;
        IsDefault = isDefault;
        Selection = selection;
        Client = client;
        RequestConfig = requestConfig;
        _ring = new KeyRing(keys);
    }

    public string Name { get; }

    public ProviderKind Kind { get; }

    /// <summary>Gets the upstream base without a trailing slash; the client's path is appended to it.</summary>
    public string DestinationPrefix { get; }

    /// <summary>Gets a value indicating whether the upstream's base path ends in <c>/v1</c> (some gateways): agents must then send paths without it.</summary>
    public bool BasePathEndsWithVersion { get; }

    public PathString PathPrefix { get; }

    /// <summary>Gets the path this pool's key checks call, when the pool names its own (<c>Pools:{name}:ProbePath</c>).</summary>
    public string? ProbePath { get; init; }

    public bool IsDefault { get; }

    /// <summary>Gets a value indicating whether the pool asks chat streams for their usage (<c>Pools:{name}:AskForStreamUsage</c>; OpenAI pools only).</summary>
    public bool AsksForStreamUsage { get; init; }

    public KeySelection Selection { get; }

    public HttpMessageInvoker Client { get; }

    /// <summary>Gets the pool that serves when none of this pool's keys can (safe mode), if any.</summary>
    public Pool? Fallback { get; private set; }

    /// <summary>Gets the model to ask the fallback for instead of the request's own, if any.</summary>
    public string? FallbackModel { get; private set; }

    /// <summary>Gets the pool's circuit breaker, when circuit breaking is on.</summary>
    internal Failover.UpstreamCircuit? Circuit { get; set; }

    internal void UseFallback(Pool fallback, string? model)
    {
        Fallback = fallback;
        FallbackModel = model;
    }

    public ForwarderRequestConfig RequestConfig { get; }

    /// <summary>Gets the keys in service now, by priority. A snapshot: keys added or removed later are not in it.</summary>
    public IReadOnlyList<PoolKey> Keys => _ring.Keys;

    /// <summary>Finds a key in service by name.</summary>
    public PoolKey? FindKey(string name) => Array.Find(_ring.Keys, k => string.Equals(k.Name, name, StringComparison.Ordinal));

    /// <summary>
    /// Changes the pool's key set: <paramref name="change"/> gets the current keys and returns the new ones. Writers are
    /// serialized; the request path keeps reading the old ring without a lock until the new one is swapped in, and keys
    /// left out are retired so their background work stops.
    /// </summary>
    internal void ChangeKeys(Func<IReadOnlyList<PoolKey>, IEnumerable<PoolKey>> change)
    {
        lock (_changing)
        {
            var before = _ring.Keys;
            var after = new KeyRing([.. change(before)]);
            _ring = after;
            foreach (var key in before)
            {
                if (Array.IndexOf(after.Keys, key) < 0)
                {
                    key.Retire();
                }
            }
        }
    }

    /// <summary>The Anthropic API version sent when the client names none.</summary>
    public const string AnthropicVersion = "2023-06-01";

    /// <summary>
    /// Puts <paramref name="key"/> on an outgoing request in its own scheme (<see cref="PoolKey.Scheme"/>), replacing
    /// whatever credential the request carried; an OAuth token also gets the OAuth beta, added to the client's own
    /// <c>anthropic-beta</c> values. An Anthropic pool's requests get <c>anthropic-version</c> when they carry none. The
    /// one place a secret is put on the wire, for forwarded requests and key checks alike.
    /// </summary>
    public void Authorize(HttpRequestHeaders headers, PoolKey key)
    {
        // The client's token came in one of these; api-key never gets this far (UpstreamHeaders drops it).
        headers.Remove("x-api-key");
        headers.Remove("Authorization");
        headers.TryAddWithoutValidation(key.HeaderName, key.HeaderValue);
        if (key.Account is { } account)
        {
            account.AddTo(headers);
        }

        if (key.Scheme == CredentialScheme.AnthropicOAuth)
        {
            AddBeta(headers, CredentialSchemes.OAuthBeta);
        }

        if (Kind == ProviderKind.Anthropic && !headers.NonValidated.Contains("anthropic-version"))
        {
            headers.TryAddWithoutValidation("anthropic-version", AnthropicVersion);
        }
    }

    /// <summary>Adds <paramref name="beta"/> to the request's <c>anthropic-beta</c> values unless the client already asked for it.</summary>
    private static void AddBeta(HttpRequestHeaders headers, string beta)
    {
        if (headers.NonValidated.TryGetValues("anthropic-beta", out var values))
        {
            foreach (var value in values)
            {
                foreach (var range in value.AsSpan().Split(','))
                {
                    if (value.AsSpan()[range].Trim().Equals(beta, StringComparison.OrdinalIgnoreCase))
                    {
                        return;
                    }
                }
            }
        }

        // A second value of the same header: it goes out as "client-betas, oauth-2025-04-20".
        headers.TryAddWithoutValidation("anthropic-beta", beta);
    }

    /// <summary>
    /// Picks the best key that can serve now and is not in <paramref name="tried"/>: lowest priority first, rotating within a
    /// priority group when <see cref="KeySelection.RoundRobin"/>. A suspect key (<see cref="PoolKey.Suspicion"/>) is tried
    /// last, never excluded. A key out for what <paramref name="request"/> asks (its model, its model class, its kind of
    /// client: <see cref="PoolKey.Scopes"/>) is passed over. Lock-free and allocation-free; the clock is read only when a
    /// cooling or scoped key is met, and the request's scope only when a scoped key is.
    /// </summary>
    public PoolKey? SelectKey(List<PoolKey>? tried, TimeProvider time, IScopedRequest? request = null)
        => Select(tried, time, request, suspects: false) ?? Select(tried, time, request, suspects: true);

    private PoolKey? Select(List<PoolKey>? tried, TimeProvider time, IScopedRequest? request, bool suspects)
    {
        var ring = _ring;
        var keys = ring.Keys;
        var groupStarts = ring.GroupStarts;
        var nowUnixMs = -1L;
        for (var group = 0; group < groupStarts.Length - 1; group++)
        {
            var start = groupStarts[group];
            var count = groupStarts[group + 1] - start;
            var offset = Selection == KeySelection.RoundRobin && count > 1
                ? (int)((uint)Interlocked.Increment(ref ring.RoundRobin[group]) % (uint)count)
                : 0;

            for (var i = 0; i < count; i++)
            {
                var key = keys[start + ((offset + i) % count)];
                if (tried is not null && tried.Contains(key))
                {
                    continue;
                }

                if ((key.Suspicion is null) == suspects)
                {
                    if (!suspects && key.TryTakeTrial(time))
                    {
                        // A suspect no check can judge, given its trial: ahead of the others, once.
                        return key;
                    }

                    continue;
                }

                if (request is not null && key.Scopes is not null)
                {
                    if (nowUnixMs < 0)
                    {
                        nowUnixMs = time.GetUtcNow().ToUnixTimeMilliseconds();
                    }

                    if (key.IsScopedOut(request.Scope, nowUnixMs))
                    {
                        continue;
                    }
                }

                var health = key.Health;
                if (health.IsUsable)
                {
                    return key;
                }

                if (health.State == State.KeyState.Dead && key.TryTakeTrial(time))
                {
                    // A dead key no check can judge gets one real request now and then; the walk goes on if it fails.
                    return key;
                }

                if (health.IsCooling)
                {
                    if (nowUnixMs < 0)
                    {
                        nowUnixMs = time.GetUtcNow().ToUnixTimeMilliseconds();
                    }

                    if (health.CanServeAt(nowUnixMs))
                    {
                        return key;
                    }
                }
            }
        }

        return null;
    }

    /// <summary>Counts the keys that could serve at <paramref name="now"/>.</summary>
    public int CountUsable(DateTimeOffset now)
    {
        var nowUnixMs = now.ToUnixTimeMilliseconds();
        return _ring.Keys.Count(k => k.Health.CanServeAt(nowUnixMs));
    }

    /// <summary>An immutable set of keys sorted by priority, replaced whole when keys are added or removed.</summary>
    private sealed class KeyRing
    {
        public KeyRing(IReadOnlyList<PoolKey> keys)
        {
            // A stable sort: keys of equal priority keep the order they were given (configuration order).
            Keys = [.. keys.OrderBy(k => k.Priority)];
            var starts = new List<int>();
            for (var i = 0; i < Keys.Length; i++)
            {
                if (i == 0 || Keys[i].Priority != Keys[i - 1].Priority)
                {
                    starts.Add(i);
                }
            }

            starts.Add(Keys.Length);
            GroupStarts = [.. starts];
            RoundRobin = new int[GroupStarts.Length];
        }

        public PoolKey[] Keys { get; }

        /// <summary>Gets where each priority group begins, plus a sentinel at the end.</summary>
        public int[] GroupStarts { get; }

        /// <summary>Gets the rotation counter of each priority group.</summary>
        public int[] RoundRobin { get; }
    }
}
