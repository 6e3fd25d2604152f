using AuthFailoverProxy.Hosting;
using AuthFailoverProxy.Proxying;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace AuthFailoverProxy.Admin;

/// <summary>
/// Who may read the management listener's state. With <see cref="ManagementOptions.Token"/> set, <c>/status</c>,
/// <c>/metrics</c>, <c>GET /admin/events</c> and <c>GET /admin/config</c> need it (or an admin token) as a bearer token: they name keys,
/// fingerprints, pools and the night's story, which is no business of whoever else reaches the port. <c>/healthz</c>
/// and <c>/readyz</c> stay open for the kubelet's probes. Without a token, the port is as open as its network.
/// </summary>
internal sealed class ManagementAccess
{
    /// <summary>Set on a request let in with the management token: it may read events and the configuration's shape, not change keys.</summary>
    internal const string ReaderItem = "afp.management-reader";

    private readonly TokenSet _readers;
    private readonly TokenSet _admins;

    public ManagementAccess(IOptions<ManagementOptions> management, IOptions<AdminOptions> admin)
    {
        _readers = new(management.Value.Token is { Length: > 0 } token ? [("management", token)] : []);
        _admins = new(admin.Value.Tokens.Select((t, i) => (t.Name ?? $"admin-{i + 1}", t.Token ?? string.Empty)));
    }

    /// <summary>Gets a value indicating whether reading the state needs a token.</summary>
    public bool Required => !_readers.IsEmpty;

    /// <summary>Lets a request through, or answers 401; only the paths that show state are guarded.</summary>
    public Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var path = context.Request.Path;
        var guarded = path.StartsWithSegments("/status") || path.StartsWithSegments("/metrics")
            || ((path.StartsWithSegments("/admin/events") || path.StartsWithSegments("/admin/config")) && HttpMethods.IsGet(context.Request.Method));
        if (!Required || !guarded)
        {
            return next(context);
        }

        var presented = TokenSet.Bearer(context.Request.Headers[HeaderNames.Authorization].ToString());
        if (_readers.Match(presented) is not null)
        {
            context.Items[ReaderItem] = true;
            return next(context);
        }

        if (_admins.Match(presented) is not null)
        {
            return next(context);
        }

        context.Response.StatusCode = StatusCodes.Status401Unauthorized;
        context.Response.Headers.WWWAuthenticate = "Bearer";
        return context.Response.WriteAsJsonAsync(
            new AdminError("missing or invalid management token (Authorization: Bearer <token>; Management:Token or AFP_MANAGEMENT_TOKEN)."),
            AdminJsonContext.Readable.AdminError);
    }
}
