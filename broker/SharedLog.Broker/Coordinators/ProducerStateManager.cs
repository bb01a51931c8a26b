using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using SharedLog.Protocol;
using SharedLog.Protocol.Records;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.Objects;
using SharedLog.Storage.Streams;

namespace SharedLog.Broker.Coordinators;

/// <summary>Where an idempotent batch stands against what its producer already wrote to a partition.</summary>
public enum SequenceVerdict
{
    Append,
    Duplicate,
    Reject,
}

/// <summary>
/// Idempotent producers (KIP-98): producer ids come from blocks allocated in the metadata store, so they
/// are unique across restarts; per partition, each producer's epoch and the sequence ranges of its last
/// five batches tell a new batch from a retry (answered with its original offset) and from a gap or a
/// fenced epoch.
/// <para>
/// The state survives restarts and leader changes the way Kafka's does: a partition's state is loaded on
/// its first use from its last snapshot in the metadata store (state as of an offset), then the log after
/// that offset is replayed (batch headers only). Snapshots are taken every few seconds for loaded partitions
/// whose state changed or whose log grew (plain producers' batches too: else the snapshot offset would stay
/// where the last idempotent batch left it, and the first idempotent produce after a restart would replay
/// everything written since), and at shutdown, so a replay reads only the last seconds of the log.
/// </para>
/// </summary>
public sealed partial class ProducerStateManager(IMetadataStore metadata, StreamStore streams, IOptions<BrokerOptions> options, ILogger<ProducerStateManager> logger) : IDisposable
{
    private const int BlockSize = 1000;
    private const int RememberedBatches = 5;
    private const int ReplayReadBytes = 1024 * 1024;
    private readonly ConcurrentDictionary<long, Lazy<Task<PartitionProducers>>> _partitions = new();
    // Ids this broker issued, for the epoch bump below; forgotten after producer.id.expiration.ms, as
    // otherwise every producer instance ever started would stay here.
    private readonly ConcurrentDictionary<long, IssuedEpoch> _epochs = new();
    private readonly SemaphoreSlim _allocation = new(1, 1);
    private long _next;
    private long _end;

    /// <summary>A new producer id with epoch 0, or the next epoch of an id this broker issued (KIP-360 epoch bump).</summary>
    public async Task<(ErrorCode Error, long ProducerId, short Epoch)> InitAsync(long producerId, short epoch, CancellationToken cancellationToken)
    {
        // An id this broker did not hand out since it started (it restarted, or another broker issued it)
        // gets a fresh id, as Kafka answers every producer without a transactional id.
        long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        // The epoch is bumped only from the current one; any other request (a stale epoch, a retry after a lost answer,
        // the loser of two bumps) gets a fresh id, never an error: Kafka answers every InitProducerId without a
        // transactional id with a new id, and librdkafka would retry an error for as long as the id is remembered.
        if (producerId >= 0 && _epochs.TryGetValue(producerId, out IssuedEpoch issued) && issued.Epoch == epoch)
        {
            if (issued.Epoch == short.MaxValue - 1)
            {
                // Epoch exhausted: the producer gets a fresh id instead.
                _epochs.TryRemove(KeyValuePair.Create(producerId, issued));
            }
            else
            {
                // Compare-and-swap: of two bumps from the same epoch, one wins and the other gets a fresh id.
                var bumped = new IssuedEpoch((short)(issued.Epoch + 1), now);
                if (_epochs.TryUpdate(producerId, bumped, issued))
                {
                    return (ErrorCode.None, producerId, bumped.Epoch);
                }
            }
        }

        await _allocation.WaitAsync(cancellationToken);
        try
        {
            if (_next >= _end)
            {
                ProducerIdBlock block = await metadata.AllocateProducerIdsAsync(BlockSize, CancellationToken.None);
                _next = block.FirstProducerId;
                _end = block.FirstProducerId + block.Count;
            }

            long id = _next++;
            _epochs[id] = new IssuedEpoch(0, now);
            return (ErrorCode.None, id, 0);
        }
        finally
        {
            _allocation.Release();
        }
    }

    /// <summary>The idempotence state of one partition's producers, loaded (snapshot and replay) on first use.</summary>
    public ValueTask<PartitionProducers> ForAsync(long streamId, CancellationToken cancellationToken)
    {
        if (!_partitions.TryGetValue(streamId, out Lazy<Task<PartitionProducers>>? lazy))
        {
            lazy = _partitions.GetOrAdd(streamId, id => new Lazy<Task<PartitionProducers>>(() => LoadAsync(id)));
        }

        Task<PartitionProducers> loading = lazy.Value;
        return loading.IsCompletedSuccessfully ? new ValueTask<PartitionProducers>(loading.Result) : AwaitLoadAsync(streamId, lazy, cancellationToken);
    }

