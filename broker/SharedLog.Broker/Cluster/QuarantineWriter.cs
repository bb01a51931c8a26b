using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Extensions.Logging;
using SharedLog.Contracts.Gate;
using SharedLog.Contracts.Model;
using SharedLog.Protocol.Records;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.Streams;

namespace SharedLog.Broker.Cluster;

/// <summary>
/// Writes records a contract quarantined to the contract's quarantine topic (created on first use
/// with the source topic's partition count; source partition p goes to p modulo that count). Each
/// record keeps its key, value and headers and gains headers naming the contract, its version, the
/// rule, the reason, and the source topic, partition, offset and timestamp, so a remediation job can replay it.
/// Also reports each quarantine topic's backlog and oldest record age for the metrics.
/// </summary>
public sealed partial class QuarantineWriter(TopicService topics, StreamStore streams, ContractStore contracts, ILogger<QuarantineWriter> logger)
{
    /// <summary>Quarantine copies go into batches of at most this many bytes (Kafka's default <c>max.message.bytes</c>), or what one WAL entry holds if that is less.</summary>
    public const int MaxBatchBytes = 1024 * 1024;

    public const string ContractHeader = "sharedlog.contract";
    public const string ContractVersionHeader = "sharedlog.contract.version";
    public const string RuleHeader = "sharedlog.rule";
    public const string ReasonHeader = "sharedlog.reason";
    public const string SourceTopicHeader = "sharedlog.source.topic";
    public const string SourcePartitionHeader = "sharedlog.source.partition";
    public const string SourceOffsetHeader = "sharedlog.source.offset";

    /// <summary>
    /// The source topic's id, as Kafka tools print topic ids: a topic deleted and created again keeps its name and can reuse
    /// its offsets, so a replay tells the copies of the topic it replays from those of an earlier topic of that name by it.
    /// </summary>
    public const string SourceTopicIdHeader = "sharedlog.source.topic.id";

    /// <summary>A topic id as Kafka prints it (<c>kafka-topics --describe</c>'s TopicId): its 16 bytes in URL-safe base64, unpadded.</summary>
    public static string TopicIdText(Guid topicId)
    {
        Span<byte> bytes = stackalloc byte[16];
        topicId.TryWriteBytes(bytes, bigEndian: true, out _);
        return System.Buffers.Text.Base64Url.EncodeToString(bytes);
    }

    /// <summary>
    /// The record's own timestamp. The quarantine copy is stamped with the time it was quarantined, so the
    /// quarantine topic's time retention counts from then (a record with an old event time would otherwise
    /// be deleted at once); a remediation job restores the original from this header.
    /// </summary>
    public const string SourceTimestampHeader = "sharedlog.source.timestamp";

    // By quarantine topic: the timestamp of its first retained record, as the last refresh found it (or the first copy written
    // since), Emptied when that refresh found the topic empty, or Unread while a topic first written to is being read.
    private readonly ConcurrentDictionary<string, long> _oldestTimestamps = new(StringComparer.Ordinal);

    private const long Emptied = long.MaxValue;

    private const long Unread = long.MinValue;

    // Keyed by the source batch's append task: an idempotent retry is answered with its original's task, so
    // original and retries find one entry, and it lives as long as the producer state remembers the batch.
    private readonly OncePerKey<Task<long>> _writesBySourceAppend = new();

    // How many of a source batch's copies earlier attempts wrote: a copy written in several batches, of which an attempt
    // stored the first and failed on a later one, is taken up where it stopped, so a retry does not store copies twice.
    private readonly ConditionalWeakTable<Task<long>, StrongBox<int>> _copiesWrittenBySourceAppend = new();

    // Per source stream, in offset order: each source batch with copies to write takes a turn where its offsets are assigned,
    // and writes its copies in that turn, so they reach the quarantine partition in source order although the requests (from
    // several connections) each write theirs when their own append is durable.
    private readonly TurnsInOrder<StreamLog> _copyTurnsBySourceStream = new();

    private readonly ConditionalWeakTable<Task<long>, Turn> _copyTurnsBySourceAppend = new();

    /// <summary>
    /// How long a batch's copies wait for the source batch before it to give theirs offsets. That follows the earlier batch's
    /// durable append at once, so the wait is short; the bound keeps a turn that is never ended from holding a partition's
    /// copies back for good: past it, they are written out of order, with a warning.
    /// </summary>
    internal static readonly TimeSpan CopyTurnWait = TimeSpan.FromSeconds(30);

