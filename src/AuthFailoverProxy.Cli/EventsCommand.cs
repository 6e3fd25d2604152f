using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace AuthFailoverProxy.Cli;

/// <summary>
/// <c>afp events --since … --until …</c>: what happened, as the proxy tells it (<c>GET /admin/events/timeline</c>), or the
/// events as JSON (<c>GET /admin/events</c>) with <c>--json</c>.
/// </summary>
internal static partial class EventsCommand
{
    private const string TimeForms = "a time ago (9h, 30m, 2d, 1h30m), a clock time (00:00: the last midnight UTC; 23:30+01:00 with a zone), an ISO 8601 time (2026-03-03T00:00Z; UTC unless a zone is given) or now";

    public static Command Create(GlobalOptions options, CliEnvironment environment)
    {
        var since = new Option<string?>("--since") { Description = $"Where the story starts: {TimeForms}. Default: 24 hours before --until.", HelpName = "WHEN" };
        var until = new Option<string?>("--until") { Description = "Where it ends, in the same forms. Default: now.", HelpName = "WHEN" };
        var pool = new Option<string?>("--pool") { Description = "Only this pool's events." };
        var key = new Option<string?>("--key") { Description = "Only this key's events." };
        var kind = new Option<string?>("--kind") { Description = "Only these kinds, comma-separated (key.dead, key.*, pool.exhausted, …)." };
        var severity = new Option<string?>("--severity") { Description = "The least severe to show: info, warning, error or critical." };
        var limit = new Option<int?>("--limit") { Description = "At most this many events (1,000 by default)." };
        var command = new Command("events", "Tell what happened in a time window, in plain words: keys out of service and why, failovers, pools degraded or exhausted, safe mode, who changed which key. Times are UTC, as the story's are.")
        {
            since, until, pool, key, kind, severity, limit,
        };
        command.SetAction(options, environment, async (session, cancellationToken) =>
        {
            var parse = session.Parse;
            var now = session.Environment.Time.GetUtcNow();
            var query = new StringBuilder();
            void Add(string name, string? value)
            {
                if (value is not null)
                {
                    query.Append(query.Length == 0 ? '?' : '&').Append(name).Append('=').Append(Uri.EscapeDataString(value));
                }
            }

            Add("since", When(parse.GetValue(since), "--since", now));
            Add("until", When(parse.GetValue(until), "--until", now));
            Add("pool", parse.GetValue(pool));
            Add("key", parse.GetValue(key));
            Add("kind", parse.GetValue(kind));
            Add("severity", parse.GetValue(severity));
            Add("limit", parse.GetValue(limit)?.ToString(CultureInfo.InvariantCulture));
            var answer = await session.Proxy.ReadAsync((session.Json ? "admin/events" : "admin/events/timeline") + query, cancellationToken);
            if (session.Json)
            {
                await session.WriteJsonAsync(answer.Body);
            }
            else
            {
                var story = ProxyConnection.ForCommandLine(answer.Body)!;
                await session.Out.WriteAsync(story.EndsWith('\n') ? story : story + "\n");
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>
    /// Turns what an operator types into what the proxy's query takes: a time ago stays relative (<c>-32400s</c>), so it is
    /// measured on the proxy's clock; a clock time becomes the last such moment before <paramref name="now"/>; an ISO time is
    /// passed on in UTC. Null when <paramref name="value"/> is null.
    /// </summary>
    internal static string? When(string? value, string option, DateTimeOffset now)
    {
        if (value is null)
        {
            return null;
        }

        var text = value.Trim();
        if (text.Equals("now", StringComparison.OrdinalIgnoreCase))
        {
            return "now";
        }

        if (Ago().Match(text) is { Success: true } ago)
        {
            long seconds = 0;
            foreach (Capture part in ago.Groups["part"].Captures)
            {
                var amount = long.Parse(part.ValueSpan[..^1], NumberStyles.None, CultureInfo.InvariantCulture);
                seconds += amount * char.ToLowerInvariant(part.Value[^1]) switch
                {
                    's' => 1,
                    'm' => 60,
                    'h' => 3600,
                    _ => 86400,
                };
                if (seconds > 366L * 86400)
                {
                    throw new CliException(ExitCodes.Usage, $"{option} '{value}' is more than a year ago: the trail keeps less.");
                }
            }

            return seconds == 0 ? "now" : string.Create(CultureInfo.InvariantCulture, $"-{seconds}s");
        }

        if (Clock().Match(text) is { Success: true } clock)
        {
            var offset = clock.Groups["zone"].Value is { Length: > 0 } zone && zone != "Z" && zone != "z"
                ? TimeSpan.ParseExact(zone.Replace(":", string.Empty, StringComparison.Ordinal).TrimStart('+', '-'), "hhmm", CultureInfo.InvariantCulture) * (zone[0] == '-' ? -1 : 1)
                : TimeSpan.Zero;
            var hour = int.Parse(clock.Groups["h"].ValueSpan, CultureInfo.InvariantCulture);
            var minute = int.Parse(clock.Groups["m"].ValueSpan, CultureInfo.InvariantCulture);
            var second = clock.Groups["s"].Success ? int.Parse(clock.Groups["s"].ValueSpan, CultureInfo.InvariantCulture) : 0;
            if (hour > 23 || minute > 59 || second > 59)
            {
                throw new CliException(ExitCodes.Usage, $"{option} '{value}' is not a time of day.");
            }

            var local = now.ToOffset(offset);
            var today = new DateTimeOffset(local.Year, local.Month, local.Day, hour, minute, second, offset);
            return Iso(today > now ? today.AddDays(-1) : today);
        }

        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AllowWhiteSpaces, out var absolute))
        {
            return Iso(absolute);
        }

        throw new CliException(ExitCodes.Usage, $"{option} '{value}' is not {TimeForms}.");
    }

    private static string Iso(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    [GeneratedRegex(@"^-?(?<part>\d{1,9}[smhdSMHD])+$", RegexOptions.CultureInvariant)]
    private static partial Regex Ago();

    [GeneratedRegex(@"^(?<h>\d{1,2}):(?<m>\d{2})(:(?<s>\d{2}))?(?<zone>[zZ]|[+-]\d{2}:?\d{2})?$", RegexOptions.CultureInvariant)]
    private static partial Regex Clock();
}
