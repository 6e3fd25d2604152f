using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace AuthFailoverProxy.Tests.Telemetry;

/// <summary>A heartbeat monitor on loopback (healthchecks.io style): counts the pings it gets and answers a chosen status.</summary>
internal sealed class PingReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<(string Method, string Path)> _pings = new();
    private volatile int _status = StatusCodes.Status200OK;

    private PingReceiver(WebApplication app, Uri baseAddress)
    {
        _app = app;
        BaseAddress = baseAddress;
    }

    public Uri BaseAddress { get; }

    public int Count => _pings.Count;

    public IReadOnlyList<(string Method, string Path)> Pings => [.. _pings];

    /// <summary>Sets the status code the following pings are answered with.</summary>
    public void AnswerWith(int status) => _status = status;

    public static async Task<PingReceiver> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        PingReceiver? receiver = null;
        app.Run(context =>
        {
            receiver!._pings.Enqueue((context.Request.Method, context.Request.Path.Value ?? string.Empty));
            context.Response.StatusCode = receiver._status;
            return Task.CompletedTask;
        });
        await app.StartAsync(TestContext.Current.CancellationToken);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        receiver = new PingReceiver(app, new Uri(address));
        return receiver;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync(CancellationToken.None);
        await _app.DisposeAsync();
    }
}
