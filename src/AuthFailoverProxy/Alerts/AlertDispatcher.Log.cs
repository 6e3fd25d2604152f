namespace AuthFailoverProxy.Alerts;

internal sealed partial class AlertDispatcher
{
    [LoggerMessage(EventId = 7000, Level = LogLevel.Information, Message = "Alerts go to {Count} channel(s): {Channels:l}; reminders {Reminders:l}.")]
    private static partial void LogChannels(ILogger logger, int count, string channels, string reminders);

    [LoggerMessage(EventId = 7001, Level = LogLevel.Information, Message = "No alert channel is configured (Alerts:Channels, or AFP_ALERT_WEBHOOK): problems are told only in this log and in GET /status.")]
    private static partial void LogNoChannels(ILogger logger);

    [LoggerMessage(EventId = 7002, Level = LogLevel.Information, Message = "Alert test at start: {Results:l}.")]
    private static partial void LogTestDelivered(ILogger logger, string results);

    [LoggerMessage(EventId = 7003, Level = LogLevel.Warning, Message = "Alert test at start: {Results:l}. Fix the failing channel, or alerts meant for it are lost.")]
    private static partial void LogTestFailed(ILogger logger, string results);

    [LoggerMessage(EventId = 7004, Level = LogLevel.Debug, Message = "Alert {Kind:l} for {Incident:l} is sent by another replica, which claimed the change first.")]
    private static partial void LogClaimedElsewhere(ILogger logger, string kind, string incident);

    [LoggerMessage(EventId = 7005, Level = LogLevel.Error, Message = "Alert dispatch failed for an event {Kind:l}.")]
    private static partial void LogDispatchFailed(ILogger logger, string kind, Exception exception);
}
