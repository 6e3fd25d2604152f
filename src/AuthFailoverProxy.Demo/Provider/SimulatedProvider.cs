using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;

namespace AuthFailoverProxy.Demo.Provider;

/// <summary>
/// A real HTTPS server on loopback that answers like the Anthropic and OpenAI APIs behind their name-routed front, with
/// faults on demand: per key (revoked, OAuth refused, out of credit, rate limited…) and for the whole upstream
/// (overload, 5xx, reset, hang).
/// Serves the demo, the functional tests (one instance per test, in parallel) and the benchmark, so the request path is
/// lock-free except for the request log and takes nothing from the environment (no configuration, no logging).
/// </summary>
internal sealed partial class SimulatedProvider : IAsyncDisposable
{
    internal const string OrganizationId = "5e1f7a2c-0d9b-4c3e-8f61-2a7b9c4d0e15";
    internal const string ReplyText = "Hello from the simulated upstream.";
    private const string DefaultAnthropicModel = "claude-sonnet-4-5";
    private const string DefaultOpenAIModel = "gpt-4o";
    private const int OutputTokens = 9;
    private static readonly TimeSpan DefaultRetryAfter = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan ShutdownGrace = TimeSpan.FromSeconds(5);
    private static readonly string[] ReplyWords = ["Hello", " from", " the", " simulated", " upstream."];

    private readonly WebApplication _app;
    private readonly TimeProvider _time;
    private readonly SimulatedProviderOptions _options;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> _organizations = new(StringComparer.Ordinal);
    private readonly ProviderFront? _front;
    private readonly List<RecordedRequest> _misdirected = [];
    private readonly ConcurrentDictionary<string, KeyFaultEntry> _keyFaults = new(StringComparer.Ordinal);
    private readonly Queue<FaultBatch> _upstreamFaults = new();
    private readonly List<RecordedRequest> _requests = [];
    private readonly TaskCompletionSource _firstAbort = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stopping = new();
    private int _pendingUpstreamFaults;
    private int _requestCount;
    private int _abortedRequests;
    private int _disposed;

    private SimulatedProvider(WebApplication app, TimeProvider time, SimulatedProviderOptions options, ProviderFront? front)
    {
        _app = app;
        _time = time;
        _options = options;
        _front = front;
        app.Run(HandleAsync);
    }

    private enum Dialect
    {
        Anthropic,
        OpenAI,
    }

    /// <summary>Gets the provider's root under its own name, <c>https://api.anthropic.test:{port}</c> (<c>http://127.0.0.1:{port}</c> without TLS).</summary>
    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>Gets the address it listens on, <c>127.0.0.1:{port}</c>: what its name resolves to (<c>Transport:ConnectTo</c>).</summary>
    public string Endpoint { get; private set; } = null!;

    /// <summary>Gets the name it answers to.</summary>
    public string Name => _options.Name;

    /// <summary>Gets the PEM file of the CA its certificates chain to (<c>Transport:CaBundle</c>); null without TLS.</summary>
    public string? CaBundlePath => _front?.CaBundlePath;

    /// <summary>Gets the throwaway CA behind its certificates, to issue client certificates from; null without TLS.</summary>
    public ThrowawayCa? Ca => _front?.Ca;

    /// <summary>
    /// Gets the requests the front received for a name other than the provider's: another site it serves
    /// (<see cref="SimulatedProviderOptions.OtherSites"/>) or a name it does not serve (answered 421). A request here
    /// carried its credential to the wrong place.
    /// </summary>
    public IReadOnlyList<RecordedRequest> MisdirectedRequests
    {
        get
        {
            lock (_misdirected)
            {
                return [.. _misdirected];
            }
        }
    }

    /// <summary>Gets or sets a value indicating whether request bodies are kept in <see cref="Requests"/>. <value>The default value is <see langword="true"/>.</value></summary>
    public bool RecordBodies { get; set; } = true;

