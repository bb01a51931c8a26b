using System.Buffers;
using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SharedLog.Protocol.Records;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.Objects;
using SharedLog.Storage.ObjectStore;
using SharedLog.Storage.Wal;

namespace SharedLog.Storage.Streams;

/// <summary>What a read returns: whole batches, and the stream's bounds at the time of the read.</summary>
public sealed record StreamReadResult(IReadOnlyList<ReadOnlyMemory<byte>> Batches, long HighWatermark, long LogStartOffset)
{
    /// <summary>
    /// The offset after the last batch read (<paramref name="requested"/> when none was): below the high watermark, the
    /// read stopped at a limit with more data there (its byte limit, or how much one read takes from objects).
    /// </summary>
    public long NextOffset(long requested)
    {
        if (Batches.Count == 0)
        {
            return requested;
        }

        ReadOnlySpan<byte> last = Batches[^1].Span;
        return BatchHeader.BaseOffset(last) + BatchHeader.LastOffsetDelta(last) + 1;
    }
}

/// <summary>
/// The storage engine of one broker: every stream it leads, one WAL for all of them, the uploader that
/// moves durable data into objects (then trims the WAL), and the read path (log cache, block cache,
/// ranged GETs). The broker holds no state that the WAL and the object store cannot rebuild.
/// </summary>
public sealed partial class StreamStore : IAsyncDisposable
{
    private readonly StorageOptions _options;
    private readonly IWriteAheadLog _wal;
    private readonly IObjectStore _objects;
    private readonly IMetadataStore _metadata;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<long, StreamLog> _streams = new();

    /// <summary>Set once <see cref="StartAsync"/> has replayed the whole WAL; until then nothing is uploaded or trimmed.</summary>
    private volatile bool _recovered;
    private readonly ConcurrentDictionary<string, Task<IReadOnlyList<BlockIndexEntry>>> _objectIndexes = new(StringComparer.Ordinal);

    // The next committed ranges of each partition as last looked up. A consumer reading through objects asks for the
    // same few ranges fetch after fetch; each lookup is a metadata query. An object stays readable for the deletion
    // grace after it is marked (compaction, retention), so an entry lives at most a quarter of that and at most a
    // second; the janitor deleting an object here drops them all.
    private readonly ConcurrentDictionary<long, RangeLookup> _rangeLookups = new();
    private long _rangeLookupCount;

    // Moved by every ForgetRangeLookups: a lookup whose query was under way when they were dropped is not remembered.
    private long _rangeLookupGeneration;
    private readonly BlockCache _blockCache;
    private readonly SemaphoreSlim _catchUpReads;
    private readonly SemaphoreSlim _uploadLock = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _uploadSignal = new(0, 1);

    /// <summary>Cancelled to make the paced upload under way write the rest at full speed; null while none is.</summary>
    private CancellationTokenSource? _pacedUploadHurry;

    /// <summary>Callers of <see cref="UploadAsync(CancellationToken)"/> waiting for or running their upload.</summary>
    private int _uploadsAskedFor;
    private Task? _uploadLoop;
    private long _pendingUploadBytes;
    private long _cachedBytes;
    private int _disposed;
    private readonly System.Diagnostics.Metrics.Meter _meter;

    public StreamStore(StorageOptions options, IWriteAheadLog wal, IObjectStore objects, IMetadataStore metadata, ILogger<StreamStore>? logger = null)
    {
        options.Validate();
        _options = options;
        _wal = wal;
        _objects = objects;
        _metadata = metadata;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _blockCache = new BlockCache(options.BlockCacheBytes);
        _catchUpReads = new SemaphoreSlim(options.CatchUpReadConcurrency, options.CatchUpReadConcurrency);
        _meter = new System.Diagnostics.Metrics.Meter(StorageMetrics.MeterName);
        _meter.CreateObservableGauge("sharedlog.upload.pending", () => PendingUploadBytes, unit: "By", description: "Bytes acknowledged but not yet uploaded (upload lag)");
    }

    /// <summary>Bytes appended and not yet committed to the object store.</summary>
    public long PendingUploadBytes => Interlocked.Read(ref _pendingUploadBytes);

    public BlockCache BlockCache => _blockCache;

    public StorageOptions Options => _options;

    /// <summary>Objects whose index is cached.</summary>
    internal int CachedObjectIndexCount => _objectIndexes.Count;

    // Objects this process has prepared and is still writing or committing (uploads, compaction).
    private readonly ConcurrentDictionary<long, byte> _objectsBeingWritten = new();

    /// <summary>
    /// Whether this process is still writing or committing the prepared object: not an orphan, however long its PUT takes
    /// (a backlog after an outage, a slow store). Counting from its prepare alone, the janitor deleted its row under a PUT
    /// slower than the orphan grace, so the commit failed and the uploaded object was never collected.
    /// </summary>
    public bool IsBeingWritten(long objectId) => _objectsBeingWritten.ContainsKey(objectId);

    internal void BeginWriting(long objectId) => _objectsBeingWritten.TryAdd(objectId, 0);

    internal void EndWriting(long objectId) => _objectsBeingWritten.TryRemove(objectId, out _);

    /// <summary>
    /// Most object indexes kept (each a few KiB): a consumer catching up over a long retention reads many objects, and an
    /// index stayed until its object was deleted. Past it the cache starts again, as the gate's caches do.
    /// </summary>
    internal int MaxCachedObjectIndexes { get; set; } = 10_000;

    /// <summary>
    /// Drops the cached index of an object whose bytes were deleted (the janitor calls it), so the cache
    /// holds only objects that can still be read instead of growing with every object ever read.
    /// </summary>
    internal void ForgetObjectIndex(string key)
    {
        _objectIndexes.TryRemove(key, out _);
        // Object deletions are rare: dropping every remembered lookup is simpler than finding those naming the key.
        ForgetRangeLookups();
    }