    // The gate's verdict on an idempotent source batch with quarantined records, kept with its append task until the copy is written.
    private readonly ConditionalWeakTable<Task<long>, SourceVerdict> _verdictsBySourceAppend = new();

    /// <summary>
    /// Keeps the gate's verdict on an idempotent batch with the task of its append, for its retries: a retry is judged
    /// again, by the contract in force when it arrives, but the records the original stored or left out are the
    /// original's, so what goes to quarantine (and into the evidence) must be the original's too.
    /// </summary>
    public Task<long> Remember(Task<long> sourceAppend, SourceVerdict verdict)
    {
        _verdictsBySourceAppend.AddOrUpdate(sourceAppend, verdict);
        return sourceAppend;
    }

    /// <summary>Drops the verdict kept for this append once its quarantine copy is written.</summary>
    public void Forget(Task<long> sourceAppend) => _verdictsBySourceAppend.Remove(sourceAppend);

    /// <summary>The verdict <see cref="Remember"/> kept for this append; null when none was kept, the copy is written, or after a restart.</summary>
    public SourceVerdict? VerdictOn(Task<long> sourceAppend) => _verdictsBySourceAppend.TryGetValue(sourceAppend, out SourceVerdict? verdict) ? verdict : null;

    /// <summary>
    /// Starts the append of a source batch that has records to quarantine (<paramref name="append"/> assigns its offsets)
    /// and takes the batch's turn to write their copies, which <see cref="WriteOnceAsync"/> waits for.
    /// </summary>
    public Task<long> AppendInTurn<TState>(long sourceStreamId, TState state, Func<TState, Task<long>> append)
    {
        if (!streams.TryGet(sourceStreamId, out StreamLog? sourceStream))
        {
            return append(state); // not open here: the append fails, and there are no copies to order
        }

        Task<long> sourceAppend = _copyTurnsBySourceStream.Take(sourceStream, state, append, out Turn turn);
        _copyTurnsBySourceAppend.AddOrUpdate(sourceAppend, turn);
        if (!sourceAppend.IsCompletedSuccessfully)
        {
            // An append that fails writes no copies: its turn ends with it.
            sourceAppend.ContinueWith(static (_, turn) => ((Turn)turn!).End(), turn, CancellationToken.None, TaskContinuationOptions.NotOnRanToCompletion | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }

        return sourceAppend;
    }

    /// <summary>
    /// Makes sure the quarantine topic exists; called before the source batch is stored, so a topic
    /// that cannot be created fails the produce before anything is written.
    /// </summary>
    public async Task<TopicMetadata> EnsureTopicAsync(ActiveContract contract, string sourceTopic, CancellationToken cancellationToken)
    {
        string name = contract.Definition.QuarantineTopicFor(sourceTopic);
        if (SharedLog.Contracts.InternalTopics.IsInternal(name))
        {
            // Also on the paths CannotQuarantine does not see (a retry after a restart, judged by a changed contract): an
            // internal topic exists, so nothing else would stop a copy from going into a journal the broker replays.
            throw new InvalidOperationException($"Contract '{contract.Definition.Name}' quarantines '{sourceTopic}' into '{name}', one of the broker's internal topics: no copy is written there.");
        }

        if (contracts.RefusesQuarantineCopies(name) is { } governing)
        {
            throw new InvalidOperationException($"Contract '{contract.Definition.Name}' quarantines '{sourceTopic}' into '{name}', which contract '{governing.Definition.Name}' governs: no unchecked copy is written there.");
        }

        return topics.Find(name) ?? await CreateAsync(name, sourceTopic, cancellationToken);
    }

    /// <summary>
    /// Writes a source batch's quarantined records once its append is durable, once per source batch: an
    /// idempotent retry of the batch waits for a write under way, does nothing after one that succeeded,
    /// and redoes one that failed. Before, a retry after a failed quarantine write was answered with
    /// success (its records were stored) and the bad records were lost. After a restart the producer state
    /// no longer knows whether the write happened, so a retry writes again: at least once, never lost.
    /// The outcome says whether this call wrote them, and whether it did so after an earlier attempt failed.
    /// </summary>
    /// <param name="fromReplay">The source batch was written by the broker's quarantine replay: a copy keeps its <c>sharedlog.replay</c> header.</param>
    public async Task<OnceOutcome> WriteOnceAsync(Task<long> sourceAppend, ActiveContract contract, string sourceTopic, Guid sourceTopicId, int sourcePartition, IReadOnlyList<QuarantinedRecord> records, bool fromReplay, CancellationToken cancellationToken)
    {
        long sourceBaseOffset = await sourceAppend;
        Turn? turn = _copyTurnsBySourceAppend.TryGetValue(sourceAppend, out Turn? taken) ? taken : null;
        try
        {
            if (turn is not null && !turn.Previous.IsCompleted)
            {
                await WaitForTurnAsync(turn, sourceTopic, sourcePartition, sourceBaseOffset, cancellationToken);
            }

            StrongBox<int> written = _copiesWrittenBySourceAppend.GetValue(sourceAppend, static _ => new StrongBox<int>());
            return await _writesBySourceAppend.RunAsync(
                sourceAppend,
                ct => WriteAsync(contract, sourceTopic, sourceTopicId, sourcePartition, sourceBaseOffset, records, fromReplay, written, turn, ct),
                cancellationToken);
        }
        finally
        {
            // Failed, or already ended once the copies had their offsets. A retry that writes them after a failure writes them out of order.
            turn?.End();
        }
    }

    private async Task WaitForTurnAsync(Turn turn, string sourceTopic, int sourcePartition, long sourceBaseOffset, CancellationToken cancellationToken)
    {
        try
        {
            await turn.Previous.WaitAsync(CopyTurnWait, cancellationToken);
        }
        catch (TimeoutException)
        {
            LogTurnWaitedOut(logger, sourceTopic, sourcePartition, sourceBaseOffset, CopyTurnWait.TotalSeconds);
        }
    }

    /// <summary>
    /// Writes <paramref name="records"/> from the first one <paramref name="written"/> does not count, counting each batch
    /// stored. The <paramref name="turn"/> ends once the last batch has its offsets, before it is durable: the next source
    /// batch's copies must follow these in the partition, not wait for them to be durable (the WAL keeps offset order).
    /// </summary>
    private async Task WriteAsync(
        ActiveContract contract, string sourceTopic, Guid sourceTopicId, int sourcePartition, long sourceBaseOffset, IReadOnlyList<QuarantinedRecord> records, bool fromReplay, StrongBox<int> written, Turn? turn, CancellationToken cancellationToken)
    {
        TopicMetadata target = await EnsureTopicAsync(contract, sourceTopic, cancellationToken);
        string name = target.Name;
        PartitionMetadata partition = target.Partitions[sourcePartition % target.Partitions.Count];
        long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        CompressionCodec codec = CopyCodec(records[written.Value].SourceCompression);
        var builder = NewCopyBatch(now, codec);
        int limit = Math.Min(MaxBatchBytes, CopyBatchLimit(codec));
        int batchBytes = RecordBatch.HeaderSize;
        int inBatch = 0;
        for (int i = written.Value; i < records.Count; i++)
        {
            QuarantinedRecord record = records[i];
            (byte[] rawHeaders, int headerCount, RecordHeaderValue[] added) = CopyHeaders(contract, sourceTopic, sourceTopicId, sourcePartition, sourceBaseOffset + record.OffsetDelta, record, fromReplay);
            int size = RecordBatchBuilder.CopiedRecordSize(0, inBatch, record.Key?.Length ?? 0, record.Key is null, record.Value?.Length ?? 0, record.Value is null, rawHeaders.Length, headerCount, added);
            if (inBatch > 0 && batchBytes + size > limit)
            {
                // Copies of one source batch can inflate past what one WAL entry holds (a compressed batch of bad
                // records, decompressed, plus the headers): written in batches of at most this size instead.
                await streams.AppendAsync(partition.StreamId, builder.Build(), cancellationToken);
                written.Value = i;
                builder = NewCopyBatch(now, codec);
                (batchBytes, inBatch) = (RecordBatch.HeaderSize, 0);
            }

            builder.AddCopy(inBatch, now, record.Key, record.Key is null, record.Value, record.Value is null, rawHeaders, headerCount, added);
            batchBytes += size;
            inBatch++;
        }

        ValueTask<long> last = streams.AppendAsync(partition.StreamId, builder.Build(), cancellationToken);
        turn?.End();
        await last;
        written.Value = records.Count;
        if (_oldestTimestamps.TryAdd(name, Unread))
        {
            // Not tracked yet (its contract applied again after a delete, a broker just started): the topic may hold older
            // records than these copies, so its first one is read, off the produce path, before its age is reported.
            _ = TrackAsync(name);
        }
        else
        {
            // Into a topic found empty (retention, DeleteRecords) these copies are the oldest: the age of records gone is not theirs.
            _oldestTimestamps.TryUpdate(name, now, Emptied);
        }
    }

    private async Task TrackAsync(string name)
    {
        try
        {
            _oldestTimestamps.TryUpdate(name, await OldestRetainedAsync(name, CancellationToken.None), Unread);
        }
        catch (Exception e)
        {
            // The periodic refresh reads it again; until then its backlog is not reported rather than reported with a wrong age.
            LogOldestUnread(logger, e, name);
        }
    }

    /// <summary>The smallest timestamp of the first retained batch of <paramref name="name"/>'s partitions, or Emptied.</summary>
    private async Task<long> OldestRetainedAsync(string name, CancellationToken cancellationToken)
    {
        long oldest = Emptied;
        foreach (PartitionMetadata partition in topics.Find(name)?.Partitions ?? [])
        {
            if (topics.FindStream(name, partition.Partition) is { } stream && stream.HighWatermark > stream.LogStartOffset)
            {
                StreamReadResult read = await streams.ReadAsync(stream.StreamId, stream.LogStartOffset, 1, cancellationToken);
                // A record a client wrote there itself may carry no timestamp (-1): it has no age to report.
                if (read.Batches.Count > 0 && RecordBatch.Parse(read.Batches[0]).BaseTimestamp is >= 0 and long first)
                {
                    oldest = Math.Min(oldest, first);
                }
            }
        }

        return oldest;
    }

    /// <summary>
    /// The largest batch of copies before compression: the WAL's limit less what <paramref name="codec"/> may add to data
    /// it cannot compress, so a copy of random or encrypted bytes measured to fit still fits once compressed.
    /// </summary>
    private int CopyBatchLimit(CompressionCodec codec) => streams.MaxBatchBytes - RecordCompression.WorstCaseGrowth(codec, streams.MaxBatchBytes);

    /// <summary>
    /// The codec of the copies of a source batch compressed with <paramref name="source"/>: the same, so every client that
    /// reads the source topic reads the quarantine topic too (kafkajs and kafka-python read LZ4, say, only with an extra
    /// library); gzip, which every client reads, for an uncompressed one. Copies are the source records decompressed, so a
    /// small compressed batch of bad records would otherwise take many times its size in the WAL and the object store,
    /// and with every record quarantined, uncompressed copies cost a fifth of the throughput (bench/RESULTS.md, stop 57).
    /// </summary>
    private static CompressionCodec CopyCodec(CompressionCodec source) => source == CompressionCodec.None ? CompressionCodec.Gzip : source;

    private static RecordBatchBuilder NewCopyBatch(long now, CompressionCodec codec) => new(now) { Compression = codec };

    /// <summary>
    /// Why <paramref name="records"/> cannot be quarantined, or null: the quarantine topic's name is one Kafka does not
    /// allow (a pattern contract's <c>{topic}.quarantine</c> past 249 characters: no retry can mend it, so the records are
    /// refused as invalid), or a copy with the broker's headers would not fit one WAL entry by itself. Asked before the
    /// source batch is stored, so such a batch is refused whole rather than stored without bad records whose copies can
    /// never be written.
    /// </summary>
    public (Protocol.ErrorCode Code, string Message)? CannotQuarantine(ActiveContract contract, string sourceTopic, int sourcePartition, IReadOnlyList<QuarantinedRecord> records)
    {
        string target = contract.Definition.QuarantineTopicFor(sourceTopic);
        if (!TopicConfigs.IsValidTopicName(target))
        {
            return (Protocol.ErrorCode.InvalidRecord, $"{records.Count} record(s) break contract '{contract.Definition.Name}', which quarantines them to '{target}' for this topic: not a valid topic name ({target.Length} characters, at most 249), so the batch is refused.");
        }

        if (SharedLog.Contracts.InternalTopics.IsInternal(target))
        {
            // A pattern's template can make an internal topic's name ("_{topic}" for "schemas"): the journals are replayed at
            // start, so a producer's records in them would change the registry or the contracts.
            return (Protocol.ErrorCode.InvalidRecord, $"{records.Count} record(s) break contract '{contract.Definition.Name}', which quarantines them to '{target}' for this topic: one of the broker's internal topics, so the batch is refused.");
        }

        if (contracts.RefusesQuarantineCopies(target) is { } governing)
        {
            // Possible for a pattern's template (or a contract an older build stored): copies bypass the gate, so they would
            // enter a topic whose contract promises every record meets it.
            return (Protocol.ErrorCode.InvalidRecord, $"{records.Count} record(s) break contract '{contract.Definition.Name}', which quarantines them to '{target}' for this topic: contract '{governing.Definition.Name}' (class {governing.Definition.ClassName}) governs that topic and quarantined records would enter it unchecked, so the batch is refused.");
        }

        foreach (QuarantinedRecord record in records)
        {
            // The source offset is not assigned yet: its header is measured at its longest.
            // Measured at its longest too: as if written by a replay, with its replay header kept.
            (byte[] rawHeaders, int headerCount, RecordHeaderValue[] added) = CopyHeaders(contract, sourceTopic, Guid.Empty, sourcePartition, long.MaxValue, record, fromReplay: true);
            int size = RecordBatch.HeaderSize + RecordBatchBuilder.CopiedRecordSize(0, 0, record.Key?.Length ?? 0, record.Key is null, record.Value?.Length ?? 0, record.Value is null, rawHeaders.Length, headerCount, added);
            int limit = CopyBatchLimit(CopyCodec(record.SourceCompression));
            if (size > limit)
            {
                return (Protocol.ErrorCode.MessageTooLarge, $"The quarantine copy of record {record.OffsetDelta} would take {size} bytes, more than this broker's WAL takes in one batch of copies ({limit} bytes).");
            }
        }

        return null;
    }

    /// <summary>
    /// A quarantine copy's headers: the producer's, except those named like the broker's, which are dropped so a consumer
    /// that reads the first header of a name (the source offset, to replay from) reads the broker's; then the broker's.
    /// </summary>
    private static (byte[] RawHeaders, int HeaderCount, RecordHeaderValue[] Added) CopyHeaders(ActiveContract contract, string sourceTopic, Guid sourceTopicId, int sourcePartition, long sourceOffset, QuarantinedRecord record, bool fromReplay)
    {
        RecordHeaderValue[] why =
        [
            Header(ContractHeader, contract.Definition.Name),
            Header(ContractVersionHeader, contract.Version.ToString(CultureInfo.InvariantCulture)),
            Header(RuleHeader, record.Rule),
            Header(ReasonHeader, record.Reason),
            Header(SourceTopicHeader, sourceTopic),
            Header(SourcePartitionHeader, sourcePartition.ToString(CultureInfo.InvariantCulture)),
            Header(SourceOffsetHeader, sourceOffset.ToString(CultureInfo.InvariantCulture)),
            Header(SourceTopicIdHeader, TopicIdText(sourceTopicId)),
            Header(SourceTimestampHeader, record.Timestamp.ToString(CultureInfo.InvariantCulture)),
        ];
        // A record the broker's replay wrote, quarantined again: its copy says which replay, so that replay does not send it
        // round again. A producer's header of that name (a mirror, a forger) is dropped as the broker's headers are.
        if (fromReplay && ReplayOf(record) is { } replay)
        {
            why = [.. why, Header(QuarantineReplay.ReplayHeader, replay)];
        }

        RecordHeaderValue[]? replaced = BrokerHeaders.Without(record.RawHeaders, record.HeaderCount, BrokerHeaders.Prefix, why, prefixOnly: true);
        return replaced is null ? (record.RawHeaders, record.HeaderCount, why) : ([], 0, replaced);
    }

    private static string? ReplayOf(QuarantinedRecord record)
    {
        foreach (RecordHeader header in HeaderEnumerator.Over(record.RawHeaders, record.HeaderCount))
        {
            if (System.Text.Ascii.Equals(header.Key, QuarantineReplay.ReplayHeader) && !header.ValueIsNull)
            {
                return Encoding.UTF8.GetString(header.Value);
            }
        }

        return null;
    }

    /// <summary>Backlog (records between log start and end) and age of the oldest record of every quarantine topic written to.</summary>
    public IEnumerable<(string Topic, long Backlog, double OldestAgeSeconds)> Backlogs()
    {
        double nowMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        foreach ((string name, long oldest) in _oldestTimestamps)
        {
            long backlog = 0;
            foreach (PartitionMetadata partition in topics.Find(name)?.Partitions ?? [])
            {
                if (topics.FindStream(name, partition.Partition) is { } stream)
                {
                    backlog += stream.HighWatermark - stream.LogStartOffset;
                }
            }

            if (oldest == Unread)
            {
                continue; // its first record is being read
            }

            yield return (name, backlog, backlog == 0 || oldest == Emptied ? 0 : Math.Max(0, nowMs - oldest) / 1000);
        }
    }

    /// <summary>
    /// Re-reads the first record of each quarantine topic so the oldest age follows retention and DeleteRecords. The
    /// topics are the existing ones a contract in force names (so a restart or a quiet hour does not hide a backlog, nor
    /// does deleting the source topic while its bad records wait for a replay); one deleted, or no longer any contract's,
    /// is dropped.
    /// </summary>
    public async Task RefreshOldestAsync(CancellationToken cancellationToken)
    {
        var inForce = new HashSet<string>(StringComparer.Ordinal);
        void InForce(string name)
        {
            if (!SharedLog.Contracts.InternalTopics.IsInternal(name) && topics.Find(name) is not null)
            {
                inForce.Add(name);
                _oldestTimestamps.TryAdd(name, Emptied);
            }
        }

        foreach (TopicMetadata topic in topics.All)
        {
            // Named by a contract in force, its source topic there or not.
            if (contracts.IsQuarantineTopic(topic.Name))
            {
                InForce(topic.Name);
            }

            // And the quarantine topic of each existing source: the only way to find it for a stored contract whose template
            // names {topic} twice, which IsQuarantineTopic cannot read back.
            if (contracts.ForTopic(topic.Name) is { } contract)
            {
                InForce(contract.Definition.QuarantineTopicFor(topic.Name));
            }
        }

        foreach (string name in _oldestTimestamps.Keys)
        {
            if (!inForce.Contains(name))
            {
                _oldestTimestamps.TryRemove(name, out _);
                continue;
            }

            long known = _oldestTimestamps.GetValueOrDefault(name, Emptied);
            long oldest;
            try
            {
                oldest = await OldestRetainedAsync(name, cancellationToken);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                // One topic's unreadable first record (an object store error, say) keeps what was known of it, and the
                // round goes on to the others rather than leaving them unread.
                LogOldestUnread(logger, e, name);
                continue;
            }

            if (oldest != Emptied)
            {
                _oldestTimestamps[name] = oldest;
            }
            else
            {
                // Emptied, unless a copy was written meanwhile: the age of records retention or DeleteRecords removed is no backlog's.
                _oldestTimestamps.TryUpdate(name, Emptied, known);
            }
        }
    }

    private async Task<TopicMetadata> CreateAsync(string name, string sourceTopic, CancellationToken cancellationToken)
    {
        int partitions = topics.Find(sourceTopic)?.Partitions.Count ?? 1;
        (TopicMetadata? created, Protocol.ErrorCode error, string? message) = await topics.CreateAsync(name, partitions, new Dictionary<string, string>(StringComparer.Ordinal), validateOnly: false, cancellationToken);
        return created ?? topics.Find(name) ?? throw new InvalidOperationException($"Cannot create quarantine topic {name}: {error} {message}");
    }

    private static RecordHeaderValue Header(string key, string value) => new(key, Encoding.UTF8.GetBytes(value));

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cannot read the first record of quarantine topic {Topic} for its oldest age; the next refresh reads it again")]
    private static partial void LogOldestUnread(ILogger logger, Exception exception, string topic);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Quarantine copies of {Topic}-{Partition} from offset {Offset} waited {Seconds} s for the batch before them and are written now, out of source order")]
    private static partial void LogTurnWaitedOut(ILogger logger, string topic, int partition, long offset, double seconds);
}

/// <summary>What the gate decided for one source batch: the contract version that judged it, the records it took out for quarantine, and its counts.</summary>
public sealed record SourceVerdict(ActiveContract Contract, IReadOnlyList<QuarantinedRecord> Quarantined, GateTally Tally);
