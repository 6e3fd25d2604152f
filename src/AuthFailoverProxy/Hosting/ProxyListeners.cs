using System.Net;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace AuthFailoverProxy.Hosting;

/// <summary>
/// Two listeners: agents on the standard <c>--urls</c> / <c>ASPNETCORE_URLS</c> (default <c>http://localhost:8080</c>), and
/// management on <c>Management:Urls</c> (default <c>http://localhost:9090</c>). Management connections are marked as they
/// are accepted, so a request is known to be on the management listener by the socket it came in on: a forged
/// <c>Host</c> header cannot reach management endpoints through the agent port.
/// </summary>
internal sealed class ProxyListeners
{
    public const string DefaultAgentUrls = "http://localhost:8080";

    private readonly List<ListenOptions> _agent = [];
    private readonly List<ListenOptions> _management = [];

    /// <summary>Gets the agent listener's bound endpoints (real ports once the server has started).</summary>
    public IEnumerable<IPEndPoint> AgentEndpoints => _agent.Select(o => o.IPEndPoint!);

    /// <summary>Gets the management listener's bound endpoints.</summary>
    public IEnumerable<IPEndPoint> ManagementEndpoints => _management.Select(o => o.IPEndPoint!);

    /// <summary>Gets what is wrong with the listeners' addresses; nothing listens while there is anything.</summary>
    public List<string> Problems { get; } = [];

    public static bool IsManagement(HttpContext context) => context.Features.Get<ManagementConnection>() is not null;

    internal void Configure(KestrelServerOptions kestrel, IConfiguration configuration)
    {
        var agentUrls = configuration["AgentUrls"] ?? DefaultAgentUrls;
        var managementUrls = configuration["Management:Urls"] ?? new ManagementOptions().Urls;
        var agent = Parse("urls (--urls, ASPNETCORE_URLS)", agentUrls, Problems);
        var management = Parse("Management:Urls (AFP_MANAGEMENT_URLS)", managementUrls, Problems);
        var shared = agent.Select(a => a.Port).Intersect(management.Select(m => m.Port)).Where(p => p != 0).ToList();
        if (shared.Count > 0)
        {
            Problems.Add($"Management:Urls and urls both use port {shared[0]}: the management listener needs a port of its own so /status and admin are never reachable by agents.");
        }

        if (Problems.Count > 0)
        {
            // Told with every other problem of the configuration by ConfigurationCheck, which stops the start.
            return;
        }

        // The proxy enforces its own body limit (RequestBody:MaxBytes) and answers 413 in the provider's format.
        kestrel.Limits.MaxRequestBodySize = null;
        kestrel.AddServerHeader = false;
        foreach (var address in agent)
        {
            Listen(kestrel, address, o => _agent.Add(o));
        }

        foreach (var address in management)
        {
            Listen(kestrel, address, o =>
            {
                o.Use(next => connection =>
                {
                    connection.Features.Set(ManagementConnection.Instance);
                    return next(connection);
                });
                _management.Add(o);
            });
        }
    }

    private static void Listen(KestrelServerOptions kestrel, BindingAddress address, Action<ListenOptions> configure)
    {
        if (string.Equals(address.Host, "localhost", StringComparison.OrdinalIgnoreCase))
        {
            // Loopback on IPv4 (and IPv6 where the machine has it), as Kestrel does for "localhost".
            kestrel.Listen(IPAddress.Loopback, address.Port, configure);
            if (System.Net.Sockets.Socket.OSSupportsIPv6 && address.Port != 0)
            {
                kestrel.Listen(IPAddress.IPv6Loopback, address.Port, configure);
            }
        }
        else if (IPAddress.TryParse(address.Host, out var ip))
        {
            kestrel.Listen(ip, address.Port, configure);
        }
        else
        {
            // "+", "*", "0.0.0.0" or a host name: every interface, as in a container.
            kestrel.ListenAnyIP(address.Port, configure);
        }
    }

    private static List<BindingAddress> Parse(string setting, string urls, List<string> problems)
    {
        var result = new List<BindingAddress>();
        foreach (var url in urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            BindingAddress address;
            try
            {
                address = BindingAddress.Parse(url);
            }
            catch (FormatException)
            {
                problems.Add($"{setting}: '{ConfigurationShape.WithoutCredentials(url)}' is not a URL such as http://0.0.0.0:8080.");
                continue;
            }

            if (!string.Equals(address.Scheme, "http", StringComparison.OrdinalIgnoreCase))
            {
                problems.Add($"{setting}: '{ConfigurationShape.WithoutCredentials(url)}' uses {address.Scheme}; the proxy listens on plain http and expects TLS to end at the ingress or service mesh.");
                continue;
            }

            result.Add(address);
        }

        if (result.Count == 0 && problems.Count == 0)
        {
            problems.Add($"{setting} is empty.");
        }

        return result;
    }

    /// <summary>Marks a connection accepted on the management listener.</summary>
    private sealed class ManagementConnection
    {
        public static readonly ManagementConnection Instance = new();
    }
}

/// <summary>Registers the two listeners.</summary>
internal static class ProxyListenersExtensions
{
    public static WebApplicationBuilder AddProxyListeners(this WebApplicationBuilder builder)
    {
        var listeners = new ProxyListeners();
        builder.Services.AddSingleton(listeners);

        // The agent listener honours the standard --urls / ASPNETCORE_URLS, but the proxy binds it itself (to tell the two
        // listeners apart by connection), so Kestrel says it overrides them; ProxyLogging drops that one line.
        if (builder.Configuration[WebHostDefaults.ServerUrlsKey] is { Length: > 0 } urls)
        {
            builder.Configuration["AgentUrls"] = urls;
        }

        builder.WebHost.ConfigureKestrel((context, kestrel) => listeners.Configure(kestrel, context.Configuration));
        return builder;
    }
}
