using System.Globalization;
using System.Threading.Channels;
using AuthFailoverProxy.Health;
using AuthFailoverProxy.State;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.FileProviders.Physical;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

namespace AuthFailoverProxy.KeyPool;

/// <summary>
/// Applies edits to the pools' keys without a restart, whether they come from the configuration (a JSON file loaded
/// with <c>reloadOnChange</c>) or from a pool's <see cref="KeyPoolOptions.KeysDirectory"/> (a mounted Kubernetes Secret,
/// swapped atomically through its hidden <c>..data</c> link). A key no longer defined leaves service; a new key, or a
/// key whose secret changed, is checked first (when <see cref="ProbeOptions.AtStartup"/> is on) so a bad key never
/// carries a request; a key whose priority changed keeps its health. Keys added through the admin API are never
/// touched. A configuration that does not validate changes nothing: the proxy keeps serving with the keys it has.
/// </summary>
/// <remarks>
/// Bursts of changes (an editor's save, the kubelet's swap) are merged into one reload once quiet for
/// <see cref="Debounce"/>, and reloads run one at a time: a change during a reload triggers one more. Its
/// dependencies are resolved when it starts and at the first reload: hosted services are built before the host
/// validates options.
/// </remarks>
internal sealed partial class KeyReloader(IServiceProvider services, TimeProvider time, ILogger<KeyReloader> logger) : BackgroundService
{
    /// <summary>How long changes must be quiet before a reload.</summary>
    internal static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(250);

    /// <summary>A stream of changes that never quiets still gets a reload after this many debounce periods.</summary>
    private const int MaxDebounceRounds = 8;

    private const string By = "a configuration reload";

    /// <summary>How long to wait before trying again to watch a key directory that could not be watched.</summary>
    private static readonly TimeSpan WatchRetry = TimeSpan.FromSeconds(30);

    // One pending signal at most: a change while one is pending adds nothing, a change during a reload means one more.
    private readonly Channel<bool> _changes = Channel.CreateBounded<bool>(new BoundedChannelOptions(1)
    {
        FullMode = BoundedChannelFullMode.DropWrite,
        SingleReader = true,
    });

    private readonly SemaphoreSlim _reloading = new(1, 1);
    private readonly Lock _watching = new();
    private readonly Dictionary<string, DirectoryWatch> _directories = new(StringComparer.Ordinal);
    private IDisposable? _configurationWatch;
    private bool _stopped;
    private Parts? _parts;
    private string _restartNeeded = string.Empty;
    private int _reloads;
    private int _rejected;

    /// <summary>Gets how many reloads have finished, whatever they found.</summary>
    public int Reloads => Volatile.Read(ref _reloads);

    /// <summary>Gets how many reloads found a configuration that does not validate and changed nothing.</summary>
    public int Rejected => Volatile.Read(ref _rejected);

