using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace AuthFailoverProxy.Tests.Fakes;

/// <summary>
/// A real redis-server on a free loopback port, owned by one test: started, killed and restarted on the same port at
/// will, with no persistence and its files in a temporary directory. scripts/test.sh installs redis-server when missing.
/// </summary>
internal sealed class RedisServer : IAsyncDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("afp-redis-").FullName;
    private Process? _process;

    // The server's last lines of output: why it stopped, when it did.
    private readonly ConcurrentQueue<string> _output = new();

    private readonly string? _password;
    private readonly string? _tls;

    private RedisServer(int port, string? password, bool tls = false)
    {
        _tls = tls ? _directory : null;
        Port = port;
        _password = password;
    }

    public int Port { get; private set; }

    public string Configuration => $"127.0.0.1:{Port}";

    /// <summary>Gets the CA certificate (PEM) of a server started with TLS.</summary>
    public string CaFile => Path.Combine(_directory, "ca.crt");

    /// <summary>Starts a server; with <paramref name="password"/> it refuses every client that does not give it.</summary>
    public static async Task<RedisServer> StartAsync(string? password = null)
    {
        var server = new RedisServer(FreePort(), password);
        await server.StartOnAFreePortAsync();
        return server;
    }

    /// <summary>
    /// Starts a server that speaks TLS only, with a certificate for <c>localhost</c> from a throwaway CA made with openssl
    /// (<see cref="CaFile"/> is the CA to trust), and asks for <paramref name="password"/>.
    /// </summary>
    public static async Task<RedisServer> StartTlsAsync(string password)
    {
        var server = new RedisServer(FreePort(), password, tls: true);
        var directory = server._directory;
        foreach (var step in new[]
        {
            "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=afp-test-ca -keyout ca.key -out ca.crt",
            "req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr",
            "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -out server.crt -extfile san.cnf",
        })
        {
            await File.WriteAllTextAsync(Path.Combine(directory, "san.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
            var openssl = new ProcessStartInfo("openssl", step) { WorkingDirectory = directory, RedirectStandardError = true, RedirectStandardOutput = true };
            using var run = Process.Start(openssl)!;
            await run.WaitForExitAsync();
            if (run.ExitCode != 0)
            {
                throw new InvalidOperationException($"openssl {step.Split(' ')[0]} failed: {await run.StandardError.ReadToEndAsync()}");
            }
        }

        await server.StartOnAFreePortAsync();
        return server;
    }

    public async Task RestartAsync()
    {
        var binary = File.Exists("/usr/bin/redis-server") ? "/usr/bin/redis-server" : "redis-server";
        var start = new ProcessStartInfo(binary)
        {
            ArgumentList = { "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", _directory, "--protected-mode", "yes",
                // DUMP output uncompressed, so tests that search a dump of every key for secret bytes see them all.
                "--rdbcompression", "no" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (_tls is not null)
        {
            var port = start.ArgumentList[1];
            start.ArgumentList[1] = "0";
            foreach (var argument in new[] { "--tls-port", port, "--tls-cert-file", Path.Combine(_tls, "server.crt"), "--tls-key-file", Path.Combine(_tls, "server.key"),
                "--tls-ca-cert-file", Path.Combine(_tls, "ca.crt"), "--tls-auth-clients", "no" })
            {
                start.ArgumentList.Add(argument);
            }
        }

        if (_password is not null)
        {
            start.ArgumentList.Add("--requirepass");
            start.ArgumentList.Add(_password);
        }

        try
        {
            _process = Process.Start(start) ?? throw new InvalidOperationException("redis-server did not start.");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException("redis-server is not installed: run ./scripts/test.sh, which installs it with apt.", ex);
        }

        _output.Clear();
        _process.OutputDataReceived += (_, line) => Keep(line.Data);
        _process.ErrorDataReceived += (_, line) => Keep(line.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        await WaitUntilAsync(expectUp: true);
    }

    /// <summary>Kills the server outright, as a crash would.</summary>
    public async Task KillAsync()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        await WaitUntilAsync(expectUp: false);
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process?.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    /// <summary>
    /// Starts the server, on another free port while the one chosen was taken before redis-server could bind it: between
    /// the OS naming a free port and the server binding it, any other listener of the test run may take it.
    /// </summary>
    private async Task StartOnAFreePortAsync()
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await RestartAsync();
                return;
            }
            catch (RedisExitedException ex) when (attempt < 5 && ex.Message.Contains("Address already in use", StringComparison.Ordinal))
            {
                _process?.Dispose();
                Port = FreePort();
            }
        }
    }

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }

        _output.Enqueue(line);
        while (_output.Count > 20)
        {
            _output.TryDequeue(out _);
        }
    }

    private async Task WaitUntilAsync(bool expectUp)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (await IsUpAsync(timeout.Token) != expectUp)
        {
            if (expectUp)
            {
                await ThrowIfExitedAsync(timeout.Token);
            }

            await Task.Delay(20, timeout.Token);
        }

        if (expectUp)
        {
            // Up, but maybe another server that holds the port: this one could not bind it, and has gone.
            await ThrowIfExitedAsync(timeout.Token);
        }
    }

    private async Task ThrowIfExitedAsync(CancellationToken cancellationToken)
    {
        if (_process is { HasExited: true } process)
        {
            // Waits for the end of its output too, so the reason is in it.
            await process.WaitForExitAsync(cancellationToken);
            throw new RedisExitedException($"redis-server on port {Port} exited while starting: {string.Join(" | ", _output)}");
        }
    }

    private async Task<bool> IsUpAsync(CancellationToken cancellationToken)
    {
        // One probe waits a second at most: whatever holds the port may never answer.
        using var probe = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        probe.CancelAfter(TimeSpan.FromSeconds(1));
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, Port, probe.Token);
            if (_tls is not null)
            {
                // Speaks TLS only: accepting the connection is enough.
                return true;
            }

            var stream = client.GetStream();
            await stream.WriteAsync("PING\r\n"u8.ToArray(), probe.Token);
            var buffer = new byte[16];
            var read = await stream.ReadAsync(buffer, probe.Token);
            // -NOAUTH: up, and asking for its password.
            return read > 0 && (buffer[0] == (byte)'+' || (_password is not null && buffer[0] == (byte)'-'));
        }
        catch (SocketException)
        {
            return false;
        }
        catch (IOException)
        {
            return false;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private sealed class RedisExitedException(string message) : Exception(message);
}
