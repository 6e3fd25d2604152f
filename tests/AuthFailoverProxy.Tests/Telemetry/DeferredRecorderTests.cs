using AuthFailoverProxy.Telemetry;
using Microsoft.Extensions.Time.Testing;

namespace AuthFailoverProxy.Tests.Telemetry;

/// <summary>
/// The token histogram's measurements, queued by the request path and recorded on one thread: none lost or recorded
/// twice whatever the cores do, and each recorded at the latest at the next collection, the next interval or the next
/// full batch, whichever comes first.
/// </summary>
public sealed class DeferredRecorderTests
{
    [Fact]
    public async Task EveryMeasurement_FromEveryCore_IsRecordedOnce_OneAtATime()
    {
        // A set, not thread-safe: the recorder calls one record at a time, which the count of those running checks too.
        var recorded = new HashSet<long>();
        var inRecord = 0;
        var (overlapped, twice) = (false, false);
        using var recorder = new DeferredRecorder<long>(m =>
        {
            overlapped |= Interlocked.Increment(ref inRecord) > 1;
            twice |= !recorded.Add(m);
            Interlocked.Decrement(ref inRecord);
        }, new FakeTimeProvider());
        const int PerWriter = 20_000;
        var writers = Enumerable.Range(0, Environment.ProcessorCount * 2).Select(w => Task.Run(() =>
        {
            for (var i = 0; i < PerWriter; i++)
            {
                recorder.Add((long)w * PerWriter + i);
            }
        }, TestContext.Current.CancellationToken)).ToArray();

        // Recorded meanwhile too: full batches ask the thread pool, and a collection may come at any time.
        while (!writers.All(w => w.IsCompleted))
        {
            recorder.Flush();
        }

        await Task.WhenAll(writers);
        recorder.Flush();

        Assert.Equal(writers.Length * PerWriter, recorded.Count);
        Assert.False(overlapped);
        Assert.False(twice);
    }

    [Fact]
    public async Task AQuietMeasurement_WaitsAtMostAnInterval_AFullBatchNoLonger()
    {
        var time = new FakeTimeProvider();
        var recorded = 0;
        using var recorder = new DeferredRecorder<int>(_ => Interlocked.Increment(ref recorded), time);

        recorder.Add(1);
        Assert.Equal(0, Volatile.Read(ref recorded));
        time.Advance(DeferredRecorder<int>.Interval);
        Assert.Equal(1, Volatile.Read(ref recorded));

        // A busy core does not wait for the interval: its batch asks for a recording at once (on the thread pool).
        // Added by one thread; the thread pool's thread may move it between cores, whose batches count apart.
        var added = 0;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(20));
        while (Volatile.Read(ref recorded) == 1)
        {
            recorder.Add(2);
            added++;
            if (added % DeferredRecorder<int>.Batch == 0)
            {
                await Task.Delay(5, timeout.Token);
            }
        }

        Assert.True(added >= DeferredRecorder<int>.Batch);
        recorder.Flush();
        Assert.Equal(1 + added, Volatile.Read(ref recorded));
    }

    [Fact]
    public void WhatIsQueued_IsRecordedWhenTheRecorderGoes_AndTheTimerWithIt()
    {
        var time = new FakeTimeProvider();
        var recorded = 0;
        var recorder = new DeferredRecorder<int>(_ => recorded++, time);
        recorder.Add(1);
        recorder.Add(2);

        recorder.Dispose();

        Assert.Equal(2, recorded);
        time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(2, recorded);
    }
}
