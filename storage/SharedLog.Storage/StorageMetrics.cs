using System.Diagnostics.Metrics;

namespace SharedLog.Storage;

/// <summary>The storage engine's instruments: WAL commit latency, uploads and compaction.</summary>
public static class StorageMetrics
{
    public const string MeterName = "SharedLog.Storage";

    private static readonly Meter Meter = new(MeterName);

    /// <summary>
    /// Bucket bounds (ms) of the broker's latency histograms: fine below 10 ms, where the produce and WAL
    /// goals are, instead of OpenTelemetry's default whose first bucket already ends at 5 ms.
    /// </summary>
    public static readonly InstrumentAdvice<double> LatencyBuckets = new()
    {
        HistogramBucketBoundaries = [0.25, 0.5, 1, 2, 3, 4, 5, 7.5, 10, 15, 20, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000],
    };

    public static readonly Histogram<double> WalCommitDuration =
        Meter.CreateHistogram("sharedlog.wal.commit.duration", unit: "ms", description: "Duration of one WAL group commit (write and fsync)", tags: null, advice: LatencyBuckets);

    /// <summary>
    /// One synchronous WAL device write: a log page range (<c>kind=log</c>, direct-I/O device only) or a commit point
    /// (<c>kind=commit_point</c>). A group commit is one of each in turn, so these split its latency into the disk's part
    /// and the rest.
    /// </summary>
    public static readonly Histogram<double> WalWriteDuration =
        Meter.CreateHistogram("sharedlog.wal.write.duration", unit: "ms", description: "Duration of one synchronous WAL device write (kind: log or commit_point)", tags: null, advice: LatencyBuckets);

    private static readonly KeyValuePair<string, object?> LogWriteKind = new("kind", "log");
    private static readonly KeyValuePair<string, object?> CommitPointWriteKind = new("kind", "commit_point");

    /// <summary>Records a WAL device write that started at <paramref name="startedTimestamp"/> (<see cref="System.Diagnostics.Stopwatch.GetTimestamp"/>).</summary>
    public static void RecordWalWrite(bool commitPoint, long startedTimestamp) =>
        WalWriteDuration.Record(System.Diagnostics.Stopwatch.GetElapsedTime(startedTimestamp).TotalMilliseconds, commitPoint ? CommitPointWriteKind : LogWriteKind);

    public static readonly Counter<long> UploadedBytes =
        Meter.CreateCounter<long>("sharedlog.upload.bytes", unit: "By", description: "Bytes uploaded to the object store");

    public static readonly Counter<long> CompactedBytes =
        Meter.CreateCounter<long>("sharedlog.compaction.input.bytes", unit: "By", description: "Bytes of objects replaced by compaction");
}
