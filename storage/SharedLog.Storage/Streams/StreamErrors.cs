namespace SharedLog.Storage.Streams;

/// <summary>The requested offset is outside [log start offset, high watermark].</summary>
public sealed class OffsetOutOfRangeException(long streamId, long offset, long logStartOffset, long highWatermark)
    : Exception($"Stream {streamId}: offset {offset} is outside [{logStartOffset}, {highWatermark}].")
{
    public long LogStartOffset { get; } = logStartOffset;

    public long HighWatermark { get; } = highWatermark;
}

/// <summary>Too much data waits for upload (the object store is slow or away); retry later.</summary>
public sealed class StorageBackpressureException(long pendingBytes, long limit)
    : Exception($"{pendingBytes} bytes wait for upload (limit {limit}); the object store is not keeping up. Retry later.");

/// <summary>The stream is not open on this broker (unknown, deleted, or led elsewhere).</summary>
public sealed class StreamNotOpenException(long streamId) : Exception($"Stream {streamId} is not open on this broker.");