    /// <summary>
    /// Starts watching before the host reports it has started (<see cref="ExecuteAsync"/> runs on a background thread),
    /// so no change made once the proxy serves is missed. Options are validated by now.
    /// </summary>
    public override Task StartAsync(CancellationToken cancellationToken)
    {
        var configuration = services.GetRequiredService<IConfiguration>();
        var running = services.GetRequiredService<IOptions<PoolsOptions>>().Value;
        lock (_watching)
        {
            _configurationWatch ??= ChangeToken.OnChange(configuration.GetReloadToken, OnChange);
            WatchDirectories(running.Pools.Select(p => (p.Key, p.Value.KeysDirectory)));
        }

        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (await _changes.Reader.WaitToReadAsync(stoppingToken))
            {
                await QuietAsync(stoppingToken);
                try
                {
                    await ReloadAsync(stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
                {
                    LogReloadFailed(logger, ex);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down.
        }
        finally
        {
            StopWatching();
        }
    }

    /// <summary>
    /// Reads the configuration and the key directories now and applies what changed; waits for a reload in progress.
    /// Returns how many keys joined, left or were replaced (0 when the configuration was rejected).
    /// </summary>
    internal async Task<int> ReloadAsync(CancellationToken cancellationToken)
    {
        await _reloading.WaitAsync(cancellationToken);
        try
        {
            return await ApplyAsync(Resolve(), cancellationToken);
        }
        finally
        {
            Interlocked.Increment(ref _reloads);
            _reloading.Release();
        }
    }

    public override void Dispose()
    {
        StopWatching();
        _reloading.Dispose();
        base.Dispose();
    }

    private Parts Resolve() => _parts ??= new Parts(
        services.GetRequiredService<IConfiguration>(),
        services.GetRequiredService<PoolRegistry>(),
        services.GetRequiredService<KeyCatalog>(),
        services.GetRequiredService<KeyStateBoard>(),
        services.GetRequiredService<KeyProber>(),
        services.GetRequiredService<IOptions<ProbeOptions>>().Value,
        [.. services.GetServices<IValidateOptions<PoolsOptions>>()],
        services.GetRequiredService<IOptions<PoolsOptions>>().Value);

    private void OnChange()
    {
        // Runs on the file watcher's or the configuration's thread: nothing may escape from here.
        try
        {
            _changes.Writer.TryWrite(true);
        }
        catch (Exception ex)
        {
            LogWatchFailed(logger, ex);
        }
    }

    /// <summary>Waits until no change has come for <see cref="Debounce"/>, taking the changes that come meanwhile.</summary>
    private async Task QuietAsync(CancellationToken stoppingToken)
    {
        _changes.Reader.TryRead(out _);
        for (var round = 0; round < MaxDebounceRounds; round++)
        {
            await Task.Delay(Debounce, time, stoppingToken);
            if (!_changes.Reader.TryRead(out _))
            {
                return;
            }
        }
    }

    private async Task<int> ApplyAsync(Parts parts, CancellationToken cancellationToken)
    {
        var problems = new List<string>();
        var options = new PoolsOptions();
        try
        {
            // Bound the way AddKeyPools binds it: from the configuration root.
            parts.Configuration.Bind(options);
        }
        catch (InvalidOperationException ex)
        {
            problems.Add(ex.Message);
        }

        if (problems.Count == 0)
        {
            foreach (var validator in parts.Validators)
            {
                if (validator.Validate(Options.DefaultName, options) is { Failed: true } result)
                {
                    problems.AddRange(result.Failures);
                }
            }
        }

        // Only pools in service can change their keys; read each once, after validation, and apply what was read.
        var definitions = new List<(Pool Pool, List<KeyDefinition> Keys)>();
        if (problems.Count == 0)
        {
            foreach (var pool in parts.Registry.Pools)
            {
                if (options.Pools.TryGetValue(pool.Name, out var poolOptions))
                {
                    definitions.Add((pool, KeySource.Load(pool.Name, poolOptions, parts.Configuration, problems)));
                }
            }
        }

        if (problems.Count > 0)
        {
            if (_changes.Reader.TryPeek(out _))
            {
                // Changed again meanwhile: the kubelet's swap briefly leaves a dangling link, an editor a half-written
                // file. The next reload judges the newer state and reports it if it is still wrong.
                LogSuperseded(logger, problems.Count);
                return 0;
            }

            // Told at Error and as a config.rejected event, which alerts (ConfigurationRejectionReporter).
            if (services.GetService<Hosting.ConfigurationRejections>() is { } rejections)
            {
                rejections.Report("the configuration's pools", problems);
            }
            else if (logger.IsEnabled(LogLevel.Error))
            {
                var list = string.Join(" ", problems.Select(p => "- " + p));
                LogRejected(logger, problems.Count, list);
            }

            Interlocked.Increment(ref _rejected);
            return 0;
        }

        WarnAboutRestart(parts, options);
        lock (_watching)
        {
            // Pools not in service have no keys to reload.
            WatchDirectories(options.Pools.Where(p => parts.Registry.Find(p.Key) is not null).Select(p => (p.Key, p.Value.KeysDirectory)));
        }

        var plans = definitions.Select(d => Plan(d.Pool, d.Keys)).Where(p => !p.IsEmpty).ToList();
        var fresh = plans.SelectMany(p => p.Fresh).ToList();
        var probes = parts.Probes.AtStartup
            ? await Task.WhenAll(fresh.Select(f => ProbeAsync(parts.Prober, f.Pool, f.Key, cancellationToken)))
            : null;

        var changes = 0;
        for (var i = 0; i < fresh.Count; i++)
        {
            fresh[i].Probe = probes?[i];
            switch (probes?[i])
            {
                case { Outcome: ProbeOutcome.Dead, Failure: { } failure }:
                    parts.Board.ReportDead(fresh[i].Key, failure);
                    break;
                case { Outcome: ProbeOutcome.Cooling, Failure: { } failure } cooling:
                    parts.Board.ReportCooling(fresh[i].Key, failure, cooling.CoolUntil);
                    break;
            }
        }

        foreach (var plan in plans)
        {
            changes += Apply(parts.Catalog, plan);
        }

        if (changes == 0)
        {
            LogNothingChanged(logger);
        }

        return changes;
    }

    /// <summary>Compares a pool's configured keys with what its configuration now defines.</summary>
    private PoolPlan Plan(Pool pool, List<KeyDefinition> definitions)
    {
        var now = time.GetUtcNow();
        var plan = new PoolPlan(pool);
        var configured = pool.Keys.Where(k => !k.AddedAtRuntime).ToDictionary(k => k.Name, StringComparer.Ordinal);
        foreach (var definition in definitions)
        {
            if (pool.FindKey(definition.Name) is { AddedAtRuntime: true } runtime)
            {
                LogNameTaken(logger, pool.Name, definition.Name, runtime.Fingerprint);
                continue;
            }

            // The same arguments PoolRegistry uses at start.
            var key = new PoolKey(pool.Name, definition.Name, definition.Secret, definition.Priority, definition.Source, definition.Scheme, now) { Account = definition.Account };
            if (!configured.Remove(definition.Name, out var current))
            {
                plan.Fresh.Add(new FreshKey(pool, key, Replaces: null));
            }
            else if (key.Identity != current.Identity || key.Scheme != current.Scheme || key.Account != current.Account)
            {
                // A new secret, or the same one sent another way: checked afresh, since what the provider said about the
                // old form says nothing about the new one.
                plan.Fresh.Add(new FreshKey(pool, key, Replaces: current));
            }
            else if (key.Priority != current.Priority || key.Source != current.Source)
            {
                plan.Moved.Add((current, key));
            }
        }

        plan.Removed.AddRange(configured.Values);
        return plan;
    }

    /// <summary>Puts a pool's plan in service: keys join first and leave last, so the pool is never emptier than it needs to be.</summary>
    private int Apply(KeyCatalog catalog, PoolPlan plan)
    {
        var pool = plan.Pool;
        var summary = new List<string>();
        var rejected = false;
        foreach (var (old, key) in plan.Moved)
        {
            if (old.Retired)
            {
                continue;
            }

            // The same key in place: its health and background checks carry on.
            var previousPriority = old.Priority;
            catalog.Rerank(pool, old, key.Priority, key.Source, By);
            summary.Add(previousPriority == key.Priority
                ? $"updated '{key.Name}' (now from {key.Source}, {Describe(old, null)})"
                : $"re-ranked '{key.Name}' (priority {previousPriority} to {key.Priority}, {Describe(old, null)})");
        }

        foreach (var fresh in plan.Fresh)
        {
            if (!TryAdd(catalog, pool, fresh.Key))
            {
                continue;
            }

            rejected |= fresh.Key.Health.State == KeyState.Dead;
            summary.Add(fresh.Replaces is null
                ? $"added '{fresh.Key.Name}' ({Describe(fresh.Key, fresh.Probe)})"
                : $"replaced '{fresh.Key.Name}' (new secret, {Describe(fresh.Key, fresh.Probe)})");
        }

        foreach (var key in plan.Removed)
        {
            if (catalog.Remove(pool, key, By))
            {
                summary.Add($"removed '{key.Name}'");
            }
        }

        if (summary.Count > 0)
        {
            var level = rejected ? LogLevel.Warning : LogLevel.Information;
            if (logger.IsEnabled(level))
            {
                var changes = string.Join(", ", summary);
                LogPoolChanged(logger, level, pool.Name, changes);
            }
        }

        return summary.Count;
    }

    private bool TryAdd(KeyCatalog catalog, Pool pool, PoolKey key)
    {
        // An operator may have added a key of this name while the new one was being checked: theirs stays.
        if (pool.FindKey(key.Name) is { AddedAtRuntime: true } runtime)
        {
            LogNameTaken(logger, pool.Name, key.Name, runtime.Fingerprint);
            return false;
        }

        catalog.Add(pool, key, By);
        return true;
    }

    /// <summary>"usable", "dead: 401 authentication_error", "cooling until 12:00:05Z: 429 rate_limit_error"…; never the secret.</summary>
    private static string Describe(PoolKey key, ProbeResult? probe)
    {
        var health = key.Health;
        var state = health.State.ToString().ToLowerInvariant();
        var text = health switch
        {
            { State: KeyState.Cooling, Until: { } until, LastFailure: { } failure } => string.Create(CultureInfo.InvariantCulture, $"{state} until {until:HH:mm:ss}Z: {failure.Label}"),
            { State: KeyState.Dead or KeyState.Cooling, LastFailure: { } failure } => $"{state}: {failure.Label}",
            _ => state,
        };
        return probe is { Outcome: ProbeOutcome.Unknown, Reason: { } reason } ? $"{text}; not checked: {reason}" : text;
    }

    private static async Task<ProbeResult> ProbeAsync(KeyProber prober, Pool pool, PoolKey key, CancellationToken cancellationToken)
    {
        try
        {
            return await prober.ProbeAsync(pool, key, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // One check that fails oddly must not hold back the other keys of the reload; the key is judged as at start.
            return new ProbeResult(ProbeOutcome.Unknown, Reason: ex.GetType().Name);
        }
    }

    /// <summary>Says, once per distinct set, which changes the running pools cannot take without a restart.</summary>
    private void WarnAboutRestart(Parts parts, PoolsOptions options)
    {
        var needed = new List<string>();
        foreach (var name in options.Pools.Keys.Where(n => parts.Registry.Find(n) is null).Order(StringComparer.Ordinal))
        {
            needed.Add($"pool '{name}' was added");
        }

        foreach (var pool in parts.Registry.Pools.OrderBy(p => p.Name, StringComparer.Ordinal))
        {
            if (!options.Pools.TryGetValue(pool.Name, out var now))
            {
                needed.Add($"pool '{pool.Name}' was removed (its keys stay as they are)");
                continue;
            }

            if (!parts.Running.Pools.TryGetValue(pool.Name, out var before))
            {
                continue;
            }

            var changed = new List<string>();
            if (before.Kind != now.Kind)
            {
                changed.Add("Kind");
            }

            if (!string.Equals(before.Upstream ?? PoolsOptions.DefaultUpstream(before.Kind), now.Upstream ?? PoolsOptions.DefaultUpstream(now.Kind), StringComparison.Ordinal))
            {
                changed.Add("Upstream");
            }

            if (!string.Equals(PoolsOptionsValidator.PathPrefixOf(pool.Name, before), PoolsOptionsValidator.PathPrefixOf(pool.Name, now), StringComparison.Ordinal))
            {
                changed.Add("PathPrefix");
            }

            if (before.Default != now.Default)
            {
                changed.Add("Default");
            }

            if (before.Selection != now.Selection)
            {
                changed.Add("Selection");
            }

            if (!string.Equals(before.Fallback, now.Fallback, StringComparison.OrdinalIgnoreCase))
            {
                changed.Add("Fallback");
            }

            if (!string.Equals(before.FallbackModel, now.FallbackModel, StringComparison.Ordinal))
            {
                changed.Add("FallbackModel");
            }

            if (before.Transport != now.Transport)
            {
                changed.Add("Transport");
            }

            needed.AddRange(changed.Select(setting => $"Pools:{pool.Name}:{setting} changed"));
        }

        var text = string.Join("; ", needed);
        if (text.Length > 0 && text != _restartNeeded)
        {
            LogRestartNeeded(logger, text);
        }

        _restartNeeded = text;
    }

    /// <summary>Watches each pool's key directory, and stops watching those no longer configured. Callers hold <see cref="_watching"/>.</summary>
    private void WatchDirectories(IEnumerable<(string Pool, string? Directory)> pools)
    {
        if (_stopped)
        {
            return;
        }

        var wanted = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (pool, directory) in pools.OrderBy(p => p.Pool, StringComparer.Ordinal))
        {
            if (!string.IsNullOrEmpty(directory))
            {
                wanted.TryAdd(Path.GetFullPath(directory), pool);
            }
        }

        foreach (var directory in _directories.Keys.Where(d => !wanted.ContainsKey(d)).ToList())
        {
            _directories.Remove(directory, out var watch);
            watch!.Dispose();
        }

        foreach (var (directory, pool) in wanted)
        {
            if (_directories.ContainsKey(directory))
            {
                continue;
            }

            PhysicalFileProvider? created = null;
            try
            {
                // ExclusionFilters.None: the kubelet swaps a Secret's files by renaming its hidden ..data link.
                var provider = created = new PhysicalFileProvider(directory, ExclusionFilters.None);
                var registration = ChangeToken.OnChange(() => WatchFiles(provider, pool, directory), OnChange);
                _directories[directory] = new DirectoryWatch(provider, registration);
                LogWatching(logger, pool, directory);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
            {
                // The directory went away after validation; the next reload tries again.
                created?.Dispose();
                LogCannotWatch(logger, pool, directory, ex);
            }
        }
    }

    /// <summary>Arms the watch on every file of a key directory; called again after each change.</summary>
    private IChangeToken WatchFiles(PhysicalFileProvider provider, string pool, string directory)
    {
        try
        {
            return provider.Watch("**/*");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Typically the inotify limit. Try again later: the reload the retry triggers catches up with what changed meanwhile.
            LogCannotWatch(logger, pool, directory, ex);
            return new CancellationChangeToken(new CancellationTokenSource(WatchRetry, time).Token);
        }
    }

    private void StopWatching()
    {
        lock (_watching)
        {
            _stopped = true;
            _configurationWatch?.Dispose();
            _configurationWatch = null;
            foreach (var watch in _directories.Values)
            {
                watch.Dispose();
            }

            _directories.Clear();
        }
    }

    [LoggerMessage(EventId = 1201, Message = "Configuration reload: pool '{Pool:l}': {Changes:l}.")]
    private static partial void LogPoolChanged(ILogger logger, LogLevel level, string pool, string changes);

    [LoggerMessage(EventId = 1202, Level = LogLevel.Error,
        Message = "Configuration reload rejected, nothing changed: the proxy keeps serving with the keys it has. {Count} problem(s) to fix: {Problems:l}")]
    private static partial void LogRejected(ILogger logger, int count, string problems);

    [LoggerMessage(EventId = 1203, Level = LogLevel.Warning,
        Message = "Configuration reload: these changes take effect only after a restart (key changes were applied): {Changes:l}.")]
    private static partial void LogRestartNeeded(ILogger logger, string changes);

    [LoggerMessage(EventId = 1204, Level = LogLevel.Warning,
        Message = "Configuration reload: pool '{Pool:l}': configured key '{KeyName:l}' is skipped: a key of that name ({Fingerprint:l}) was added at runtime. Rename one of them.")]
    private static partial void LogNameTaken(ILogger logger, string pool, string keyName, string fingerprint);

    [LoggerMessage(EventId = 1205, Level = LogLevel.Error, Message = "Configuration reload failed; the proxy keeps serving with the keys it has.")]
    private static partial void LogReloadFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1206, Level = LogLevel.Error, Message = "Configuration reload: a change notification could not be handled.")]
    private static partial void LogWatchFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1207, Level = LogLevel.Debug, Message = "Configuration reload: no key changed.")]
    private static partial void LogNothingChanged(ILogger logger);

