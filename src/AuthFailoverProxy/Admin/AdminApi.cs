using System.Text.Json;
using System.Text.Json.Serialization;
using AuthFailoverProxy.Events;
using AuthFailoverProxy.Failover;
using AuthFailoverProxy.Health;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.Proxying;
using AuthFailoverProxy.State;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace AuthFailoverProxy.Admin;

/// <summary>
/// Key management on the management listener only. Every call needs an admin token (constant-time check); every change
/// is recorded with who, what and when.
/// <list type="bullet">
/// <item><c>GET /admin/keys</c>: every key by name, fingerprint, state, last error, since and source.</item>
/// <item><c>GET /admin/config</c>: the shape of the configuration in force (pools, upstreams, keys by name, fingerprint,
/// scheme and priority), never a secret: what <c>afp check-config --probe</c> compares a file with.</item>
/// <item><c>POST /admin/pools/{pool}/keys</c> with <c>{"name", "secret", "priority"?, "scheme"?, "openAIOrganization"?, "openAIProject"?}</c>: adds a key. It starts
/// <em>pending</em>: it is checked at once and the result shown, but it carries no traffic until an operator confirms
/// it with <c>POST …/keys/{key}/confirm</c>. Nothing enables itself because credentials merely exist.</item>
/// <item><c>POST …/keys/{key}/disable</c>, <c>…/enable</c>, and <c>DELETE …/keys/{key}</c> (keys added at runtime).</item>
/// </list>
/// Taking away a pool's last usable key needs <c>?force=true</c>, and the answer says what will happen. Routes are
/// matched by hand: endpoint routing here would put a route matcher in front of every agent request (see
/// <see cref="ManagementEndpoints"/>).
/// </summary>
internal sealed partial class AdminApi(
    IOptions<AdminOptions> options,
    PoolRegistry registry,
    KeyCatalog catalog,
    KeyStateBoard board,
    IKeyStateStore store,
    KeyProber prober,
    ProxyEvents events,
    TimeProvider time,
    ILogger<AdminApi> logger)
{
    private const int MaxRequestBytes = 16 * 1024;
    private readonly TokenSet _tokens = new(options.Value.Tokens.Select((t, i) => (t.Name ?? $"admin-{i + 1}", t.Token ?? string.Empty)));

    public Task HandleAsync(HttpContext context)
    {
        var reader = context.Items.ContainsKey(ManagementAccess.ReaderItem);
        if (_tokens.IsEmpty && !reader)
        {
            return Error(context, StatusCodes.Status403Forbidden, "the admin API is off: set Admin:Tokens (or AFP_ADMIN_TOKEN) to use it.");
        }

        // The management token (checked by ManagementAccess) reads the events and the configuration's shape; only an admin token changes keys.
        if ((reader ? "management" : _tokens.Match(TokenSet.Bearer(context.Request.Headers[HeaderNames.Authorization].ToString()))) is not { } who)
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
            ("GET", ["config"]) => Json(context, StatusCodes.Status200OK, ConfigurationReport.Capture(registry)),
            ("GET", ["events"]) => context.RequestServices.GetRequiredService<Audit.AuditEndpoints>().ListAsync(context),
            ("GET", ["events", "timeline"]) => context.RequestServices.GetRequiredService<Audit.AuditEndpoints>().TimelineAsync(context),
            ("GET", ["events", "stream"]) => context.RequestServices.GetRequiredService<Audit.EventStream>().StreamAsync(context),
            ("POST", ["pools", var pool, "keys"]) => AddAsync(context, who, pool),
            ("POST", ["pools", var pool, "keys", var key, "confirm"]) => WithKey(context, pool, key, (p, k) => ConfirmAsync(context, who, p, k, force)),
            ("POST", ["pools", var pool, "keys", var key, "disable"]) => WithKey(context, pool, key, (p, k) => DisableAsync(context, who, p, k, force)),
            ("POST", ["pools", var pool, "keys", var key, "enable"]) => WithKey(context, pool, key, (p, k) => EnableAsync(context, who, p, k, force)),
            ("DELETE", ["pools", var pool, "keys", var key]) => WithKey(context, pool, key, (p, k) => RemoveAsync(context, who, p, k, force)),
            _ => Error(context, StatusCodes.Status404NotFound, "no such admin endpoint: GET /admin/keys; GET /admin/config; POST /admin/pools/{pool}/keys with {\"name\",\"secret\",\"priority\"}; POST /admin/pools/{pool}/keys/{key}/confirm, /disable[?force=true] or /enable; DELETE /admin/pools/{pool}/keys/{key}[?force=true]; GET /admin/events?since=…&until=…[&pool=&key=&kind=&severity=&limit=] and GET /admin/events/timeline?since=…&until=… (what happened, as text)."),
        };
    }

    private AdminKeyList ListKeys()
    {
        var now = time.GetUtcNow();
        return new([.. registry.Pools.OrderBy(p => p.Name, StringComparer.Ordinal).SelectMany(p => p.Keys.Select(k => new AdminKey(p.Name, KeyStatus.Capture(k, now))))]);
    }

    private async Task AddAsync(HttpContext context, string who, string poolName)
    {
        if (registry.Find(poolName) is not { } pool)
        {
            await Error(context, StatusCodes.Status404NotFound, $"no pool '{poolName}'.");
            return;
        }

        if (await ReadAddRequestAsync(context) is not { } request)
        {
            await Error(context, StatusCodes.Status400BadRequest, $"send a JSON body {{\"name\": \"…\", \"secret\": \"…\", \"priority\": 5}} of at most {MaxRequestBytes / 1024} KB (priority is optional; lower is tried first; by default the key goes last).");
            return;
        }

        if (AddRefusal(pool, request) is { } refusal)
        {
            await Error(context, refusal.Status, refusal.Message);
            return;
        }

        if (!store.RuntimeKeysAccepted)
        {
            await Error(context, StatusCodes.Status409Conflict, $"keys cannot be added at runtime: they would be kept {store.RuntimeKeysKeptIn}.");
            return;
        }

        var now = time.GetUtcNow();
        var priority = request.Priority ?? (pool.Keys.Count == 0 ? 0 : pool.Keys.Max(k => k.Priority) + 1);
        var scheme = CredentialSchemes.Resolve(pool.Name, pool.Kind, request.Secret!, request.Scheme, "scheme", null, []);
        var key = new PoolKey(pool.Name, request.Name!, request.Secret!, priority, $"admin API ({who})", scheme, now, addedAtRuntime: true)
        {
            Account = KeyAccount.From(request.OpenAIOrganization, request.OpenAIProject, "openAI", []),
        };
        // In the pool first (pending: no traffic), so this replica's own notice from the store finds it there.
        catalog.Add(pool, key, who);
        try
        {
            await store.SaveRuntimeKeyAsync(key, context.RequestAborted);
        }
        catch (KeyStoreException ex)
        {
            catalog.Remove(pool, key, "a failed add");
            await Error(context, StatusCodes.Status503ServiceUnavailable, ex.Message);
            return;
        }

        board.Added(key);
        LogChange(logger, who, now, "added (pending)", key.Name, key.Fingerprint, pool.Name);
        var check = await CheckAsync(pool, key, who, context.RequestAborted);
        var warnings = KeyLint.Check(registry.Pools).Where(f => f.Pool == pool.Name && f.Key == key.Name).Select(f => f.Message).ToList();
        var confirm = $"POST /admin/pools/{pool.Name}/keys/{key.Name}/confirm";
        var message = check.Outcome == "rejected"
            ? $"'{key.Name}' is pending and carries no traffic. The check found it rejected: fix the key and add it again, or remove it (DELETE /admin/pools/{pool.Name}/keys/{key.Name})."
            : $"'{key.Name}' is pending and carries no traffic until you confirm it: {confirm}.";
        await Json(context, StatusCodes.Status201Created, new AdminAdded(pool.Name, KeyStatus.Capture(key, time.GetUtcNow()), check, warnings, $"kept {store.RuntimeKeysKeptIn}", who, now, message));
    }

    private static (int Status, string Message)? AddRefusal(Pool pool, AddKeyRequest request)
    {
        if (string.IsNullOrEmpty(request.Name) || !KeySource.IsValidName(request.Name))
        {
            return (StatusCodes.Status400BadRequest, "name is missing or invalid: it may contain only letters, digits, '.', '_' and '-' (at most 100).");
        }

        if (string.IsNullOrEmpty(request.Secret))
        {
            return (StatusCodes.Status400BadRequest, "secret is missing.");
        }

        if (KeySource.CheckSecret(request.Secret) is { } problem)
        {
            return (StatusCodes.Status400BadRequest, $"the secret {problem}");
        }

        if (request.Priority is < 0)
        {
            return (StatusCodes.Status400BadRequest, "priority must be 0 or more (lower is tried first).");
        }

        var schemeErrors = new List<string>();
        CredentialSchemes.Resolve(pool.Name, pool.Kind, request.Secret, request.Scheme, "scheme", null, schemeErrors);
        if (schemeErrors.Count > 0)
        {
            return (StatusCodes.Status400BadRequest, schemeErrors[0] + " Leave it out to use what the key's format calls for.");
        }

        KeyAccount.From(request.OpenAIOrganization, request.OpenAIProject, "openAI", schemeErrors);
        if (schemeErrors.Count > 0)
        {
            return (StatusCodes.Status400BadRequest, schemeErrors[0]);
        }

        if (pool.FindKey(request.Name) is { } existing)
        {
            return (StatusCodes.Status409Conflict, $"pool '{pool.Name}' already has a key named '{existing.Name}' ({existing.Fingerprint}, from {existing.Source}). Choose another name, or remove that key first.");
        }

        var identity = PoolKey.IdentityOf(request.Secret);
        if (pool.Keys.FirstOrDefault(k => k.Identity == identity) is { } same)
        {
            return (StatusCodes.Status409Conflict, $"this secret is already in pool '{pool.Name}' as '{same.Name}': two names for one key fail together, so it would be no fallback. Add a different key.");
        }

        return null;
    }

    private async Task ConfirmAsync(HttpContext context, string who, Pool pool, PoolKey key, bool force)
    {
        if (key.Health.State != KeyState.Pending)
        {
            await Json(context, StatusCodes.Status409Conflict, new AdminError($"'{key.Name}' is not pending (it is {StateOf(key)}); nothing to confirm."));
            return;
        }

        // Checked again: the first check may be old, and this is the moment traffic starts to depend on it.
        var check = await CheckAsync(pool, key, who, context.RequestAborted);
        if (check.Outcome == "rejected" && !force)
        {
            await Error(context, StatusCodes.Status409Conflict, $"refused: the check found '{key.Name}' rejected ({check.Detail}). Confirming puts it in service anyway, where requests would fail over past it. Repeat with ?force=true to do it anyway.");
            return;
        }

        var now = time.GetUtcNow();
        var changed = board.Confirm(key, who);
        if (changed)
        {
            LogChange(logger, who, now, "confirmed", key.Name, key.Fingerprint, pool.Name);
            Publish(EventKinds.KeyConfirmed, who, key, now, $"Key '{key.Name}' ({key.Fingerprint}) in pool '{pool.Name}' was confirmed by {who} and is in service.", ProxyEventSources.PendingIncident(key), resolves: true);
        }

        await Json(context, StatusCodes.Status200OK, new AdminChange(pool.Name, key.Name, StateOf(key), changed, who, now, changed ? $"'{key.Name}' is in service." : $"'{key.Name}' was not pending (it is {StateOf(key)}); nothing changed.", check));
    }

    private Task DisableAsync(HttpContext context, string who, Pool pool, PoolKey key, bool force)
    {
        var now = time.GetUtcNow();
        if (LastUsableRefusal(pool, key, now, force, "disabling", out var consequence) is { } refusal)
        {
            return Error(context, StatusCodes.Status409Conflict, refusal);
        }

        var changed = board.Disable(key, who);
        if (changed)
        {
            LogChange(logger, who, now, "disabled", key.Name, key.Fingerprint, pool.Name);
            Publish(EventKinds.KeyDisabled, who, key, now, $"Key '{key.Name}' ({key.Fingerprint}) in pool '{pool.Name}' was disabled by {who}: {consequence}");
        }

        return Json(context, StatusCodes.Status200OK, new AdminChange(pool.Name, key.Name, StateOf(key), changed, who, now, changed ? $"'{key.Name}' is disabled; {consequence}" : $"'{key.Name}' was already disabled."));
    }

    private async Task EnableAsync(HttpContext context, string who, Pool pool, PoolKey key, bool force)
    {
        // A key that failed before it was disabled (a dead key taken out by hand, say) is checked before it carries
        // traffic again: enabling it blind would send the next requests into the refusal it was taken out for.
        AdminCheck? check = null;
        if (key.Health.State == KeyState.Disabled && key.Health.LastFailure is not null)
        {
            check = await CheckAsync(pool, key, who, context.RequestAborted);
            if (check.Outcome == "rejected" && !force)
            {
                await Error(context, StatusCodes.Status409Conflict, $"refused: the check found '{key.Name}' still rejected ({check.Detail}). It stays disabled. Repeat with ?force=true to enable it anyway.");
                return;
            }
        }

        var now = time.GetUtcNow();
        var changed = board.Enable(key, who);
        if (changed)
        {
            LogChange(logger, who, now, "enabled", key.Name, key.Fingerprint, pool.Name);
            Publish(EventKinds.KeyEnabled, who, key, now, $"Key '{key.Name}' ({key.Fingerprint}) in pool '{pool.Name}' was enabled by {who} and is back in service.");
        }

        var state = StateOf(key);
        var message = changed
            ? $"'{key.Name}' is back in service."
            : key.Health.State == KeyState.Pending
                ? $"'{key.Name}' is pending, not disabled: confirm it with POST /admin/pools/{pool.Name}/keys/{key.Name}/confirm."
                : $"'{key.Name}' was not disabled (it is {state}); nothing changed.";
        await Json(context, StatusCodes.Status200OK, new AdminChange(pool.Name, key.Name, state, changed, who, now, message, check));
    }

    private async Task RemoveAsync(HttpContext context, string who, Pool pool, PoolKey key, bool force)
    {
        if (!key.AddedAtRuntime)
        {
            await Error(context, StatusCodes.Status409Conflict, $"'{key.Name}' comes from {key.Source}: remove it there (the proxy picks the change up without a restart), or disable it here (POST /admin/pools/{pool.Name}/keys/{key.Name}/disable).");
            return;
        }

        var now = time.GetUtcNow();
        if (LastUsableRefusal(pool, key, now, force, "removing", out var consequence) is { } refusal)
        {
            await Error(context, StatusCodes.Status409Conflict, refusal);
            return;
        }

        try
        {
            await store.RemoveRuntimeKeyAsync(key, context.RequestAborted);
        }
        catch (KeyStoreException ex)
        {
            await Error(context, StatusCodes.Status503ServiceUnavailable, ex.Message);
            return;
        }

        catalog.Remove(pool, key, who);
        LogChange(logger, who, now, "removed", key.Name, key.Fingerprint, pool.Name);
        await Json(context, StatusCodes.Status200OK, new AdminChange(pool.Name, key.Name, "removed", Changed: true, who, now, $"'{key.Name}' is removed; {consequence}"));
    }

    /// <summary>
    /// Refuses to take away a pool's last usable key without <paramref name="force"/>; <paramref name="consequence"/>
    /// says what taking it away means either way.
    /// </summary>
    private static string? LastUsableRefusal(Pool pool, PoolKey key, DateTimeOffset now, bool force, string doing, out string consequence)
    {
        var nowUnixMs = now.ToUnixTimeMilliseconds();
        var usableAfter = pool.Keys.Count(k => !ReferenceEquals(k, key) && k.Health.CanServeAt(nowUnixMs));
        consequence = usableAfter > 0
            ? $"pool '{pool.Name}' keeps {usableAfter} usable key(s)."
            : pool.Fallback is { } fallback
                ? $"pool '{pool.Name}' has no usable key left: its requests go to fallback pool '{fallback.Name}' (safe mode)."
                : $"pool '{pool.Name}' has no usable key left: every request gets a 503 until a key is enabled or heals.";
        return usableAfter == 0 && key.Health.CanServeAt(nowUnixMs) && !force
            ? $"refused: {doing} '{key.Name}' means {consequence} Repeat with ?force=true to do it anyway."
            : null;
    }

    private void Publish(string kind, string who, PoolKey key, DateTimeOffset at, string message, string? incident = null, bool resolves = false, EventSeverity severity = EventSeverity.Info, string? remediation = null)
        => events.Publish(new ProxyEvent
        {
            Kind = kind,
            Severity = severity,
            At = at,
            Message = message,
            Remediation = remediation,
            Pool = key.Pool,
            Key = key.Name,
            Fingerprint = key.Fingerprint,
            Actor = who,
            Incident = incident,
            Resolves = resolves,
        });

    /// <summary>Checks a pending key against its upstream, records what was found (it stays pending) and says it for the answer.</summary>
    private async Task<AdminCheck> CheckAsync(Pool pool, PoolKey key, string who, CancellationToken cancellationToken)
    {
        var check = await CheckAsync(pool, key, cancellationToken);
        Publish(EventKinds.KeyChecked, who, key, time.GetUtcNow(), $"Key '{key.Name}' ({key.Fingerprint}) in pool '{pool.Name}' was checked for {who}: {check.Outcome}, {check.Detail}", severity: check.Outcome == "rejected" ? EventSeverity.Warning : EventSeverity.Info);
        return check;
    }

    private async Task<AdminCheck> CheckAsync(Pool pool, PoolKey key, CancellationToken cancellationToken)
    {
        var result = await prober.ProbeAsync(pool, key, cancellationToken);
        if (result.Outcome is ProbeOutcome.Usable or ProbeOutcome.Cooling)
        {
            board.CheckedPending(key, failure: null);
        }
        else if (result is { Outcome: ProbeOutcome.Dead, Failure: { } failure })
        {
            board.CheckedPending(key, failure);
        }

        return AdminCheck.Of(pool, key, result);
    }

    private static async Task<AddKeyRequest?> ReadAddRequestAsync(HttpContext context)
    {
        if (context.Request.ContentLength > MaxRequestBytes)
        {
            return null;
        }

        using var buffer = new MemoryStream();
        var chunk = new byte[4096];
        int read;
        while ((read = await context.Request.Body.ReadAsync(chunk, context.RequestAborted)) > 0)
        {
            if (buffer.Length + read > MaxRequestBytes)
            {
                return null;
            }

            buffer.Write(chunk, 0, read);
        }

        try
        {
            return JsonSerializer.Deserialize(buffer.GetBuffer().AsSpan(0, (int)buffer.Length), AdminJsonContext.Default.AddKeyRequest);
        }
        catch (JsonException)
        {
            // The parser's message can quote the body, and the body holds a secret: say nothing more.
            return null;
        }
    }

    private async Task WithKey(HttpContext context, string poolName, string keyName, Func<Pool, PoolKey, Task> action)
    {
        if (!catalog.TryFind(poolName, keyName, out var pool, out var key))
        {
            await Error(context, StatusCodes.Status404NotFound, $"no key '{keyName}' in pool '{poolName}'.");
            return;
        }

        await action(pool, key);
    }

    private static string StateOf(PoolKey key) => key.Health.State.ToString().ToLowerInvariant();

    private static Task Json<T>(HttpContext context, int status, T value)
    {
        context.Response.StatusCode = status;
        return context.Response.WriteAsJsonAsync(value, (System.Text.Json.Serialization.Metadata.JsonTypeInfo<T>)AdminJsonContext.Readable.GetTypeInfo(typeof(T))!);
    }

    private static Task Error(HttpContext context, int status, string message) => Json(context, status, new AdminError(message));

    [LoggerMessage(EventId = 6001, Level = LogLevel.Warning, Message = "Admin change by {Operator:l} at {At:O}: {Action:l} key '{KeyName:l}' ({Fingerprint:l}) in pool '{Pool:l}'.")]
    private static partial void LogChange(ILogger logger, string @operator, DateTimeOffset at, string action, string keyName, string fingerprint, string pool);
}