    private async ValueTask<PartitionProducers> AwaitLoadAsync(long streamId, Lazy<Task<PartitionProducers>> lazy, CancellationToken cancellationToken)
    {
        try
        {
            return await lazy.Value.WaitAsync(cancellationToken);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            // The load failed (not this caller's wait): the next request tries again (e.g. after the metadata store
            // came back). A load that was itself cancelled (a store's timeout) is reported as an I/O failure, so the
            // produce answers a retriable error instead of taking it for its own cancellation.
            _partitions.TryRemove(KeyValuePair.Create(streamId, lazy));
            if (e is OperationCanceledException)
            {
                throw new IOException($"Loading the producer state of stream {streamId} was cancelled: {e.Message}", e);
            }

            throw;
        }
    }

    private async Task<PartitionProducers> LoadAsync(long streamId)
    {
        var state = new PartitionProducers();
        StreamLog log = streams.Get(streamId);
        ProducerSnapshot? snapshot = await metadata.GetProducerSnapshotAsync(streamId, CancellationToken.None);
        List<ProducerSnapshotFormat.Producer>? saved = null;
        if (snapshot is not null && !ProducerSnapshotFormat.TryDecode(snapshot.State, out saved))
        {
            // Unreadable: as Kafka, which falls back to the log when its snapshots are corrupt, the producers are rebuilt
            // by replaying the whole log kept, so a retry of a batch written before the restart is still answered as one.
            LogSnapshotUnreadable(logger, streamId, snapshot.Offset);
            saved = [];
            snapshot = snapshot with { Offset = log.LogStartOffset };
        }

        if (saved is null)
        {
            // No producer state was ever saved here, so no idempotent batch was written since snapshots exist:
            // record that as of the log end now, so a later load replays from here, not from the log start.
            // (The durable end: offsets reserved by batches still being committed may be handed out again after a crash.)
            await metadata.SaveProducerSnapshotsAsync([new ProducerSnapshot(streamId, log.HighWatermark, ProducerSnapshotFormat.Encode([]))], CancellationToken.None);
            return state;
        }

        if (snapshot!.Offset < log.LogStartOffset)
        {
            // DeleteRecords or retention moved the log start past the snapshot before a newer one was saved (a crash, or a
            // failed save): the batches in between are gone, so what their producers sent there is unknown. As Kafka drops
            // snapshots below the log start, the producers start over (taken at the sequence they send) and the log kept is
            // replayed; the old state would refuse their next batch as out of order.
            LogSnapshotBelowStart(logger, streamId, snapshot.Offset, log.LogStartOffset);
            saved = [];
        }

        state.Restore(saved);
        long from = Math.Max(snapshot.Offset, log.LogStartOffset);
        if (snapshot.Offset > log.HighWatermark)
        {
            // Saved past what the log kept (a crash lost batches not yet durable above its producers' last one, and older
            // brokers saved the next offset, not the durable end). Its producers' batches were durable, so they are below
            // the end; the offsets above are handed out again now. Claim only the end, at once, as Kafka drops snapshots
            // beyond the log end: else a later load would skip idempotent batches written at those offsets.
            LogSnapshotBeyondEnd(logger, streamId, snapshot.Offset, log.HighWatermark);
            from = Math.Max(log.HighWatermark, log.LogStartOffset);
            await metadata.SaveProducerSnapshotsAsync([new ProducerSnapshot(streamId, from, snapshot.State)], CancellationToken.None);
        }

        long replayFrom = from;
        int replayed = 0;
        while (from < log.HighWatermark)
        {
            StreamReadResult read = await streams.ReadAsync(streamId, from, ReplayReadBytes, CancellationToken.None);
            if (read.Batches.Count == 0)
            {
                break;
            }

            foreach (ReadOnlyMemory<byte> bytes in read.Batches)
            {
                RecordBatch batch = RecordBatch.Parse(bytes);
                if (batch.LastOffset >= from)
                {
                    state.Replay(batch);
                    from = batch.NextOffset;
                    replayed++;
                }
            }
        }

        LogLoaded(logger, streamId, snapshot.Offset, replayFrom, from, replayed);
        return state;
    }

