using System.Text;
using AuthFailoverProxy.Demo.Provider;

namespace AuthFailoverProxy.Tests.Fakes;

/// <summary>A simulated upstream plus the proxy in front of it, with two (or more) keys: the usual test bench.</summary>
internal sealed class Scenario : IAsyncDisposable
{
    private Scenario(SimulatedProvider upstream, ProxyHost proxy, Dictionary<string, string> secrets)
    {
        Upstream = upstream;
        Proxy = proxy;
        SecretsByName = secrets;
    }

    public SimulatedProvider Upstream { get; }

    public ProxyHost Proxy { get; }

    public IReadOnlyDictionary<string, string> SecretsByName { get; }

    public string Secret(string name) => SecretsByName[name];

    public static async Task<Scenario> StartAsync(
        string kind = "anthropic",
        string[]? keyNames = null,
        Action<ProxyConfig>? configure = null,
        TimeProvider? time = null,
        Func<string, string>? secretFor = null,
        SimulatedProviderOptions? provider = null,
        Func<string, string>? organizationOf = null)
    {
        var upstream = await SimulatedProvider.StartAsync(time, options: provider, cancellationToken: TestContext.Current.CancellationToken);
        var secrets = (keyNames ?? ["primary", "backup"]).ToDictionary(
            n => n,
            n => secretFor?.Invoke(n) ?? (kind == "openai" ? Secrets.OpenAIKey() : Secrets.AnthropicApiKey()));
        // By default each key its own organization, as a pool meant to fail over is made: keys of one share its rate limits.
        foreach (var (name, secret) in secrets)
        {
            upstream.SetKeyOrganization(secret, organizationOf?.Invoke(name) ?? "org-" + name);
        }

        var config = new ProxyConfig().Pool(kind, upstream, kind, isDefault: true, [.. secrets.Select(s => (s.Key, s.Value))]);
        configure?.Invoke(config);
        var proxy = await ProxyHost.StartAsync(config, time);
        return new Scenario(upstream, proxy, secrets);
    }

    public static StringContent MessageBody(string model = "claude-sonnet-4-5", bool stream = false)
        => new(
            $$"""{"model":"{{model}}","max_tokens":64,"stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"Hello"}]}""",
            Encoding.UTF8,
            "application/json");

    /// <summary>A body for <c>/v1/messages/count_tokens</c>, which takes no <c>max_tokens</c> or <c>stream</c>.</summary>
    public static StringContent CountTokensBody(string model = "claude-sonnet-4-5")
        => new($$"""{"model":"{{model}}","messages":[{"role":"user","content":"Hello"}]}""", Encoding.UTF8, "application/json");

    public Task<HttpResponseMessage> PostMessageAsync(HttpClient? client = null)
        => (client ?? Proxy.Agent).PostAsync("/v1/messages", MessageBody(), TestContext.Current.CancellationToken);

    public async Task<System.Text.Json.JsonElement> StatusAsync()
        => await Proxy.Management.GetFromJsonAsync<System.Text.Json.JsonElement>("/status", TestContext.Current.CancellationToken);

    /// <summary>Gets the state /status reports for a key.</summary>
    public async Task<string> KeyStateAsync(string name)
    {
        var status = await StatusAsync();
        foreach (var pool in status.GetProperty("pools").EnumerateArray())
        {
            foreach (var key in pool.GetProperty("keys").EnumerateArray())
            {
                if (key.GetProperty("name").GetString() == name)
                {
                    return key.GetProperty("state").GetString()!;
                }
            }
        }

        throw new InvalidOperationException($"no key {name} in /status");
    }

    /// <summary>Counts the agents' requests the upstream got with a key (the proxy's own key checks excluded).</summary>
    /// <summary>
    /// Waits until /status reports <paramref name="state"/> for a key: a key a request found failing is blamed once a
    /// check confirms it, a moment after the request.
    /// </summary>
    public async Task WaitForKeyStateAsync(string name, string state)
    {
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        bound.CancelAfter(TimeSpan.FromSeconds(20));
        while (await KeyStateAsync(name) != state)
        {
            await Task.Delay(10, bound.Token);
        }
    }

    public int UpstreamCallsWith(string keyName) => Upstream.Requests.Count(r => r.Key == Secret(keyName) && !IsKeyCheck(r));

    /// <summary>Counts the proxy's own checks of a key (startup, confirmation, healing).</summary>
    public int KeyChecksOf(string keyName) => Upstream.Requests.Count(r => r.Key == Secret(keyName) && IsKeyCheck(r));

    /// <summary>Gets the agents' requests the upstream got, the proxy's own key checks left out.</summary>
    public IReadOnlyList<RecordedRequest> AgentRequests => [.. Upstream.Requests.Where(r => !IsKeyCheck(r))];

    public static bool IsKeyCheck(RecordedRequest request) => request.Headers.TryGetValue("user-agent", out var agent) && agent == AuthFailoverProxy.Health.KeyProber.UserAgent;

    public async ValueTask DisposeAsync()
    {
        await Proxy.DisposeAsync();
        await Upstream.DisposeAsync();
    }
}
