using System.Threading.Channels;
using AuthFailoverProxy.Events;
using Microsoft.Extensions.Configuration.Json;
using Microsoft.Extensions.Primitives;

namespace AuthFailoverProxy.Hosting;

/// <summary>
/// Keeps the last good configuration when a configuration file changes into one the proxy cannot use. .NET's file
/// provider empties a file's data when it fails to parse on reload (and when it disappears), and every options monitor
/// then reads the defaults: the keys gone, the failover settings reset. Each JSON file that reloads is served through a
/// <see cref="GuardedJsonConfigurationProvider"/> instead, which keeps serving what it last read well and reports the
/// rejection, at Error and as a <c>config.rejected</c> event that alerts.
/// </summary>
internal static class ConfigurationReloadGuard
{
    /// <summary>Serves every reloading JSON file of <paramref name="builder"/> through a guarded provider.</summary>
    public static WebApplicationBuilder GuardConfigurationReloads(this WebApplicationBuilder builder)
    {
        var rejections = new ConfigurationRejections();
        var sources = builder.Configuration.Sources;
        for (var i = 0; i < sources.Count; i++)
        {
            if (sources[i] is JsonConfigurationSource { ReloadOnChange: true } json and not GuardedJsonConfigurationSource)
            {
                sources[i] = new GuardedJsonConfigurationSource(json, rejections);
            }
        }

        builder.Services.AddSingleton(rejections);
        builder.Services.AddHostedService<ConfigurationRejectionReporter>();
        return builder;
    }
}

/// <summary>Configuration changes that were refused, for <see cref="ConfigurationRejectionReporter"/> to tell.</summary>
internal sealed class ConfigurationRejections
{
    private readonly Channel<(string Source, IReadOnlyList<string> Problems)> _rejected =
        Channel.CreateBounded<(string, IReadOnlyList<string>)>(new BoundedChannelOptions(16) { FullMode = BoundedChannelFullMode.DropOldest });

    private int _count;

    /// <summary>Gets how many changes were refused since the start.</summary>
    public int Count => Volatile.Read(ref _count);

    public ChannelReader<(string Source, IReadOnlyList<string> Problems)> Reader => _rejected.Reader;

    /// <summary>Records that <paramref name="source"/> changed into something with <paramref name="problems"/>, and was not applied.</summary>
    public void Report(string source, IReadOnlyList<string> problems)
    {
        Interlocked.Increment(ref _count);
        _rejected.Writer.TryWrite((source, problems));
    }
}

/// <summary>A <see cref="JsonConfigurationSource"/> whose provider keeps its last good data on a bad reload.</summary>
internal sealed class GuardedJsonConfigurationSource : JsonConfigurationSource
{
    public GuardedJsonConfigurationSource(JsonConfigurationSource original, ConfigurationRejections rejections)
    {
        Path = original.Path ?? string.Empty;
        Optional = original.Optional;
        ReloadOnChange = original.ReloadOnChange;
        ReloadDelay = original.ReloadDelay;
        FileProvider = original.FileProvider;
        OnLoadException = original.OnLoadException;
        Rejections = rejections;
    }

    public ConfigurationRejections Rejections { get; }

    public override IConfigurationProvider Build(IConfigurationBuilder builder)
    {
        EnsureDefaults(builder);
        return new GuardedJsonConfigurationProvider(this);
    }
}

/// <summary>
/// Serves the data of the last load that parsed and fits the proxy's configuration shape. The first load is not guarded:
/// a file that is broken at start stops the start.
/// </summary>
internal sealed class GuardedJsonConfigurationProvider : JsonConfigurationProvider
{
    private readonly GuardedJsonConfigurationSource _source;
    private IDictionary<string, string?> _good;
    private readonly string _shown;
    private bool _initial;

    public GuardedJsonConfigurationProvider(GuardedJsonConfigurationSource source)
        : base(source)
    {
        _source = source;
        _good = Data;
        _shown = source.FileProvider?.GetFileInfo(source.Path ?? string.Empty).PhysicalPath ?? source.Path ?? "a configuration file";

        // The base class replaces the data with an empty set when the file disappears, without a parse to intercept.
        ChangeToken.OnChange(GetReloadToken, () =>
        {
            if (_initial || ReferenceEquals(Data, _good))
            {
                return;
            }

            if (_good.Count == 0)
            {
                _good = Data; // an optional file that was never there
                return;
            }

            Data = _good;
            _source.Rejections.Report(_shown, ["the file is gone or cannot be read; the last good configuration stays in force."]);
        });
    }

    public override void Load()
    {
        _initial = true;
        try
        {
            base.Load();
            _good = Data;
        }
        finally
        {
            _initial = false;
        }
    }

    public override void Load(Stream stream)
    {
        if (_initial)
        {
            base.Load(stream);
            return;
        }

        var previous = _good;
        try
        {
            base.Load(stream);
        }
        catch (Exception ex) when (ex is FormatException or System.Text.Json.JsonException or InvalidDataException)
        {
            // The parser's place ("LineNumber: 3 | BytePositionInLine: 12"), never the file's content.
            Data = previous;
            _source.Rejections.Report(_shown, [ex.InnerException?.Message ?? ex.Message]);
            return;
        }

        var problems = ConfigurationShape.Check(new ConfigurationBuilder().AddInMemoryCollection(Data).Build());
        if (problems.Count > 0)
        {
            Data = previous;
            _source.Rejections.Report(_shown, problems);
            return;
        }

        _good = Data;
    }

    public override bool TryGet(string key, out string? value) => _good.TryGetValue(key, out value);

    public override IEnumerable<string> GetChildKeys(IEnumerable<string> earlierKeys, string? parentPath)
    {
        var children = new List<string>(earlierKeys);
        var prefix = parentPath is null ? string.Empty : parentPath + ConfigurationPath.KeyDelimiter;
        foreach (var key in _good.Keys)
        {
            if (key.Length > prefix.Length && key.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            {
                var rest = key.AsSpan(prefix.Length);
                var end = rest.IndexOf(ConfigurationPath.KeyDelimiter[0]);
                children.Add((end < 0 ? rest : rest[..end]).ToString());
            }
        }

        children.Sort(ConfigurationKeyComparer.Instance.Compare);
        return children;
    }
}

/// <summary>Tells each refused configuration change at Error and as a <c>config.rejected</c> event, which alerts.</summary>
internal sealed partial class ConfigurationRejectionReporter(
    ConfigurationRejections rejections, ProxyEvents events, TimeProvider time, ILogger<ConfigurationRejectionReporter> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await foreach (var (source, problems) in rejections.Reader.ReadAllAsync(stoppingToken))
        {
            var list = string.Join(" ", problems.Select(p => "- " + p));
            LogRejected(logger, source, problems.Count, list);
            events.Publish(new ProxyEvent
            {
                Kind = EventKinds.ConfigurationRejected,
                Severity = EventSeverity.Error,
                At = time.GetUtcNow(),
                Message = $"Configuration reload rejected: {source}: {list} The proxy keeps serving with the last good configuration.",
                Remediation = $"Fix {source} (each problem names the key); the proxy applies it as soon as it reads well.",
            });
        }
    }

    [LoggerMessage(EventId = 1220, Level = LogLevel.Error,
        Message = "Configuration reload rejected: {Source:l}: {Count} problem(s), nothing applied; the proxy keeps serving with the last good configuration. {Problems:l}")]
    private static partial void LogRejected(ILogger logger, string source, int count, string problems);
}
