using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;

namespace AuthFailoverProxy.Tests.Fakes;

/// <summary>
/// A real HTTP server (Kestrel) on 127.0.0.1 and a port the OS picks, standing in for Slack, Discord, Teams, PagerDuty
/// or any webhook: it records every request, by path, and answers as told per path: a status and body (200 by
/// default), or no answer at all until the caller gives up.
/// </summary>
internal sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly List<ReceivedWebhook> _requests = [];
    private readonly ConcurrentDictionary<string, (int Status, string? Body, TimeSpan? RetryAfter)> _answers = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, bool> _hanging = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();

    private WebhookReceiver(WebApplication app)
    {
        _app = app;
        app.Run(HandleAsync);
    }

    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>Gets a snapshot of every request received, answered or not, in order.</summary>
    public IReadOnlyList<ReceivedWebhook> Requests
    {
        get
        {
            lock (_requests)
            {
                return [.. _requests];
            }
        }
    }

    public static async Task<WebhookReceiver> StartAsync()
    {
        // No configuration, no logging: nothing of a test's setup can leak into it, and it says nothing.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Listen(IPAddress.Loopback, 0);
        });
        var receiver = new WebhookReceiver(builder.Build());
        await receiver._app.StartAsync(TestContext.Current.CancellationToken);
        var address = receiver._app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        receiver.BaseAddress = new Uri(address.TrimEnd('/'), UriKind.Absolute);
        return receiver;
    }

    /// <summary>Gets the URL of a path on this receiver, e.g. <c>/slack</c>.</summary>
    public string Url(string path) => BaseAddress + path.TrimStart('/');

    /// <summary>Answers requests to <paramref name="path"/> with this status (and body, and <c>Retry-After</c>) from now on.</summary>
    public void Answer(string path, int status, string? body = null, TimeSpan? retryAfter = null)
    {
        _hanging.TryRemove(path, out _);
        _answers[path] = (status, body, retryAfter);
    }

    /// <summary>Never answers requests to <paramref name="path"/>: they wait until the caller gives up.</summary>
    public void Hang(string path) => _hanging[path] = true;

    public IReadOnlyList<ReceivedWebhook> At(string path) => [.. Requests.Where(r => r.Path == path)];

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        await _app.StopAsync(CancellationToken.None);
        await _app.DisposeAsync();
        _stopping.Dispose();
    }

    private async Task HandleAsync(HttpContext context)
    {
        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer, context.RequestAborted);
        var path = context.Request.Path.Value ?? "/";
        var headers = context.Request.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase);
        lock (_requests)
        {
            _requests.Add(new ReceivedWebhook(path, headers, buffer.ToArray()));
        }

        if (_hanging.ContainsKey(path))
        {
            using var either = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _stopping.Token);
            await Task.Delay(Timeout.Infinite, either.Token).ContinueWith(static _ => { }, TaskScheduler.Default);
            return;
        }

        var (status, body, retryAfter) = _answers.GetValueOrDefault(path, (200, null, null));
        context.Response.StatusCode = status;
        if (retryAfter is { } wait)
        {
            context.Response.Headers.RetryAfter = ((int)wait.TotalSeconds).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        if (body is not null)
        {
            await context.Response.WriteAsync(body, context.RequestAborted);
        }
    }
}

/// <summary>One request as the receiver got it: path, headers by lower-case name, exact body bytes.</summary>
internal sealed record ReceivedWebhook(string Path, IReadOnlyDictionary<string, string> Headers, byte[] Body)
{
    public string Text => Encoding.UTF8.GetString(Body);

    public JsonElement Json => JsonDocument.Parse(Body).RootElement.Clone();
}
