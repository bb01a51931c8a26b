namespace SharedLog.Storage;

/// <summary>Settings of the storage engine (docs/configuration.md); validated at start.</summary>
public sealed class StorageOptions
{
    /// <summary>Upload un-uploaded data at least this often (<c>upload.interval.ms</c>).</summary>
    public TimeSpan UploadInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Upload as soon as this much data waits (<c>upload.bytes</c>).</summary>
    public long UploadBytes { get; set; } = 16L * 1024 * 1024;

    /// <summary>
    /// An upload started by <see cref="UploadInterval"/> (less than <see cref="UploadBytes"/> waiting) writes its object
    /// over about half the interval, 64 KiB at a time, where the object store shares the WAL's disk (the local directory
    /// with direct I/O): the WAL's synchronous writes then do not queue behind an object written in one burst. Uploads
    /// started by <see cref="UploadBytes"/>, and S3 uploads, are not spread.
    /// </summary>
    public bool PaceIntervalUploads { get; set; } = true;

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

    /// <summary>
    /// Bytes of a marked object stay this long after it was marked for deletion (compaction, retention,
    /// deleted topics): a reader that looked the object up just before can still finish its read.
    /// </summary>
    public TimeSpan DeletionGrace { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// How long a partition's last lookup of object ranges is reused by reads (never more than a quarter of
    /// <see cref="DeletionGrace"/>, so the objects it names are still there when read).
    /// </summary>
    public TimeSpan RangeLookupReuse { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How often the compactor merges stream-set objects into per-stream objects.</summary>
    public TimeSpan CompactionInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Stream-set objects younger than this are left alone (recent data is read from the log cache anyway).</summary>
    public TimeSpan CompactionMinAge { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Input one compaction round takes at most (oldest objects first); the rest waits for the next round.</summary>
    public long CompactionMaxBytesPerRound { get; set; } = 256L * 1024 * 1024;

    /// <summary>
    /// Size a stream object grows to: the compactor appends to a stream's last object, and merges
    /// adjacent ones, only while the result stays under it; a larger run of data is cut at about this size.
    /// </summary>
    public long StreamObjectTargetBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Key prefix of data objects inside the bucket or directory.</summary>
    public string ObjectKeyPrefix { get; set; } = "data/";

    /// <summary>
    /// The longest period a background loop's timer takes (.NET's timers stop at 2^32 - 2 ms, about 49.7 days): a longer
    /// interval setting is refused at start, not left to fail the loop and then the shutdown that waits for it.
    /// </summary>
    public static readonly TimeSpan LongestInterval = TimeSpan.FromDays(49);

    public void Validate()
    {
        if (UploadInterval <= TimeSpan.Zero)
        {
            throw new ArgumentException("upload.interval.ms must be positive.");
        }

        if (UploadInterval > LongestInterval || CleanupInterval > LongestInterval || CompactionInterval > LongestInterval)
        {
            throw new ArgumentException($"UploadInterval, CleanupInterval and CompactionInterval must be at most {LongestInterval.TotalDays} days.");
        }

        if (UploadBytes <= 0 || MaxPendingUploadBytes < UploadBytes)
        {
            // Named as the operator sets them (Storage:UploadBytes / SHAREDLOG_Storage__UploadBytes): lowering only the bound
            // below the 16 MiB upload size was refused with names found nowhere in the configuration.
            throw new ArgumentException($"Storage:UploadBytes ({UploadBytes}) must be positive and no larger than Storage:MaxPendingUploadBytes ({MaxPendingUploadBytes}); lower UploadBytes with it.");
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

        if (DeletionGrace < TimeSpan.Zero || CompactionMinAge < TimeSpan.Zero || RangeLookupReuse < TimeSpan.Zero)
        {
            throw new ArgumentException("DeletionGrace, CompactionMinAge and RangeLookupReuse must not be negative.");
        }

        if (CompactionInterval <= TimeSpan.Zero || CompactionMaxBytesPerRound <= 0)
        {
            throw new ArgumentException("CompactionInterval and CompactionMaxBytesPerRound must be positive.");
        }

        // One object is built in memory, and an object never holds less than one block.
        if (StreamObjectTargetBytes < BlockSizeBytes || StreamObjectTargetBytes > int.MaxValue)
        {
            throw new ArgumentException($"StreamObjectTargetBytes must be between the block size ({BlockSizeBytes}) and 2 GiB.");
        }
    }
}
