using AuthFailoverProxy.Admin;
using AuthFailoverProxy.Failover;
using AuthFailoverProxy.Health;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.Proxying;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Hosting;

/// <summary>The composition root, shared by <c>Program</c>, the demo and the functional tests, so they all run the same app.</summary>
internal static class ProxyApplication
{
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? customize = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.Configuration.AddQuickStart();
        customize?.Invoke(builder);

        builder.AddProxyLogging();
        builder.AddProxyListeners();
        builder.Services.AddKeyPools();
        builder.Services.AddFailover();
        builder.Services.AddProxyHealth();
        builder.Services.AddHostedService<StartupReport>();

        var app = builder.Build();
        app.MapManagement();
        app.MapAgentProxy();
        return app;
    }

    /// <summary>Runs until shutdown. A configuration mistake ends the process with exit code 2 and every problem listed, no stack trace.</summary>
    public static async Task<int> RunAsync(WebApplication app)
    {
        try
        {
            await app.RunAsync();
            return 0;
        }
        catch (Exception ex) when (ConfigurationProblems(ex) is { Count: > 0 } problems)
        {
            await Console.Error.WriteLineAsync("AuthFailoverProxy cannot start: the configuration needs fixing.");
            foreach (var problem in problems)
            {
                await Console.Error.WriteLineAsync("  - " + problem);
            }

            return 2;
        }
    }

    internal static List<string> ConfigurationProblems(Exception exception) => exception switch
    {
        OptionsValidationException options => [.. options.Failures],
        AggregateException aggregate => [.. aggregate.InnerExceptions.SelectMany(ConfigurationProblems)],
        // Binding failures ("Failed to convert configuration value at 'Failover:Deadline'…") and listener mistakes.
        InvalidOperationException { InnerException: null or FormatException or InvalidOperationException } invalid when IsConfigurationMessage(invalid.Message) => [invalid.Message],
        _ when exception.InnerException is { } inner => ConfigurationProblems(inner),
        _ => [],
    };

    private static bool IsConfigurationMessage(string message)
        => message.Contains("configuration", StringComparison.OrdinalIgnoreCase) || message.Contains("Urls", StringComparison.Ordinal) || message.Contains("urls", StringComparison.Ordinal);
}
