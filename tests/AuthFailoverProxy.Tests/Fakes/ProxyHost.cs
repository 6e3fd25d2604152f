using System.Net.Http.Headers;
using AuthFailoverProxy.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Serilog.Core;

namespace AuthFailoverProxy.Tests.Fakes;

/// <summary>
/// The real proxy (the same composition root as Program) on loopback ports chosen by the OS, configured per test,
/// with its logs captured and, where a test needs it, its clock replaced.
/// </summary>
internal sealed class ProxyHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ProxyHost(WebApplication app, LogCapture logs, string clientToken)
    {
        _app = app;
        Logs = logs;
        ClientToken = clientToken;
        var listeners = app.Services.GetRequiredService<ProxyListeners>();
        AgentAddress = new Uri($"http://{listeners.AgentEndpoints.First()}");
        ManagementAddress = new Uri($"http://{listeners.ManagementEndpoints.First()}");
        Agent = CreateAgentClient(clientToken);
        Management = new HttpClient { BaseAddress = ManagementAddress, Timeout = TimeSpan.FromSeconds(30) };
    }

    public Uri AgentAddress { get; }

    public Uri ManagementAddress { get; }

    /// <summary>Gets a client that presents the valid client token as x-api-key, as the Anthropic SDK does.</summary>
    public HttpClient Agent { get; }

    public HttpClient Management { get; }

    public LogCapture Logs { get; }

    public string ClientToken { get; }

    public IServiceProvider Services => _app.Services;

    public static async Task<ProxyHost> StartAsync(ProxyConfig config, TimeProvider? time = null, Action<IServiceCollection>? services = null, Action<WebApplicationBuilder>? customize = null)
    {
        var logs = new LogCapture();
        var values = config.Build();
        WebApplication? app = null;
        try
        {
            app = ProxyApplication.Build([], builder =>
            {
                builder.Configuration.AddInMemoryCollection(values);
                builder.Services.AddSingleton<ILogEventSink>(logs);
                if (time is not null)
                {
                    builder.Services.AddSingleton(time);
                }

                services?.Invoke(builder.Services);
                customize?.Invoke(builder);
            });
            await app.StartAsync(TestContext.Current.CancellationToken);
        }
        catch
        {
            // A start that fails on a setting (in building the app or in starting it) may have made the audit trail's
            // directory all the same.
            if (app is not null)
            {
                await app.DisposeAsync();
            }

            DeleteAuditDirectory(values.FirstOrDefault(v => v.Key == "Audit:Directory").Value);
            throw;
        }

        return new ProxyHost(app, logs, config.ClientToken);
    }

    public HttpClient CreateAgentClient(string? token = null)
    {
        var client = new HttpClient { BaseAddress = AgentAddress, Timeout = TimeSpan.FromSeconds(60) };
        if (token is not null)
        {
            client.DefaultRequestHeaders.Add("x-api-key", token);
        }

        client.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        return client;
    }

    public async ValueTask DisposeAsync()
    {
        Agent.Dispose();
        Management.Dispose();
        var audit = _app.Configuration["Audit:Directory"];
        await _app.StopAsync(CancellationToken.None);
        await _app.DisposeAsync();
        DeleteAuditDirectory(audit);
    }

    /// <summary>Deletes the fresh directory ProxyConfig gives each configuration's audit trail; a test's own directory is its own business.</summary>
    private static void DeleteAuditDirectory(string? audit)
    {
        if (audit is not null && Path.GetFileName(audit).StartsWith("afp-audit-", StringComparison.Ordinal) && Directory.Exists(audit))
        {
            Directory.Delete(audit, recursive: true);
        }
    }
}
