using System.Globalization;
using AuthFailoverProxy.Demo.Provider;

namespace AuthFailoverProxy.Tests.Fakes;

/// <summary>Builds the proxy's configuration the way an operator writes it, as flat configuration keys.</summary>
internal sealed class ProxyConfig
{
    private readonly Dictionary<string, string?> _values = new(StringComparer.OrdinalIgnoreCase)
    {
        ["urls"] = "http://127.0.0.1:0",
        ["Management:Urls"] = "http://127.0.0.1:0",
        // Log events are captured as data (LogCapture); the console stays quiet.
        ["AFP_LOG_FORMAT"] = "none",
        // Tests observe retries through the upstream, not through the wall clock.
        ["Failover:RetryDelay"] = "00:00:00",
        // Request-path tests count upstream calls exactly; the credential-check tests turn startup probes on.
        ["Probes:AtStartup"] = "false",
    };

    public ProxyConfig()
    {
        ClientToken = Secrets.ClientToken();
        _values["Clients:Tokens:0:Name"] = "test-agent";
        _values["Clients:Tokens:0:Token"] = ClientToken;
        // The audit trail of each configuration gets a fresh directory, created at start and deleted with the host.
        _values["Audit:Directory"] = Path.Combine(Path.GetTempPath(), $"afp-audit-{Guid.NewGuid():N}");
    }

    public string ClientToken { get; }

    public ProxyConfig Pool(string name, Uri upstream, string kind = "anthropic", bool isDefault = false, params (string Name, string Secret)[] keys)
    {
        _values[$"Pools:{name}:Kind"] = kind;
        _values[$"Pools:{name}:Upstream"] = upstream.ToString();
        if (isDefault)
        {
            _values[$"Pools:{name}:Default"] = "true";
        }

        for (var i = 0; i < keys.Length; i++)
        {
            _values[$"Pools:{name}:Keys:{i}:Name"] = keys[i].Name;
            _values[$"Pools:{name}:Keys:{i}:Secret"] = keys[i].Secret;
        }

        return this;
    }

    /// <summary>
    /// A pool whose upstream is <paramref name="provider"/>, reached as production reaches the real one: HTTPS under the
    /// provider's own name, its CA trusted for this pool only, its name resolving to its loopback address.
    /// </summary>
    public ProxyConfig Pool(string name, SimulatedProvider provider, string kind = "anthropic", bool isDefault = false, params (string Name, string Secret)[] keys)
    {
        Pool(name, provider.BaseAddress, kind, isDefault, keys);
        foreach (var (setting, value) in ProviderTransport(name, provider))
        {
            _values[setting] = value;
        }

        return this;
    }

    /// <summary>The settings that let pool <paramref name="name"/> reach <paramref name="provider"/> under its own name.</summary>
    public static IEnumerable<(string Setting, string Value)> ProviderTransport(string name, SimulatedProvider provider)
    {
        if (provider.CaBundlePath is { } bundle)
        {
            yield return ($"Pools:{name}:Transport:CaBundle", bundle);
            yield return ($"Pools:{name}:Transport:ConnectTo", provider.Endpoint);
        }
    }

    public ProxyConfig Set(string key, string? value)
    {
        _values[key] = value;
        return this;
    }

    public ProxyConfig Remove(string key)
    {
        _values.Remove(key);
        return this;
    }

    public ProxyConfig WithoutClientTokens() => Remove("Clients:Tokens:0:Name").Remove("Clients:Tokens:0:Token");

    public ProxyConfig Set(string key, long value) => Set(key, value.ToString(CultureInfo.InvariantCulture));

    public IEnumerable<KeyValuePair<string, string?>> Build() => _values;
}
