namespace AuthFailoverProxy.Alerts;

/// <summary>The alerts section of <c>/status</c>: every channel by name and type (never its URL or secret) and how many problems are open.</summary>
/// <param name="OpenIncidents">Problems this replica knows to be open.</param>
/// <param name="Channels">Each channel, in name order.</param>
internal sealed record AlertsStatus(int OpenIncidents, IReadOnlyList<AlertChannelStatus> Channels);

/// <summary>One channel in <c>/status</c>.</summary>
/// <param name="Name">The channel's name.</param>
/// <param name="Type">Its type: webhook, slack, discord, teams, pagerduty or email.</param>
/// <param name="State"><c>untested</c> (nothing sent yet), <c>ok</c> or <c>failing</c>: how its last delivery ended.</param>
/// <param name="LastDelivery">When an alert last reached it.</param>
/// <param name="LastError">Why its last failed delivery failed, and when.</param>
/// <param name="Sent">Alerts delivered.</param>
/// <param name="Failed">Alerts that failed after their retries.</param>
/// <param name="Dropped">Alerts dropped because its queue was full.</param>
/// <param name="Queued">Alerts waiting now.</param>
/// <param name="Test">The test at start: <c>delivered</c>, <c>failed: …</c>, or absent when none was sent.</param>
internal sealed record AlertChannelStatus(
    string Name,
    string Type,
    string State,
    DateTimeOffset? LastDelivery,
    AlertErrorStatus? LastError,
    long Sent,
    long Failed,
    long Dropped,
    int Queued,
    string? Test);

internal sealed record AlertErrorStatus(string Message, DateTimeOffset At);
