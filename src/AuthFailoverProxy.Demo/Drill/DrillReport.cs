using System.Globalization;
using System.Text.Json;

namespace AuthFailoverProxy.Demo.Drill;

/// <summary>
/// Judges what the drill saw against the proxy's promises and prints it: the timeline, one row per phase, and the
/// alerts per event. Promises: no client-visible failure while any key is usable; every expected alert delivered
/// exactly once per state change, within a bound of its fault; no alert blaming the keys for the upstream's 529s;
/// recovery within a bound of each fix; the revoked primary never called again once found dead; a loud 503 naming
/// every key while none is usable.
/// </summary>
internal static class DrillReport
{
    private const int MaxExamples = 3;

    public static string Seconds(TimeSpan at) => at.TotalSeconds.ToString("0.00", CultureInfo.InvariantCulture) + " s";

    private static string Ms(TimeSpan? span) => span is { } s ? s.TotalMilliseconds.ToString("0", CultureInfo.InvariantCulture) + " ms" : "—";

    /// <summary>Whether a request met a time when no key was usable, in any phase: one sent at the end of a phase can be answered in the next.</summary>
    private static bool MetNoKey(IReadOnlyList<DrillPhase> phases, DrillRequest request) => phases.Any(p => p.MetNoKey(request));

    /// <summary>Fills <see cref="DrillPhase.Broken"/> for every phase.</summary>
    public static void Judge(IReadOnlyList<DrillPhase> phases, IReadOnlyList<DrillRequest> requests, IReadOnlyList<DrillAlert> alerts, DrillTimings timings)
    {
        foreach (var phase in phases)
        {
            var sent = requests.Where(r => phase.Contains(r.SentAt)).ToList();
            var failures = sent.Where(r => r.Failed && !MetNoKey(phases, r)).ToList();
            if (failures.Count > 0)
            {
                phase.Broken.Add($"{failures.Count} client-visible failure(s) while a key was usable, e.g. " +
                    string.Join("; ", failures.Take(MaxExamples).Select(f => $"at {Seconds(f.SentAt)} via {f.Replica}: {(f.Status == 0 ? "no answer" : f.Status.ToString(CultureInfo.InvariantCulture))} {Snippet(f.Body)}")));
            }

            var received = alerts.Where(a => phase.Contains(a.At)).ToList();
            foreach (var expected in phase.Expected)
            {
                var count = received.Count(a => a.Kind == expected.Kind && (expected.Key is null || a.Key == expected.Key) && a.Type is "trigger" or "update" or "notice");
                if (count != expected.Count)
                {
                    phase.Broken.Add($"expected {expected} alert(s), received {count}");
                }
            }

            foreach (var duplicate in received.GroupBy(a => a.Identity).Where(g => g.Count() > 1))
            {
                phase.Broken.Add($"alert sent {duplicate.Count()} times for one change: {duplicate.First().Describe()} (from {string.Join(", ", duplicate.Select(a => a.Replica).Distinct())})");
            }

            foreach (var forbidden in received.Where(a => phase.Forbidden.Contains(a.Kind)))
            {
                phase.Broken.Add($"unexpected alert {forbidden.Describe()}: the upstream's own errors must not be blamed on the keys");
            }

            if (phase.AlertKind is not null && phase.FaultAt is { } faultAt)
            {
                if (phase.AlertAt is not { } alertAt)
                {
                    phase.Broken.Add($"no {phase.AlertKind} alert within {timings.AlertBound.TotalSeconds:0} s of the fault");
                }
                else if (alertAt - faultAt > timings.AlertBound)
                {
                    phase.Broken.Add($"{phase.AlertKind} alert took {Ms(alertAt - faultAt)} (bound {timings.AlertBound.TotalSeconds:0} s)");
                }
            }

            if ((phase.FixAt is not null || phase.Name.StartsWith("e.", StringComparison.Ordinal)) && phase.RecoveredAt is null)
            {
                phase.Broken.Add("no recovery within the bound after the fix");
            }

            // Found dead once, the primary must never be called again: no replica rediscovers it, not even after Redis
            // came back empty or a replica died.
            if (phases.TakeWhile(p => p != phase).Count() > 1 && phase.DeadKeyCalls > 0)
            {
                phase.Broken.Add($"the revoked 'primary' was called {phase.DeadKeyCalls} time(s) after it was known dead");
            }

            if (phase.NoKeyUsable is not null)
            {
                var loud = sent.Where(r => MetNoKey(phases, r) && r.Status == 503).ToList();
                if (loud.Count == 0)
                {
                    phase.Broken.Add("no 503 while every key was revoked");
                }
                else if (DrillCluster.Keys.Select(k => k.Name).FirstOrDefault(k => !ErrorMessage(loud[0].Body).Contains($"'{k}'", StringComparison.Ordinal)) is { } unnamed)
                {
                    phase.Broken.Add($"the 503 does not name key '{unnamed}': {Snippet(ErrorMessage(loud[0].Body))}");
                }
            }

            // The pool's open incident should not be left saying "exhausted" once the pool serves again: a pool-level
            // alert (degraded or restored) should follow the recovery. Reported, not failed: see the issue's report.
            if (phase.NoKeyUsable is not null && phase.RecoveredAt is { } recovered
                && received.Any(a => a.Kind == Events.EventKinds.PoolExhausted)
                && !received.Any(a => a.At >= recovered - TimeSpan.FromSeconds(1) && a.Kind is Events.EventKinds.PoolDegraded or Events.EventKinds.PoolRestored))
            {
                phase.Notes.Add("after the recovery no pool-level alert followed: the channels' pool incident still reads 'pool.exhausted' (the repeated pool.degraded fell in the alert dedup window)");
            }
        }
    }

