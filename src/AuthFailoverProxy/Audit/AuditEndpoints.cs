using System.Text.Json.Serialization.Metadata;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Audit;

/// <summary>
/// The audit trail on the admin API (the admin token is checked before these run):
/// <list type="bullet">
/// <item><c>GET /admin/events?since=…&amp;until=…[&amp;pool=&amp;key=&amp;kind=&amp;severity=&amp;limit=]</c>: the events of the
/// window as JSON, oldest first, and the incidents still open at its end.</item>
/// <item><c>GET /admin/events/timeline?…</c> (or <c>format=text</c>): the same as an incident report in plain text,
/// "what happened between midnight and 9 a.m." in one request.</item>
/// </list>
/// </summary>
internal sealed class AuditEndpoints(IServiceProvider services, IOptions<AuditOptions> options, TimeProvider time)
{
    public Task ListAsync(HttpContext context) => AnswerAsync(context, timeline: false);

    public Task TimelineAsync(HttpContext context) => AnswerAsync(context, timeline: true);

    private async Task AnswerAsync(HttpContext context, bool timeline)
    {
        if (!options.Value.Enabled)
        {
            await Json(context, StatusCodes.Status404NotFound, new AuditError("the audit trail is off (Audit:Enabled is false): nothing is recorded."), AuditJsonContext.Readable.AuditError);
            return;
        }

        if (AuditQuery.Parse(context.Request.Query, time.GetUtcNow(), out var error) is not { } query)
        {
            await Json(context, StatusCodes.Status400BadRequest, new AuditError(error!), AuditJsonContext.Readable.AuditError);
            return;
        }

        AuditReport report;
        try
        {
            report = await AuditReport.ReadAsync(services.GetRequiredService<IAuditTrail>(), query, context.RequestAborted);
        }
        catch (AuditTrailUnavailableException ex)
        {
            await Json(context, StatusCodes.Status503ServiceUnavailable, new AuditError(ex.Message), AuditJsonContext.Readable.AuditError);
            return;
        }

        if (timeline || query.Text)
        {
            context.Response.ContentType = "text/plain; charset=utf-8";
            await context.Response.WriteAsync(AuditTimeline.Render(report), context.RequestAborted);
            return;
        }

        var message = report.Next is { } next
            ? $"{report.Matched} events matched; the first {report.Events.Count} are shown: ask again with since={AuditReport.Iso(next)}, or a higher limit (at most {AuditQuery.MaxLimit})."
            : null;
        await Json(
            context,
            StatusCodes.Status200OK,
            new AuditEventList(query.Since, query.Until, report.Events.Count, report.Matched, report.Truncated, message, report.Events, report.Unresolved),
            AuditJsonContext.Readable.AuditEventList);
    }

    private static Task Json<T>(HttpContext context, int status, T value, JsonTypeInfo<T> type)
    {
        context.Response.StatusCode = status;
        return context.Response.WriteAsJsonAsync(value, type, cancellationToken: context.RequestAborted);
    }
}
