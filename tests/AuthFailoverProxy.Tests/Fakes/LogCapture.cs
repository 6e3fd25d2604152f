using System.Collections.Concurrent;
using System.Globalization;
using Serilog.Core;
using Serilog.Events;

namespace AuthFailoverProxy.Tests.Fakes;

/// <summary>Every log event the app under test wrote, as data: picked up by Serilog's ReadFrom.Services.</summary>
internal sealed class LogCapture : ILogEventSink
{
    private readonly ConcurrentQueue<LogEvent> _events = new();

    public IReadOnlyList<LogEvent> Events => [.. _events];

    public void Emit(LogEvent logEvent) => _events.Enqueue(logEvent);

    /// <summary>Gets everything a log reader could see: messages, templates, every property value and exceptions.</summary>
    public string AllText => string.Join('\n', Events.Select(e =>
        string.Join(' ', [e.RenderMessage(CultureInfo.InvariantCulture), e.MessageTemplate.Text, .. e.Properties.Select(p => $"{p.Key}={p.Value}"), e.Exception?.ToString() ?? string.Empty])));

    public IEnumerable<LogEvent> At(LogEventLevel level) => Events.Where(e => e.Level == level);

    public IEnumerable<string> Messages(LogEventLevel level) => At(level).Select(e => e.RenderMessage(CultureInfo.InvariantCulture));

    /// <summary>Returns a scalar property of an event as text (without Serilog's quotes).</summary>
    public static string? Property(LogEvent logEvent, string name)
        => logEvent.Properties.TryGetValue(name, out var value) && value is ScalarValue { Value: { } scalar } ? Convert.ToString(scalar, CultureInfo.InvariantCulture) : null;

    public int CountEventId(int id) => Events.Count(e =>
        e.Properties.TryGetValue("EventId", out var value) && value is StructureValue s
        && s.Properties.Any(p => p.Name == "Id" && p.Value is ScalarValue { Value: int i } && i == id));
}