    /// <summary>Drops remembered range lookups (objects were replaced or deleted), so the next reads look ranges up again.</summary>
    internal void ForgetRangeLookups()
    {
        Interlocked.Increment(ref _rangeLookupGeneration);
        _rangeLookups.Clear();
    }

    /// <summary>Lookups of object ranges this store asked the metadata store for (reads from objects); for tests.</summary>
    internal long RangeLookups => Interlocked.Read(ref _rangeLookupCount);

    /// <summary>
    /// Replays the WAL: entries already committed to objects are skipped (a crash between commit and trim
    /// leaves them behind), the rest are cached again for upload. Then the upload loop starts.
    /// </summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        int replayed = 0;
        int skipped = 0;
        // Where each stream's next replayed entry must start: its records are contiguous from the committed end on.
        var continuesAt = new Dictionary<long, long>();
        foreach (WalEntry entry in _wal.ReadDurableEntries())
        {
            StreamLog? stream = await OpenRecoveredStreamAsync(entry.StreamId, cancellationToken).ConfigureAwait(false);
            if (stream is null || entry.BaseOffset + entry.RecordCount <= stream.UploadedEndOffset)
            {
                skipped++;
                continue;
            }

            // A stretch of the WAL lost in the middle (a lost write, a segment cut short) leaves no error of its own: the
            // scan goes on past it. Replaying around it would serve other records at the lost offsets, or hand out
            // acknowledged offsets again, so damaged storage stops the start instead.
            long expected = continuesAt.TryGetValue(entry.StreamId, out long next) ? next : stream.UploadedEndOffset;
            if (entry.BaseOffset != expected)
            {
                throw new InvalidDataException(entry.BaseOffset > expected
                    ? $"The WAL is damaged: stream {entry.StreamId} lacks offsets {expected} to {entry.BaseOffset - 1} (its entry at WAL position {entry.Position} starts at {entry.BaseOffset}). The broker does not start on damaged storage."
                    : $"The WAL is damaged: stream {entry.StreamId} has offsets from {entry.BaseOffset} twice (its entry at WAL position {entry.Position}; the records before it end at {expected}). The broker does not start on damaged storage.");
            }

            continuesAt[entry.StreamId] = entry.BaseOffset + entry.RecordCount;

            byte[] data = RecordBatch.CopyForStorage(entry.Batch.Span);
            var batch = new CachedBatch(entry.BaseOffset, entry.BaseOffset + entry.RecordCount, BatchHeader.FirstTimestamp(data), BatchHeader.MaxTimestamp(data), entry.RecordCount, data)
            {
                WalPosition = entry.Position,
            };
            lock (stream.Sync)
            {
                stream.Recover(batch);
            }

            Interlocked.Add(ref _pendingUploadBytes, data.Length);
            Interlocked.Add(ref _cachedBytes, data.Length);
            replayed++;
        }

