namespace AuthFailoverProxy.Tests.Alerts;

/// <summary>
/// A clock whose timers fire a little before they are due, as real ones do: a <see cref="TimeProvider.System"/> timer
/// counts whole milliseconds on the tick counter, which drifts from the wall clock <c>GetUtcNow</c> reads, so code woken
/// "at" an instant may read a time just before it. Here the wake-ups come <c>early</c> ahead of the inner clock,
/// which the test moves.
/// </summary>
internal sealed class EarlyTimeProvider(TimeProvider inner, TimeSpan early) : TimeProvider
{
    private static readonly TimeSpan MinimumDue = TimeSpan.FromMilliseconds(1);

    public override DateTimeOffset GetUtcNow() => inner.GetUtcNow();

    public override long GetTimestamp() => inner.GetTimestamp();

    public override long TimestampFrequency => inner.TimestampFrequency;

    public override TimeZoneInfo LocalTimeZone => inner.LocalTimeZone;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        => new EarlyTimer(inner.CreateTimer(callback, state, Sooner(dueTime), period), this);

    /// <summary>Early, but never at once: a timer armed for later does not fire inside the call that arms it (the test would spin, not fail).</summary>
    private TimeSpan Sooner(TimeSpan due) => due == Timeout.InfiniteTimeSpan || due <= TimeSpan.Zero ? due : due - early > MinimumDue ? due - early : MinimumDue;

    private sealed class EarlyTimer(ITimer timer, EarlyTimeProvider clock) : ITimer
    {
        public bool Change(TimeSpan dueTime, TimeSpan period) => timer.Change(clock.Sooner(dueTime), period);

        public void Dispose() => timer.Dispose();

        public ValueTask DisposeAsync() => timer.DisposeAsync();
    }
}
