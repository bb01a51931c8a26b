// Produce, versions 0-11. v0-2 are advertised although their message sets (magic 0/1) are refused with
// INVALID_RECORD: older librdkafka (Debian 12's 2.0.2, under kcat and confluent-kafka-python) turns gzip,
// snappy and lz4 off, silently, for a broker whose Produce range does not start at 0, and clients that
// know record batches use v3+ anyway. Each partition's records must be one v2 record batch (a second
// batch gets INVALID_RECORD), each batch must pass its
// CRC32C (CORRUPT_MESSAGE) and fit max.message.bytes (MESSAGE_TOO_LARGE). Accepted batches get offsets
// assigned and are acknowledged once durable in the WAL (acks=1 and acks=-1 mean the same here: there
// are no follower replicas; acks=0 sends no response, and closes the connection when a partition
// failed, as Kafka does). Other acks values get INVALID_REQUIRED_ACKS. Idempotent batches (producer id
// set, KIP-98) are checked against the producer's epoch and sequence as they are queued: a retried batch
// is answered with its original offset and not written twice; a gap gets OUT_OF_ORDER_SEQUENCE_NUMBER,
// an old epoch INVALID_PRODUCER_EPOCH. Transactional batches are refused: transactions are not served yet.
// Topics with a data contract pass each batch through the contract gate after the CRC check and
// before the WAL append: a rejected batch gets INVALID_RECORD with RecordErrors (v8+, KIP-467) naming
// each bad record; a quarantining contract stores the good records in place (bad ones leave offset
// gaps) and appends the bad ones to the quarantine topic with headers saying why.
using System.Globalization;
using System.Runtime.CompilerServices;
using SharedLog.Broker.Cluster;
using SharedLog.Broker.Coordinators;
using SharedLog.Broker.Network;
using SharedLog.Contracts.Gate;
using SharedLog.Contracts.Model;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Protocol.Records;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.Streams;
using SharedLog.Storage.Wal;

namespace SharedLog.Broker.Handlers;