    /// <summary>
    /// Forgets expired producers (<see cref="BrokerOptions.ProducerIdExpirationMs"/>), then saves a snapshot of
    /// every loaded partition whose producers changed, or whose durable end moved, since its last one.
    /// </summary>
    public async Task SnapshotAsync(CancellationToken cancellationToken)
    {
        var snapshots = new List<ProducerSnapshot>();
        var capturedStates = new List<PartitionProducers>();
        long expireBefore = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - options.Value.ProducerIdExpirationMs;

        // An id issued (or bumped) longer ago than the expiration gets a fresh id on its next InitProducerId,
        // which is what Kafka answers every producer without a transactional id.
        foreach ((long id, IssuedEpoch issued) in _epochs)
        {
            if (issued.AtMs < expireBefore)
            {
                _epochs.TryRemove(KeyValuePair.Create(id, issued));
            }
        }

        foreach ((long streamId, Lazy<Task<PartitionProducers>> lazy) in _partitions)
        {
            if (!streams.IsOpen(streamId))
            {
                // The partition was deleted (or moved away): its producers go with it.
                _partitions.TryRemove(streamId, out _);
                continue;
            }

            if (!lazy.IsValueCreated || !lazy.Value.IsCompletedSuccessfully)
            {
                continue;
            }

            PartitionProducers state = lazy.Value.Result;
            if (state.ExpireBefore(expireBefore) is > 0 and int expired)
            {
                LogExpired(logger, expired, streamId);
            }

            StreamLog log = streams.Get(streamId);
            if (state.CaptureIfChanged(log) is { } captured)
            {
                capturedStates.Add(state);
                try
                {
                    string encoded = ProducerSnapshotFormat.Encode(await captured.CompleteAsync());

                    // Its producers' batches are durable now, so below the high watermark; offsets above it were reserved by
                    // other batches still being committed, which a crash can lose and hand out again. Claim no more.
                    snapshots.Add(new ProducerSnapshot(streamId, Math.Min(captured.Offset, log.HighWatermark), encoded));
                }
                catch
                {
                    RecaptureNextRound(capturedStates);
                    throw;
                }
            }
        }

        if (snapshots.Count > 0)
        {
            try
            {
                await metadata.SaveProducerSnapshotsAsync(snapshots, cancellationToken);
            }
            catch
            {
                RecaptureNextRound(capturedStates);
                throw;
            }
        }
    }

    /// <summary>
    /// A round that did not save what it captured leaves those partitions to the next round (or the shutdown snapshot),
    /// even if nothing changes meanwhile: else an idle partition would keep an older snapshot for good.
    /// </summary>
    private static void RecaptureNextRound(List<PartitionProducers> captured)
    {
        foreach (PartitionProducers state in captured)
        {
            state.MarkChanged();
        }
    }

