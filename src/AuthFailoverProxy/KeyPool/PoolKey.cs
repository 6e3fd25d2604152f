using AuthFailoverProxy.State;

namespace AuthFailoverProxy.KeyPool;

/// <summary>A credential in a pool at runtime: identity, the secret (kept private to the request path) and its health.</summary>
internal sealed class PoolKey
{
    private KeyHealth _health;

    public PoolKey(string pool, string name, string secret, int priority, string source, ProviderKind kind, DateTimeOffset now)
    {
        Pool = pool;
        Name = name;
        Secret = secret;
        Priority = priority;
        Source = source;
        Format = KeyFormats.Detect(secret);
        Fingerprint = KeyFormats.Fingerprint(secret);
        // Built once so the request path never concatenates strings.
        HeaderValue = kind == ProviderKind.OpenAI ? "Bearer " + secret : secret;
        _health = KeyHealth.Initial(now);
    }

    public string Pool { get; }

    public string Name { get; }

    public int Priority { get; }

    /// <summary>Gets where the secret came from: <c>configuration</c>, <c>environment</c>, <c>file</c>….</summary>
    public string Source { get; }

    public KeyFormat Format { get; }

    /// <summary>Gets the only rendering of the secret that may be shown: <c>sk-ant-api03-…Xy7A</c>.</summary>
    public string Fingerprint { get; }

    /// <summary>Gets the secret. Read only to send it upstream and to recognise it in upstream messages.</summary>
    internal string Secret { get; }

    /// <summary>Gets the value of the auth header the pool's provider expects (<c>x-api-key</c> or <c>Authorization</c>).</summary>
    internal string HeaderValue { get; }

    public KeyHealth Health => Volatile.Read(ref _health);

    /// <summary>Atomically replaces <paramref name="expected"/> with <paramref name="next"/>.</summary>
    internal bool TryTransition(KeyHealth expected, KeyHealth next)
        => ReferenceEquals(Interlocked.CompareExchange(ref _health, next, expected), expected);

    /// <summary>Names the key for people and logs: never the secret.</summary>
    public override string ToString() => $"'{Name}' ({Fingerprint})";
}
