using System.Diagnostics;

namespace AuthFailoverProxy.Demo.Drill;

/// <summary>
/// <c>drill [--short]</c>: the chaos drill. Starts a redis-server, the simulated provider, a webhook receiver and two
/// proxy replicas as real processes sharing that Redis, puts a steady load on them, replays the outage and five more
/// faults, and prints a timeline and a table. Exits 1 when a promise breaks, 2 when the drill itself could not run.
/// </summary>
internal static class DrillMode
{
    private const string DrillCommand = "drill";
    private const string ShortFlag = "--short";
    private const int Replicas = 2;

    /// <summary>Gets the whole drill's bound: past it the drill stops, whatever it was doing, and fails.</summary>
    private static readonly TimeSpan Bound = TimeSpan.FromMinutes(5);

    public static bool IsRequested(string[] args) => args.Length > 0 && args[0] == DrillCommand;

    public static Task<int> RunAsync(string[] args) => RunAsync(args, Console.Out);

    internal static async Task<int> RunAsync(string[] args, TextWriter output)
    {
        var timings = args.Contains(ShortFlag) ? DrillTimings.Short : DrillTimings.Full;
        using var bound = new CancellationTokenSource(Bound);
        var clock = new Stopwatch();
        await output.WriteLineAsync($"# Chaos drill ({(timings == DrillTimings.Short ? "short" : "full")})");
        await output.WriteLineAsync();
        await output.WriteLineAsync($"Starting redis-server, the simulated provider, a webhook receiver and {Replicas} proxy replicas (real processes) on 127.0.0.1…");

        await using var alerts = await DrillAlertReceiver.StartAsync(clock, bound.Token);
        DrillCluster? cluster = null;
        var held = false;
        try
        {
            cluster = await DrillCluster.StartAsync(alerts, bound.Token);
            for (var i = 0; i < Replicas; i++)
            {
                var replica = await cluster.AddReplicaAsync(bound.Token);
                await output.WriteLineAsync($"  {replica.Name}: agents {replica.Agent}, management {replica.Management}");
            }

            await output.WriteLineAsync();
            clock.Start();
            await using var load = new DrillLoad(cluster.Replicas, clock, timings.RequestsPerSecond, timings.LoadBound);
            var scenario = new DrillScenario(cluster, load, clock, timings, output, bound.Token);
            load.Start();
            try
            {
                await scenario.RunAsync();
            }
            finally
            {
                await load.StopAsync();
            }

            // Alerts are sent from a background loop: give the last ones time to arrive before counting.
            await Task.Delay(TimeSpan.FromSeconds(1.5), bound.Token);
            scenario.Finish();

            var requests = load.Requests;
            DrillReport.Judge(scenario.Phases, requests, alerts.Alerts, timings);
            DrillReport.Print(output, scenario.Phases, requests, alerts.Alerts, scenario.Timeline);
            held = scenario.Phases.All(p => p.Broken.Count == 0);
            await output.WriteLineAsync();
            await output.WriteLineAsync(held
                ? $"Drill finished in {DrillReport.Seconds(clock.Elapsed)}: every promise held."
                : $"Drill finished in {DrillReport.Seconds(clock.Elapsed)}: promises broken. Replica and redis logs: {cluster.LogDirectory}");
            return held ? 0 : 1;
        }
        catch (Exception ex) when (ex is InvalidOperationException or OperationCanceledException or HttpRequestException or IOException)
        {
            await output.WriteLineAsync($"The drill could not run: {ex.Message}");
            if (cluster is not null)
            {
                await output.WriteLineAsync($"Replica and redis logs: {cluster.LogDirectory}");
            }

            return 2;
        }
        finally
        {
            if (cluster is not null)
            {
                await cluster.DisposeAsync();
                if (held)
                {
                    cluster.DeleteLogs();
                }
            }
        }
    }
}
