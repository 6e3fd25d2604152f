using System.Diagnostics;
using System.Net;
using Yarp.ReverseProxy.Forwarder;

// The benchmark's reference proxy: every request goes to one upstream through IHttpForwarder, with the client's
// x-api-key replaced by a fixed one. It does what AuthFailoverProxy does on its happy path and nothing else, so the
// difference between the two is the price of the failover machinery.
//   BareYarp --urls http://127.0.0.1:5100 --upstream http://127.0.0.1:8081 [--api-key sk-…]
// or BAREYARP_UPSTREAM / BAREYARP_API_KEY in the environment.
var builder = WebApplication.CreateBuilder(args);
builder.Logging.SetMinimumLevel(LogLevel.Warning);
builder.WebHost.ConfigureKestrel(kestrel => kestrel.AddServerHeader = false);
builder.Services.AddHttpForwarder();

var upstream = builder.Configuration["upstream"] ?? builder.Configuration["BAREYARP_UPSTREAM"]
    ?? throw new InvalidOperationException("Set the upstream with --upstream http://host:port or BAREYARP_UPSTREAM.");
var apiKey = builder.Configuration["api-key"] ?? builder.Configuration["BAREYARP_API_KEY"] ?? "sk-ant-api03-bare-yarp-reference-key";

var app = builder.Build();

// The same connection settings as AuthFailoverProxy's PoolRegistry.CreateClient (defaults of FailoverOptions).
using var client = new HttpMessageInvoker(new SocketsHttpHandler
{
    UseProxy = true,
    AllowAutoRedirect = false,
    AutomaticDecompression = DecompressionMethods.None,
    UseCookies = false,
    EnableMultipleHttp2Connections = true,
    ConnectTimeout = TimeSpan.FromSeconds(10),
    PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
    ActivityHeadersPropagator = new ReverseProxyPropagator(DistributedContextPropagator.Current),
}, disposeHandler: true);

var requestConfig = new ForwarderRequestConfig { ActivityTimeout = TimeSpan.FromMinutes(15) };
var transformer = new ApiKeyTransformer(apiKey);
var forwarder = app.Services.GetRequiredService<IHttpForwarder>();
var destinationPrefix = new Uri(upstream).GetLeftPart(UriPartial.Path).TrimEnd('/');

app.Run(async context =>
{
    // Errors are answered by YARP itself (502/504); the reference does nothing more with them.
    await forwarder.SendAsync(context, destinationPrefix, client, requestConfig, transformer, context.RequestAborted);
});
await app.RunAsync();

/// <summary>Copies the request headers (base behaviour) and puts the fixed key in x-api-key.</summary>
internal sealed class ApiKeyTransformer(string apiKey) : HttpTransformer
{
    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
        proxyRequest.Headers.Remove("x-api-key");
        proxyRequest.Headers.TryAddWithoutValidation("x-api-key", apiKey);
    }
}
