namespace SharedLog.Storage;

/// <summary>Settings of the storage engine (docs/configuration.md); validated at start.</summary>
public sealed class StorageOptions
{
    /// <summary>Upload un-uploaded data at least this often (<c>upload.interval.ms</c>).</summary>
    public TimeSpan UploadInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Upload as soon as this much data waits (<c>upload.bytes</c>).</summary>
    public long UploadBytes { get; set; } = 16L * 1024 * 1024;

    /// <summary>Target size of one data block inside an object: the unit of ranged reads and of the block cache.</summary>
    public int BlockSizeBytes { get; set; } = 1024 * 1024;

    /// <summary>Memory for recent batches serving tailing consumers (uploaded batches are evicted first).</summary>
    public long LogCacheBytes { get; set; } = 256L * 1024 * 1024;

    /// <summary>Memory for blocks read back from objects.</summary>
    public long BlockCacheBytes { get; set; } = 128L * 1024 * 1024;

    /// <summary>
    /// Data waiting for upload, at most. Past it appends fail with a retriable error until the object
    /// store takes data again; this bounds the WAL and memory while the store is away.
    /// </summary>
    public long MaxPendingUploadBytes { get; set; } = 1024L * 1024 * 1024;

    /// <summary>Concurrent object reads for consumers behind the cache, so replays cannot starve appends.</summary>
    public int CatchUpReadConcurrency { get; set; } = 4;

    /// <summary>Blocks fetched ahead of a sequential reader.</summary>
    public int PrefetchBlocks { get; set; } = 2;

    /// <summary>How often retention and object cleanup run.</summary>
    public TimeSpan CleanupInterval { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>A prepared object older than this was never committed (its uploader crashed) and is removed.</summary>
    public TimeSpan OrphanGrace { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Key prefix of data objects inside the bucket or directory.</summary>
    public string ObjectKeyPrefix { get; set; } = "data/";

    public void Validate()
    {
        if (UploadInterval <= TimeSpan.Zero)
        {
            throw new ArgumentException("upload.interval.ms must be positive.");
        }

        if (UploadBytes <= 0 || MaxPendingUploadBytes < UploadBytes)
        {
            throw new ArgumentException("upload.bytes must be positive and no larger than the pending-upload bound.");
        }

        if (BlockSizeBytes < 4096 || LogCacheBytes < 0 || BlockCacheBytes < 0)
        {
            throw new ArgumentException("Block size must be at least 4 KiB and cache sizes non-negative.");
        }

        if (CleanupInterval <= TimeSpan.Zero || OrphanGrace <= TimeSpan.Zero)
        {
            throw new ArgumentException("Cleanup interval and orphan grace must be positive.");
        }

        if (CatchUpReadConcurrency < 1 || PrefetchBlocks < 0)
        {
            throw new ArgumentException("Catch-up read concurrency must be at least 1 and prefetch non-negative.");
        }
    }
}