internal sealed record AdminKeyList(IReadOnlyList<AdminKey> Keys);

internal sealed record AdminKey(string Pool, [property: JsonPropertyName("key")] KeyStatus Status);

internal sealed record AdminChange(string Pool, string Key, string State, bool Changed, string By, DateTimeOffset At, string Message, AdminCheck? Check = null);

/// <summary>What checking a key against its upstream found: <c>passed</c>, <c>rejected</c> or <c>unknown</c>, and the detail.</summary>
internal sealed record AdminCheck(string Outcome, string Detail)
{
    /// <summary>Says what a check of <paramref name="key"/> found, in the provider's words and with what to do; also what <c>afp check-config --probe</c> prints.</summary>
    public static AdminCheck Of(Pool pool, PoolKey key, ProbeResult result) => result switch
    {
        { Outcome: ProbeOutcome.Usable } => new("passed", $"the upstream accepted the key (GET {pool.DestinationPrefix}/v1/models)."),
        { Outcome: ProbeOutcome.Cooling } => new("passed", $"the key is valid but rate limited until {result.CoolUntil:O}."),
        { Outcome: ProbeOutcome.Dead, Failure: { } failure } => new("rejected", $"{failure.Label} \"{failure.Message}\". {Remediation.ForDeadKey(key, failure)}"),
        _ => new("unknown", $"the key could not be checked: {result.Reason}."),
    };
}

internal sealed record AddKeyRequest(string? Name, string? Secret, int? Priority, string? Scheme = null, string? OpenAIOrganization = null, string? OpenAIProject = null);

internal sealed record AdminAdded(string Pool, KeyStatus Key, AdminCheck Check, IReadOnlyList<string> Warnings, string Stored, string By, DateTimeOffset At, string Message);

internal sealed record AdminError(string Error);
