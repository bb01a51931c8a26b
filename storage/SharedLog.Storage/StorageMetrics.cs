using System.Diagnostics.Metrics;

namespace SharedLog.Storage;

/// <summary>The storage engine's instruments: WAL commit latency, uploads and compaction.</summary>
public static class StorageMetrics
{
    public const string MeterName = "SharedLog.Storage";

    private static readonly Meter Meter = new(MeterName);

    public static readonly Histogram<double> WalCommitDuration =
        Meter.CreateHistogram<double>("sharedlog.wal.commit.duration", unit: "ms", description: "Duration of one WAL group commit (write and fsync)");

    public static readonly Counter<long> UploadedBytes =
        Meter.CreateCounter<long>("sharedlog.upload.bytes", unit: "By", description: "Bytes uploaded to the object store");

    public static readonly Counter<long> CompactedBytes =
        Meter.CreateCounter<long>("sharedlog.compaction.input.bytes", unit: "By", description: "Bytes of objects replaced by compaction");
}
