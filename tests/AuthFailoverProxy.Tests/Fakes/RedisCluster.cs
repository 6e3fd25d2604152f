using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using StackExchange.Redis;

namespace AuthFailoverProxy.Tests.Fakes;

/// <summary>
/// A real 3-node Redis Cluster on loopback (no replicas), the mode of most managed Redis services: every node a
/// redis-server with <c>cluster-enabled yes</c>, joined by <c>redis-cli --cluster create</c>, ready once every node
/// reports <c>cluster_state:ok</c>. Multi-key commands across hash slots answer CROSSSLOT here, as they do in production.
/// </summary>
internal sealed class RedisCluster : IAsyncDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("afp-redis-cluster-").FullName;
    private readonly List<Process> _nodes = [];

    private RedisCluster(int[] ports) => Ports = ports;

    public IReadOnlyList<int> Ports { get; }

    /// <summary>Gets every node, as an operator lists a cluster's seed nodes.</summary>
    public string Configuration => string.Join(',', Ports.Select(p => $"127.0.0.1:{p}"));

    /// <summary>
    /// Starts three nodes and makes them one cluster. A node can find the port it was given taken by another listener of
    /// the test run before it could bind it (it then exits): the cluster is then started again on other free ports.
    /// </summary>
    public static async Task<RedisCluster> StartAsync()
    {
        for (var attempt = 1; ; attempt++)
        {
            var cluster = new RedisCluster([.. Enumerable.Range(0, 3).Select(_ => FreePort())]);
            try
            {
                await cluster.CreateAsync();
                return cluster;
            }
            catch (NodeExitedException) when (attempt < 5)
            {
                await cluster.DisposeAsync();
            }
            catch
            {
                await cluster.DisposeAsync();
                throw;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes)
        {
            if (!node.HasExited)
            {
                node.Kill(entireProcessTree: true);
                await node.WaitForExitAsync();
            }

            node.Dispose();
        }

        Directory.Delete(_directory, recursive: true);
    }

    private async Task CreateAsync()
    {
        foreach (var port in Ports)
        {
            var text = port.ToString(CultureInfo.InvariantCulture);
            var directory = Directory.CreateDirectory(Path.Combine(_directory, text)).FullName;
            _nodes.Add(Run("redis-server", "--port", text, "--bind", "127.0.0.1", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "5000", "--save", "", "--appendonly", "no", "--dir", directory, "--protected-mode", "yes"));
        }

        foreach (var port in Ports)
        {
            await WaitUntilAsync(() => InfoAsync(port, "PING"), reply => reply.StartsWith('+') || _nodes.Any(n => n.HasExited));
        }

        if (_nodes.Any(n => n.HasExited))
        {
            throw new NodeExitedException();
        }

        using (var create = Run("redis-cli", ["--cluster", "create", .. Ports.Select(p => $"127.0.0.1:{p}"), "--cluster-replicas", "0", "--cluster-yes"]))
        {
            await create.WaitForExitAsync(TestContext.Current.CancellationToken);
            if (create.ExitCode != 0)
            {
                throw new InvalidOperationException($"redis-cli --cluster create exited with {create.ExitCode}.");
            }
        }

        foreach (var port in Ports)
        {
            await WaitUntilAsync(() => InfoAsync(port, "CLUSTER INFO"), reply => reply.Contains("cluster_state:ok", StringComparison.Ordinal));
        }

        // Every node must also know every other's slots, or a client may be redirected to a node that is not ready.
        await using var client = await ConnectionMultiplexer.ConnectAsync(Configuration);
        await WaitUntilAsync(() => Task.FromResult(client.GetServers().Length.ToString(CultureInfo.InvariantCulture)), reply => reply == "3");
    }

    private static Process Run(string tool, params string[] arguments)
    {
        var binary = File.Exists($"/usr/bin/{tool}") ? $"/usr/bin/{tool}" : tool;
        var start = new ProcessStartInfo(binary) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException($"{tool} did not start.");
        process.OutputDataReceived += static (_, _) => { };
        process.ErrorDataReceived += static (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static async Task WaitUntilAsync(Func<Task<string>> ask, Func<string, bool> done)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!done(await ask()))
        {
            await Task.Delay(50, timeout.Token);
        }
    }

    /// <summary>One inline command on a raw connection: the answer's text, or empty while the node is not up.</summary>
    private static async Task<string> InfoAsync(int port, string command)
    {
        // A second at most: whatever holds the port may never answer.
        using var probe = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, port, probe.Token);
            var stream = client.GetStream();
            await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(command + "\r\n"), probe.Token);
            var buffer = new byte[4096];
            var read = await stream.ReadAsync(buffer, probe.Token);
            return System.Text.Encoding.ASCII.GetString(buffer, 0, read);
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException)
        {
            return string.Empty;
        }
    }

    /// <summary>A free port whose cluster bus port (port + 10000) is free too.</summary>
    private static int FreePort()
    {
        for (var attempt = 0; attempt < 100; attempt++)
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            if (port + 10000 > IPEndPoint.MaxPort)
            {
                continue;
            }

            try
            {
                using var bus = new TcpListener(IPAddress.Loopback, port + 10000);
                bus.Start();
                return port;
            }
            catch (SocketException)
            {
            }
        }

        throw new InvalidOperationException("no free port pair for a Redis Cluster node.");
    }

    /// <summary>A node exited while the cluster was starting: its port was taken.</summary>
    private sealed class NodeExitedException() : Exception("a Redis Cluster node exited while starting");
}
