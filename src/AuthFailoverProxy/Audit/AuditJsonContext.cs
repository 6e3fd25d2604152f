using System.Text.Json;
using System.Text.Json.Serialization;
using AuthFailoverProxy.Events;

namespace AuthFailoverProxy.Audit;

/// <summary>
/// How events are written in the trail (one compact JSON object per line or stream entry) and in the admin answers
/// (<see cref="Readable"/>). Severities are written as words: <c>"error"</c>.
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, Converters = [typeof(SeverityJsonConverter)])]
[JsonSerializable(typeof(ProxyEvent))]
[JsonSerializable(typeof(AuditEventList))]
[JsonSerializable(typeof(AuditError))]
internal sealed partial class AuditJsonContext : JsonSerializerContext
{
    /// <summary>
    /// Gets the context the trail is written with: one line per event, quotes and non-ASCII letters as they are, so
    /// <c>grep</c> finds "Key 'primary'" (the trail is never embedded in HTML).
    /// </summary>
    public static AuditJsonContext Compact { get; } = new(CreateOptions(indented: false));

    /// <summary>Gets the context the admin answers are written with: the same, indented.</summary>
    public static AuditJsonContext Readable { get; } = new(CreateOptions(indented: true));

    private static JsonSerializerOptions CreateOptions(bool indented) => new(JsonSerializerDefaults.Web)
    {
        WriteIndented = indented,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Converters = { new SeverityJsonConverter() },
    };

    internal sealed class SeverityJsonConverter() : JsonStringEnumConverter<EventSeverity>(JsonNamingPolicy.CamelCase, allowIntegerValues: false);
}
