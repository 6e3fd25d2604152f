using System.CommandLine;
using AuthFailoverProxy.Admin;
using AuthFailoverProxy.Health;
using AuthFailoverProxy.Hosting;
using AuthFailoverProxy.KeyPool;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.FileProviders;

namespace AuthFailoverProxy.Cli;

/// <summary>
/// <c>afp check-config [FILE] [--probe]</c>: like <c>nginx -t</c>, checks a configuration without applying it, with the
/// proxy's own start-up checks (<see cref="ConfigurationCheck"/>): every problem, each naming the key to fix. With
/// <c>--probe</c> it then checks each key against its upstream with the proxy's own prober, and says what applying the
/// file would change on the running proxy (<c>GET /admin/config</c>).
/// </summary>
internal static class CheckConfigCommand
{
    public static Command Create(GlobalOptions options, CliEnvironment environment)
    {
        var file = new Argument<string?>("file")
        {
            Description = "The configuration file. Default: appsettings.json in ASPNETCORE_CONTENTROOT or the current directory (where the proxy reads it); without one, the environment's settings alone.",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var probe = new Option<bool>("--probe")
        {
            Description = "Also check each key against its upstream, and show what the file would change on the running proxy (--url): keys added, removed, replaced or re-ranked, by name and fingerprint.",
        };
        var command = new Command("check-config", "Check a configuration as the proxy does at start, without applying it: every problem with the key to fix (exit 2), or exit 0. The file is read with this environment's variables (Pools__…, AFP_KEYS…), as the proxy would read it.")
        {
            file, probe,
        };
        command.SetAction(options, environment, (session, cancellationToken) => RunAsync(session, session.Parse.GetValue(file), session.Parse.GetValue(probe), cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(CliSession session, string? file, bool probe, CancellationToken cancellationToken)
    {
        var path = Locate(session.Environment, file);
        var (problems, app) = ConfigurationCheck.Run(path is null ? [] : ["--contentRoot", Path.GetDirectoryName(path)!], builder => ReadOnly(builder, path));
        var report = new CheckConfigReport(path, problems.Count == 0, problems);
        if (app is null)
        {
            await WriteAsync(session, report);
            return ExitCodes.Usage;
        }

        await using (app)
        {
            var registry = app.Services.GetRequiredService<PoolRegistry>();
            var shape = ConfigurationReport.Capture(registry);
            report = report with
            {
                Pools = shape.Pools,
                Warnings = [.. KeyLint.Check(registry.Pools).Select(f => $"{f.Pool}/{f.Key} ({f.Fingerprint}): {f.Message}")],
            };
            if (!probe)
            {
                await WriteAsync(session, report);
                return ExitCodes.Ok;
            }

            var checks = await CheckKeysAsync(registry, app.Services.GetRequiredService<KeyProber>(), cancellationToken);
            report = report with { Checks = checks };
            try
            {
                var answer = await session.Proxy.ReadAsync("admin/config", cancellationToken);
                var running = session.Proxy.Parse(answer, AdminJsonContext.Default.ConfigurationReport);
                report = report with { Proxy = session.Proxy.Shown, Replica = running.Replica, Changes = ConfigurationDiff.Compare(running, shape) };
            }
            catch (CliException ex)
            {
                report = report with { Proxy = session.Proxy.Shown, Error = "could not compare with the running proxy: " + ex.Message };
            }

            await WriteAsync(session, report);
            return report.Error is null && checks.All(c => c.Outcome != "rejected") ? ExitCodes.Ok : ExitCodes.Failed;
        }
    }

    /// <summary>The file to check: the one named, or the proxy's own appsettings.json where it reads it, or none.</summary>
    private static string? Locate(CliEnvironment environment, string? file)
    {
        if (file is not null)
        {
            return File.Exists(file)
                ? Path.GetFullPath(file)
                : throw new CliException(ExitCodes.Usage, Directory.Exists(file) ? $"'{file}' is a directory: name the configuration file in it (…/appsettings.json)." : $"'{file}': no such file.");
        }

        var standard = Path.GetFullPath(Path.Combine(environment.Variable("ASPNETCORE_CONTENTROOT") ?? ".", "appsettings.json"));
        return File.Exists(standard) ? standard : null;
    }

    /// <summary>Reads <paramref name="path"/> in place of the proxy's appsettings files, once (no reload), and keeps the checks' logging off the console.</summary>
    private static void ReadOnly(WebApplicationBuilder builder, string? path)
    {
        var sources = builder.Configuration.Sources;
        var index = sources.ToList().FindIndex(s => s is JsonConfigurationSource);
        foreach (var json in sources.OfType<JsonConfigurationSource>().ToList())
        {
            sources.Remove(json);
        }

        if (path is not null)
        {
            // Where the proxy's appsettings.json was: below the environment variables and the command line, as it is read.
            sources.Insert(Math.Max(index, 0), new JsonConfigurationSource
            {
                Path = Path.GetFileName(path),
                FileProvider = new PhysicalFileProvider(Path.GetDirectoryName(path)!),
                Optional = false,
                ReloadOnChange = false,
            });
        }

        builder.Configuration.AddInMemoryCollection([new("AFP_LOG_FORMAT", "none")]);
    }

    private static async Task<IReadOnlyList<KeyCheck>> CheckKeysAsync(PoolRegistry registry, KeyProber prober, CancellationToken cancellationToken)
    {
        var checks = registry.Pools.OrderBy(p => p.Name, StringComparer.Ordinal)
            .SelectMany(pool => pool.Keys.OrderBy(k => k.Priority).Select(async key =>
            {
                ProbeResult result;
                try
                {
                    result = await prober.ProbeAsync(pool, key, cancellationToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
                {
                    result = new ProbeResult(ProbeOutcome.Unknown, Reason: ex.GetType().Name);
                }

                var check = AdminCheck.Of(pool, key, result);
                return new KeyCheck(pool.Name, key.Name, key.Fingerprint, check.Outcome, check.Detail);
            }));
        return await Task.WhenAll(checks);
    }

    private static async Task WriteAsync(CliSession session, CheckConfigReport report)
    {
        if (session.Json)
        {
            await session.WriteJsonAsync(report, CliJsonContext.Readable.CheckConfigReport);
            return;
        }

        var output = session.Out;
        await output.WriteLineAsync(report.File is null
            ? "No appsettings.json here: checking the environment's settings alone, as the proxy checks them at start."
            : $"Checking {report.File} with this environment's variables, as the proxy checks its configuration at start.");
        if (!report.Valid)
        {
            await output.WriteLineAsync($"The configuration has {report.Problems.Count} problem(s); the proxy would not start with it:");
            foreach (var problem in report.Problems)
            {
                await output.WriteLineAsync("  - " + problem);
            }

            return;
        }

        var pools = report.Pools ?? [];
        await output.WriteLineAsync($"The configuration is valid: {pools.Count} pool(s), {pools.Sum(p => p.Keys.Count)} key(s).");
        foreach (var pool in pools)
        {
            var keys = string.Join(", ", pool.Keys.Select(k => $"{k.Name} {k.Fingerprint} ({k.Scheme}, priority {k.Priority})"));
            await output.WriteLineAsync($"  Pool '{pool.Name}' ({pool.Kind}, {pool.Upstream}): {(keys.Length > 0 ? keys : "no keys")}");
        }

        foreach (var warning in report.Warnings ?? [])
        {
            await output.WriteLineAsync("Warning: " + warning);
        }

        if (report.Checks is { } checks)
        {
            await output.WriteLineAsync("Each key against its upstream:");
            await Show.TableAsync(output, [.. checks.Select(c => new[] { $"{c.Pool}/{c.Key}", c.Fingerprint, c.Outcome.ToUpperInvariant(), c.Detail })], "  ");
        }

        if (report.Error is { } error)
        {
            await output.WriteLineAsync(error);
        }
        else if (report.Changes is { } changes)
        {
            await output.WriteLineAsync($"What applying it would change on the proxy at {report.Proxy} (replica {report.Replica}):");
            if (changes.Count == 0)
            {
                await output.WriteLineAsync("  nothing: the file matches what the proxy runs.");
            }

            await Show.TableAsync(output, [.. changes.Select(c => new[] { $"{Symbol(c.Change)} {(c.Key is null ? $"pool '{c.Pool}'" : $"{c.Pool}/{c.Key}")}", c.Fingerprint ?? string.Empty, c.Detail })], "  ");
            await output.WriteLineAsync("Nothing was applied: the proxy takes the file when it is saved where it reads it (keys without a restart).");
        }
    }

    private static string Symbol(string change) => change switch
    {
        "key-added" or "pool-added" => "+",
        "key-removed" or "pool-removed" => "-",
        "key-kept" => "=",
        "pool-changed" or "key-name-taken" => "!",
        _ => "~",
    };
}

/// <summary>What <c>afp check-config --json</c> writes.</summary>
/// <param name="File">The file checked, or null when only the environment's settings were.</param>
/// <param name="Valid">Whether the proxy would start with it.</param>
/// <param name="Problems">Every problem, each naming the key to fix (never a secret).</param>
internal sealed record CheckConfigReport(string? File, bool Valid, IReadOnlyList<string> Problems)
{
    /// <summary>Gets the pools and keys the file defines, by name and fingerprint (when valid).</summary>
    public IReadOnlyList<PoolShape>? Pools { get; init; }

    /// <summary>Gets what the proxy would warn about its keys.</summary>
    public IReadOnlyList<string>? Warnings { get; init; }

    /// <summary>Gets each key's check against its upstream (<c>--probe</c>).</summary>
    public IReadOnlyList<KeyCheck>? Checks { get; init; }

    /// <summary>Gets the running proxy compared with (<c>--probe</c>).</summary>
    public string? Proxy { get; init; }

    /// <summary>Gets the replica of the running proxy that answered.</summary>
    public string? Replica { get; init; }

    /// <summary>Gets what applying the file would change on the running proxy (<c>--probe</c>).</summary>
    public IReadOnlyList<ConfigurationChange>? Changes { get; init; }

    /// <summary>Gets why the comparison with the running proxy could not be made.</summary>
    public string? Error { get; init; }
}

/// <summary>One key's check against its upstream: <c>passed</c>, <c>rejected</c> or <c>unknown</c>, in the provider's words.</summary>
internal sealed record KeyCheck(string Pool, string Key, string Fingerprint, string Outcome, string Detail);
