using AuthFailoverProxy.Admin;
using AuthFailoverProxy.Alerts;
using AuthFailoverProxy.Audit;
using AuthFailoverProxy.Events;
using AuthFailoverProxy.Failover;
using AuthFailoverProxy.Health;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.Proxying;
using AuthFailoverProxy.State;
using AuthFailoverProxy.Telemetry;
using AuthFailoverProxy.Usage;
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
        builder.GuardConfigurationReloads();
        var problems = ConfigurationShape.Check(builder.Configuration);
        problems.AddRange(QuickStartConfigurationProvider.ProblemsIn(builder.Configuration));
        if (problems.Count > 0)
        {
            throw new OptionsValidationException("configuration", typeof(ConfigurationShape), problems);
        }

        builder.AddProxyLogging();
        builder.AddProxyListeners();
        builder.Services.AddProxyEvents();
        builder.Services.AddAlerts(builder.Configuration);
        builder.Services.AddProxyTelemetry(builder.Configuration);
        builder.Services.AddHeartbeat();
        builder.Services.AddAuditTrail(builder.Configuration);
        builder.Services.AddKeyPools();
        builder.Services.AddKeyStateStore(builder.Configuration);
        builder.Services.AddUsage(builder.Configuration);
        builder.Services.AddFailover();
        builder.Services.AddProxyHealth();
        builder.Services.AddCredentialChecks();
        builder.Services.AddHostedService<StartupReport>();

        var app = builder.Build();
        try
        {
            // Every problem at once, before the endpoints below resolve the options they need.
            ConfigurationCheck.Validate(app);
            app.MapManagement();
            app.MapAgentProxy();
        }
        catch
        {
            ((IDisposable)app).Dispose();
            throw;
        }

        return app;
    }

    /// <summary>
    /// Says where the demo and the drill went when someone asks the service for them (older instructions did): they live
    /// in their own project so that the shipped service carries no test machinery. Returns null for any other command line.
    /// </summary>
    public static string? MovedCommand(string[] args)
    {
        if (args.Contains("--demo"))
        {
            return "The demo is not part of the service: run it with 'dotnet run --project src/AuthFailoverProxy.Demo'.";
        }

        return args is ["drill", ..]
            ? "The chaos drill is not part of the service: run it with 'dotnet run --project src/AuthFailoverProxy.Demo -- drill [--short]'."
            : null;
    }

    /// <summary>Builds the app from <paramref name="args"/> and runs it until shutdown; see <see cref="RunAsync(WebApplication)"/>.</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        WebApplication app;
        try
        {
            app = Build(args);
        }
        catch (Exception ex)
        {
            // A configuration file that does not parse, a listener address that is not one: plain words, never a stack trace.
            return await ReportStartFailureAsync(ex, Console.Error);
        }

        await using (app)
        {
            return await RunAsync(app);
        }
    }

    /// <summary>
    /// Runs until shutdown. A start that fails ends the process with every problem in plain words and no stack trace:
    /// exit code 2 for configuration mistakes (each naming the key to fix), 1 for anything else (a port in use, say).
    /// </summary>
    public static async Task<int> RunAsync(WebApplication app)
    {
        // Read before running: a failed start disposes the host, and with it the service provider.
        var lifetime = app.Lifetime;
        try
        {
            await app.RunAsync();
            return 0;
        }
        catch (Exception ex) when (!lifetime.ApplicationStarted.IsCancellationRequested)
        {
            return await ReportStartFailureAsync(ex, Console.Error);
        }
    }

    /// <summary>Explains a failed start in plain words and returns the exit code: 2 for configuration mistakes, 1 otherwise.</summary>
    internal static async Task<int> ReportStartFailureAsync(Exception exception, TextWriter output)
    {
        var problems = ConfigurationProblems(exception);
        await output.WriteLineAsync(problems.Count > 0
            ? "AuthFailoverProxy cannot start: the configuration needs fixing."
            : "AuthFailoverProxy cannot start: " + string.Join(" ", Messages(exception).Distinct()));
        foreach (var problem in problems)
        {
            await output.WriteLineAsync("  - " + problem);
        }

        return problems.Count > 0 ? 2 : 1;
    }

    private static IEnumerable<string> Messages(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is not AggregateException)
            {
                yield return e.Message;
            }
        }
    }

    /// <summary>Returns the configuration mistakes <paramref name="exception"/> tells of, each once; none when it is not about configuration.</summary>
    internal static List<string> ConfigurationProblems(Exception exception) => [.. ProblemsIn(exception).Distinct(StringComparer.Ordinal)];

    private static List<string> ProblemsIn(Exception exception) => exception switch
    {
        OptionsValidationException options => [.. options.Failures],
        // A configuration file that does not parse: the file's path and the parser's place ("LineNumber: 3"), no content.
        InvalidDataException { InnerException: { } parse } data => [$"{data.Message} {parse.Message} {parse.InnerException?.Message}".TrimEnd()],
        AggregateException aggregate => [.. aggregate.InnerExceptions.SelectMany(ProblemsIn)],
        // Binding failures ("Failed to convert configuration value at 'Failover:Deadline'…") and listener mistakes.
        InvalidOperationException { InnerException: null or FormatException or InvalidOperationException } invalid when IsConfigurationMessage(invalid.Message) => [invalid.Message],
        _ when exception.InnerException is { } inner => ProblemsIn(inner),
        _ => [],
    };

    private static bool IsConfigurationMessage(string message)
        => message.Contains("configuration", StringComparison.OrdinalIgnoreCase) || message.Contains("Urls", StringComparison.Ordinal) || message.Contains("urls", StringComparison.Ordinal);
}