    /// <summary>Gets a snapshot of every request received, faulted ones included, in the order they were received.</summary>
    public IReadOnlyList<RecordedRequest> Requests
    {
        get
        {
            lock (_requests)
            {
                return [.. _requests];
            }
        }
    }

    /// <summary>Gets the number of requests that reached the server since it started (<see cref="ClearRequests"/> does not reset it).</summary>
    public int RequestCount => Volatile.Read(ref _requestCount);

    /// <summary>Gets the number of requests whose caller went away: a <see cref="UpstreamFault.Hang"/>, or a disconnect mid-stream.</summary>
    public int AbortedRequests => Volatile.Read(ref _abortedRequests);

    /// <summary>Gets a task that completes when the first request is aborted by its caller.</summary>
    public Task WhenAborted => _firstAbort.Task;

    /// <summary>
    /// Gets or sets a hook called before streaming event number <c>index</c> (0-based) of an SSE response is written;
    /// tests block here to prove events arrive one by one. The token fires when the caller goes away or the server stops.
    /// <value>The default value is <see langword="null"/> (no wait).</value>
    /// </summary>
    public Func<int, CancellationToken, Task>? BeforeStreamEvent { get; set; }

    /// <summary>Gets or sets the number of text delta events in a stream. <value>The default value is 5.</value></summary>
    public int StreamDeltas { get; set; } = 5;

