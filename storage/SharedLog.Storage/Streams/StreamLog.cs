namespace SharedLog.Storage.Streams;

/// <summary>A batch held in memory: appended (durable in the WAL) and not yet evicted.</summary>
internal sealed class CachedBatch(long baseOffset, long endOffset, long firstTimestamp, long maxTimestamp, int recordCount, byte[] data)
{
    public long BaseOffset { get; } = baseOffset;

    public long EndOffset { get; } = endOffset;

    public long FirstTimestamp { get; } = firstTimestamp;

    public long MaxTimestamp { get; } = maxTimestamp;

    public int RecordCount { get; } = recordCount;

    public byte[] Data { get; } = data;

    /// <summary>Position of the batch's WAL entry; -1 until the append has been enqueued.</summary>
    public long WalPosition { get; set; } = -1;

    public bool Durable { get; set; }

    public bool Uploaded { get; set; }
}

/// <summary>
/// One partition's log on its leader: assigns offsets, tracks the log start offset and the high
/// watermark (end of durable data), and keeps recent batches in memory until they are uploaded and
/// evicted. All state changes happen under <see cref="Sync"/>; no I/O is done while holding it.
/// </summary>
public sealed class StreamLog
{
    private readonly List<CachedBatch> _batches = [];
    private TaskCompletionSource _dataArrived = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal StreamLog(long streamId, int leaderEpoch, long logStartOffset, long committedEndOffset)
    {
        StreamId = streamId;
        LeaderEpoch = leaderEpoch;
        LogStartOffset = logStartOffset;
        UploadedEndOffset = committedEndOffset;
        NextOffset = Math.Max(committedEndOffset, logStartOffset);
        HighWatermark = NextOffset;
    }

    internal object Sync { get; } = new();

    public long StreamId { get; }

    public int LeaderEpoch { get; }

    public long LogStartOffset { get; internal set; }

    /// <summary>Offset after the last durable record: what consumers may read up to.</summary>
    public long HighWatermark { get; private set; }

    /// <summary>Offset the next append gets.</summary>
    public long NextOffset { get; private set; }

    /// <summary>Offset after the last record committed to the object store.</summary>
    public long UploadedEndOffset { get; internal set; }

    internal bool Closed { get; set; }

    /// <summary>
    /// Set by the store when it forgets the stream and discounts its batches not yet in an object from the pending
    /// upload bytes; an upload of those batches already under way must then not discount them again.
    /// </summary>
    internal bool Discarded { get; set; }

    internal List<CachedBatch> Batches => _batches;

    /// <summary>Reserves offsets for a batch and records it as in flight (caller holds <see cref="Sync"/>).</summary>
    internal CachedBatch Reserve(byte[] data, int recordCount, long firstTimestamp, long maxTimestamp)
    {
        long baseOffset = NextOffset;
        BatchHeader.SetBaseOffset(data, baseOffset);

        // As Kafka brokers do: consumers learn the leader epoch of what they read from this field.
        SharedLog.Protocol.Records.RecordBatch.SetPartitionLeaderEpoch(data, LeaderEpoch);
        var batch = new CachedBatch(baseOffset, baseOffset + recordCount, firstTimestamp, maxTimestamp, recordCount, data);
        NextOffset = batch.EndOffset;
        _batches.Add(batch);
        return batch;
    }

