// Fetch, versions 4-17. Reads whole batches from the stream store: the log cache for tailing
// consumers, objects (block cache, ranged GETs) for those behind. Limits follow KIP-74: the response
// stops at MaxBytes (at most the broker's fetch.max.bytes, KIP-541) and each partition at PartitionMaxBytes, except that the first batch found is
// always returned whole so a consumer can make progress. When less than MinBytes is available the
// request waits up to MaxWaitMs and is woken by the appends that bring data, not by its timeout; an
// error reading a partition (OFFSET_OUT_OF_RANGE, FENCED_LEADER_EPOCH, ...) is answered at once, as Kafka does,
// and unknown topics or partitions wait with the rest (Kafka answers them beside the others' data), unless
// a partition the poll waits on goes away during the wait (its topic deleted), which answers at once.
// current_leader_epoch is checked as KIP-320 says (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH).
// v13+ names topics by id (KIP-516). Fetch sessions (KIP-227): epoch 0 opens a session, later
// requests carry only changed and forgotten partitions and get only partitions with news; unknown
// sessions get FETCH_SESSION_ID_NOT_FOUND, wrong epochs INVALID_FETCH_SESSION_EPOCH.
using System.Buffers;
using SharedLog.Broker.Cluster;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Protocol.Records;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.ObjectStore;
using SharedLog.Storage.Streams;

namespace SharedLog.Broker.Handlers;

public sealed partial class FetchHandler(TopicService topics, StreamStore streams, Coordinators.FetchSessionCache sessions, Http.BrokerMetrics metrics, Microsoft.Extensions.Options.IOptions<BrokerOptions> options, ILogger<FetchHandler> logger) : IApiHandler
{
    public ApiKey Api => ApiKey.Fetch;

