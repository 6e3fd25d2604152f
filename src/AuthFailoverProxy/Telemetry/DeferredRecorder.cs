using System.Collections.Concurrent;
using System.Numerics;
using System.Runtime.InteropServices;

namespace AuthFailoverProxy.Telemetry;

/// <summary>
/// Hands measurements from the request path to one thread that records them, in batches. The metrics SDK keeps each
/// series of a histogram under a lock of its own; when every core records into the same series (every answer of a pool
/// and model), the series' lock and buckets pass from core to core on every record, and the cores wait on each other.
/// Here the request path only queues the measurement, on a queue of its core's; the queues are recorded on one thread
/// at every metrics collection (before the collection reads the histogram: <see cref="Flush"/>), every
/// <see cref="Interval"/>, and whenever a core has queued <see cref="Batch"/> since the last recording.
/// </summary>
/// <remarks>
/// Not one thread-pool hop per measurement: on a lightly loaded proxy that hop costs more than the lock it avoids. Nothing
/// is dropped, and what is queued is bounded by the batch per core between two recordings.
/// </remarks>
internal sealed class DeferredRecorder<T> : IThreadPoolWorkItem, IDisposable
    where T : struct
{
    /// <summary>How long a measurement may wait for a recording when nothing else asks for one.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    /// <summary>How many measurements one core queues before it asks for a recording.</summary>
    public const int Batch = 1024;

    private static readonly int LaneCount = (int)Math.Min(16, BitOperations.RoundUpToPowerOf2((uint)Environment.ProcessorCount));

    private readonly Lane[] _lanes = new Lane[LaneCount];
    private readonly Action<T> _record;
    private readonly Lock _recording = new();
    private readonly ITimer _timer;

    /// <param name="record">Records one measurement; called on one thread at a time.</param>
    /// <param name="time">Drives the recording every <see cref="Interval"/>.</param>
    public DeferredRecorder(Action<T> record, TimeProvider time)
    {
        _record = record;
        for (var i = 0; i < _lanes.Length; i++)
        {
            _lanes[i].Queue = new ConcurrentQueue<T>();
        }

        _timer = time.CreateTimer(static recorder => ((DeferredRecorder<T>)recorder!).Flush(), this, Interval, Interval);
    }

    /// <summary>Queues <paramref name="measurement"/> to be recorded at the next recording.</summary>
    public void Add(in T measurement)
    {
        ref var lane = ref _lanes[Thread.GetCurrentProcessorId() & (LaneCount - 1)];
        lane.Queue!.Enqueue(measurement);
        // Interlocked, though mostly this core's own: a thread can move between cores. Only the call that reaches the
        // batch asks; the recording sets the count back.
        if (Interlocked.Increment(ref lane.Queued) == Batch)
        {
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }
    }

    /// <summary>Records everything queued so far, on the calling thread.</summary>
    public void Flush()
    {
        lock (_recording)
        {
            for (var i = 0; i < _lanes.Length; i++)
            {
                ref var lane = ref _lanes[i];
                Interlocked.Exchange(ref lane.Queued, 0);
                while (lane.Queue!.TryDequeue(out var measurement))
                {
                    Record(measurement);
                }
            }
        }
    }

    void IThreadPoolWorkItem.Execute() => Flush();

    private void Record(in T measurement)
    {
        try
        {
            _record(measurement);
        }
        catch (Exception)
        {
            // On the thread pool or the timer, an exception would end the process: a measurement the SDK refuses is lost
            // alone, and the rest are recorded.
        }
    }

    public void Dispose()
    {
        _timer.Dispose();
        Flush();
    }

    /// <summary>One core's queue and its count since the last recording, padded so that no two cores' counts share a cache line.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 128)]
    private struct Lane
    {
        public ConcurrentQueue<T>? Queue;
        public int Queued;
    }
}