    /// <summary>
    /// Starts a server on 127.0.0.1 (<paramref name="port"/> 0 picks a free port). By default it speaks HTTPS under the
    /// name <see cref="SimulatedProviderOptions.Name"/> with a throwaway CA, and refuses requests for any other name,
    /// as the provider's name-routed front does: point a pool at <see cref="BaseAddress"/> with
    /// <c>Transport:CaBundle</c> = <see cref="CaBundlePath"/> and <c>Transport:ConnectTo</c> = <see cref="Endpoint"/>.
    /// </summary>
    public static async Task<SimulatedProvider> StartAsync(TimeProvider? time = null, int port = 0, SimulatedProviderOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(port);
        options ??= new SimulatedProviderOptions();
        var front = options.Https ? ProviderFront.Create(options) : null;

        // The empty builder reads no appsettings, environment or command line and has no logging providers, so the fake
        // is silent and a test's configuration can never leak into it.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = null;
            // Tests stall streams and bodies on purpose; Kestrel must not cut them for being slow.
            kestrel.Limits.MinRequestBodyDataRate = null;
            kestrel.Limits.MinResponseDataRate = null;
            kestrel.Listen(IPAddress.Loopback, port, listen =>
            {
                listen.Protocols = options.Protocols;
                if (front is not null)
                {
                    listen.UseHttps(front.Configure);
                }
            });
        });

        var upstream = new SimulatedProvider(builder.Build(), time ?? TimeProvider.System, options, front);
        try
        {
            await upstream._app.StartAsync(cancellationToken);
            var address = new Uri(upstream._app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First());
            upstream.Endpoint = $"127.0.0.1:{address.Port}";
            upstream.BaseAddress = front is null ? new Uri($"http://127.0.0.1:{address.Port}") : new Uri($"https://{options.Name}:{address.Port}");
            return upstream;
        }
        catch
        {
            await upstream.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Makes every request with <paramref name="secret"/> fail with <paramref name="fault"/> from now on, or only the next
    /// <paramref name="times"/> ones (a blip: the provider says it once, then is fine again); <see cref="KeyFault.None"/>
    /// restores the key. <paramref name="retryAfter"/> is the wait a rate-limited key announces (default 30 seconds).
    /// </summary>
    public void SetKeyFault(string secret, KeyFault fault, TimeSpan? retryAfter = null, int? times = null)
    {
        ArgumentNullException.ThrowIfNull(secret);
        if (fault == KeyFault.None)
        {
            _keyFaults.TryRemove(secret, out _);
        }
        else
        {
            _keyFaults[secret] = new KeyFaultEntry(fault, retryAfter ?? DefaultRetryAfter, times ?? -1);
        }
    }

    /// <summary>
    /// Puts the key <paramref name="secret"/> in <paramref name="organization"/>: its answers name that organization
    /// (<c>anthropic-organization-id</c>, <c>openai-organization</c>), and the organization's model faults apply to it.
    /// Keys not placed belong to the one default organization of their dialect.
    /// </summary>
    public void SetKeyOrganization(string secret, string organization)
    {
        ArgumentNullException.ThrowIfNull(secret);
        ArgumentNullException.ThrowIfNull(organization);
        _organizations[secret] = organization;
    }

    /// <summary>The organization a request's key belongs to.</summary>
    private string OrganizationOf(string? secret, Dialect dialect)
        => secret is not null && _organizations.TryGetValue(secret, out var organization) ? organization
            : dialect == Dialect.Anthropic ? OrganizationId : OpenAIOrganization;

    /// <summary>Returns the fault a request with <paramref name="secret"/> meets now, using up one of a counted fault.</summary>
    private bool TryTakeKeyFault(string secret, out KeyFaultEntry fault)
    {
        if (!_keyFaults.TryGetValue(secret, out fault!))
        {
            return false;
        }

        if (fault.Remaining < 0)
        {
            return true;
        }

        var left = Interlocked.Decrement(ref fault.Remaining);
        if (left <= 0)
        {
            _keyFaults.TryRemove(new KeyValuePair<string, KeyFaultEntry>(secret, fault));
        }

        return left >= 0;
    }

    /// <summary>A key's fault, and how many more requests it takes (-1: every one).</summary>
    private sealed class KeyFaultEntry(KeyFault fault, TimeSpan retryAfter, int remaining)
    {
        public int Remaining = remaining;

        public KeyFault Fault => fault;

        public TimeSpan RetryAfter => retryAfter;
    }

    /// <summary>Makes the next <paramref name="count"/> requests, whatever their key, fail with <paramref name="fault"/>. Calls queue up in order.</summary>
    public void FailNext(int count, UpstreamFault fault)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count == 0)
        {
            return;
        }

        lock (_upstreamFaults)
        {
            _upstreamFaults.Enqueue(new FaultBatch(fault, count));
            _pendingUpstreamFaults += count;
        }
    }

    /// <summary>Forgets the recorded requests. <see cref="RequestCount"/> and <see cref="AbortedRequests"/> keep counting.</summary>
    public void ClearRequests()
    {
        lock (_requests)
        {
            _requests.Clear();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // Releases hanging and stalled requests first, so stopping does not wait for them.
        await _stopping.CancelAsync();
        using (var grace = new CancellationTokenSource(ShutdownGrace))
        {
            try
            {
                await _app.StopAsync(grace.Token);
            }
            catch (OperationCanceledException)
            {
                // Past the grace period Kestrel has aborted what was left; nothing more to wait for.
            }
        }

        await _app.DisposeAsync();
        _stopping.Dispose();
        _front?.Dispose();
    }

    private UpstreamFault? TakeUpstreamFault()
    {
        if (Volatile.Read(ref _pendingUpstreamFaults) == 0)
        {
            return null;
        }

        lock (_upstreamFaults)
        {
            if (!_upstreamFaults.TryPeek(out var next))
            {
                return null;
            }

            _pendingUpstreamFaults--;
            if (--next.Remaining == 0)
            {
                _upstreamFaults.Dequeue();
            }

            return next.Fault;
        }
    }

    /// <summary>One <see cref="FailNext"/> call: a fault and how many more requests it takes.</summary>
    private sealed class FaultBatch(UpstreamFault fault, int count)
    {
        public UpstreamFault Fault => fault;

        public int Remaining { get; set; } = count;
    }
}