    public short MinVersion => 4;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.Fetch);

    public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var original = (FetchRequest)request;
        (Coordinators.FetchSession? session, bool incremental, ErrorCode sessionError) = context.Version >= 7
            ? sessions.Resolve(original, context.Version)
            : (null, false, ErrorCode.None);
        if (sessionError != ErrorCode.None)
        {
            return new FetchResponse { ErrorCode = (short)sessionError, SessionId = 0 };
        }

        FetchRequest body = session?.Expand(original) ?? original;
        FetchResponse response = await FetchAsync(body, context.Version, cancellationToken);
        if (session is not null)
        {
            response.SessionId = session.Id;
            if (incremental)
            {
                session.Trim(response, context.Version);
            }

            session.Remember(response, context.Version);
        }

        CountSent(response);
        return response;
    }

    /// <summary>
    /// Bytes out per topic and partition error codes, counted once for the response that is sent: the long poll reads the
    /// partitions again after each wake-up, and an incremental session leaves some out.
    /// </summary>
    private void CountSent(FetchResponse response)
    {
        foreach (FetchResponse.FetchableTopicResponse topic in response.Responses)
        {
            long bytes = 0;
            foreach (FetchResponse.PartitionData partition in topic.Partitions)
            {
                bytes += partition.Records?.Length ?? 0;
                metrics.PartitionError(ApiKey.Fetch, (ErrorCode)partition.ErrorCode);
            }

            if (bytes > 0)
            {
                metrics.BytesOut(topic.Topic, bytes);
            }
        }
    }

    private async Task<FetchResponse> FetchAsync(FetchRequest body, short version, CancellationToken cancellationToken)
    {
        List<(StreamLog Stream, long Offset)> positions = [.. Positions(body, version)];
        long[] seen = HighWatermarks(positions);
        (FetchResponse response, bool cutShort) = await ReadAllAsync(body, version, cancellationToken);
        long deadline = Environment.TickCount64 + body.MaxWaitMs;

        // Long poll, as Kafka's: until min_bytes are there or max_wait_ms passes; a partition error, no partition to
        // wait on, or min_bytes 0 answers at once. So does a read that a limit cut short (a partition's max bytes, the
        // response's, one read's share of objects): more data is there, which waiting would not bring into this
        // response, as Kafka's delayed fetch counts what is there up to each partition's limit, not what one read took.
        int minBytes = (int)Math.Min(body.MinBytes, MaxBytes(body));
        while (positions.Count > 0 && !cutShort && TotalBytes(response) < minBytes && !HasPartitionError(response) && AllStillOpen(positions))
        {
            long remaining = deadline - Environment.TickCount64;
            if (remaining <= 0)
            {
                break;
            }

            // Wakes when any requested partition's high watermark moves past where it stood before the last read (an
            // append between that read and now wakes it at once), or at the deadline.
            using var waiting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var waits = new List<Task>(positions.Count + 1) { Task.Delay(TimeSpan.FromMilliseconds(remaining), waiting.Token) };
            for (int i = 0; i < positions.Count; i++)
            {
                waits.Add(positions[i].Stream.WaitForDataAsync(Math.Max(positions[i].Offset, seen[i]), waiting.Token));
            }

            await Task.WhenAny(waits);
            await waiting.CancelAsync();
            cancellationToken.ThrowIfCancellationRequested();
            seen = HighWatermarks(positions);
            (response, cutShort) = await ReadAllAsync(body, version, cancellationToken);
        }

        return response;
    }

    /// <summary>
    /// The response's byte limit: the request's, capped by the broker's <c>fetch.max.bytes</c> as in Kafka (KIP-541). A
    /// limit of 0 (or less) leaves room for the one batch a fetch always returns whole, as Kafka's does, not for everything.
    /// </summary>
    private long MaxBytes(FetchRequest body) => Math.Min(Math.Max(body.MaxBytes, 0), options.Value.FetchMaxBytes);

    private static long[] HighWatermarks(List<(StreamLog Stream, long Offset)> positions)
    {
        long[] marks = new long[positions.Count];
        for (int i = 0; i < marks.Length; i++)
        {
            marks[i] = positions[i].Stream.HighWatermark;
        }

        return marks;
    }

    /// <summary>
    /// False once a partition the poll waits on has gone (its topic deleted meanwhile): as Kafka's delayed fetch, which
    /// completes when the broker no longer knows a partition it fetches, rather than wake at once again and again.
    /// </summary>
    private bool AllStillOpen(List<(StreamLog Stream, long Offset)> positions)
    {
        foreach ((StreamLog stream, _) in positions)
        {
            if (!streams.IsOpen(stream.StreamId))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// An error from reading a partition (out of range, fenced epoch, storage) answers the fetch at once. Unknown topics
    /// and partitions do not: as Kafka sets them aside before the read and answers them with the others when the wait
    /// ends, so a consumer still naming a deleted topic does not turn its long polls into a busy loop.
    /// </summary>
    private static bool HasPartitionError(FetchResponse response)
    {
        foreach (FetchResponse.FetchableTopicResponse topic in response.Responses)
        {
            foreach (FetchResponse.PartitionData partition in topic.Partitions)
            {
                if (partition.ErrorCode is not 0 and not (short)ErrorCode.UnknownTopicOrPartition and not (short)ErrorCode.UnknownTopicId)
                {
                    return true;
                }
            }
        }

        return false;
    }

    /// <summary>
    /// The bytes the long poll weighs against min_bytes: those of partitions whose read holds a record. A read of only
    /// record-less batches (a quarantine left every record of them out) is answered when the wait ends, not at once:
    /// sarama and kafkajs fetch the same offset again after such a batch, which without the wait was thousands of fetches
    /// a second at a trailing gap. librdkafka still gets the batches, and with them the partition's end, at the deadline.
    /// </summary>
    private static long TotalBytes(FetchResponse response)
    {
        long total = 0;
        foreach (FetchResponse.FetchableTopicResponse topic in response.Responses)
        {
            foreach (FetchResponse.PartitionData partition in topic.Partitions)
            {
                if (partition.Records is { } records && HoldsARecord(records))
                {
                    total += records.Length;
                }
            }
        }

        return total;
    }

    /// <summary>Whether <paramref name="records"/> hold a batch with records, or anything not read as a v2 batch header.</summary>
    internal static bool HoldsARecord(ReadOnlySequence<byte> records)
    {
        var reader = new SequenceReader<byte>(records);
        Span<byte> header = stackalloc byte[RecordBatch.HeaderSize];
        while (!reader.End)
        {
            // A partial batch (cut at a size limit), another format or a record count: data all the same.
            if (!reader.TryCopyTo(header) || !RecordBatch.TryReadSizes(header, out int batchLength, out int recordCount) || recordCount != 0
                || batchLength < RecordBatch.HeaderSize - RecordBatch.LogOverhead || reader.Remaining < RecordBatch.LogOverhead + (long)batchLength)
            {
                return true;
            }

            reader.Advance(RecordBatch.LogOverhead + (long)batchLength);
        }

        return false;
    }

    private IEnumerable<(StreamLog Stream, long Offset)> Positions(FetchRequest body, short version)
    {
        foreach (FetchRequest.FetchTopic topic in body.Topics)
        {
            TopicMetadata? found = version >= 13 ? topics.Find(topic.TopicId) : topics.Find(topic.Topic);
            if (found is null)
            {
                continue;
            }

            foreach (FetchRequest.FetchPartition partition in topic.Partitions)
            {
                // TryGet, not IsOpen then Get: the stream may close between the two (its topic deleted).
                if (partition.Partition >= 0 && partition.Partition < found.Partitions.Count && streams.TryGet(found.Partitions[partition.Partition].StreamId, out StreamLog? stream))
                {
                    yield return (stream, partition.FetchOffset);
                }
            }
        }
    }

    /// <summary>Reads every requested partition; <c>CutShort</c> when a partition has data past what its read returned.</summary>
    private async Task<(FetchResponse Response, bool CutShort)> ReadAllAsync(FetchRequest body, short version, CancellationToken cancellationToken)
    {
        var response = new FetchResponse { SessionId = 0 };
        long budget = MaxBytes(body);
        bool anyData = false;
        bool cutShort = false;
        foreach (FetchRequest.FetchTopic topic in body.Topics)
        {
            TopicMetadata? found = version >= 13 ? topics.Find(topic.TopicId) : topics.Find(topic.Topic);
            var topicResponse = new FetchResponse.FetchableTopicResponse { Topic = found?.Name ?? topic.Topic, TopicId = topic.TopicId };
            response.Responses.Add(topicResponse);
            foreach (FetchRequest.FetchPartition partition in topic.Partitions)
            {
                var result = new FetchResponse.PartitionData
                {
                    PartitionIndex = partition.Partition,
                    HighWatermark = -1,
                    LastStableOffset = -1,
                    LogStartOffset = -1,
                    Records = ReadOnlySequence<byte>.Empty,
                };
                topicResponse.Partitions.Add(result);
                if (found is null || partition.Partition < 0 || partition.Partition >= found.Partitions.Count)
                {
                    result.ErrorCode = (short)(version >= 13 && found is null ? ErrorCode.UnknownTopicId : ErrorCode.UnknownTopicOrPartition);
                    continue;
                }

                long streamId = found.Partitions[partition.Partition].StreamId;
                // As Kafka: only the first partition that returns data may go past the limits with one whole batch
                // (so a consumer always makes progress); the rest stop at them, and still get offset errors.
                int limit = (int)Math.Clamp(Math.Min(partition.PartitionMaxBytes, budget), 0, int.MaxValue);
                try
                {
                    if (OffsetForLeaderEpochHandler.CurrentEpochError(partition.CurrentLeaderEpoch, streams.Get(streamId).LeaderEpoch) is var fenced and not ErrorCode.None)
                    {
                        result.ErrorCode = (short)fenced;
                        continue;
                    }

                    StreamReadResult read = await streams.ReadAsync(streamId, partition.FetchOffset, limit, firstBatchWhole: !anyData, cancellationToken);
                    result.HighWatermark = read.HighWatermark;
                    result.LastStableOffset = read.HighWatermark;
                    result.LogStartOffset = read.LogStartOffset;
                    result.AbortedTransactions = body.IsolationLevel == 1 ? [] : null;
                    result.Records = MemorySequence.Join(read.Batches);
                    long bytes = result.Records.Value.Length;
                    budget -= bytes;
                    anyData |= bytes > 0;
                    cutShort |= read.NextOffset(partition.FetchOffset) < read.HighWatermark;
                }
                catch (OffsetOutOfRangeException e)
                {
                    result.ErrorCode = (short)ErrorCode.OffsetOutOfRange;
                    result.HighWatermark = result.LastStableOffset = e.HighWatermark;
                    result.LogStartOffset = e.LogStartOffset;
                }
                catch (StreamNotOpenException)
                {
                    result.ErrorCode = (short)ErrorCode.NotLeaderOrFollower;
                }
                catch (Exception e) when (StorageReadFailure.Is(e))
                {
                    // The partition's error, not the connection's: the other partitions are answered, and the client
                    // retries this one (the store briefly out of reach) or keeps reporting it (stored data damaged).
                    // As Kafka, fetchers older than v6 may not know KAFKA_STORAGE_ERROR and get the retriable
                    // NOT_LEADER_OR_FOLLOWER.
                    ErrorCode error = version >= 6 ? ErrorCode.KafkaStorageError : ErrorCode.NotLeaderOrFollower;
                    LogReadFailed(logger, found.Name, partition.Partition, partition.FetchOffset, error, e.Message);
                    result.ErrorCode = (short)error;
                }
            }
        }

        return (response, cutShort);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Fetch from {Topic}-{Partition} at offset {Offset} answered {Error}: {Reason}")]
    private static partial void LogReadFailed(ILogger logger, string topic, int partition, long offset, ErrorCode error, string reason);
}