public sealed partial class ProduceHandler(TopicService topics, StreamStore streams, ProducerStateManager producers, ContractGate gate, QuarantineWriter quarantine, Http.BrokerMetrics metrics, Microsoft.Extensions.Options.IOptions<BrokerOptions> options, ILogger<ProduceHandler> logger) : IApiHandler, IDisposable
{
    public ApiKey Api => ApiKey.Produce;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.Produce);

    public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (ProduceRequest)request;
        var response = new ProduceResponse();
        bool validAcks = body.Acks is -1 or 0 or 1;
        var work = new List<PartitionWork>();
        List<(PartitionWork Item, System.Buffers.ReadOnlySequence<byte>? Records)>? gated = null;
        StrongBox<long>? gatedBytesHeld = null;
        foreach (ProduceRequest.TopicProduceData topic in body.TopicData)
        {
            var topicResponse = new ProduceResponse.TopicProduceResponse { Name = topic.Name };
            response.Responses.Add(topicResponse);
            TopicMetadata? found = topics.Find(topic.Name);
            ActiveContract? contract = found is null ? null : gate.ContractFor(topic.Name);
            foreach (ProduceRequest.PartitionProduceData partition in topic.PartitionData)
            {
                var result = new ProduceResponse.PartitionProduceResponse { Index = partition.Index, BaseOffset = -1, LogAppendTimeMs = -1, LogStartOffset = -1 };
                topicResponse.PartitionResponses.Add(result);
                // As Kafka: a partition the broker does not have is named so first, whatever acks asks for.
                if (found is null || partition.Index < 0 || partition.Index >= found.Partitions.Count)
                {
                    result.ErrorCode = (short)ErrorCode.UnknownTopicOrPartition;
                    continue;
                }

                if (!validAcks)
                {
                    result.ErrorCode = (short)ErrorCode.InvalidRequiredAcks;
                    continue;
                }

                if (SharedLog.Contracts.InternalTopics.IsInternal(found.Name))
                {
                    // As Kafka for its internal topics: the broker writes these journals itself, never through Produce.
                    result.ErrorCode = (short)ErrorCode.InvalidTopicException;
                    result.ErrorMessage = $"Cannot append to internal topic {found.Name}.";
                    continue;
                }

                var item = new PartitionWork(found, found.Partitions[partition.Index].StreamId, result, contract)
                {
                    FromReplay = context.FromReplay,
                    QuarantinedByTarget = context.QuarantinedByTarget,
                    GatedBytesHeld = contract is null ? null : gatedBytesHeld ??= new StrongBox<long>(),
                };
                if (contract is null)
                {
                    Check(item, partition.Records);
                }
                else
                {
                    (gated ??= []).Add((item, partition.Records));
                }

                work.Add(item);
            }
        }

        if (gated is not null)
        {
            await GatedCheckSlots.WaitAsync(cancellationToken);
            try
            {
                await CheckGatedAsync(gated);
            }
            finally
            {
                GatedCheckSlots.Release();
            }
        }

        await LoadProducersAsync(work, cancellationToken);

        // The connection may have started this request while the one before it was still being checked: appends (and the
        // producer sequences judged with them) follow request order, so wait for it to queue its own first.
        if (!context.Preceding.IsCompleted)
        {
            await context.Preceding;
        }

        // The request's record bytes belong to the connection's buffer: nothing below may read them once
        // the ordering point is reached, so every batch was copied or rebuilt by the checks above.
        if (work.TrueForAll(static w => w.Accepted is null || w.Accepted.TrueForAll(static a => a.Quarantined.Count == 0)))
        {
            // Queue every append now, in request order (idempotent ones judged against their producer's
            // sequence as they are queued), so the next pipelined request may start, then wait for durability.
            var appends = new List<(PartitionWork Item, int Batch, Task<long> Durable, bool Retried)>();
            foreach (PartitionWork item in work)
            {
                for (int i = 0; item.Accepted is not null && i < item.Accepted.Count; i++)
                {
                    Task<long>? durable = StartAppend(item, item.Accepted[i], cancellationToken, out bool retried);
                    if (durable is null)
                    {
                        // Refused by its sequence: the partition's later batches are not written either.
                        break;
                    }

                    appends.Add((item, i, durable, retried));
                    if (durable.IsFaulted)
                    {
                        // Refused before it got offsets (e.g. backpressure): the partition's later batches are not written either.
                        break;
                    }
                }
            }

            context.Ordering?.Reached();
            foreach ((PartitionWork item, int batch, Task<long> durable, bool retried) in appends)
            {
                await CompleteAppendAsync(item, batch, durable, retried, cancellationToken);
            }
        }
        else
        {
            // Quarantining batches wait on quarantine writes: one partition after another.
            foreach (PartitionWork item in work)
            {
                if (item.Accepted is not null)
                {
                    await AppendInOrderAsync(item, cancellationToken);
                }
            }
        }

        foreach (PartitionWork item in work)
        {
            if (item.Accepted is not null && item.Result.ErrorCode == 0)
            {
                // The stream may have closed since the append (its topic deleted): the batch is durable all the same, and the
                // response must go out, or the producer would retry the other partitions' stored batches as well.
                item.Result.LogStartOffset = streams.TryGet(item.StreamId, out StreamLog? appendedTo) ? appendedTo.LogStartOffset : -1;
                metrics.BytesIn(item.Topic.Name, item.RecordBytes);
            }
        }

        string? firstFailure = null;
        foreach (ProduceResponse.TopicProduceResponse topicResponse in response.Responses)
        {
            foreach (ProduceResponse.PartitionProduceResponse partitionResponse in topicResponse.PartitionResponses)
            {
                // KAFKA_STORAGE_ERROR exists for producers from v4 on (the spec: "the requester must be prepared to
                // handle" it); older ones are given the retriable NOT_LEADER_OR_FOLLOWER instead, as Kafka does.
                if (context.Version < 4 && partitionResponse.ErrorCode == (short)ErrorCode.KafkaStorageError)
                {
                    partitionResponse.ErrorCode = (short)ErrorCode.NotLeaderOrFollower;
                }

                metrics.PartitionError(ApiKey.Produce, (ErrorCode)partitionResponse.ErrorCode);
                if (partitionResponse.ErrorCode != 0)
                {
                    firstFailure ??= $"{topicResponse.Name}-{partitionResponse.Index} failed with {(ErrorCode)partitionResponse.ErrorCode}";
                }
            }
        }

        // With acks=0 there is no response to carry an error: as Kafka does, close the connection instead, so the
        // producer sees the failure, refreshes its metadata and reconnects.
        return body.Acks != 0 ? response
            : firstFailure is null ? null
            : throw new CloseConnectionException("acks0_produce_error", $"acks=0 produce to {firstFailure}.");
    }

    /// <summary>True when a topic of the request has a contract: the gate reads every record of it.</summary>
    public bool ReadsRequestBytesLong(IApiMessage request)
    {
        foreach (ProduceRequest.TopicProduceData topic in ((ProduceRequest)request).TopicData)
        {
            // Existing topics only: the contract lookup remembers each name it is asked about, and a request may
            // carry thousands of made-up ones.
            if (topics.Find(topic.Name) is not null && gate.ContractFor(topic.Name) is not null)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Checks the partitions of a request that have a contract. The gate decodes every record, and a connection's requests
    /// are checked one after another (up to the ordering point), so with one producer connection the gate would use one
    /// core: the request's gated partitions are checked side by side instead, by this thread and pool helpers (at most one
    /// per other core across the broker, so gated producers cannot crowd out the pool's network work). Each partition is
    /// checked whole by one thread, and appends are queued afterwards in request order, so nothing is reordered.
    /// </summary>
    /// <summary>
    /// Gated requests checked at once across the broker, one per core. Checking is CPU work, so more at once gains no
    /// throughput, and a check may build up to a record's element budget of decoded objects (177 MB for a hostile 2 MB
    /// record of empty nested messages): without this, 20 such records arriving together took 2.9 GB.
    /// </summary>
    private static readonly SemaphoreSlim GatedCheckSlots = new(Math.Max(Environment.ProcessorCount, 1));

    private Task CheckGatedAsync(List<(PartitionWork Item, System.Buffers.ReadOnlySequence<byte>? Records)> gated)
    {
        if (gated.Count == 1)
        {
            Check(gated[0].Item, gated[0].Records);
            return Task.CompletedTask;
        }

        // Checked from a different partition each request: past MaxGatedBytesPerRequest the last ones checked are refused,
        // and a client that always sends its partitions in the same order would see the same ones refused at every retry
        // until its retries ran out (kafka-python did).
        int first = (int)((uint)Interlocked.Increment(ref _gatedRotation) % (uint)gated.Count);
        var checks = new GatedChecks(this, gated, first);
        for (int helpers = Math.Min(Environment.ProcessorCount, gated.Count) - 1; helpers > 0 && GatedChecks.TryReserveHelper(); helpers--)
        {
            ThreadPool.UnsafeQueueUserWorkItem(checks, preferLocal: false);
        }

        checks.CheckRemaining();
        return checks.Done;
    }

    /// <summary>
    /// The gated partitions of one request, taken one at a time by whichever thread asks next. The request waits for
    /// its partitions, not for its helpers: a helper that starts after every partition was taken finds none and ends
    /// without touching the request's bytes, so a busy pool cannot hold the request back.
    /// </summary>
    /// <param name="first">The partition checked first; the others follow it in request order, wrapping around.</param>
    private sealed class GatedChecks(ProduceHandler handler, List<(PartitionWork Item, System.Buffers.ReadOnlySequence<byte>? Records)> gated, int first) : IThreadPoolWorkItem
    {
        /// <summary>Helpers across the broker: one per other core, so gated producers leave the pool room for network work.</summary>
        private static readonly WorkSlots Helpers = new(Math.Max(Environment.ProcessorCount - 1, 0));

        private readonly int _count = gated.Count;
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _next = -1;
        private int _remaining = gated.Count;
        private Exception? _firstFailure;

        public Task Done => _done.Task;

        public static bool TryReserveHelper() => Helpers.TryTake();

        public void Execute()
        {
            try
            {
                CheckRemaining();
            }
            finally
            {
                Helpers.Release();
            }
        }

        public void CheckRemaining()
        {
            for (int i = Interlocked.Increment(ref _next); i < _count; i = Interlocked.Increment(ref _next))
            {
                try
                {
                    (PartitionWork item, System.Buffers.ReadOnlySequence<byte>? records) = gated[(first + i) % _count];
                    handler.Check(item, records);
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref _firstFailure, e, null);
                }

                if (Interlocked.Decrement(ref _remaining) == 0)
                {
                    if (_firstFailure is { } failure)
                    {
                        _done.TrySetException(failure);
                    }
                    else
                    {
                        _done.TrySetResult();
                    }
                }
            }
        }
    }

    /// <summary>CRC, size and control checks and the contract gate for one partition; sets <see cref="PartitionWork.Accepted"/> or an error.</summary>
    private void Check(PartitionWork item, System.Buffers.ReadOnlySequence<byte>? partitionRecords)
    {
        if (RefusedForBytesHeld(item))
        {
            return;
        }

        TopicMetadata topic = item.Topic;
        ProduceResponse.PartitionProduceResponse result = item.Result;
        ActiveContract? contract = item.Contract;
        int maxMessageBytes = int.Parse(TopicConfigs.Effective(topic.Configs, TopicConfigs.MaxMessageBytes), CultureInfo.InvariantCulture);
        ProduceTimestamps timestamps = TopicConfigs.TimestampsOf(topic.Configs);
        var accepted = new List<AcceptedBatch>();
        try
        {
            if (partitionRecords is not { Length: > 0 } records)
            {
                throw new KafkaProtocolException("Produce request carries no records.", ErrorCode.InvalidRecord);
            }

            item.RecordBytes = records.Length;
            // Gated batches are read, then rebuilt or refused: their copy (when a batch spans the request's
            // buffer segments) is rented and given back instead of being a new large array per batch.
            var reader = new RecordBatchReader(records, copyPool: contract is null ? null : System.Buffers.ArrayPool<byte>.Shared);
            while (reader.TryReadNext(out RecordBatch batch))
            {
                // A gated compressed batch's records, inflated into pooled memory: the gate copies what it keeps.
                PooledBufferWriter? inflatedRecords = null;
                try
                {
                    // As Kafka for Produce v3+: one batch per partition, so a request either stores a partition's
                    // records or refuses them, never half of them.
                    if (accepted.Count > 0)
                    {
                        throw new KafkaProtocolException("Produce requests carry exactly one record batch per partition.", ErrorCode.InvalidRecord);
                    }

                    if (batch.TotalSize > maxMessageBytes)
                    {
                        throw new KafkaProtocolException($"Batch of {batch.TotalSize} bytes exceeds max.message.bytes {maxMessageBytes}.", ErrorCode.MessageTooLarge);
                    }

                    batch.VerifyCrc();
                    if (batch.IsControl)
                    {
                        throw new KafkaProtocolException("Clients may not write control batches.", ErrorCode.InvalidRecord);
                    }

                    if (batch.IsTransactional)
                    {
                        throw new KafkaProtocolException("Transactional producers are not served yet.", ErrorCode.UnsupportedForMessageFormat);
                    }

                    // As Kafka does: a producer's batch holds lastOffsetDelta + 1 records. The offsets a batch takes
                    // come from lastOffsetDelta, so a header claiming more (up to int.MaxValue) would move the
                    // partition's offsets by billions, or wrap them, for a handful of bytes.
                    if (batch.RecordCount < 1 || batch.LastOffsetDelta != batch.RecordCount - 1)
                    {
                        throw new KafkaProtocolException($"Inconsistent batch offset range: last offset delta {batch.LastOffsetDelta} with {batch.RecordCount} records.", ErrorCode.InvalidRecord);
                    }

                    // As Kafka: an idempotent batch numbers its records; without a sequence it would match the last such
                    // batch as a duplicate and be acknowledged without being written.
                    if (batch.ProducerId >= 0 && batch.BaseSequence < 0)
                    {
                        throw new KafkaProtocolException($"Invalid sequence number {batch.BaseSequence} in a record batch with producer id {batch.ProducerId}.", ErrorCode.InvalidRecord);
                    }

                    // Before the gate too: it copies records at their offset deltas and counts on them matching the header.
                    // A gated batch's records are decompressed once, for the check and the gate.
                    // A compacted topic's keys are checked in the same walk: an ungated batch is never inflated whole.
                    RecordSet? checkedRecords = null;
                    long recordsMaxTimestamp;
                    List<int>? keylessRecords = topic.CompactsRecords ? [] : null;
                    if (contract is null)
                    {
                        recordsMaxTimestamp = batch.CheckRecords(keylessRecords);
                    }
                    else
                    {
                        checkedRecords = batch.CheckedRecords(out recordsMaxTimestamp, out inflatedRecords, keylessRecords);
                    }

                    if (timestamps.BoundsCreateTime)
                    {
                        CheckTimestamps(batch, timestamps, result);
                    }

                    if (keylessRecords is { Count: > 0 })
                    {
                        RefuseKeylessRecords(topic.Name, result, keylessRecords);
                    }

                    int lastSequence = batch.LastSequence;
                    byte[]? bytes = null;
                    IReadOnlyList<QuarantinedRecord> quarantined = [];
                    GateResult? gateVerdict = null;
                    (ErrorCode Code, string Message)? cannotQuarantine = null;
                    if (contract is not null)
                    {
                        GateResult verdict;
                        try
                        {
                            verdict = gate.Inspect(contract, topic.Name, result.Index, batch, checkedRecords);
                        }
                        catch (Exception e) when (e is not KafkaProtocolException and not OperationCanceledException)
                        {
                            // A gate fault is ours, not the producer's: refuse the batch with UNKNOWN_SERVER_ERROR, as Kafka answers an
                            // unexpected failure (clients do not retry it), and say why in the log.
                            LogGateFailed(logger, e, topic.Name, result.Index);
                            result.ErrorCode = (short)ErrorCode.UnknownServerError;
                            result.ErrorMessage = "The contract gate failed on this batch; see the broker log.";
                            return;
                        }

                        if (verdict.Outcome == GateOutcome.Reject)
                        {
                            if (batch.ProducerId >= 0)
                            {
                                // An idempotent batch may be a retry of one stored under an earlier contract: that is
                                // decided with its producer's state, at the append (a retry is answered with its original's
                                // offsets and writes its original's quarantine copy; any other is refused as below).
                                accepted.Add(new AcceptedBatch([], batch.ProducerId, batch.ProducerEpoch, batch.BaseSequence, lastSequence, [], verdict, Rejected: true));
                                item.StampsLogAppendTime = timestamps.LogAppendTime; // answered as any retry is

                                continue;
                            }

                            Refuse(item, verdict);
                            return;
                        }

                        // max.message.bytes held for the batch as sent. The rewrite (hashes, flag headers) may grow it past
                        // that, which the producer can neither see nor avoid (librdkafka does not split a refused batch,
                        // so full batches would fail only under load): it is stored if one WAL entry holds it.
                        bytes = verdict.Batch;
                        quarantined = verdict.Quarantined;
                        gateVerdict = verdict;
                        cannotQuarantine = quarantined.Count > 0 ? quarantine.CannotQuarantine(contract, topic.Name, result.Index, quarantined) : null;
                    }

                    // The request's bytes belong to the connection: keep a copy, unless reading the batch already made one.
                    bytes ??= reader.LastBatchIsCopy && System.Runtime.InteropServices.MemoryMarshal.TryGetArray(batch.Data, out ArraySegment<byte> copy) && copy.Count == copy.Array!.Length
                        ? copy.Array
                        : RecordBatch.CopyForStorage(batch.Data.Span);
                    if (timestamps.LogAppendTime)
                    {
                        item.StampsLogAppendTime = true; // when appended (StartAppend)
                    }
                    else if (gateVerdict?.Batch is null && batch.MaxTimestamp != recordsMaxTimestamp)
                    {
                        // As Kafka's log validator: the stored max timestamp is the records' largest, not the producer's
                        // word for it (some clients write the last record's); ListOffsets by time and retention go by it.
                        // A batch the gate rebuilt has it from its builder.
                        RecordBatch.SetMaxTimestamp(bytes, recordsMaxTimestamp);
                    }

                    accepted.Add(new AcceptedBatch(bytes, batch.ProducerId, batch.ProducerEpoch, batch.BaseSequence, lastSequence, quarantined, gateVerdict, cannotQuarantine));
                }
                finally
                {
                    inflatedRecords?.Release();
                    if (reader.LastBatchRentedCopy is { } rented)
                    {
                        System.Buffers.ArrayPool<byte>.Shared.Return(rented);
                    }
                }
            }
        }
        catch (KafkaProtocolException e)
        {
            result.ErrorCode = (short)e.ErrorCode;
            result.ErrorMessage = e.Message;
            _refusals.Add(topic.Name, result.Index, e.ErrorCode, e.Message);
            return;
        }

        if (item.GatedBytesHeld is { } held)
        {
            Interlocked.Add(ref held.Value, BytesHeld(accepted));
        }

        item.Accepted = accepted;
    }

    /// <summary>
    /// <see cref="BrokerOptions.MaxGatedBytesPerRequest"/>: without it one request of many partitions of highly compressed
    /// records made the broker hold gigabytes (a review's 4 MB request of 64 partitions under quarantine held 5.8 GB).
    /// </summary>
    private readonly long _maxGatedBytesPerRequest = Math.Max(options.Value.MaxGatedBytesPerRequest, 0);

    private int _gatedRotation;

    private static long BytesHeld(List<AcceptedBatch> accepted)
    {
        long bytes = 0;
        foreach (AcceptedBatch batch in accepted)
        {
            bytes += batch.Bytes.Length;
            for (int i = 0; i < batch.Quarantined.Count; i++)
            {
                QuarantinedRecord record = batch.Quarantined[i];
                bytes += (record.Key?.Length ?? 0) + (record.Value?.Length ?? 0) + record.RawHeaders.Length;
            }
        }

        return bytes;
    }

    /// <summary>Refuses a gated partition, unread, once its request holds <see cref="BrokerOptions.MaxGatedBytesPerRequest"/>.</summary>
    private bool RefusedForBytesHeld(PartitionWork item)
    {
        if (item.GatedBytesHeld is not { } held || Volatile.Read(ref held.Value) < _maxGatedBytesPerRequest)
        {
            return false;
        }

        // REQUEST_TIMED_OUT: retriable in every client (kafka-python 2.0.2 does not know KAFKA_STORAGE_ERROR and gives up).
        item.Result.ErrorCode = (short)ErrorCode.RequestTimedOut;
        item.Result.ErrorMessage = $"This produce request's checked contract-topic partitions already hold {Volatile.Read(ref held.Value)} bytes (stored batches and decompressed quarantine copies; past {_maxGatedBytesPerRequest} no more are checked in the same request): retry this partition in a later request.";
        _retriableRefusals.Add(item.Topic.Name, item.Result.Index, ErrorCode.RequestTimedOut, item.Result.ErrorMessage);
        return true;
    }

    /// <summary>
    /// As Kafka's log validator on a CreateTime topic with timestamp bounds: a record stamped further in the past than
    /// <c>message.timestamp.before.max.ms</c> or further ahead than <c>after.max.ms</c> refuses the batch with
    /// INVALID_TIMESTAMP, naming the record.
    /// </summary>
    private static void CheckTimestamps(RecordBatch batch, ProduceTimestamps timestamps, ProduceResponse.PartitionProduceResponse result)
    {
        long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        long earliest = timestamps.BeforeMaxMs >= now ? long.MinValue : now - timestamps.BeforeMaxMs;
        long latest = timestamps.AfterMaxMs >= long.MaxValue - now ? long.MaxValue : now + timestamps.AfterMaxMs;
        int outside = batch.FirstRecordWithTimestampOutside(earliest, latest);
        if (outside >= 0)
        {
            string reason = $"Timestamp of record {outside} is out of range: it must lie within [{earliest}, {latest}] (message.timestamp.before.max.ms and after.max.ms of the broker's time {now}).";
            result.RecordErrors = [new ProduceResponse.BatchIndexAndErrorMessage { BatchIndex = outside, BatchIndexErrorMessage = reason }];
            throw new KafkaProtocolException(reason, ErrorCode.InvalidTimestamp);
        }
    }

    /// <summary>
    /// As Kafka's log validator: a compacted topic keeps the last record per key, so a record without one cannot be
    /// stored there. The batch is refused with INVALID_RECORD, naming every keyless record.
    /// </summary>
    private static void RefuseKeylessRecords(string topicName, ProduceResponse.PartitionProduceResponse result, List<int> keylessRecords)
    {
        var errors = new List<ProduceResponse.BatchIndexAndErrorMessage>(keylessRecords.Count);
        foreach (int index in keylessRecords)
        {
            errors.Add(new ProduceResponse.BatchIndexAndErrorMessage { BatchIndex = index, BatchIndexErrorMessage = "Compacted topic cannot accept a record without a key." });
        }

        result.RecordErrors = errors;
        throw new KafkaProtocolException($"Compacted topic {topicName}-{result.Index} cannot accept records without a key ({errors.Count} in this batch, the first at index {errors[0].BatchIndex}).", ErrorCode.InvalidRecord);
    }

    /// <summary>
    /// Gets the producer state of partitions with idempotent batches. Only the first produce to a partition
    /// since the broker started waits here (its snapshot is read and the log after it replayed); a partition
    /// whose state cannot be loaded is refused with a retriable error.
    /// </summary>
    private async ValueTask LoadProducersAsync(List<PartitionWork> work, CancellationToken cancellationToken)
    {
        foreach (PartitionWork item in work)
        {
            if (item.Accepted is null || item.Accepted.TrueForAll(static a => a.ProducerId < 0))
            {
                continue;
            }

            try
            {
                item.Producers = await producers.ForAsync(item.StreamId, cancellationToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                item.Accepted = null;
                if (e is StreamNotOpenException)
                {
                    SetAppendError(item.Topic.Name, item.Result, e);
                }
                else
                {
                    // Retriable: the producer backs off and sends the batch again.
                    item.Result.ErrorCode = (short)ErrorCode.KafkaStorageError;
                    item.Result.ErrorMessage = $"Producer state of this partition cannot be loaded yet: {e.Message}";
                }

                LogProducerStateFailed(logger, e, item.Topic.Name, item.Result.Index);
            }
        }
    }

    /// <summary>
    /// Assigns offsets and queues the WAL entry now; the returned task completes when it is durable. An
    /// idempotent batch is judged against its producer's sequence first: a retry gets its original's task
    /// (<paramref name="retried"/>), a refused one null with the error set in the partition's response.
    /// </summary>
    private Task<long>? StartAppend(PartitionWork item, AcceptedBatch batch, CancellationToken cancellationToken, out bool retried)
    {
        retried = false;
        if (item.StampsLogAppendTime)
        {
            // Stamped here, past the connection's ordering point, not when checked: the next pipelined request may be
            // checked while this one still is, and its batch, at later offsets, must not carry an earlier append time.
            item.LogAppendTimeMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            if (batch.Bytes.Length > 0)
            {
                RecordBatch.SetLogAppendTime(batch.Bytes, item.LogAppendTimeMs);
            }
        }

        if (batch.ProducerId < 0)
        {
            return batch.Quarantined.Count > 0
                ? quarantine.AppendInTurn(item.StreamId, (streams, item.StreamId, batch.Bytes, cancellationToken), static s => StartAppend(s.streams, s.StreamId, s.Bytes, s.cancellationToken))
                : StartAppend(streams, item.StreamId, batch.Bytes, cancellationToken);
        }

        SequenceVerdict verdict = item.Producers!.CheckAndAppend(
            batch.ProducerId,
            batch.Epoch,
            batch.BaseSequence,
            batch.LastSequence,
            (streams, item.StreamId, batch.Bytes, cancellationToken, quarantine, item.Contract, batch),
            static s => s.batch.Rejected
                ? Task.FromException<long>(new RejectedByContractException())
                : s.batch.Quarantined.Count > 0
                // Kept before the producer state publishes the task: a retry that finds the task finds the verdict. Only
                // batches with a quarantine copy are kept: for any other, a retry has nothing to write.
                ? s.quarantine.Remember(
                    s.quarantine.AppendInTurn(s.StreamId, (s.streams, s.StreamId, s.Bytes, s.cancellationToken), static a => StartAppend(a.streams, a.StreamId, a.Bytes, a.cancellationToken)),
                    new SourceVerdict(s.Contract!, s.batch.Quarantined, s.batch.Verdict!.Tally))
                : StartAppend(s.streams, s.StreamId, s.Bytes, s.cancellationToken),
            out ErrorCode error,
            out Task<long>? durable);
        if (verdict == SequenceVerdict.Reject && batch.Rejected)
        {
            // As Kafka, which validates a batch before it looks at its sequence: the contract's refusal is the answer.
            Refuse(item, batch.Verdict!);
            return null;
        }

        if (verdict == SequenceVerdict.Reject)
        {
            item.Result.ErrorCode = (short)error;
            item.Result.ErrorMessage = $"Producer {batch.ProducerId} epoch {batch.Epoch}: batch with sequence {batch.BaseSequence} refused ({error}).";
            _refusals.Add(item.Topic.Name, item.Result.Index, error, item.Result.ErrorMessage);
            return null;
        }

        retried = verdict == SequenceVerdict.Duplicate;
        if (item.StampsLogAppendTime && durable is not null)
        {
            // As Kafka answers a duplicate with the stored batch's time: a retry gets its original's stamp (unknown only
            // for an original appended before a restart, answered with the time now).
            if (!retried)
            {
                _appendTimes.AddOrUpdate(durable, new StrongBox<long>(item.LogAppendTimeMs));
            }
            else if (_appendTimes.TryGetValue(durable, out StrongBox<long>? original))
            {
                item.LogAppendTimeMs = original.Value;
            }
        }

        return durable;
    }

    /// <summary>The append time each idempotent batch on a LogAppendTime topic was stamped with, by its append task (which its retries share).</summary>
    private readonly ConditionalWeakTable<Task<long>, StrongBox<long>> _appendTimes = new();

    private static Task<long> StartAppend(StreamStore streams, long streamId, byte[] bytes, CancellationToken cancellationToken)
    {
        try
        {
            ValueTask<long> append = streams.AppendAsync(streamId, bytes, cancellationToken);
            return append.IsCompletedSuccessfully ? ProducerStateManager.WrittenAt(append.Result) : append.AsTask();
        }
        catch (Exception e)
        {
            return Task.FromException<long>(e);
        }
    }

    /// <summary>Waits for one queued append and records its offset or error in the partition's response.</summary>
    private async Task CompleteAppendAsync(PartitionWork item, int batch, Task<long> durable, bool retried, CancellationToken cancellationToken)
    {
        try
        {
            long baseOffset = await durable;
            try
            {
                await SettleAsync(item, item.Accepted![batch], durable, baseOffset, retried);
            }
            catch (InvalidOperationException e) when (e is not ObjectDisposedException)
            {
                // Only a retry settling its original's quarantine copy writes one on this path.
                if (item.Result.ErrorCode == 0)
                {
                    QuarantineTopicFailed(item, e);
                }

                return;
            }

            if (batch == 0 && item.Result.ErrorCode == 0)
            {
                item.Result.BaseOffset = baseOffset;
                item.Result.LogAppendTimeMs = item.LogAppendTimeMs;
            }
        }
        catch (RejectedByContractException)
        {
            Refuse(item, item.Accepted![batch].Verdict!);
        }
        catch (Exception e) when (e is StorageBackpressureException or WalUnavailableException or StreamNotOpenException or ArgumentException)
        {
            // The first failure of a partition is the one reported; a later batch of it fails the same way.
            if (item.Result.ErrorCode == 0)
            {
                SetAppendError(item.Topic.Name, item.Result, e);
            }
        }
    }

    /// <summary>
    /// Bad records a refused batch's RecordErrors name, at most: a compressed batch can hold millions of tiny records,
    /// and an entry each would make an answer of hundreds of MB. The error message gives the full count.
    /// </summary>
    public const int MaxRecordErrors = 1_000;

    /// <summary>
    /// The contract refuses the partition's batch: INVALID_RECORD naming the bad records, counted as rejected; or, for a
    /// batch with too many bad records to quarantine or flag, the verdict's own code, not counted.
    /// </summary>
    private void Refuse(PartitionWork item, GateResult verdict)
    {
        item.Result.ErrorCode = (short)verdict.RefusalCode;
        if (verdict.RefusalCode != ErrorCode.InvalidRecord)
        {
            // Too many bad records to quarantine or flag at once: a Java producer splits the batch and sends the halves,
            // which are judged and counted then; counted now as well, they would be evidence twice. Record errors go with
            // INVALID_RECORD only, as in Kafka.
            item.Result.ErrorMessage = verdict.Summary;
            _refusals.Add(item.Topic.Name, item.Result.Index, verdict.RefusalCode, verdict.Summary);
            return;
        }

        if (item.FromReplay)
        {
            // The replay sends the batch again without the records the refusal names (QuarantineReplay): the others are
            // counted when judged then, so only the named ones count now (as rejected, and under their schemas).
            IReadOnlyList<RecordViolation> named = verdict.Violations.Count > MaxRecordErrors ? [.. verdict.Violations.Take(MaxRecordErrors)] : verdict.Violations;
            gate.Count(item.Topic.Name, item.Result.Index, baseOffset: -1, ContractGate.ReplayRefusalTally(verdict.Tally, named));
        }
        else
        {
            gate.Count(item.Topic.Name, item.Result.Index, baseOffset: -1, verdict);
        }

        _refusals.Add(item.Topic.Name, item.Result.Index, ErrorCode.InvalidRecord, ContractGate.RejectionLogText(verdict));

        item.Result.ErrorMessage = verdict.Violations.Count > MaxRecordErrors
            ? $"{verdict.Summary} (record_errors lists the first {MaxRecordErrors})"
            : verdict.Summary;
        item.Result.RecordErrors = RecordErrors(verdict);
    }

    /// <summary>The bad records of a refused batch, at most <see cref="MaxRecordErrors"/>, for the producer (ProduceResponse v8+).</summary>
    private static List<ProduceResponse.BatchIndexAndErrorMessage> RecordErrors(GateResult verdict) =>
        [.. verdict.Violations.Take(MaxRecordErrors).Select(v => new ProduceResponse.BatchIndexAndErrorMessage { BatchIndex = v.BatchIndex, BatchIndexErrorMessage = $"{v.Rule}: {v.Reason}" })];

    /// <summary>
    /// After a batch is durable: writes its quarantine copy, once per batch, and adds its verdict to the evidence, once.
    /// An idempotent retry is answered with its original's offsets, and what the original left out of the stored
    /// batch is what must reach quarantine: the retry uses the original's verdict, not its own, which a contract
    /// changed in between may make differ (all passing now, and the original's bad records would be lost).
    /// </summary>
    private async Task SettleAsync(PartitionWork item, AcceptedBatch batch, Task<long> durable, long baseOffset, bool retried)
    {
        SourceVerdict? original = retried ? quarantine.VerdictOn(durable) : null;
        // A retry without a kept verdict: its original quarantined nothing (or its copy is written), unless the original
        // was appended before a restart, when only the retry's own verdict is left to go by.
        bool ownVerdict = !retried || ProducerStateManager.IsRestored(durable);
        IReadOnlyList<QuarantinedRecord> quarantined = original?.Quarantined ?? (ownVerdict ? batch.Quarantined : []);
        if (quarantined.Count == 0)
        {
            CountEnforcement(item, batch, baseOffset, retried);
            return;
        }

        // The write is once per source batch (keyed by its append task, which a retry shares). Evidence is counted once the
        // copy is written (a record counted as quarantined is in the quarantine topic), by the call that wrote it: the
        // original, a retry after its write failed, or a retry whose original never got to write. A retry no longer tied
        // to its original (after a restart) writes the copy again, at least once, but is not counted again.
        // Not cancellable: the source batch is durable with gaps where these records were, so a client gone (or a broker
        // stopping) now must not leave them in neither topic; only a retry of the same batch would write them later.
        ActiveContract contract = original?.Contract ?? item.Contract!;
        if (item.QuarantinedByTarget is { } quarantinedByTarget)
        {
            // Counted before the write: if it fails, the replay's answer still must not count these records as stored.
            Interlocked.Add(ref quarantinedByTarget.Value, quarantined.Count);
        }

        OnceOutcome wrote = await quarantine.WriteOnceAsync(durable, contract, item.Topic.Name, item.Topic.TopicId, item.Result.Index, quarantined, item.FromReplay, CancellationToken.None);
        if (wrote == OnceOutcome.AlreadyDone)
        {
            return;
        }

        // Written by this call: later retries have nothing left to write, so the kept verdict (and the records it holds) can go.
        quarantine.Forget(durable);
        if (!retried || original is not null)
        {
            gate.Count(item.Topic.Name, item.Result.Index, baseOffset, original?.Tally ?? batch.Verdict!.Tally);
        }
    }

    /// <summary>
    /// A gated batch's verdict joins the enforcement evidence once the batch is durable, and only the first time: an
    /// idempotent retry is answered with its original's offsets, and its records were counted with the original.
    /// </summary>
    private void CountEnforcement(PartitionWork item, AcceptedBatch batch, long baseOffset, bool retried)
    {
        if (batch.Verdict is { } verdict && !retried)
        {
            gate.Count(item.Topic.Name, item.Result.Index, baseOffset, verdict);
        }
    }

    private void SetAppendError(string topic, ProduceResponse.PartitionProduceResponse result, Exception e)
    {
        switch (e)
        {
            case StorageBackpressureException:
            case WalUnavailableException:
                // Retriable: the client backs off and retries while uploads catch up (or, for the WAL, until the broker is replaced).
                result.ErrorCode = (short)ErrorCode.KafkaStorageError;
                result.ErrorMessage = e.Message;
                _retriableRefusals.Add(topic, result.Index, ErrorCode.KafkaStorageError, e.Message);
                break;
            case StreamNotOpenException:
                result.ErrorCode = (short)ErrorCode.NotLeaderOrFollower;
                break;
            default:
                // A batch no WAL entry holds (a privacy rewrite may grow one past what the producer sent): said in the log too.
                result.ErrorCode = (short)ErrorCode.MessageTooLarge;
                result.ErrorMessage = e.Message;
                _refusals.Add(topic, result.Index, ErrorCode.MessageTooLarge, e.Message);
                break;
        }
    }

    /// <summary>Appends one partition's batches one after another, with idempotence checks and quarantine writes.</summary>
    private async Task AppendInOrderAsync(PartitionWork item, CancellationToken cancellationToken)
    {
        TopicMetadata topic = item.Topic;
        ProduceResponse.PartitionProduceResponse result = item.Result;
        ActiveContract? contract = item.Contract;
        List<AcceptedBatch> accepted = item.Accepted!;
        try
        {
            if (accepted.Find(a => a.CannotQuarantine is not null && !IsRetry(item, a)) is { CannotQuarantine: { } refusal } refused)
            {
                // Refused whole, before anything is stored, rather than stored without bad records whose copies can never be
                // written. A retry is not stored again, and what it writes to quarantine is its original's.
                if (refusal.Code == ErrorCode.InvalidRecord)
                {
                    Refuse(item, ContractGate.AsRejection(refused.Verdict!, refusal.Message)); // counted as the rejection it is
                    return;
                }

                result.ErrorCode = (short)refusal.Code;
                result.ErrorMessage = refusal.Message;
                _refusals.Add(topic.Name, result.Index, refusal.Code, refusal.Message);
                return;
            }

            if (contract is not null && accepted.Exists(a => a.Quarantined.Count > 0 && !IsRetry(item, a)))
            {
                // Before anything is stored: a quarantine topic that cannot be created fails the produce whole. A retry is
                // not stored again and needs the topic only for its original's copy, whose write makes the topic itself.
                await quarantine.EnsureTopicAsync(contract, topic.Name, cancellationToken);
            }

            for (int i = 0; i < accepted.Count; i++)
            {
                Task<long>? durable = StartAppend(item, accepted[i], cancellationToken, out bool retried);
                if (durable is null)
                {
                    return;
                }

                if (accepted[i].Rejected && !retried)
                {
                    _ = durable.Exception; // the refusal, observed: it is answered here
                    Refuse(item, accepted[i].Verdict!);
                    return;
                }

                long baseOffset = await durable;
                if (i == 0)
                {
                    result.BaseOffset = baseOffset;
                    result.LogAppendTimeMs = item.LogAppendTimeMs;
                }

                await SettleAsync(item, accepted[i], durable, baseOffset, retried);
            }
        }
        catch (Exception e) when (e is StorageBackpressureException or WalUnavailableException or StreamNotOpenException or ArgumentException)
        {
            SetAppendError(topic.Name, result, e);
        }
        catch (InvalidOperationException e)
        {
            QuarantineTopicFailed(item, e);
        }
    }

    private static bool IsRetry(PartitionWork item, AcceptedBatch batch) =>
        batch.ProducerId >= 0 && item.Producers!.IsRetry(batch.ProducerId, batch.Epoch, batch.BaseSequence, batch.LastSequence);

    /// <summary>The quarantine topic cannot be created (or made again after it was deleted): retriable for the client.</summary>
    private void QuarantineTopicFailed(PartitionWork item, InvalidOperationException e)
    {
        _retriableRefusals.Add(item.Topic.Name, item.Result.Index, ErrorCode.KafkaStorageError, e.Message);
        item.Result.ErrorCode = (short)ErrorCode.KafkaStorageError;
        item.Result.ErrorMessage = e.Message;
    }

    /// <summary>One partition of a request: where it goes, what the checks accepted, and its response entry.</summary>
    private sealed class PartitionWork(TopicMetadata topic, long streamId, ProduceResponse.PartitionProduceResponse result, ActiveContract? contract)
    {
        public TopicMetadata Topic { get; } = topic;

        public long StreamId { get; } = streamId;

        public ProduceResponse.PartitionProduceResponse Result { get; } = result;

        public ActiveContract? Contract { get; } = contract;

        /// <summary>Written by the broker's quarantine replay (<see cref="RequestContext.FromReplay"/>).</summary>
        public bool FromReplay { get; init; }

        /// <summary>The replay's count of records this batch's contract quarantined (<see cref="RequestContext.QuarantinedByTarget"/>).</summary>
        public StrongBox<long>? QuarantinedByTarget { get; init; }

        /// <summary>Bytes the request's checked gated partitions hold (one counter per request); null on a topic without a contract.</summary>
        public StrongBox<long>? GatedBytesHeld { get; init; }

        /// <summary>Batches to append, in order; null when the checks refused the partition.</summary>
        public List<AcceptedBatch>? Accepted { get; set; }

        /// <summary>Size of the partition's records in the request, taken while the request's buffer is still ours.</summary>
        public long RecordBytes { get; set; }

        /// <summary>The broker's time the batch was stamped with on a LogAppendTime topic, else -1 (the response's log_append_time_ms).</summary>
        public long LogAppendTimeMs { get; set; } = -1;

        /// <summary>The topic stamps batches with the broker's time (message.timestamp.type=LogAppendTime), which <see cref="StartAppend(PartitionWork, AcceptedBatch, CancellationToken, out bool)"/> does.</summary>
        public bool StampsLogAppendTime { get; set; }

        /// <summary>The partition's idempotent producers; set when a batch has a producer id.</summary>
        public ProducerStateManager.PartitionProducers? Producers { get; set; }
    }

    /// <param name="Verdict">The contract gate's verdict on the batch, counted as evidence once the batch is durable; null on a topic without a contract.</param>
    /// <param name="CannotQuarantine">Why the batch's bad records cannot be quarantined (the quarantine topic's name is invalid, or a copy would not fit one WAL entry), and the error answered; else null.</param>
    /// <param name="Rejected">The contract rejects the batch (<see cref="Verdict"/> says why): only a retry of a stored batch is answered, with its offsets.</param>
    private readonly record struct AcceptedBatch(byte[] Bytes, long ProducerId, short Epoch, int BaseSequence, int LastSequence, IReadOnlyList<QuarantinedRecord> Quarantined, GateResult? Verdict, (ErrorCode Code, string Message)? CannotQuarantine = null, bool Rejected = false);

    /// <summary>Thrown into a rejected batch's append task when its producer's state finds it new: it is refused, not stored.</summary>
    private sealed class RejectedByContractException() : Exception("The contract in force rejects the batch.");

    // Refusals come in storms (every producer retrying every partition while uploads catch up; a producer that keeps
    // sending malformed or oversized batches): a line per window, retriable and other refusals apart.
    private readonly RefusalLog _retriableRefusals = new(logger, retriable: true);
    private readonly RefusalLog _refusals = new(logger, retriable: false);

    /// <summary>Stops a pending refusal summary from firing after the host (and its logging) has gone.</summary>
    public void Dispose()
    {
        _retriableRefusals.Dispose();
        _refusals.Dispose();
    }


    [LoggerMessage(Level = LogLevel.Error, Message = "Contract gate failed on a batch for {Topic}-{Partition}")]
    private static partial void LogGateFailed(ILogger logger, Exception error, string topic, int partition);

    [LoggerMessage(Level = LogLevel.Error, Message = "Producer state of {Topic}-{Partition} could not be loaded")]
    private static partial void LogProducerStateFailed(ILogger logger, Exception error, string topic, int partition);
}
