using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;

namespace AuthFailoverProxy.Demo.Drill;

/// <summary>One alert as the drill's webhook received it, stamped with the drill's clock.</summary>
/// <param name="At">When it arrived, on the drill's clock.</param>
/// <param name="Type">trigger, update, resolve, notice…</param>
/// <param name="Kind">The event kind, e.g. <c>key.dead</c>.</param>
/// <param name="Key">The key it is about, if any.</param>
/// <param name="Incident">The incident it opens or ends, if any.</param>
/// <param name="Replica">The replica that sent it.</param>
internal sealed record DrillAlert(TimeSpan At, string Type, string Kind, string? Key, string? Incident, string? Replica)
{
    /// <summary>Gets what makes two alerts the same message: one state change told twice is a duplicate.</summary>
    public string Identity => $"{Type} {Kind} {Incident ?? Key ?? Replica}";

    public string Describe() => Key is null ? $"{Type} {Kind}" : $"{Type} {Kind} '{Key}'";
}

/// <summary>
/// The webhook the replicas alert to: a real HTTP server on 127.0.0.1 (Kestrel, no logging) that records every
/// generic-webhook alert it receives and answers 200.
/// </summary>
internal sealed class DrillAlertReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly Stopwatch _clock;
    private readonly List<DrillAlert> _alerts = [];

    private DrillAlertReceiver(WebApplication app, Stopwatch clock)
    {
        _app = app;
        _clock = clock;
        app.Run(ReceiveAsync);
    }

    public Uri Url { get; private set; } = null!;

    public IReadOnlyList<DrillAlert> Alerts
    {
        get
        {
            lock (_alerts)
            {
                return [.. _alerts];
            }
        }
    }

    public static async Task<DrillAlertReceiver> StartAsync(Stopwatch clock, CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Listen(IPAddress.Loopback, 0);
        });
        var receiver = new DrillAlertReceiver(builder.Build(), clock);
        await receiver._app.StartAsync(cancellationToken);
        var address = receiver._app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        receiver.Url = new Uri(address.TrimEnd('/') + "/alerts", UriKind.Absolute);
        return receiver;
    }

    /// <summary>The first alert of <paramref name="kind"/> (about <paramref name="key"/> when given) received at or after <paramref name="since"/>.</summary>
    public DrillAlert? First(string kind, string? key, TimeSpan since)
        => Alerts.FirstOrDefault(a => a.At >= since && a.Kind == kind && (key is null || a.Key == key) && a.Type is "trigger" or "update" or "notice");

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync(CancellationToken.None);
        await _app.DisposeAsync();
    }

    private async Task ReceiveAsync(HttpContext context)
    {
        try
        {
            using var document = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted);
            var root = document.RootElement;
            var type = Text(root, "type") ?? "?";
            var alert = root.TryGetProperty("event", out var e)
                ? new DrillAlert(_clock.Elapsed, type, Text(e, "kind") ?? "?", Text(e, "key"), Text(e, "incident"), Text(e, "replica"))
                : new DrillAlert(_clock.Elapsed, type, "?", null, null, null);
            lock (_alerts)
            {
                _alerts.Add(alert);
            }

            context.Response.StatusCode = StatusCodes.Status200OK;
        }
        catch (JsonException)
        {
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
        }
    }

    private static string? Text(JsonElement element, string name)
        => element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}
