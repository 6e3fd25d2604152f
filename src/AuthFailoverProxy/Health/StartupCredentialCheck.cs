using System.Globalization;
using System.Text;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Health;

/// <summary>
/// At start, before anyone depends on a credential: warns about risky keys (<see cref="KeyLint"/>), checks every key
/// at once, each independently and with a timeout, takes the rejected ones out of service and says per pool, in one
/// plain sentence, what it found. The process serves meanwhile and whatever the outcome: a bad key never stops it.
/// </summary>
/// <remarks>Its dependencies are resolved when it runs: hosted services are built before the host validates options.</remarks>
internal sealed partial class StartupCredentialCheck(IServiceProvider services, IOptions<ProbeOptions> options, ILogger<StartupCredentialCheck> logger) : BackgroundService
{
    private readonly TaskCompletionSource _completed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Gets a task that completes when every key has been checked and the summaries are logged.</summary>
    public Task Completion => _completed.Task;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            var registry = services.GetRequiredService<PoolRegistry>();
            foreach (var finding in KeyLint.Check(registry.Pools))
            {
                LogLint(logger, finding.Pool, finding.Key, finding.Fingerprint, finding.Message);
            }

            if (options.Value.AtStartup)
            {
                await CheckAllAsync(registry, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down before the checks finished.
        }
        finally
        {
            _completed.TrySetResult();
        }
    }

    private async Task CheckAllAsync(PoolRegistry registry, CancellationToken stoppingToken)
    {
        var prober = services.GetRequiredService<KeyProber>();
        var board = services.GetRequiredService<KeyStateBoard>();
        var keys = registry.Pools.SelectMany(pool => pool.Keys.Select(key => (Pool: pool, Key: key))).ToList();
        var probes = await Task.WhenAll(keys.Select(k => prober.ProbeAsync(k.Pool, k.Key, stoppingToken)));
        var checks = keys.Zip(probes, (k, probe) => (k.Pool, k.Key, Probe: probe)).ToList();

        foreach (var (_, key, probe) in checks)
        {
            switch (probe)
            {
                case { Outcome: ProbeOutcome.Dead, Failure: { } failure }:
                    board.ReportDead(key, failure);
                    break;
                case { Outcome: ProbeOutcome.Cooling, Failure: { } failure } cooling:
                    board.ReportCooling(key, failure, cooling.CoolUntil);
                    break;
            }
        }

        foreach (var group in checks.GroupBy(c => c.Pool))
        {
            var results = group.Select(c => (c.Key, c.Probe)).ToList();
            var summary = Summarize(results);
            var usable = results.Count(r => r.Probe.Outcome is ProbeOutcome.Usable or ProbeOutcome.Unknown);
            var level = usable == 0 ? LogLevel.Error : usable < results.Count ? LogLevel.Warning : LogLevel.Information;
            LogSummary(logger, level, group.Key.Name, summary);
            services.GetRequiredService<Events.ProxyEvents>().Publish(new Events.ProxyEvent
            {
                Kind = Events.EventKinds.StartupSummary,
                Severity = usable == 0 ? Events.EventSeverity.Critical : usable < results.Count ? Events.EventSeverity.Warning : Events.EventSeverity.Info,
                At = services.GetRequiredService<TimeProvider>().GetUtcNow(),
                Message = $"Credential check at start: pool '{group.Key.Name}': {summary}",
                Pool = group.Key.Name,
            });
        }
    }

    /// <summary>"2 of 3 keys usable. 'primary' rejected: 403 permission_error 'OAuth authentication is…'." (the log line puts the pool first).</summary>
    internal static string Summarize(IReadOnlyList<(PoolKey Key, ProbeResult Probe)> results)
    {
        var usable = results.Count(r => r.Probe.Outcome is ProbeOutcome.Usable or ProbeOutcome.Unknown);
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"{usable} of {results.Count} keys usable.");
        foreach (var (key, probe) in results)
        {
            switch (probe)
            {
                case { Outcome: ProbeOutcome.Dead, Failure: { } failure }:
                    text.Append(CultureInfo.InvariantCulture, $" '{key.Name}' rejected: {failure.Label}");
                    if (!string.IsNullOrEmpty(failure.Message))
                    {
                        text.Append(CultureInfo.InvariantCulture, $" '{failure.Message.TrimEnd('.')}'");
                    }

                    text.Append('.');
                    break;
                case { Outcome: ProbeOutcome.Cooling } cooling:
                    text.Append(CultureInfo.InvariantCulture, $" '{key.Name}' rate limited until {cooling.CoolUntil:HH:mm:ss}Z.");
                    break;
                case { Outcome: ProbeOutcome.Unknown, Reason: var reason }:
                    text.Append(CultureInfo.InvariantCulture, $" '{key.Name}' could not be checked ({reason}); it stays in service.");
                    break;
            }
        }

        return text.ToString();
    }

    [LoggerMessage(EventId = 4001, Message = "Credential check: {Pool:l}: {Summary:l}")]
    private static partial void LogSummary(ILogger logger, LogLevel level, string pool, string summary);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "Pool '{Pool:l}': key '{KeyName:l}' ({Fingerprint:l}): {Finding:l}")]
    private static partial void LogLint(ILogger logger, string pool, string keyName, string fingerprint, string finding);
}