        LogRecovered(_logger, replayed, skipped);
        _recovered = true;
        _uploadLoop = Task.Run(UploadLoopAsync, CancellationToken.None);
    }

    private async Task<StreamLog?> OpenRecoveredStreamAsync(long streamId, CancellationToken cancellationToken)
    {
        if (_streams.TryGetValue(streamId, out StreamLog? open))
        {
            return open;
        }

        PartitionMetadata? partition = await _metadata.GetPartitionAsync(streamId, cancellationToken).ConfigureAwait(false);
        return partition is null ? null : Open(partition);
    }

    /// <summary>Opens (or returns) the stream of a partition this broker leads.</summary>
    public StreamLog Open(PartitionMetadata partition) =>
        _streams.GetOrAdd(partition.StreamId, _ => new StreamLog(partition.StreamId, partition.LeaderEpoch, partition.LogStartOffset, partition.CommittedEndOffset));

    public bool IsOpen(long streamId) => _streams.ContainsKey(streamId);

    /// <summary>The open stream, or false when it is not served here (or was closed meanwhile).</summary>
    public bool TryGet(long streamId, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out StreamLog? stream) => _streams.TryGetValue(streamId, out stream);

    public StreamLog Get(long streamId) =>
        _streams.TryGetValue(streamId, out StreamLog? stream) ? stream : throw new StreamNotOpenException(streamId);

    /// <summary>Forgets a stream (topic deleted or partition moved away); its un-uploaded data is dropped.</summary>
    public void Close(long streamId)
    {
        if (_streams.TryRemove(streamId, out StreamLog? stream))
        {
            lock (stream.Sync)
            {
                stream.Closed = true;
                stream.Discarded = true;
                foreach (CachedBatch b in stream.Batches)
                {
                    Interlocked.Add(ref _cachedBytes, -b.Data.Length);
                    if (!b.Uploaded)
                    {
                        Interlocked.Add(ref _pendingUploadBytes, -b.Data.Length);
                    }
                }

                stream.Batches.Clear();
            }

            stream.WakeWaiters();
        }
    }

    /// <summary>
    /// Raises a stream's log start offset (DeleteRecords, retention): fenced in the metadata store, then
    /// applied here; cached batches wholly below it are dropped. Never lowers it, never past the high
    /// watermark. Returns the log start offset now in force.
    /// </summary>
    public async Task<long> AdvanceLogStartAsync(long streamId, long offset, CancellationToken cancellationToken = default)
    {
        StreamLog stream = Get(streamId);
        long target;
        lock (stream.Sync)
        {
            if (offset > stream.HighWatermark)
            {
                throw new OffsetOutOfRangeException(streamId, offset, stream.LogStartOffset, stream.HighWatermark);
            }

            if (offset <= stream.LogStartOffset)
            {
                return stream.LogStartOffset;
            }

            target = offset;
        }

        await _metadata.SetLogStartOffsetAsync(streamId, stream.LeaderEpoch, target, cancellationToken).ConfigureAwait(false);
        lock (stream.Sync)
        {
            stream.LogStartOffset = Math.Max(stream.LogStartOffset, target);
            int drop = 0;
            while (drop < stream.Batches.Count && stream.Batches[drop].Uploaded && stream.Batches[drop].EndOffset <= stream.LogStartOffset)
            {
                Interlocked.Add(ref _cachedBytes, -stream.Batches[drop].Data.Length);
                drop++;
            }

            stream.Batches.RemoveRange(0, drop);
            return stream.LogStartOffset;
        }
    }

    /// <summary>The largest batch, in bytes, <see cref="AppendAsync"/> takes: what one WAL entry holds.</summary>
    public int MaxBatchBytes => _wal.MaxEntryBytes;

    /// <summary>
    /// Appends one record batch (v2, already validated by the caller) and completes once it is durable in
    /// the WAL. The batch's base offset is rewritten to the offset assigned here; the array becomes the
    /// store's and must not be changed afterwards. Returns the assigned base offset. Cancellation counts
    /// only before offsets are assigned; after that the call completes when the batch is durable.
    /// </summary>
    public async ValueTask<long> AppendAsync(long streamId, byte[] batch, CancellationToken cancellationToken = default)
    {
        if (batch.Length < BatchHeader.Size || BatchHeader.TotalSize(batch) != batch.Length)
        {
            throw new ArgumentException("Not exactly one record batch.", nameof(batch));
        }

        int lastOffsetDelta = BatchHeader.LastOffsetDelta(batch);
        if (lastOffsetDelta is < 0 or int.MaxValue)
        {
            throw new ArgumentException($"Batch with last offset delta {lastOffsetDelta} cannot take offsets.", nameof(batch));
        }

        // Refused before offsets are reserved: a WAL append that fails afterwards abandons the partition.
        if (batch.Length > MaxBatchBytes)
        {
            throw new ArgumentException($"Batch of {batch.Length} bytes exceeds the largest batch this broker's WAL takes ({MaxBatchBytes} bytes, half a page: Wal:PageSizeBits).", nameof(batch));
        }

        long pending = Interlocked.Read(ref _pendingUploadBytes);
        if (pending + batch.Length > _options.MaxPendingUploadBytes)
        {
            throw new StorageBackpressureException(pending, _options.MaxPendingUploadBytes);
        }

        cancellationToken.ThrowIfCancellationRequested();
        StreamLog stream = Get(streamId);
        int recordCount = lastOffsetDelta + 1;
        CachedBatch reserved;
        ValueTask<long> durable;
        lock (stream.Sync)
        {
            if (stream.Closed)
            {
                throw new StreamNotOpenException(streamId);
            }

            // Offsets are assigned and the WAL entry enqueued under one lock, so WAL order is offset order.
            // From here the append is not cancellable: a caller that stops waiting (its client left) must not
            // abandon an entry that is in the WAL and would close the partition for everyone.
            reserved = stream.Reserve(batch, recordCount, BatchHeader.FirstTimestamp(batch), BatchHeader.MaxTimestamp(batch));
            durable = _wal.AppendAsync(streamId, reserved.BaseOffset, recordCount, batch, CancellationToken.None);
        }

        Interlocked.Add(ref _pendingUploadBytes, batch.Length);
        Interlocked.Add(ref _cachedBytes, batch.Length);
        try
        {
            reserved.WalPosition = await durable.ConfigureAwait(false);
        }
        catch
        {
            stream.Abandon(reserved);
            Interlocked.Add(ref _pendingUploadBytes, -batch.Length);
            Interlocked.Add(ref _cachedBytes, -batch.Length);
            throw;
        }

        stream.MarkDurable(reserved);
        if (Interlocked.Read(ref _pendingUploadBytes) >= _options.UploadBytes)
        {
            SignalUpload();
        }

        return reserved.BaseOffset;
    }

    private void SignalUpload()
    {
        HurryPacedUpload();
        if (_uploadSignal.CurrentCount == 0)
        {
            try
            {
                _uploadSignal.Release();
            }
            catch (SemaphoreFullException)
            {
                // Another appender signalled first; one pending signal is enough.
            }
        }
    }

    /// <summary>
    /// Reads whole batches starting at the one that contains <paramref name="offset"/>, up to
    /// <paramref name="maxBytes"/> (the first batch is returned whole even if larger, as Kafka does).
    /// </summary>
    private const int ObjectsPerRead = 8;

    public Task<StreamReadResult> ReadAsync(long streamId, long offset, int maxBytes, CancellationToken cancellationToken = default) =>
        ReadAsync(streamId, offset, maxBytes, firstBatchWhole: true, cancellationToken);

    /// <summary>
    /// Batches from <paramref name="offset"/> on, up to <paramref name="maxBytes"/>. With
    /// <paramref name="firstBatchWhole"/> the first batch comes even when larger (so a consumer always makes progress);
    /// without it nothing goes past <paramref name="maxBytes"/>, as Kafka reads the partitions after the first one that
    /// returned data. The offset is checked against the log either way.
    /// </summary>
    public async Task<StreamReadResult> ReadAsync(long streamId, long offset, int maxBytes, bool firstBatchWhole, CancellationToken cancellationToken)
    {
        StreamLog stream = Get(streamId);
        (long logStart, long highWatermark) = Bounds(stream);

        if (offset < logStart || offset > highWatermark)
        {
            throw new OffsetOutOfRangeException(streamId, offset, logStart, highWatermark);
        }

        var batches = new List<ReadOnlyMemory<byte>>();
        if (offset == highWatermark || (maxBytes <= 0 && !firstBatchWhole) || stream.TryReadCached(offset, highWatermark, maxBytes, firstBatchWhole, batches))
        {
            return new StreamReadResult(batches, highWatermark, logStart);
        }

        await ReadFromObjectsAsync(stream, offset, maxBytes, firstBatchWhole, batches, cancellationToken).ConfigureAwait(false);

        // An upload that committed during the read may hold batches made durable after the high watermark was taken.
        while (batches.Count > 0 && BatchHeader.BaseOffset(batches[^1].Span) + BatchHeader.LastOffsetDelta(batches[^1].Span) >= highWatermark)
        {
            batches.RemoveAt(batches.Count - 1);
        }

        if (batches.Count == 0)
        {
            // Nothing in objects at this offset: the cache may have gained it meanwhile, or it was deleted.
            stream.TryReadCached(offset, highWatermark, maxBytes, firstBatchWhole, batches);
        }

        return new StreamReadResult(batches, highWatermark, logStart);
    }

    private async Task ReadFromObjectsAsync(StreamLog stream, long offset, int maxBytes, bool firstBatchWhole, List<ReadOnlyMemory<byte>> into, CancellationToken cancellationToken)
    {
        await _catchUpReads.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            (IReadOnlyList<StreamObjectRange> ranges, int first) = await NextRangesAsync(stream.StreamId, offset, cancellationToken).ConfigureAwait(false);
            int bytes = 0;
            long next = offset;
            for (int r = first; r < ranges.Count; r++)
            {
                StreamObjectRange range = ranges[r];
                IReadOnlyList<BlockIndexEntry> index = await IndexOfAsync(range, cancellationToken).ConfigureAwait(false);
                for (int i = 0; i < index.Count; i++)
                {
                    BlockIndexEntry block = index[i];
                    if (block.StreamId != stream.StreamId || block.EndOffset <= next)
                    {
                        continue;
                    }

                    ReadOnlyMemory<byte> data = await ReadBlockAsync(range.Key, block, cancellationToken).ConfigureAwait(false);
                    PrefetchFollowing(range.Key, index, i, stream.StreamId);
                    var found = new List<ReadOnlyMemory<byte>>();
                    BatchHeader.Split(data, next, found);
                    foreach (ReadOnlyMemory<byte> batch in found)
                    {
                        if ((bytes > 0 || !firstBatchWhole) && bytes + batch.Length > maxBytes)
                        {
                            return;
                        }

                        into.Add(batch);
                        bytes += batch.Length;
                        next = BatchHeader.BaseOffset(batch.Span) + BatchHeader.LastOffsetDelta(batch.Span) + 1;
                    }
                }
            }
        }
        catch
        {
            // An object that could not be read is looked up again next time, not taken from a remembered lookup.
            _rangeLookups.TryRemove(stream.StreamId, out _);
            throw;
        }
        finally
        {
            _catchUpReads.Release();
        }
    }

    private sealed record RangeLookup(IReadOnlyList<StreamObjectRange> Ranges, long ExpiresAtMs);

    /// <summary>
    /// The committed ranges from the one holding <paramref name="offset"/> on (from index <c>First</c> of the list):
    /// a remembered lookup when one still covers the offset, else a new one. A read returns at most maxBytes, so the
    /// next few objects are all it can need.
    /// </summary>
    private async ValueTask<(IReadOnlyList<StreamObjectRange> Ranges, int First)> NextRangesAsync(long streamId, long offset, CancellationToken cancellationToken)
    {
        long now = Environment.TickCount64;
        if (_rangeLookups.TryGetValue(streamId, out RangeLookup? remembered) && now < remembered.ExpiresAtMs)
        {
            IReadOnlyList<StreamObjectRange> known = remembered.Ranges;
            for (int i = 0; i < known.Count; i++)
            {
                if (known[i].Range.EndOffset > offset)
                {
                    if (known[i].Range.StartOffset <= offset)
                    {
                        return (known, i);
                    }

                    break;
                }
            }
        }

        Interlocked.Increment(ref _rangeLookupCount);
        long generation = Interlocked.Read(ref _rangeLookupGeneration);
        IReadOnlyList<StreamObjectRange> ranges = await _metadata.GetObjectRangesAsync(streamId, offset, ObjectsPerRead, cancellationToken).ConfigureAwait(false);
        long keepMs = (long)Math.Min(_options.RangeLookupReuse.TotalMilliseconds, _options.DeletionGrace.TotalMilliseconds / 4);
        if (keepMs > 0 && ranges.Count > 0 && Interlocked.Read(ref _rangeLookupGeneration) == generation)
        {
            var lookup = new RangeLookup(ranges, now + keepMs);
            _rangeLookups[streamId] = lookup;

            // Lookups dropped between the check and the store: take this one back out too.
            if (Interlocked.Read(ref _rangeLookupGeneration) != generation)
            {
                _rangeLookups.TryRemove(KeyValuePair.Create(streamId, lookup));
            }
        }

        return (ranges, 0);
    }

    /// <summary>
    /// ListOffsets by time: the first offset whose record timestamp is at or after
    /// <paramref name="timestamp"/>, or with -3 the offset of the record with the largest timestamp.
    /// <see cref="TimestampMatch.None"/> when there is none. Batches are skipped by their max timestamp and only
    /// candidate batches are opened, as Kafka's time index does.
    /// </summary>
    public async Task<TimestampMatch> FindByTimestampAsync(long streamId, long timestamp, CancellationToken cancellationToken = default)
    {
        const long MaxTimestampQuery = -3;
        if (timestamp != MaxTimestampQuery)
        {
            return await FindFirstAtOrAfterAsync(streamId, timestamp, cancellationToken).ConfigureAwait(false);
        }

        (long logStart, List<CachedBatch> cached, IReadOnlyList<StreamObjectRange> ranges) = await TimeSearchStateAsync(streamId, cancellationToken).ConfigureAwait(false);
        if (LargestTimestamp(ranges, cached) is { } largest)
        {
            // The first record at the largest timestamp is the first at or after it: found by the timestamps the
            // object index and the cache keep, reading one block rather than the whole partition. (A producer's
            // timestamp may be any value, -3 included: it is searched as a time, never as a query.)
            TimestampMatch found = await FindFirstAtOrAfterAsync(streamId, largest, cancellationToken).ConfigureAwait(false);
            if (found.Offset >= 0)
            {
                return found;
            }
        }

        // The largest timestamp belongs to records before the log start (DeleteRecords inside an object): read them all.
        var candidates = new List<ReadOnlyMemory<byte>>();
        long objectEnd = logStart;
        foreach (StreamObjectRange range in ranges)
        {
            objectEnd = Math.Max(objectEnd, range.Range.EndOffset);
            await AddCandidatesAsync(streamId, range, long.MinValue, logStart, candidates, cancellationToken).ConfigureAwait(false);
        }

        AddCachedCandidates(cached, objectEnd, candidates);
        TimestampMatch best = TimestampMatch.None;
        foreach (ReadOnlyMemory<byte> bytes in candidates)
        {
            RecordBatch batch = RecordBatch.Parse(bytes);
            if (batch.MaxTimestamp <= best.Timestamp)
            {
                continue;
            }

            foreach (Record record in batch.Records())
            {
                long recordTime = batch.TimestampType == TimestampType.LogAppendTime ? batch.MaxTimestamp : record.Timestamp;
                if (record.Offset >= logStart && recordTime > best.Timestamp)
                {
                    best = new TimestampMatch(record.Offset, recordTime, Math.Max(-1, batch.PartitionLeaderEpoch));
                }
            }
        }

        return best;
    }

    /// <summary>The first record at or after <paramref name="timestamp"/> from the log start on, or <see cref="TimestampMatch.None"/>.</summary>
    private async Task<TimestampMatch> FindFirstAtOrAfterAsync(long streamId, long timestamp, CancellationToken cancellationToken)
    {
        (long logStart, List<CachedBatch> cached, IReadOnlyList<StreamObjectRange> ranges) = await TimeSearchStateAsync(streamId, cancellationToken).ConfigureAwait(false);
        var candidates = new List<ReadOnlyMemory<byte>>();
        long objectEnd = logStart;
        foreach (StreamObjectRange range in ranges)
        {
            objectEnd = Math.Max(objectEnd, range.Range.EndOffset);
            if (range.Range.MaxTimestamp < timestamp)
            {
                continue;
            }

            // A range whose matching records all lie below the log start (DeleteRecords inside a batch) yields
            // nothing: the search goes on to the next range instead of giving up.
            candidates.Clear();
            await AddCandidatesAsync(streamId, range, timestamp, logStart, candidates, cancellationToken).ConfigureAwait(false);
            if (FirstAtOrAfter(candidates, timestamp, logStart) is { } inObjects)
            {
                return inObjects;
            }
        }

        candidates.Clear();
        AddCachedCandidates(cached, objectEnd, candidates);
        return FirstAtOrAfter(candidates, timestamp, logStart) ?? TimestampMatch.None;
    }

    /// <summary>
    /// What a search by time reads: the log start, the cached batches not yet uploaded above it up to the high
    /// watermark, and the object ranges. The cache is taken first: a batch counts as uploaded, and is evicted, only
    /// after its object range is in the metadata, so a batch uploaded meanwhile is still found in the ranges read after
    /// (one in both is harmless), and the uploaded front of the cache need not be copied.
    /// </summary>
    private async Task<(long LogStart, List<CachedBatch> Cached, IReadOnlyList<StreamObjectRange> Ranges)> TimeSearchStateAsync(long streamId, CancellationToken cancellationToken)
    {
        StreamLog stream = Get(streamId);
        long logStart;
        var cached = new List<CachedBatch>();
        lock (stream.Sync)
        {
            logStart = stream.LogStartOffset;
            for (int i = stream.FirstNotUploaded(); i < stream.Batches.Count; i++)
            {
                CachedBatch b = stream.Batches[i];
                if (b.EndOffset > logStart && b.EndOffset <= stream.HighWatermark)
                {
                    cached.Add(b);
                }
            }
        }

        IReadOnlyList<StreamObjectRange> ranges = await _metadata.GetObjectRangesAsync(streamId, logStart, cancellationToken: cancellationToken).ConfigureAwait(false);
        return (logStart, cached, ranges);
    }

    /// <summary>The stream's log start offset and high watermark, read together.</summary>
    private static (long LogStart, long HighWatermark) Bounds(StreamLog stream)
    {
        lock (stream.Sync)
        {
            return (stream.LogStartOffset, stream.HighWatermark);
        }
    }

    /// <summary>Adds the batches of the range's blocks whose max timestamp reaches <paramref name="minTimestamp"/>.</summary>
    private async Task AddCandidatesAsync(long streamId, StreamObjectRange range, long minTimestamp, long logStart, List<ReadOnlyMemory<byte>> candidates, CancellationToken cancellationToken)
    {
        IReadOnlyList<BlockIndexEntry> index = await IndexOfAsync(range, cancellationToken).ConfigureAwait(false);
        foreach (BlockIndexEntry block in index)
        {
            if (block.StreamId == streamId && block.MaxTimestamp >= minTimestamp)
            {
                BatchHeader.Split(await ReadBlockAsync(range.Key, block, cancellationToken).ConfigureAwait(false), logStart, candidates);
            }
        }
    }

    /// <summary>
    /// Adds the cached batches that end past the objects' end. With no object above the log start that end is the log
    /// start itself, which DeleteRecords may have put inside a batch: that batch counts (its records below the log
    /// start are skipped by the search).
    /// </summary>
    private static void AddCachedCandidates(List<CachedBatch> cached, long objectEnd, List<ReadOnlyMemory<byte>> candidates)
    {
        foreach (CachedBatch b in cached)
        {
            if (b.EndOffset > objectEnd)
            {
                candidates.Add(b.Data);
            }
        }
    }

    private static TimestampMatch? FirstAtOrAfter(List<ReadOnlyMemory<byte>> candidates, long timestamp, long logStart)
    {
        foreach (ReadOnlyMemory<byte> bytes in candidates)
        {
            RecordBatch batch = RecordBatch.Parse(bytes);
            if (batch.MaxTimestamp < timestamp)
            {
                continue;
            }

            foreach (Record record in batch.Records())
            {
                long recordTime = batch.TimestampType == TimestampType.LogAppendTime ? batch.MaxTimestamp : record.Timestamp;
                if (record.Offset >= logStart && recordTime >= timestamp)
                {
                    return new TimestampMatch(record.Offset, recordTime, Math.Max(-1, batch.PartitionLeaderEpoch));
                }
            }
        }

        return null;
    }

    /// <summary>The largest batch timestamp of the stream's objects and of its cached batches up to the high watermark; null when it has none.</summary>
    private static long? LargestTimestamp(IReadOnlyList<StreamObjectRange> ranges, List<CachedBatch> cached)
    {
        long? largest = null;
        foreach (StreamObjectRange range in ranges)
        {
            largest = Math.Max(largest ?? long.MinValue, range.Range.MaxTimestamp);
        }

        foreach (CachedBatch b in cached)
        {
            largest = Math.Max(largest ?? long.MinValue, b.MaxTimestamp);
        }

        return largest;
    }

    private Task<IReadOnlyList<BlockIndexEntry>> IndexOfAsync(StreamObjectRange range, CancellationToken cancellationToken)
    {
        if (_objectIndexes.Count >= MaxCachedObjectIndexes && !_objectIndexes.ContainsKey(range.Key))
        {
            _objectIndexes.Clear();
        }

        Task<IReadOnlyList<BlockIndexEntry>> task = _objectIndexes.GetOrAdd(range.Key, key => ObjectReader.ReadIndexAsync(_objects, key, range.ObjectSize, CancellationToken.None));
        if (task.IsFaulted)
        {
            _objectIndexes.TryRemove(range.Key, out _);
        }

        return task.WaitAsync(cancellationToken);
    }

    private Task<ReadOnlyMemory<byte>> ReadBlockAsync(string key, BlockIndexEntry block, CancellationToken cancellationToken) =>
        _blockCache.GetOrFetchAsync(key, block.Position, () => ObjectReader.ReadBlockAsync(_objects, key, block, CancellationToken.None)).WaitAsync(cancellationToken);

    /// <summary>Starts fetching the stream's next blocks so a sequential reader finds them cached.</summary>
    private void PrefetchFollowing(string key, IReadOnlyList<BlockIndexEntry> index, int current, long streamId)
    {
        int started = 0;
        for (int i = current + 1; i < index.Count && started < _options.PrefetchBlocks; i++)
        {
            if (index[i].StreamId != streamId)
            {
                continue;
            }

            BlockIndexEntry block = index[i];
            _ = _blockCache.GetOrFetchAsync(key, block.Position, () => ObjectReader.ReadBlockAsync(_objects, key, block, _stopping.Token))
                .ContinueWith(t => _ = t.Exception, TaskScheduler.Default);
            started++;
        }
    }

    /// <summary>Asks the paced upload under way, if any, to write the rest of its object at full speed.</summary>
    private void HurryPacedUpload()
    {
        if (Volatile.Read(ref _pacedUploadHurry) is { IsCancellationRequested: false } hurry)
        {
            // Its callbacks (the rest of the object's writes) run on the pool, not on this appending thread.
            _ = hurry.CancelAsync();
        }
    }

    private async Task UploadLoopAsync()
    {
        long lastStarted = System.Diagnostics.Stopwatch.GetTimestamp();
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                // Uploads start every interval, however long the last one took to write.
                TimeSpan untilDue = _options.UploadInterval - System.Diagnostics.Stopwatch.GetElapsedTime(lastStarted);
                bool overdue = untilDue <= TimeSpan.Zero;
                bool bytesWaiting = await _uploadSignal.WaitAsync(overdue ? TimeSpan.Zero : untilDue, _stopping.Token).ConfigureAwait(false);
                lastStarted = System.Diagnostics.Stopwatch.GetTimestamp();

                // An upload the interval started carries a light load's data: its object may take half an interval to
                // write, in small pieces, not one burst the WAL's next synchronous writes would queue behind. One that
                // upload.bytes started, an overdue one, or a backlog, goes at the disk's speed, and so does the rest of a
                // paced one once upload.bytes is reached or someone else asks for an upload.
                if (!_options.PaceIntervalUploads || overdue || bytesWaiting || PendingUploadBytes >= _options.UploadBytes)
                {
                    await UploadAsync(WriteSpread.None, _stopping.Token).ConfigureAwait(false);
                    continue;
                }

                // Never disposed: an appender may be cancelling it at any moment, and it holds no timer or handle.
                var hurry = new CancellationTokenSource();
                Interlocked.Exchange(ref _pacedUploadHurry, hurry);
                if (PendingUploadBytes >= _options.UploadBytes || Volatile.Read(ref _uploadsAskedFor) > 0)
                {
                    // An append reached upload.bytes, or a caller asked for an upload, before the hurry could be heard.
                    HurryPacedUpload();
                }

                try
                {
                    await UploadAsync(new WriteSpread(_options.UploadInterval / 2, hurry.Token), _stopping.Token).ConfigureAwait(false);
                }
                finally
                {
                    Volatile.Write(ref _pacedUploadHurry, null);
                }
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // The data stays in the WAL and the cache; the next round tries again, a whole interval from now.
                LogUploadFailed(_logger, e);
                lastStarted = System.Diagnostics.Stopwatch.GetTimestamp();
            }
        }
    }

    /// <summary>
    /// Uploads every durable, not yet uploaded batch as one stream-set object, commits its ranges to the
    /// metadata store, then trims the WAL. Returns the number of batches uploaded.
    /// </summary>
    public async Task<int> UploadAsync(CancellationToken cancellationToken = default)
    {
        // A paced upload holding the lock finishes at full speed rather than keep this caller (shutdown) waiting; one the
        // loop is about to start sees the count and is hurried at once.
        Interlocked.Increment(ref _uploadsAskedFor);
        try
        {
            HurryPacedUpload();
            return await UploadAsync(WriteSpread.None, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref _uploadsAskedFor);
        }
    }

    /// <param name="spread">How the object's writing may be spread out (see <see cref="IObjectStore.PutAsync(string, ReadOnlySequence{byte}, WriteSpread, CancellationToken)"/>).</param>
    private async Task<int> UploadAsync(WriteSpread spread, CancellationToken cancellationToken)
    {
        if (!_recovered)
        {
            // The WAL holds entries no stream has replayed yet (a start that failed or was cut short): a trim now would
            // count them as uploaded and delete acknowledged data.
            LogNotRecovered(_logger);
            return 0;
        }

        await _uploadLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            int uploaded = 0;
            var heldBack = new HashSet<long>();
            for (int attempt = 0; ; attempt++)
            {
                (ObjectBuilder builder, List<(StreamLog Stream, List<CachedBatch> Batches)> included) = CollectUploadable(heldBack);
                if (included.Count == 0)
                {
                    break;
                }

                try
                {
                    // A round tried again without a refused stream writes at full speed: it has waited once already.
                    await PutAndCommitAsync(builder, included, attempt == 0 ? spread : WriteSpread.None, cancellationToken).ConfigureAwait(false);
                    uploaded = included.Sum(i => i.Batches.Count);
                    break;
                }
                catch (StreamRefusedException e) when (attempt < included.Count)
                {
                    // One stream's range refused: the others go again without it, rather than the round failing for all of
                    // them. Deleted while its data waited (the topic's deletion closes it, but may not have yet): the object
                    // is left prepared (orphan cleanup removes it) and the stream closed. Fenced by another leader's epoch,
                    // or not continuing the committed data: its acknowledged data stays in the cache and the WAL (the trim
                    // stops below it) and is tried again next round.
                    if (e is UnknownStreamException)
                    {
                        LogStreamDeleted(_logger, e.StreamId);
                        Close(e.StreamId);
                    }
                    else if (e is OffsetConflictException conflict && TakeCommittedAhead(included, conflict))
                    {
                        LogCommittedAhead(_logger, conflict.StreamId, conflict.RangeStart, conflict.CommittedEnd);
                    }
                    else
                    {
                        LogStreamHeldBack(_logger, e, e.StreamId);
                        heldBack.Add(e.StreamId);
                    }
                }
            }

            await TrimWalAsync(cancellationToken).ConfigureAwait(false);
            EvictCache();
            return uploaded;
        }
        finally
        {
            _uploadLock.Release();
        }
    }

    /// <summary>
    /// A range refused because the committed data already reaches past its start: an earlier commit of these batches
    /// succeeded though it reported a failure (a lost reply from the metadata store). Under this broker's own epoch (a
    /// fenced range is refused as such first) that data is this broker's, so the batches up to the committed end count as
    /// uploaded; held back instead, the stream would be refused every round and hold the WAL's trim for everyone. False
    /// when the committed end is not the end of one of the batches (then the data is not known to be these batches).
    /// </summary>
    private bool TakeCommittedAhead(List<(StreamLog Stream, List<CachedBatch> Batches)> included, OffsetConflictException conflict)
    {
        foreach ((StreamLog stream, List<CachedBatch> batches) in included)
        {
            if (stream.StreamId != conflict.StreamId)
            {
                continue;
            }

            int last = batches.FindIndex(b => b.EndOffset == conflict.CommittedEnd);
            if (conflict.CommittedEnd <= conflict.RangeStart || batches[0].BaseOffset != conflict.RangeStart || last < 0)
            {
                return false;
            }

            MarkUploaded(stream, batches.GetRange(0, last + 1));
            return true;
        }

        return false;
    }

    /// <summary>Marks batches that are in a committed object as uploaded, and no longer pending.</summary>
    private void MarkUploaded(StreamLog stream, List<CachedBatch> batches)
    {
        lock (stream.Sync)
        {
            long uploadedBytes = 0;
            foreach (CachedBatch b in batches)
            {
                b.Uploaded = true;
                uploadedBytes += b.Data.Length;
            }

            stream.UploadedEndOffset = batches[^1].EndOffset;

            // A stream forgotten while this upload ran (topic deleted) had these bytes discounted by Close.
            if (!stream.Discarded)
            {
                Interlocked.Add(ref _pendingUploadBytes, -uploadedBytes);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stream {StreamId}: its range from {RangeStart} was already committed up to {CommittedEnd} by an earlier attempt that reported a failure; those batches count as uploaded")]
    private static partial void LogCommittedAhead(ILogger logger, long streamId, long rangeStart, long committedEnd);

    /// <summary>Every durable, not yet uploaded batch of every open stream but <paramref name="heldBack"/>, added to a new stream-set object.</summary>
    private (ObjectBuilder Builder, List<(StreamLog Stream, List<CachedBatch> Batches)> Included) CollectUploadable(HashSet<long> heldBack)
    {
        var builder = new ObjectBuilder(ObjectKind.StreamSet, _options.BlockSizeBytes);
        var included = new List<(StreamLog Stream, List<CachedBatch> Batches)>();
        foreach (StreamLog stream in _streams.Values.OrderBy(s => s.StreamId))
        {
            if (heldBack.Contains(stream.StreamId))
            {
                continue;
            }

            var batches = new List<CachedBatch>();
            lock (stream.Sync)
            {
                for (int i = stream.FirstNotUploaded(); i < stream.Batches.Count && stream.Batches[i].Durable; i++)
                {
                    batches.Add(stream.Batches[i]);
                }
            }

            if (batches.Count == 0)
            {
                continue;
            }

            foreach (CachedBatch b in batches)
            {
                builder.Add(stream.StreamId, b.BaseOffset, b.EndOffset, b.FirstTimestamp, b.MaxTimestamp, b.RecordCount, b.Data);
            }

            included.Add((stream, batches));
        }

        return (builder, included);
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Stream {StreamId}: the metadata store refused its uploaded range; its data stays in the WAL and is tried again next round, the other streams' uploads go on")]
    private static partial void LogStreamHeldBack(ILogger logger, Exception error, long streamId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stream {StreamId} was deleted before its data reached an object; that data is dropped and the upload goes on without it")]
    private static partial void LogStreamDeleted(ILogger logger, long streamId);

    private async Task PutAndCommitAsync(ObjectBuilder builder, List<(StreamLog Stream, List<CachedBatch> Batches)> included, WriteSpread spread, CancellationToken cancellationToken)
    {
        ReadOnlySequence<byte> data = builder.BuildParts();
        PreparedObject prepared = await _metadata.PrepareObjectAsync(_options.ObjectKeyPrefix, cancellationToken).ConfigureAwait(false);
        BeginWriting(prepared.ObjectId);
        try
        {
            await _objects.PutAsync(prepared.Key, data, spread, cancellationToken).ConfigureAwait(false);

            var ranges = new List<ObjectRange>();
            foreach ((StreamLog stream, List<CachedBatch> batches) in included)
            {
                var blocks = builder.Blocks.Where(b => b.StreamId == stream.StreamId).ToList();
                ranges.Add(new ObjectRange(
                    stream.StreamId,
                    stream.LeaderEpoch,
                    batches[0].BaseOffset,
                    batches[^1].EndOffset,
                    blocks[0].Position,
                    blocks.Sum(b => (long)b.Size),
                    batches.Min(b => b.FirstTimestamp),
                    batches.Max(b => b.MaxTimestamp)));
            }

            await _metadata.CommitObjectAsync(new ObjectCommit(prepared.ObjectId, data.Length, ranges, []), cancellationToken).ConfigureAwait(false);
            StorageMetrics.UploadedBytes.Add(data.Length);
            foreach ((StreamLog stream, List<CachedBatch> batches) in included)
            {
                MarkUploaded(stream, batches);
            }

            LogUploaded(_logger, prepared.Key, data.Length, ranges.Count);
        }
        finally
        {
            EndWriting(prepared.ObjectId);
        }
    }

    /// <summary>Trims the WAL up to the first entry whose data is not yet in an object.</summary>
    private async Task TrimWalAsync(CancellationToken cancellationToken)
    {
        long trimTo = _wal.DurablePosition;
        foreach (StreamLog stream in _streams.Values)
        {
            lock (stream.Sync)
            {
                int first = stream.FirstNotUploaded();
                if (first < stream.Batches.Count)
                {
                    CachedBatch b = stream.Batches[first];
                    trimTo = b.WalPosition >= 0 ? Math.Min(trimTo, b.WalPosition) : Math.Min(trimTo, _wal.TrimPosition);
                }
            }
        }

        if (trimTo > _wal.TrimPosition)
        {
            await _wal.TrimAsync(trimTo, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Drops the oldest uploaded batches from the front of each stream until the cache fits its budget.</summary>
    private void EvictCache()
    {
        if (Interlocked.Read(ref _cachedBytes) <= _options.LogCacheBytes)
        {
            return;
        }

        foreach (StreamLog stream in _streams.Values.OrderBy(s => s.CacheStartOffset))
        {
            lock (stream.Sync)
            {
                int remove = 0;
                while (remove < stream.Batches.Count && stream.Batches[remove].Uploaded && Interlocked.Read(ref _cachedBytes) > _options.LogCacheBytes)
                {
                    Interlocked.Add(ref _cachedBytes, -stream.Batches[remove].Data.Length);
                    remove++;
                }

                stream.Batches.RemoveRange(0, remove);
            }

            if (Interlocked.Read(ref _cachedBytes) <= _options.LogCacheBytes)
            {
                return;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_uploadLoop is not null)
        {
            await _uploadLoop.ConfigureAwait(false);
        }

        _stopping.Dispose();
        _meter.Dispose();
        _uploadSignal.Dispose();
        _uploadLock.Dispose();
        _catchUpReads.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Storage recovered: {Replayed} WAL entries to upload, {Skipped} already in objects")]
    private static partial void LogRecovered(ILogger logger, int replayed, int skipped);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Storage did not finish recovering the WAL: nothing is uploaded and the WAL is not trimmed; its entries wait for the next start")]
    private static partial void LogNotRecovered(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Upload failed; data stays in the WAL and is retried")]
    private static partial void LogUploadFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Uploaded {Key}: {Bytes} bytes, {Streams} streams")]
    private static partial void LogUploaded(ILogger logger, string key, long bytes, int streams);
}

/// <summary>
/// A search by time's answer: the record's offset and timestamp, and the leader epoch its batch was written in (which
/// ListOffsets reports, as Kafka's time index does; a negative one, as a producer wrote it before brokers stamped
/// epochs, reads as -1); all -1 when no record matches.
/// </summary>
public readonly record struct TimestampMatch(long Offset, long Timestamp, int LeaderEpoch)
{
    public static TimestampMatch None => new(-1, -1, -1);
}