    public static void Print(TextWriter output, IReadOnlyList<DrillPhase> phases, IReadOnlyList<DrillRequest> requests, IReadOnlyList<DrillAlert> alerts, IReadOnlyList<(TimeSpan At, string What)> timeline)
    {
        output.WriteLine();
        output.WriteLine("## Timeline");
        output.WriteLine();
        output.WriteLine("| t | event |");
        output.WriteLine("|---:|---|");
        var lines = timeline.Select(t => (t.At, t.What))
            .Concat(alerts.Select(a => (a.At, $"alert  {a.Describe()} (from {a.Replica})")))
            .OrderBy(t => t.At);
        foreach (var (at, what) in lines)
        {
            output.WriteLine($"| {Seconds(at)} | {what} |");
        }

        output.WriteLine();
        output.WriteLine("## Phases");
        output.WriteLine();
        output.WriteLine("| Phase | Fault | Requests | Failures while a key was usable | 503 while no key was | Rerouted by the balancer | Upstream calls/req | Calls to dead 'primary' | Alerts | Fault → alert | Fix → recovery | Verdict |");
        output.WriteLine("|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|");
        foreach (var phase in phases)
        {
            var sent = requests.Where(r => phase.Contains(r.SentAt)).ToList();
            var failures = sent.Count(r => r.Failed && !MetNoKey(phases, r));
            var expected503 = sent.Count(r => r.Failed && MetNoKey(phases, r));
            var received = alerts.Where(a => phase.Contains(a.At)).ToList();
            var alertText = received.Count == 0 ? "—" : string.Join(", ", received.GroupBy(a => a.Describe()).Select(g => g.Count() == 1 ? g.Key : $"{g.Key} ×{g.Count()}"));
            var callsPerRequest = sent.Count == 0 ? "—" : ((double)phase.UpstreamCalls / sent.Count).ToString("0.00", CultureInfo.InvariantCulture);
            var recovery = phase.FixAt is { } fix && phase.RecoveredAt is { } back ? Ms(back - fix)
                : phase.FaultAt is { } fault && phase.FixAt is null && phase.RecoveredAt is { } moved ? Ms(moved - fault) + " (load moved)"
                : phase.FixAt is not null ? "never" : "—";
            var verdict = phase.Broken.Count == 0 ? "held" : "**BROKEN**";
            output.WriteLine($"| {phase.Name} | {phase.Fault} | {sent.Count} | {failures} | {expected503} | {sent.Count(r => r.Rerouted)} | {callsPerRequest} | {(phase.FaultAt is null ? "—" : phase.DeadKeyCalls)} | {alertText} | {(phase.AlertAt is { } a && phase.FaultAt is { } f ? Ms(a - f) : "—")} | {recovery} | {verdict} |");
        }

        output.WriteLine();
        output.WriteLine("## Alerts per event");
        output.WriteLine();
        output.WriteLine("| Event | Alert | Received |");
        output.WriteLine("|---|---|---:|");
        foreach (var group in alerts.GroupBy(a => (a.Kind, a.Type)).OrderBy(g => g.Min(a => a.At)))
        {
            output.WriteLine($"| {group.Key.Kind} | {group.Key.Type} | {group.Count()} |");
        }

        var broken = phases.SelectMany(p => p.Broken.Select(b => $"{p.Name}: {b}")).ToList();
        output.WriteLine();
        output.WriteLine(broken.Count == 0
            ? $"Every promise held: {requests.Count} requests, {requests.Count(r => r.Failed)} failed, all of them while no key was usable."
            : $"BROKEN PROMISES ({broken.Count}):");
        foreach (var line in broken)
        {
            output.WriteLine("- " + line);
        }

        foreach (var note in phases.SelectMany(p => p.Notes.Select(n => $"{p.Name}: {n}")))
        {
            output.WriteLine("- Note (not a failure): " + note);
        }
    }

    /// <summary>The provider-format error's message, unescaped; the body itself when it is not one.</summary>
    private static string ErrorMessage(string? body)
    {
        try
        {
            using var document = JsonDocument.Parse(body ?? string.Empty);
            return document.RootElement.GetProperty("error").GetProperty("message").GetString() ?? string.Empty;
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return body ?? string.Empty;
        }
    }

    private static string Snippet(string? body) => body is null ? string.Empty : body.Length <= 300 ? body : body[..300] + "…";
}
