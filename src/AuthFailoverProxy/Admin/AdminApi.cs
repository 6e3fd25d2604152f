using System.Text.Json.Serialization;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.Proxying;
using AuthFailoverProxy.State;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace AuthFailoverProxy.Admin;

/// <summary>
/// Key management on the management listener only: <c>GET /admin/keys</c>,
/// <c>POST /admin/pools/{pool}/keys/{key}/disable</c> and <c>…/enable</c>. Every call needs an admin token (constant-time
/// check); every change is recorded with who, what and when. Taking away a pool's last usable key needs
/// <c>?force=true</c>, and the answer says what will happen. Routes are matched by hand: endpoint routing here would put a
/// route matcher in front of every agent request (see <see cref="ManagementEndpoints"/>).
/// </summary>
internal sealed partial class AdminApi(IOptions<AdminOptions> options, PoolRegistry registry, KeyStateBoard board, TimeProvider time, ILogger<AdminApi> logger)
{
    private readonly TokenSet _tokens = new(options.Value.Tokens.Select((t, i) => (t.Name ?? $"admin-{i + 1}", t.Token ?? string.Empty)));

    public Task HandleAsync(HttpContext context)
    {
        if (_tokens.IsEmpty)
        {
            return Error(context, StatusCodes.Status403Forbidden, "the admin API is off: set Admin:Tokens (or AFP_ADMIN_TOKEN) to use it.");
        }

        if (_tokens.Match(TokenSet.Bearer(context.Request.Headers[HeaderNames.Authorization].ToString())) is not { } who)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
            return Error(context, StatusCodes.Status401Unauthorized, "missing or invalid admin token (Authorization: Bearer <token>).");
        }

        var segments = context.Request.Path.Value!.Split('/', StringSplitOptions.RemoveEmptyEntries);
        var method = context.Request.Method;
        var force = string.Equals(context.Request.Query["force"], "true", StringComparison.OrdinalIgnoreCase);
        return (method, segments) switch
        {
            ("GET", ["keys"]) => Json(context, StatusCodes.Status200OK, ListKeys()),
            ("POST", ["pools", var pool, "keys", var key, "disable"]) => DisableAsync(context, who, pool, key, force),
            ("POST", ["pools", var pool, "keys", var key, "enable"]) => EnableAsync(context, who, pool, key),
            _ => Error(context, StatusCodes.Status404NotFound, "no such admin endpoint: GET /admin/keys, POST /admin/pools/{pool}/keys/{key}/disable[?force=true], POST /admin/pools/{pool}/keys/{key}/enable."),
        };
    }

    private AdminKeyList ListKeys()
    {
        var now = time.GetUtcNow();
        return new([.. registry.Pools.OrderBy(p => p.Name, StringComparer.Ordinal).SelectMany(p => p.Keys.Select(k => new AdminKey(p.Name, KeyStatus.Capture(k, now))))]);
    }

    private Task DisableAsync(HttpContext context, string who, string poolName, string keyName, bool force)
    {
        if (!TryFind(poolName, keyName, out var pool, out var key))
        {
            return Error(context, StatusCodes.Status404NotFound, $"no key '{keyName}' in pool '{poolName}'.");
        }

        var now = time.GetUtcNow();
        var nowUnixMs = now.ToUnixTimeMilliseconds();
        var usableAfter = pool.Keys.Count(k => !ReferenceEquals(k, key) && k.Health.CanServeAt(nowUnixMs));
        var consequence = usableAfter > 0
            ? $"pool '{pool.Name}' keeps {usableAfter} usable key(s)."
            : pool.Fallback is { } fallback
                ? $"pool '{pool.Name}' has no usable key left: its requests go to fallback pool '{fallback.Name}' (safe mode)."
                : $"pool '{pool.Name}' has no usable key left: every request gets a 503 until a key is enabled or heals.";
        if (usableAfter == 0 && key.Health.CanServeAt(nowUnixMs) && !force)
        {
            return Error(context, StatusCodes.Status409Conflict, $"refused: disabling '{key.Name}' means {consequence} Repeat with ?force=true to do it anyway.");
        }

        var changed = board.Disable(key, who);
        if (changed)
        {
            LogChange(logger, who, now, "disabled", key.Name, key.Fingerprint, pool.Name);
        }

        return Json(context, StatusCodes.Status200OK, new AdminChange(pool.Name, key.Name, key.Health.State.ToString().ToLowerInvariant(), changed, who, now, changed ? $"'{key.Name}' is disabled; {consequence}" : $"'{key.Name}' was already disabled."));
    }

    private Task EnableAsync(HttpContext context, string who, string poolName, string keyName)
    {
        if (!TryFind(poolName, keyName, out var pool, out var key))
        {
            return Error(context, StatusCodes.Status404NotFound, $"no key '{keyName}' in pool '{poolName}'.");
        }

        var now = time.GetUtcNow();
        var changed = board.Enable(key, who);
        if (changed)
        {
            LogChange(logger, who, now, "enabled", key.Name, key.Fingerprint, pool.Name);
        }

        var state = key.Health.State.ToString().ToLowerInvariant();
        return Json(context, StatusCodes.Status200OK, new AdminChange(pool.Name, key.Name, state, changed, who, now, changed ? $"'{key.Name}' is back in service." : $"'{key.Name}' was not disabled (it is {state}); nothing changed."));
    }

    private bool TryFind(string poolName, string keyName, out Pool pool, out PoolKey key)
    {
        pool = registry.Find(poolName)!;
        key = pool?.Keys.FirstOrDefault(k => k.Name == keyName)!;
        return key is not null;
    }

    private static Task Json<T>(HttpContext context, int status, T value)
    {
        context.Response.StatusCode = status;
        return context.Response.WriteAsJsonAsync(value, (System.Text.Json.Serialization.Metadata.JsonTypeInfo<T>)AdminJsonContext.Default.GetTypeInfo(typeof(T))!);
    }

    private static Task Error(HttpContext context, int status, string message) => Json(context, status, new AdminError(message));

    [LoggerMessage(EventId = 6001, Level = LogLevel.Warning, Message = "Admin change by {Operator:l} at {At:O}: {Action:l} key '{KeyName:l}' ({Fingerprint:l}) in pool '{Pool:l}'.")]
    private static partial void LogChange(ILogger logger, string @operator, DateTimeOffset at, string action, string keyName, string fingerprint, string pool);
}

internal sealed record AdminKeyList(IReadOnlyList<AdminKey> Keys);

internal sealed record AdminKey(string Pool, [property: JsonPropertyName("key")] KeyStatus Status);

internal sealed record AdminChange(string Pool, string Key, string State, bool Changed, string By, DateTimeOffset At, string Message);

internal sealed record AdminError(string Error);