    /// <summary>
    /// Loads the producer state of <paramref name="streamIds"/> (the partitions there are at start), then takes snapshots
    /// every <paramref name="interval"/> until cancelled; a failed round is logged and retried next time.
    /// </summary>
    /// <remarks>
    /// Only a loaded partition's snapshot moves with its log: loading every partition at start (as Kafka loads producer
    /// state with each log) keeps one that gets only non-idempotent produces after a restart from falling ever further
    /// behind, which would make the first idempotent produce, days later, wait for the whole log since to be replayed.
    /// After a clean stop each load is a metadata read and no replay.
    /// </remarks>
    public async Task RunSnapshotsAsync(TimeSpan interval, IEnumerable<long> streamIds, CancellationToken cancellationToken)
    {
        foreach (long streamId in streamIds)
        {
            try
            {
                await ForAsync(streamId, cancellationToken);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                // Loaded again by its first idempotent produce, which reports the failure to the producer.
                LogLoadAtStartFailed(logger, e, streamId);
            }
            catch (Exception) when (cancellationToken.IsCancellationRequested)
            {
                return; // stopping
            }
        }

        await PeriodicRounds.RunAsync(interval, (_, ct) => SnapshotAsync(ct), e => LogSnapshotFailed(logger, e), cancellationToken);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Producer state of stream {StreamId} could not be loaded at start; its first idempotent produce loads it")]
    private static partial void LogLoadAtStartFailed(ILogger logger, Exception exception, long streamId);

    public void Dispose() => _allocation.Dispose();

    [LoggerMessage(Level = LogLevel.Information, Message = "Producer state of stream {StreamId} loaded: snapshot at offset {SnapshotOffset}, replayed offsets {From} to {To} ({Batches} batches)")]
    private static partial void LogLoaded(ILogger logger, long streamId, long snapshotOffset, long from, long to, int batches);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Producer state snapshot of stream {StreamId} at offset {Offset} is below the log start {LogStart}; its producers start over and the log is replayed from its start")]
    private static partial void LogSnapshotBelowStart(ILogger logger, long streamId, long offset, long logStart);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Producer state snapshot of stream {StreamId} claims offset {Offset}, past the log's end {End}; it now claims the end")]
    private static partial void LogSnapshotBeyondEnd(ILogger logger, long streamId, long offset, long end);

    [LoggerMessage(Level = LogLevel.Error, Message = "Producer state snapshot of stream {StreamId} (offset {Offset}) is unreadable; its producers are rebuilt from the whole log kept")]
    private static partial void LogSnapshotUnreadable(ILogger logger, long streamId, long offset);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Count} producers of stream {StreamId} expired (producer.id.expiration.ms)")]
    private static partial void LogExpired(ILogger logger, int count, long streamId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Producer state snapshot failed; the next round tries again")]
    private static partial void LogSnapshotFailed(ILogger logger, Exception exception);

    private readonly record struct IssuedEpoch(short Epoch, long AtMs);

    /// <summary>
    /// A completed append at <paramref name="offset"/>, its own object: an append's task stands for its batch (a
    /// retry is answered with it, and the quarantine writer keys on it), and Task.FromResult, like a synchronously
    /// finished ValueTask's AsTask, hands out one shared cached task for equal small results.
    /// </summary>
    internal static Task<long> WrittenAt(long offset) => Completed(offset, state: null);

    /// <summary>A batch's append as rebuilt from the log or a snapshot after a restart: this process did not see it happen.</summary>
    private static Task<long> RestoredAt(long offset) => Completed(offset, RestoredMarker);

    /// <summary>Whether <paramref name="append"/> stands for a batch appended before this process started, so what its append did beyond storing it is unknown.</summary>
    internal static bool IsRestored(Task<long> append) => ReferenceEquals(append.AsyncState, RestoredMarker);

    private static readonly object RestoredMarker = new();

    private static Task<long> Completed(long offset, object? state)
    {
        var written = new TaskCompletionSource<long>(state);
        written.SetResult(offset);
        return written.Task;
    }

    public sealed class PartitionProducers
    {
        private readonly Lock _sync = new();
        private readonly Dictionary<long, ProducerEntry> _producers = [];
        private bool _changed;

        /// <summary>The durable end of the log when the state was last captured (-1: never), under <see cref="_sync"/>.</summary>
        private long _capturedEnd = -1;

        /// <summary>
        /// Judges a batch and, when it is new, starts its append and remembers it, all under one lock: per
        /// producer, sequence order is then offset order, and the next batch (or a retry) may be judged while
        /// this one is still being made durable. <paramref name="written"/> is the append's task, or for a
        /// duplicate the original's (a retry that overtakes its original's commit waits for it); null when refused.
        /// </summary>
        public SequenceVerdict CheckAndAppend<TState>(long producerId, short epoch, int baseSequence, int lastSequence, TState state, Func<TState, Task<long>> append, out ErrorCode error, out Task<long>? written)
        {
            lock (_sync)
            {
                SequenceVerdict verdict = Check(producerId, epoch, baseSequence, lastSequence, out error, out written);
                if (verdict == SequenceVerdict.Append)
                {
                    written = append(state);
                    if (!written.IsFaulted && !written.IsCanceled)
                    {
                        // A task already failed or cancelled was refused before it got offsets (backpressure, closed partition,
                        // the client gone before the append started): nothing to remember.
                        Record(producerId, epoch, baseSequence, lastSequence, written, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
                    }
                }

                return verdict;
            }
        }

        /// <summary>
        /// Whether the batch is a retry of one already appended, without appending anything. A batch found a retry stays
        /// one: later appends only push it out of the remembered batches (then it is refused), never make it new; only
        /// the producer's expiry (<c>producer.id.expiration.ms</c> without a write) in between would.
        /// </summary>
        public bool IsRetry(long producerId, short epoch, int baseSequence, int lastSequence)
        {
            lock (_sync)
            {
                return Check(producerId, epoch, baseSequence, lastSequence, out _, out _) == SequenceVerdict.Duplicate;
            }
        }

        private SequenceVerdict Check(long producerId, short epoch, int baseSequence, int lastSequence, out ErrorCode error, out Task<long>? original)
        {
            error = ErrorCode.None;
            original = null;
            if (!_producers.TryGetValue(producerId, out ProducerEntry? entry))
            {
                // As Kafka since KIP-360: a producer this partition has no state for (new, expired, or state lost)
                // starts at whatever sequence it sends. Refusing it with UNKNOWN_PRODUCER_ID made the Java client
                // retry the same batch until its delivery timeout.
                return SequenceVerdict.Append;
            }

            if (epoch < entry.Epoch)
            {
                error = ErrorCode.InvalidProducerEpoch;
                return SequenceVerdict.Reject;
            }

            if (epoch > entry.Epoch)
            {
                if (baseSequence == 0)
                {
                    return SequenceVerdict.Append;
                }

                error = ErrorCode.OutOfOrderSequenceNumber;
                return SequenceVerdict.Reject;
            }

            foreach ((int first, int last, Task<long> written) in entry.Recent)
            {
                if (first == baseSequence && last == lastSequence)
                {
                    original = written;
                    return SequenceVerdict.Duplicate;
                }
            }

            int expected = entry.LastSequence == int.MaxValue ? 0 : entry.LastSequence + 1;
            if (baseSequence == expected)
            {
                return SequenceVerdict.Append;
            }

            error = ErrorCode.OutOfOrderSequenceNumber;
            return SequenceVerdict.Reject;
        }

        /// <summary>Producers that wrote to the partition: id, epoch, last sequence and when (DescribeProducers).</summary>
        public IReadOnlyList<(long ProducerId, short Epoch, int LastSequence, long LastTimestamp)> Snapshot()
        {
            lock (_sync)
            {
                return [.. _producers.Select(p => (p.Key, p.Value.Epoch, p.Value.LastSequence, p.Value.LastTimestamp))];
            }
        }

        /// <summary>Forgets producers whose last batch is older than <paramref name="cutoffMs"/> and has been written; returns how many.</summary>
        internal int ExpireBefore(long cutoffMs)
        {
            lock (_sync)
            {
                List<long>? expired = null;
                foreach ((long id, ProducerEntry entry) in _producers)
                {
                    if (entry.LastTimestamp < cutoffMs && AllWritten(entry))
                    {
                        (expired ??= []).Add(id);
                    }
                }

                foreach (long id in expired ?? [])
                {
                    _producers.Remove(id);
                }

                _changed |= expired is not null;
                return expired?.Count ?? 0;
            }

            static bool AllWritten(ProducerEntry entry)
            {
                foreach ((_, _, Task<long> written) in entry.Recent)
                {
                    if (!written.IsCompleted)
                    {
                        return false;
                    }
                }

                return true;
            }
        }

        /// <summary>Applies a batch read back from the log (loading after a restart or leader change).</summary>
        internal void Replay(RecordBatch batch)
        {
            if (batch.ProducerId < 0 || batch.IsControl)
            {
                return;
            }

            lock (_sync)
            {
                if (_producers.TryGetValue(batch.ProducerId, out ProducerEntry? entry))
                {
                    if (batch.ProducerEpoch < entry.Epoch)
                    {
                        return;
                    }

                    foreach ((int first, int last, _) in entry.Recent)
                    {
                        if (batch.ProducerEpoch == entry.Epoch && first == batch.BaseSequence && last == batch.LastSequence)
                        {
                            return;
                        }
                    }
                }

                // Last active now, as a live append records it (the broker's clock), never the batch's own timestamp: a
                // producer sending old CreateTime timestamps (MirrorMaker, backfills) would otherwise be expired at
                // the first snapshot after the load, and its retries written twice. The replayed batches were written
                // since the last snapshot, shortly before the restart.
                Record(batch.ProducerId, batch.ProducerEpoch, batch.BaseSequence, batch.LastSequence, RestoredAt(batch.BaseOffset), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
            }
        }

        /// <summary>Sets the state saved by a snapshot (before any replay or produce).</summary>
        internal void Restore(IReadOnlyList<ProducerSnapshotFormat.Producer> producers)
        {
            lock (_sync)
            {
                foreach (ProducerSnapshotFormat.Producer saved in producers)
                {
                    var entry = new ProducerEntry { Epoch = saved.Epoch, LastSequence = saved.LastSequence, LastTimestamp = saved.LastTimestamp };
                    foreach (ProducerSnapshotFormat.Batch batch in saved.Batches)
                    {
                        entry.Recent.Enqueue((batch.FirstSequence, batch.LastSequence, RestoredAt(batch.BaseOffset)));
                    }

                    _producers[saved.Id] = entry;
                }
            }
        }

        /// <summary>Makes the next <see cref="CaptureIfChanged"/> capture, as if a producer had changed.</summary>
        internal void MarkChanged()
        {
            lock (_sync)
            {
                _changed = true;
            }
        }

        /// <summary>
        /// The state to snapshot if it changed since the last capture. Taken under the lock with the
        /// partition's next offset: every idempotent batch below it is in the captured state (they are
        /// judged and given offsets under this lock), every later one is not.
        /// </summary>
        internal CapturedState? CaptureIfChanged(StreamLog log)
        {
            lock (_sync)
            {
                // The same producers as of a later durable offset are worth saving too: a load replays less.
                long durableEnd = Math.Min(log.NextOffset, log.HighWatermark);
                if (!_changed && durableEnd <= _capturedEnd)
                {
                    return null;
                }

                _changed = false;
                _capturedEnd = durableEnd;
                var producers = new List<CapturedProducer>(_producers.Count);
                foreach ((long id, ProducerEntry entry) in _producers)
                {
                    producers.Add(new CapturedProducer(id, entry.Epoch, entry.LastSequence, entry.LastTimestamp, [.. entry.Recent]));
                }

                return new CapturedState(log.NextOffset, producers);
            }
        }

        private void Record(long producerId, short epoch, int baseSequence, int lastSequence, Task<long> written, long timestamp)
        {
            if (!_producers.TryGetValue(producerId, out ProducerEntry? entry) || epoch > entry.Epoch)
            {
                entry = new ProducerEntry { Epoch = epoch };
                _producers[producerId] = entry;
            }

            _changed = true;
            entry.LastSequence = lastSequence;
            entry.LastTimestamp = timestamp;
            entry.Recent.Enqueue((baseSequence, lastSequence, written));
            while (entry.Recent.Count > RememberedBatches)
            {
                entry.Recent.Dequeue();
            }
        }

        private sealed class ProducerEntry
        {
            public short Epoch { get; init; }

            public int LastSequence { get; set; } = -1;

            public long LastTimestamp { get; set; } = -1;

            /// <summary>The last batches' sequence ranges and their appends (durable or still being committed).</summary>
            public Queue<(int First, int Last, Task<long> Written)> Recent { get; } = new();
        }
    }

    /// <summary>One producer's state as captured under the partition's lock.</summary>
    internal sealed record CapturedProducer(long Id, short Epoch, int LastSequence, long LastTimestamp, (int First, int Last, Task<long> Written)[] Recent);

    /// <summary>State captured for a snapshot; its batches still being made durable are awaited before encoding.</summary>
    internal sealed class CapturedState(long offset, List<CapturedProducer> producers)
    {
        public long Offset { get; } = offset;

        public async Task<List<ProducerSnapshotFormat.Producer>> CompleteAsync()
        {
            var result = new List<ProducerSnapshotFormat.Producer>(producers.Count);
            foreach (CapturedProducer producer in producers)
            {
                var batches = new List<ProducerSnapshotFormat.Batch>(producer.Recent.Length);
                int lastSequence = producer.LastSequence;
                foreach ((int first, int last, Task<long> written) in producer.Recent)
                {
                    try
                    {
                        batches.Add(new ProducerSnapshotFormat.Batch(first, last, await written));
                    }
                    catch (Exception)
                    {
                        // Not in the log (its append failed after it was judged): the sequence ends before it.
                        lastSequence = batches.Count > 0 ? batches[^1].LastSequence : first - 1;
                        break;
                    }
                }

                result.Add(new ProducerSnapshotFormat.Producer(producer.Id, producer.Epoch, lastSequence, producer.LastTimestamp, batches));
            }

            return result;
        }
    }
}

/// <summary>The snapshot encoding of a partition's producers (JSON text in the metadata store).</summary>
internal static class ProducerSnapshotFormat
{
    public sealed record Batch(int FirstSequence, int LastSequence, long BaseOffset);

    public sealed record Producer(long Id, short Epoch, int LastSequence, long LastTimestamp, List<Batch> Batches);

    public static string Encode(List<Producer> producers) => JsonSerializer.Serialize(producers);

    public static bool TryDecode(string state, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out List<Producer>? producers)
    {
        try
        {
            producers = JsonSerializer.Deserialize<List<Producer>>(state);
            if (producers is not null && producers.TrueForAll(static p => p is not null && p.Batches is not null))
            {
                return true;
            }

            producers = null;
            return false;
        }
        catch (JsonException)
        {
            producers = null;
            return false;
        }
    }
}
