using System.Net.Http.Headers;
using Yarp.ReverseProxy.Forwarder;

namespace AuthFailoverProxy.KeyPool;

/// <summary>A pool at runtime: where to send, how to talk, and which key to use next.</summary>
internal sealed class Pool
{
    private readonly PoolKey[] _keys;
    // Keys are sorted by priority; _groupStarts[i] is where priority group i begins (plus a sentinel at the end).
    private readonly int[] _groupStarts;
    private readonly int[] _roundRobin;

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
        PathPrefix = pathPrefix;
        IsDefault = isDefault;
        Selection = selection;
        Client = client;
        RequestConfig = requestConfig;
        _keys = [.. keys.OrderBy(k => k.Priority)];
        _groupStarts = GroupStarts(_keys);
        _roundRobin = new int[_groupStarts.Length];
    }

    public string Name { get; }

    public ProviderKind Kind { get; }

    /// <summary>Gets the upstream base without a trailing slash; the client's path is appended to it.</summary>
    public string DestinationPrefix { get; }

    public PathString PathPrefix { get; }

    public bool IsDefault { get; }

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

    public IReadOnlyList<PoolKey> Keys => _keys;

    /// <summary>The Anthropic API version sent when the client names none.</summary>
    public const string AnthropicVersion = "2023-06-01";

    /// <summary>
    /// Puts <paramref name="key"/> on an outgoing request the way this pool's provider expects (<c>x-api-key</c> for
    /// Anthropic, <c>Authorization: Bearer</c> for OpenAI), replacing whatever credential the request carried, and adds
    /// <c>anthropic-version</c> when none is there. The one place a secret is put on the wire.
    /// </summary>
    public void Authorize(HttpRequestHeaders headers, PoolKey key)
    {
        headers.Remove("x-api-key");
        headers.Remove("Authorization");
        if (Kind == ProviderKind.Anthropic)
        {
            headers.TryAddWithoutValidation("x-api-key", key.HeaderValue);
            if (!headers.NonValidated.Contains("anthropic-version"))
            {
                headers.TryAddWithoutValidation("anthropic-version", AnthropicVersion);
            }
        }
        else
        {
            headers.TryAddWithoutValidation("Authorization", key.HeaderValue);
        }
    }

    /// <summary>
    /// Picks the best key that can serve now and is not in <paramref name="tried"/>: lowest priority first, rotating within a
    /// priority group when <see cref="KeySelection.RoundRobin"/>. Lock-free and allocation-free; the clock is read only
    /// when a cooling key is met.
    /// </summary>
    public PoolKey? SelectKey(List<PoolKey>? tried, TimeProvider time)
    {
        var keys = _keys;
        var nowUnixMs = -1L;
        for (var group = 0; group < _groupStarts.Length - 1; group++)
        {
            var start = _groupStarts[group];
            var count = _groupStarts[group + 1] - start;
            var offset = Selection == KeySelection.RoundRobin && count > 1
                ? (int)((uint)Interlocked.Increment(ref _roundRobin[group]) % (uint)count)
                : 0;

            for (var i = 0; i < count; i++)
            {
                var key = keys[start + ((offset + i) % count)];
                if (tried is not null && tried.Contains(key))
                {
                    continue;
                }

                var health = key.Health;
                if (health.IsUsable)
                {
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
        return _keys.Count(k => k.Health.CanServeAt(nowUnixMs));
    }

    private static int[] GroupStarts(PoolKey[] sortedKeys)
    {
        var starts = new List<int>();
        for (var i = 0; i < sortedKeys.Length; i++)
        {
            if (i == 0 || sortedKeys[i].Priority != sortedKeys[i - 1].Priority)
            {
                starts.Add(i);
            }
        }

        starts.Add(sortedKeys.Length);
        return [.. starts];
    }
}
