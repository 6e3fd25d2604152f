using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace AuthFailoverProxy.Demo.Drill;

/// <summary>One client request of the steady load, as the agent saw it.</summary>
/// <param name="SentAt">When it was sent, on the drill's clock.</param>
/// <param name="Took">How long until the answer (or the error).</param>
/// <param name="Replica">The replica that answered (after a reroute, the second one).</param>
/// <param name="Status">The HTTP status, or 0 when no answer came.</param>
/// <param name="Key">The <c>x-afp-key</c> header: the key that served it.</param>
/// <param name="Body">The body of an answer other than 200 (cut), or the error of a request that got none.</param>
/// <param name="Rerouted">Whether the first replica could not be reached and the request went to another one.</param>
internal sealed record DrillRequest(TimeSpan SentAt, TimeSpan Took, string Replica, int Status, string? Key, string? Body, bool Rerouted)
{
    public bool Failed => Status != 200;
}

/// <summary>
/// A steady, bounded load of <c>POST /v1/messages</c> spread round-robin over the replicas, the way agents behind a load
/// balancer send it. The drill's client stands in for that balancer: a request a replica cannot take (connection
/// refused or reset before an answer) goes once to another replica, as nginx's <c>proxy_next_upstream error</c> does,
/// and a replica that refuses connections leaves the rotation.
/// </summary>
internal sealed class DrillLoad : IAsyncDisposable
{
    private const int MaxInFlight = 64;
    private const int MaxBodyChars = 4000;
    private const string Body = """{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"Say hello."}]}""";

    private readonly IReadOnlyList<DrillCluster.Replica> _replicas;
    private readonly Stopwatch _clock;
    private readonly TimeSpan _interval;
    private readonly TimeSpan _maxDuration;
    private readonly HttpClient _client;
    private readonly ConcurrentQueue<DrillRequest> _requests = new();
    private readonly ConcurrentDictionary<int, Task> _inFlight = new();
    private readonly ConcurrentDictionary<string, bool> _outOfRotation = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;
    private int _sequence;

    public DrillLoad(IReadOnlyList<DrillCluster.Replica> replicas, Stopwatch clock, int requestsPerSecond, TimeSpan maxDuration)
    {
        _replicas = replicas;
        _clock = clock;
        _interval = TimeSpan.FromSeconds(1.0 / requestsPerSecond);
        _maxDuration = maxDuration;
        _client = new HttpClient(new SocketsHttpHandler
        {
            UseProxy = false,
            ConnectTimeout = TimeSpan.FromSeconds(2),
            MaxConnectionsPerServer = MaxInFlight,
        })
        {
            Timeout = TimeSpan.FromSeconds(20),
        };
    }

    public IReadOnlyList<DrillRequest> Requests => [.. _requests];

    public void Start() => _loop = RunAsync(_stop.Token);

    /// <summary>Stops sending and waits (bounded) for the requests still in flight.</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        if (_loop is not null)
        {
            await _loop;
        }

        await Task.WhenAny(Task.WhenAll(_inFlight.Values), Task.Delay(TimeSpan.FromSeconds(25)));
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _client.Dispose();
        _stop.Dispose();
    }

    private async Task RunAsync(CancellationToken stop)
    {
        var started = _clock.Elapsed;
        using var timer = new PeriodicTimer(_interval);
        try
        {
            while (_clock.Elapsed - started < _maxDuration && await timer.WaitForNextTickAsync(stop))
            {
                if (_inFlight.Count >= MaxInFlight)
                {
                    continue;
                }

                var id = Interlocked.Increment(ref _sequence);
                var task = SendAsync(id);
                _inFlight[id] = task;
                _ = task.ContinueWith(_ => _inFlight.TryRemove(id, out Task? _), TaskScheduler.Default);
            }
        }
        catch (OperationCanceledException)
        {
            // Stopped.
        }
    }

    private async Task SendAsync(int id)
    {
        var sentAt = _clock.Elapsed;
        var live = _replicas.Where(r => !_outOfRotation.ContainsKey(r.Name)).ToList();
        if (live.Count == 0)
        {
            _requests.Enqueue(new DrillRequest(sentAt, TimeSpan.Zero, "-", 0, null, "no replica in rotation", Rerouted: false));
            return;
        }

        var first = live[id % live.Count];
        var (record, reachable) = await TryAsync(first, sentAt, rerouted: false);
        if (!reachable)
        {
            var other = live.FirstOrDefault(r => r != first && !_outOfRotation.ContainsKey(r.Name));
            if (other is not null)
            {
                (record, _) = await TryAsync(other, sentAt, rerouted: true);
            }
        }

        _requests.Enqueue(record);
    }

    private async Task<(DrillRequest Record, bool Reachable)> TryAsync(DrillCluster.Replica replica, TimeSpan sentAt, bool rerouted)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(replica.Agent, "v1/messages"))
        {
            Content = new StringContent(Body, Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("x-api-key", DrillCluster.ClientToken);
        request.Headers.Add("anthropic-version", "2023-06-01");
        try
        {
            using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseContentRead);
            var key = response.Headers.TryGetValues("x-afp-key", out var keys) ? keys.FirstOrDefault() : null;
            var text = response.IsSuccessStatusCode ? null : Cut(await response.Content.ReadAsStringAsync());
            return (new DrillRequest(sentAt, _clock.Elapsed - sentAt, replica.Name, (int)response.StatusCode, key, text, rerouted), true);
        }
        catch (HttpRequestException ex)
        {
            // No answer from this replica: refused, reset or cut before the end. The balancer's job, not the agent's.
            if (ex.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionRefused })
            {
                _outOfRotation[replica.Name] = true;
            }

            return (new DrillRequest(sentAt, _clock.Elapsed - sentAt, replica.Name, 0, null, Cut(ex.Message), rerouted), false);
        }
        catch (TaskCanceledException ex)
        {
            return (new DrillRequest(sentAt, _clock.Elapsed - sentAt, replica.Name, 0, null, "timed out: " + ex.Message, rerouted), true);
        }
    }

    private static string Cut(string text) => text.Length <= MaxBodyChars ? text : text[..MaxBodyChars];
}
