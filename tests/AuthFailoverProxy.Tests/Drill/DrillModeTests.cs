using AuthFailoverProxy.Demo.Drill;

namespace AuthFailoverProxy.Tests.Drill;

/// <summary>
/// The short chaos drill, as CI runs it: real redis-server and proxy replica processes, steady load, six faults. It
/// fails when any promise breaks (a client-visible failure while a key is usable, an alert missing or sent twice, no
/// recovery within the bound).
/// </summary>
[Collection(nameof(DrillRunsAlone))]
public sealed class DrillModeTests
{
    [Fact]
    public async Task ShortDrill_UnderLoadAndFaults_KeepsEveryPromise()
    {
        using var output = new StringWriter();

        var exitCode = await DrillMode.RunAsync(["drill", "--short"], output);

        var report = output.ToString();
        Assert.True(exitCode == 0, report);
        Assert.Contains("| a. outage replay |", report, StringComparison.Ordinal);
        Assert.Contains("| f. every key revoked |", report, StringComparison.Ordinal);
        Assert.Contains("every promise held", report, StringComparison.Ordinal);
    }
}

/// <summary>The drill times faults, alerts and recoveries on a shared machine: it runs alone, after the parallel tests.</summary>
[CollectionDefinition(nameof(DrillRunsAlone), DisableParallelization = true)]
public sealed class DrillRunsAlone;
