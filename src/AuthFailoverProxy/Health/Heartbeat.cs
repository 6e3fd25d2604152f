using AuthFailoverProxy.Admin;
using AuthFailoverProxy.KeyPool;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Health;

/// <summary>
/// Pings <see cref="HeartbeatOptions.Url"/> every interval while the proxy is alive and every pool can serve: it has a
/// usable key, or its fallback does (safe mode serves). When a pool goes dark the pings stop, so the monitoring service
/// raises the alarm even if nothing else here can (the process hung, the alert channels broken, the network cut); they
/// resume on the first tick after the pool heals. A failed ping is logged at Warning once per streak, and the URL never:
/// it usually holds a token.
/// </summary>
/// <remarks>Its dependencies are resolved when it starts: hosted services are built before the host validates options.</remarks>
internal sealed partial class Heartbeat(IServiceProvider services, TimeProvider time, ILogger<Heartbeat> logger) : BackgroundService
{
    private HeartbeatOptions? _options;
    private volatile HeartbeatStatus? _status;

    /// <summary>Gets what <c>/status</c> shows of the heartbeat; null when none is configured.</summary>
    public HeartbeatStatus? Status => _status;

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        var options = services.GetRequiredService<IOptions<HeartbeatOptions>>().Value;
        if (options.Enabled)
        {
            _options = options;
            _status = new HeartbeatStatus(options.Method.ToUpperInvariant(), options.Interval.TotalSeconds, LastPing: null, LastOutcome: null, LastSuccess: null, ConsecutiveFailures: 0, PausedBecause: null);
        }

        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_options is not { } options)
        {
            return;
        }

        var registry = services.GetRequiredService<PoolRegistry>();
        var method = string.Equals(options.Method, "POST", StringComparison.OrdinalIgnoreCase) ? HttpMethod.Post : HttpMethod.Get;
        var url = new Uri(options.Url!);
        using var client = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) }) { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
        try
        {
            // Alive means listening: the first ping waits until the host has started.
            await StartedAsync(services.GetRequiredService<IHostApplicationLifetime>().ApplicationStarted, stoppingToken);
            LogStarted(logger, method.Method, options.Interval);
            using var timer = new PeriodicTimer(options.Interval, time);
            do
            {
                await BeatAsync(client, method, url, registry, options, stoppingToken);
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task BeatAsync(HttpClient client, HttpMethod method, Uri url, PoolRegistry registry, HeartbeatOptions options, CancellationToken stoppingToken)
    {
        var status = _status!;
        if (DarkPool(registry, time.GetUtcNow()) is { } dark)
        {
            var reason = dark.Fallback is { } fallback
                ? $"pool '{dark.Name}' has no usable key and its fallback pool '{fallback.Name}' has none either"
                : $"pool '{dark.Name}' has no usable key";
            if (status.PausedBecause is null)
            {
                LogPaused(logger, reason);
            }

            _status = status with { PausedBecause = reason };
            return;
        }

        if (status.PausedBecause is not null)
        {
            LogResumed(logger);
            status = status with { PausedBecause = null };
        }

        var at = time.GetUtcNow();
        var (ok, outcome) = await PingAsync(client, method, url, options.Timeout, stoppingToken);
        if (ok)
        {
            if (status.ConsecutiveFailures > 0)
            {
                LogRecovered(logger, status.ConsecutiveFailures);
            }

            _status = status with { LastPing = at, LastOutcome = outcome, LastSuccess = at, ConsecutiveFailures = 0 };
            return;
        }

        if (status.ConsecutiveFailures == 0)
        {
            LogFailed(logger, outcome);
        }

        _status = status with { LastPing = at, LastOutcome = outcome, ConsecutiveFailures = status.ConsecutiveFailures + 1 };
    }

    private async Task<(bool Ok, string Outcome)> PingAsync(HttpClient client, HttpMethod method, Uri url, TimeSpan timeout, CancellationToken stoppingToken)
    {
        using var deadline = new CancellationTokenSource(timeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, deadline.Token);
        using var request = new HttpRequestMessage(method, url);
        if (method == HttpMethod.Post)
        {
            request.Content = new ByteArrayContent([]);
        }

        try
        {
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token);
            var code = (int)response.StatusCode;
            return response.IsSuccessStatusCode ? (true, $"ok ({code})") : (false, $"failed: answered {code}");
        }
        catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
        {
            return (false, $"failed: no answer within {timeout.TotalSeconds:0.#} s (Heartbeat:Timeout)");
        }
        catch (HttpRequestException ex)
        {
            // Not ex.Message: it may name the URL.
            return (false, ex.HttpRequestError switch
            {
                HttpRequestError.NameResolutionError => "failed: the host name did not resolve",
                HttpRequestError.ConnectionError => "failed: could not connect",
                HttpRequestError.SecureConnectionError => "failed: the TLS handshake failed",
                _ => $"failed: {ex.HttpRequestError}",
            });
        }
    }

    /// <summary>Returns a pool that cannot serve now, neither with its own keys nor through its fallback.</summary>
    private static Pool? DarkPool(PoolRegistry registry, DateTimeOffset now)
        => registry.Pools.FirstOrDefault(pool => pool.CountUsable(now) == 0 && !(pool.Fallback is { } fallback && fallback.CountUsable(now) > 0));

    private static async Task StartedAsync(CancellationToken started, CancellationToken stoppingToken)
    {
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (started.Register(() => ready.TrySetResult()))
        using (stoppingToken.Register(() => ready.TrySetCanceled(stoppingToken)))
        {
            await ready.Task;
        }
    }

    [LoggerMessage(EventId = 9010, Level = LogLevel.Information, Message = "Heartbeat on: {Method:l} to the heartbeat URL every {Interval} while every pool can serve.")]
    private static partial void LogStarted(ILogger logger, string method, TimeSpan interval);

    [LoggerMessage(EventId = 9011, Level = LogLevel.Warning,
        Message = "The heartbeat ping {Outcome:l}; the monitor raises the alarm if pings stay away. Further failures are not logged until a ping succeeds.")]
    private static partial void LogFailed(ILogger logger, string outcome);

    [LoggerMessage(EventId = 9012, Level = LogLevel.Information, Message = "The heartbeat ping succeeds again, after {Failures} failed.")]
    private static partial void LogRecovered(ILogger logger, int failures);

    [LoggerMessage(EventId = 9013, Level = LogLevel.Warning,
        Message = "Heartbeat paused: {Reason:l}. The monitor raises the alarm when the next ping is overdue; pings resume once every pool can serve.")]
    private static partial void LogPaused(ILogger logger, string reason);

    [LoggerMessage(EventId = 9014, Level = LogLevel.Information, Message = "Heartbeat resumed: every pool can serve again.")]
    private static partial void LogResumed(ILogger logger);
}
