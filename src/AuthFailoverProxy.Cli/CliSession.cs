using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace AuthFailoverProxy.Cli;

/// <summary>One run of a command: its options, where it writes, and the proxy, reached only when the command needs it.</summary>
internal sealed class CliSession(ParseResult parse, GlobalOptions options, CliEnvironment environment) : IDisposable
{
    private ProxyConnection? _proxy;

    public ParseResult Parse => parse;

    public CliEnvironment Environment => environment;

    /// <summary>Gets a value indicating whether the output is JSON for scripts rather than text for people.</summary>
    public bool Json => parse.GetValue(options.Json);

    public TextWriter Out => environment.Output;

    public ProxyConnection Proxy => _proxy ??= new ProxyConnection(parse.GetValue(options.Url), parse.GetValue(options.TokenFile), environment);

    /// <summary>Writes a JSON answer of the proxy as it came: its shape is the API's, documented with the endpoint.</summary>
    public Task WriteJsonAsync(string body) => Out.WriteLineAsync(body.TrimEnd());

    public Task WriteJsonAsync<T>(T value, JsonTypeInfo<T> type) => Out.WriteLineAsync(JsonSerializer.Serialize(value, type));

    /// <summary>Says why the command failed (on standard error, or as <c>{"error": …}</c> with <c>--json</c>) and returns its exit code.</summary>
    public async Task<int> FailAsync(CliException failure)
    {
        if (Json)
        {
            await WriteJsonAsync(new CliError(failure.Message, failure.Status), CliJsonContext.Readable.CliError);
        }
        else
        {
            await environment.Error.WriteLineAsync("afp: " + failure.Message);
        }

        return failure.ExitCode;
    }

    public void Dispose() => _proxy?.Dispose();
}

/// <summary>How afp writes times and durations for people: UTC, as the proxy's timeline does.</summary>
internal static class Show
{
    public static string Time(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>"9h 12m ago", "40s ago": how long before <paramref name="now"/> (the proxy's clock, not this machine's).</summary>
    public static string Ago(DateTimeOffset time, DateTimeOffset now)
    {
        var span = now - time;
        if (span < TimeSpan.Zero)
        {
            return "in " + Duration(-span);
        }

        return Duration(span) + " ago";
    }

    public static string Duration(TimeSpan span) => span switch
    {
        { TotalDays: >= 1 } => $"{(int)span.TotalDays}d {span.Hours}h",
        { TotalHours: >= 1 } => $"{(int)span.TotalHours}h {span.Minutes}m",
        { TotalMinutes: >= 1 } => $"{(int)span.TotalMinutes}m {span.Seconds}s",
        _ => $"{Math.Max(0, (int)span.TotalSeconds)}s",
    };

    /// <summary>Writes rows as columns padded to their widest cell, two spaces apart.</summary>
    public static async Task TableAsync(TextWriter output, IReadOnlyList<string[]> rows, string indent = "")
    {
        var widths = new int[rows.Max(r => r.Length)];
        foreach (var row in rows)
        {
            for (var i = 0; i < row.Length; i++)
            {
                widths[i] = Math.Max(widths[i], row[i].Length);
            }
        }

        foreach (var row in rows)
        {
            var cells = row.Select((cell, i) => i == row.Length - 1 ? cell : cell.PadRight(widths[i]));
            await output.WriteLineAsync((indent + string.Join("  ", cells)).TrimEnd());
        }
    }
}

/// <summary>An error as <c>--json</c> writes it.</summary>
/// <param name="Error">What went wrong, in words; never a token or a secret.</param>
/// <param name="Status">The HTTP status the proxy refused with, when it did.</param>
internal sealed record CliError(string Error, int? Status = null);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(CliError))]
[JsonSerializable(typeof(CheckConfigReport))]
internal sealed partial class CliJsonContext : JsonSerializerContext
{
    /// <summary>Gets the context afp writes with: read in terminals too, so quotes and letters are written as they are.</summary>
    public static CliJsonContext Readable { get; } = new(Admin.AdminJsonContext.ReadableOptions());
}