    [LoggerMessage(EventId = 1210, Level = LogLevel.Debug, Message = "Configuration reload: {Count} problem(s) found, but the configuration changed again meanwhile; the next reload judges it.")]
    private static partial void LogSuperseded(ILogger logger, int count);

    [LoggerMessage(EventId = 1208, Level = LogLevel.Debug, Message = "Pool '{Pool:l}': watching KeysDirectory '{Directory:l}' for key changes.")]
    private static partial void LogWatching(ILogger logger, string pool, string directory);

    [LoggerMessage(EventId = 1209, Level = LogLevel.Error,
        Message = "Pool '{Pool:l}': KeysDirectory '{Directory:l}' cannot be watched; changes to its files are picked up only when watching works again or another change triggers a reload (if an inotify limit is reached, raise fs.inotify.max_user_instances / max_user_watches or set DOTNET_USE_POLLING_FILE_WATCHER=1).")]
    private static partial void LogCannotWatch(ILogger logger, string pool, string directory, Exception exception);

    /// <summary>What a reload works with, resolved on first use.</summary>
    private sealed record Parts(
        IConfiguration Configuration,
        PoolRegistry Registry,
        KeyCatalog Catalog,
        KeyStateBoard Board,
        KeyProber Prober,
        ProbeOptions Probes,
        IReadOnlyList<IValidateOptions<PoolsOptions>> Validators,
        PoolsOptions Running);

    /// <summary>A key that needs a check before it joins: a new name, or a known name with a new secret.</summary>
    private sealed record FreshKey(Pool Pool, PoolKey Key, PoolKey? Replaces)
    {
        public ProbeResult? Probe { get; set; }
    }

    /// <summary>What one reload changes in one pool.</summary>
    private sealed class PoolPlan(Pool pool)
    {
        public Pool Pool { get; } = pool;

        public List<FreshKey> Fresh { get; } = [];

        /// <summary>Gets the keys whose secret stays but whose priority or source changed: the new key carries the old one's health.</summary>
        public List<(PoolKey Old, PoolKey New)> Moved { get; } = [];

        public List<PoolKey> Removed { get; } = [];

        public bool IsEmpty => Fresh.Count == 0 && Moved.Count == 0 && Removed.Count == 0;
    }

    private sealed class DirectoryWatch(PhysicalFileProvider provider, IDisposable registration) : IDisposable
    {
        public void Dispose()
        {
            registration.Dispose();
            provider.Dispose();
        }
    }
}
