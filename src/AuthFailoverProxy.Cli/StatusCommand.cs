using System.CommandLine;
using AuthFailoverProxy.Admin;

namespace AuthFailoverProxy.Cli;

/// <summary><c>afp status</c>: every pool and key as the replica that answered sees them (<c>GET /status</c>).</summary>
internal static class StatusCommand
{
    public static Command Create(GlobalOptions options, CliEnvironment environment)
    {
        var command = new Command("status", "Show every pool and key: state, since when, why in the provider's words, what to do, fingerprint; the upstream's circuit and safe mode; the store; which replica answered. Needs AFP_MANAGEMENT_TOKEN (or the admin token) when the proxy sets Management:Token.");
        command.SetAction(options, environment, async (session, cancellationToken) =>
        {
            var answer = await session.Proxy.ReadAsync("status", cancellationToken);
            if (session.Json)
            {
                await session.WriteJsonAsync(answer.Body);
                return ExitCodes.Ok;
            }

            var report = session.Proxy.Parse(answer, AdminJsonContext.Default.StatusReport);
            await WriteAsync(session.Out, report, session.Proxy.Shown);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static async Task WriteAsync(TextWriter output, StatusReport report, string address)
    {
        await output.WriteLineAsync($"AuthFailoverProxy at {address}: {report.Status.ToUpperInvariant()} (replica {report.Replica ?? "unnamed"}, {Show.Time(report.Time)})");
        await output.WriteLineAsync("Store: " + Store(report.Store, report.Time));
        if (report.Heartbeat is { } heartbeat)
        {
            await output.WriteLineAsync("Heartbeat: " + (heartbeat.PausedBecause is { } paused
                ? $"PAUSED: {paused}"
                : heartbeat.LastPing is { } ping ? $"last ping {Show.Ago(ping, report.Time)}, {heartbeat.LastOutcome}" : "no ping yet"));
        }

        if (report.Alerts is { Channels.Count: > 0 } alerts)
        {
            var channels = alerts.Channels.Select(c => $"{c.Name} ({c.Type}) {c.State}{(c.LastError is { } e && c.State == "failing" ? $": {e.Message}" : string.Empty)}");
            await output.WriteLineAsync($"Alerts: {string.Join("; ", channels)}; {alerts.OpenIncidents} problem(s) open.");
        }

        foreach (var pool in report.Pools)
        {
            await output.WriteLineAsync();
            var paths = pool.Default ? $"{pool.PathPrefix} and /" : pool.PathPrefix;
            var countable = pool.Keys.Count(k => k.State != "pending");
            await output.WriteLineAsync($"Pool '{pool.Name}' ({pool.Kind}, {pool.Upstream}, on {paths}): {pool.UsableKeys} of {countable} key(s) usable; circuit {pool.Circuit}.");
            if (pool.SafeMode is { } safe)
            {
                await output.WriteLineAsync(safe.Active
                    ? $"  SAFE MODE since {(safe.Since is { } since ? Show.Time(since) : "now")}: no key of this pool can serve; pool '{safe.Fallback}' serves its requests{(safe.FallbackModel is { } model ? $" with {model}" : string.Empty)}."
                    : $"  Safe mode ready: pool '{safe.Fallback}' serves if no key of this pool can.");
            }

            await KeyTable.WriteAsync(output, pool.Keys.Select(k => (pool.Name, k)), report.Time, showPool: false);
        }
    }

    private static string Store(State.KeyStateStoreStatus store, DateTimeOffset now) => store switch
    {
        { Kind: "memory" } => "memory: key health lives in this replica only.",
        { Connected: true } => $"{store.Kind}, connected{(store.Since is { } since ? $" since {Show.Time(since)}" : string.Empty)}: key health is shared between replicas.",
        _ => $"{store.Kind}, NOT CONNECTED{(store.Since is { } since ? $" for {Show.Ago(since, now).Replace(" ago", string.Empty, StringComparison.Ordinal)}" : string.Empty)}: {store.Problem ?? "unreachable"}; {store.Pending} change(s) wait to be shared.",
    };
}

/// <summary>Keys as a table, then, under it, for each key that is not simply serving: why, and what to do.</summary>
internal static class KeyTable
{
    public static async Task WriteAsync(TextWriter output, IEnumerable<(string Pool, KeyStatus Key)> keys, DateTimeOffset now, bool showPool)
    {
        var list = keys.ToList();
        if (list.Count == 0)
        {
            await output.WriteLineAsync("  (no keys)");
            return;
        }

        List<string[]> rows = [showPool ? ["POOL", "KEY", "STATE", "SINCE", "FINGERPRINT", "SCHEME", "PRIORITY", "SOURCE"] : ["KEY", "STATE", "SINCE", "FINGERPRINT", "SCHEME", "PRIORITY", "SOURCE"]];
        foreach (var (pool, key) in list)
        {
            string[] row = [key.Name, State(key), $"{Show.Time(key.Since)} ({Show.Ago(key.Since, now)})", key.Fingerprint, key.Scheme, key.Priority.ToString(System.Globalization.CultureInfo.InvariantCulture), key.Source];
            rows.Add(showPool ? [pool, .. row] : row);
        }

        await Show.TableAsync(output, rows, "  ");
        foreach (var (pool, key) in list)
        {
            foreach (var note in Notes(pool, key, now))
            {
                await output.WriteLineAsync($"  {key.Name}: {note}");
            }
        }
    }

    /// <summary>"error_type" in the provider's words: <c>403 permission_error "OAuth authentication is …" (request id req_…)</c>.</summary>
    public static string Describe(KeyErrorStatus error)
        => $"{error.Status}{(error.Type is { } type ? " " + type : string.Empty)}{(error.Code is { } code ? $" ({code})" : string.Empty)}"
            + (error.Message is { } message ? $" \"{message}\"" : string.Empty)
            + (error.RequestId is { } id ? $" (request id {id})" : string.Empty);

    private static string State(KeyStatus key) => key.State switch
    {
        "usable" when key.Suspicion is not null => "usable, suspect",
        "usable" when key.Scopes is { Count: > 0 } => "usable, scoped",
        "usable" => "usable",
        "cooling" when key.Until is { } until => $"COOLING until {until.UtcDateTime:HH:mm:ss}Z",
        var state => state.ToUpperInvariant(),
    };

    private static IEnumerable<string> Notes(string pool, KeyStatus key, DateTimeOffset now)
    {
        if (key.State == "pending")
        {
            yield return $"pending: carries no traffic until confirmed (afp keys confirm {pool} {key.Name}).";
        }

        if (key.State is "dead" or "cooling" or "disabled" && key.LastError is { } error)
        {
            yield return $"why: {Describe(error)}, at {Show.Time(error.At)}";
        }

        if (key.Remediation is { } remediation)
        {
            yield return "to fix: " + remediation;
        }

        if (key.TrialUntil is { } trial)
        {
            yield return $"no check can judge it: the next request that finds it is given to it once, until {Show.Time(trial)}.";
        }

        if (key.Suspicion is { } suspicion)
        {
            yield return $"suspect since {Show.Ago(suspicion.Since, now)}: {Describe(suspicion.Failure)}; {(suspicion.Checking ? "being checked" : suspicion.Unjudged ? "no check can tell, tried last" : "waiting for a check")}.";
        }

        foreach (var scope in key.Scopes ?? [])
        {
            yield return $"out for {scope.Scope} until {Show.Time(scope.Until)}: {Describe(scope.Failure)}";
        }
    }
}
