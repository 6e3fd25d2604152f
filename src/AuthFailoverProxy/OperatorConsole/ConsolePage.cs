using System.Collections.Frozen;
using System.Security.Cryptography;

namespace AuthFailoverProxy.OperatorConsole;

/// <summary>
/// Serves the operator console on the management listener: <c>/console/</c> (and <c>/</c>, which leads there) with its
/// script and style, from resources in the binary. The files hold no data and no secret, so they need no token; the
/// page asks for one and sends it on every call it makes. A strict content security policy lets the page load only
/// itself and talk only to the proxy: no inline script, nothing from another origin, no framing.
/// </summary>
internal static class ConsolePage
{
    private const string Policy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    private static readonly FrozenDictionary<string, Asset> Assets = Load();

    public static IApplicationBuilder UseConsolePage(this IApplicationBuilder management)
    {
        management.Use((context, next) =>
        {
            var path = context.Request.Path.Value;
            if (path is "/" or "/console")
            {
                context.Response.Redirect("/console/");
                return Task.CompletedTask;
            }

            if (path is null || !path.StartsWith("/console/", StringComparison.Ordinal))
            {
                return next(context);
            }

            var name = path.Length == "/console/".Length ? "index.html" : path["/console/".Length..];
            if (!HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method))
            {
                context.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
                return Task.CompletedTask;
            }

            if (name == "access")
            {
                return AccessAsync(context);
            }

            return Assets.TryGetValue(name, out var asset) ? ServeAsync(context, asset) : NotFound(context);
        });
        return management;
    }

    private static Task ServeAsync(HttpContext context, Asset asset)
    {
        var response = context.Response;
        var headers = response.Headers;
        headers.ContentSecurityPolicy = Policy;
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        headers.XFrameOptions = "DENY";
        headers.CacheControl = "no-cache";
        headers.ETag = asset.ETag;
        if (context.Request.Headers.IfNoneMatch == asset.ETag)
        {
            response.StatusCode = StatusCodes.Status304NotModified;
            return Task.CompletedTask;
        }

        response.ContentType = asset.ContentType;
        response.ContentLength = asset.Bytes.Length;
        return HttpMethods.IsHead(context.Request.Method) ? Task.CompletedTask : response.Body.WriteAsync(asset.Bytes, context.RequestAborted).AsTask();
    }

    /// <summary>
    /// What the page needs to know before it asks for anything: whether reading the state needs a token, and whether
    /// there is an admin API at all. Without it the page's first calls would be refused, and a browser reports each
    /// refusal as an error.
    /// </summary>
    private static Task AccessAsync(HttpContext context)
    {
        var services = context.RequestServices;
        var access = new ConsoleAccess(
            services.GetRequiredService<Admin.ManagementAccess>().Required,
            services.GetRequiredService<Microsoft.Extensions.Options.IOptions<Admin.AdminOptions>>().Value.Tokens.Count > 0);
        context.Response.Headers.CacheControl = "no-store";
        return Results.Json(access, Admin.AdminJsonContext.Readable.ConsoleAccess).ExecuteAsync(context);
    }

    private static Task NotFound(HttpContext context)
    {
        context.Response.StatusCode = StatusCodes.Status404NotFound;
        return Task.CompletedTask;
    }

    private static FrozenDictionary<string, Asset> Load()
    {
        var assembly = typeof(ConsolePage).Assembly;
        var assets = new Dictionary<string, Asset>(StringComparer.Ordinal);
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith("console/", StringComparison.Ordinal)))
        {
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            var bytes = copy.ToArray();
            var name = resource["console/".Length..];
            var type = Path.GetExtension(name) switch
            {
                ".html" => "text/html; charset=utf-8",
                ".js" => "text/javascript; charset=utf-8",
                ".css" => "text/css; charset=utf-8",
                ".svg" => "image/svg+xml",
                _ => "application/octet-stream",
            };
            assets[name] = new Asset(bytes, type, $"\"{Convert.ToHexStringLower(SHA256.HashData(bytes))[..16]}\"");
        }

        return assets.ToFrozenDictionary(StringComparer.Ordinal);
    }

    private sealed record Asset(byte[] Bytes, string ContentType, string ETag);
}

/// <param name="TokenRequired">Whether <c>/status</c> needs the management token or an admin token.</param>
/// <param name="AdminApi">Whether admin tokens are configured: the events and every change need one (or the management token, to read).</param>
internal sealed record ConsoleAccess(bool TokenRequired, bool AdminApi);