    /// <summary>Marks a batch durable. Because the WAL commits in order, every earlier batch is durable too.</summary>
    internal void MarkDurable(CachedBatch batch)
    {
        TaskCompletionSource wake;
        lock (Sync)
        {
            batch.Durable = true;
            if (batch.EndOffset <= HighWatermark)
            {
                return;
            }

            // Only the batches between the old high watermark and this one change: a producer of small
            // batches keeps thousands cached, and visiting all of them per commit made appends quadratic.
            for (int i = FirstBatchEndingAfter(HighWatermark); i < _batches.Count && _batches[i].EndOffset <= batch.EndOffset; i++)
            {
                _batches[i].Durable = true;
            }

            HighWatermark = batch.EndOffset;
            wake = _dataArrived;
            _dataArrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        wake.TrySetResult();
    }

    /// <summary>Wakes every fetch waiting on this stream, as a discarded one (topic deleted) must: they find it gone.</summary>
    internal void WakeWaiters()
    {
        TaskCompletionSource wake;
        lock (Sync)
        {
            wake = _dataArrived;
            _dataArrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        wake.TrySetResult();
    }

    /// <summary>Removes a batch whose WAL append failed; offsets after it are not reused by a live log.</summary>
    internal void Abandon(CachedBatch batch)
    {
        lock (Sync)
        {
            _batches.Remove(batch);
            Closed = true;
        }
    }

    /// <summary>Adds a batch recovered from the WAL (durable, not uploaded).</summary>
    internal void Recover(CachedBatch batch)
    {
        batch.Durable = true;
        _batches.Add(batch);
        NextOffset = Math.Max(NextOffset, batch.EndOffset);
        HighWatermark = NextOffset;
    }

    /// <summary>Completes when the high watermark moves past <paramref name="offset"/> (long-poll fetches).</summary>
    public Task WaitForDataAsync(long offset, CancellationToken cancellationToken)
    {
        Task wait;
        lock (Sync)
        {
            // A discarded stream wakes its waiters at once, and their next read fails; one closed by a failed WAL append
            // keeps serving what it has but gets no more data, so a waiter sleeps to its deadline rather than spin.
            if (HighWatermark > offset || Discarded)
            {
                return Task.CompletedTask;
            }

            wait = _dataArrived.Task;
        }

        return wait.WaitAsync(cancellationToken);
    }

    /// <summary>
    /// Batches from the cache covering <paramref name="offset"/>, up to <paramref name="maxBytes"/> (the
    /// first batch whole even when larger, if <paramref name="firstBatchWhole"/>) and never past
    /// <paramref name="highWatermark"/>: the one the read reports, taken before it (as Kafka, records never go past the
    /// high watermark answered with them, though appends may become durable meanwhile).
    /// False when the cache does not reach back to <paramref name="offset"/>.
    /// </summary>
    internal bool TryReadCached(long offset, long highWatermark, int maxBytes, bool firstBatchWhole, List<ReadOnlyMemory<byte>> into)
    {
        lock (Sync)
        {
            // The cache is contiguous: eviction only removes from the front.
            if (_batches.Count == 0 || offset < _batches[0].BaseOffset)
            {
                return false;
            }

            int bytes = 0;
            for (int i = FirstBatchEndingAfter(offset); i < _batches.Count; i++)
            {
                CachedBatch b = _batches[i];
                if (b.EndOffset > highWatermark || ((bytes > 0 || !firstBatchWhole) && bytes + b.Data.Length > maxBytes))
                {
                    break;
                }

                into.Add(b.Data);
                bytes += b.Data.Length;
            }

            return true;
        }
    }

    /// <summary>Bytes of the cached batches not yet in an object: the partition's data that is only in the WAL.</summary>
    public long NotUploadedBytes()
    {
        lock (Sync)
        {
            long bytes = 0;
            for (int i = FirstNotUploaded(); i < _batches.Count; i++)
            {
                bytes += _batches[i].Data.Length;
            }

            return bytes;
        }
    }

    /// <summary>
    /// Index of the first cached batch not yet in an object (caller holds <see cref="Sync"/>). Uploads commit the
    /// cache's oldest batches in order and then move <see cref="UploadedEndOffset"/>, so the uploaded batches are
    /// the front of the cache: found by search, where visiting them would cost a pass over thousands of small batches
    /// per upload round while the partition's lock is held.
    /// </summary>
    internal int FirstNotUploaded() => FirstBatchEndingAfter(UploadedEndOffset);

    /// <summary>Index of the first cached batch whose records end after <paramref name="offset"/> (caller holds <see cref="Sync"/>); the cache is in offset order.</summary>
    private int FirstBatchEndingAfter(long offset)
    {
        int low = 0;
        int high = _batches.Count;
        while (low < high)
        {
            int middle = low + ((high - low) / 2);
            if (_batches[middle].EndOffset <= offset)
            {
                low = middle + 1;
            }
            else
            {
                high = middle;
            }
        }

        return low;
    }

    /// <summary>The earliest cached offset at or after which the cache is contiguous to the tail.</summary>
    internal long CacheStartOffset
    {
        get
        {
            lock (Sync)
            {
                return _batches.Count == 0 ? NextOffset : _batches[0].BaseOffset;
            }
        }
    }
}
