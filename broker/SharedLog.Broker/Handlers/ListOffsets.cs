// ListOffsets, versions 1-10. Timestamp -2 answers the log start offset, -1 the high watermark (the
// last stable offset is the same while transactions are not served), -3 (v7+, KIP-734) the offset of
// the record with the largest timestamp, -4 (v8+, KIP-405 earliest local) the log start offset, -5
// (v9+, KIP-1005 latest tiered) -1 (and epoch -1) as Kafka answers without remote storage, and any other timestamp
// the first offset whose record timestamp is at or after it (or -1 when there is none). Earliest and latest
// report the partition's current leader epoch; a record found by time, the epoch its batch was written in.
using SharedLog.Broker.Cluster;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.ObjectStore;
using SharedLog.Storage.Streams;

namespace SharedLog.Broker.Handlers;

public sealed partial class ListOffsetsHandler(TopicService topics, StreamStore streams, ILogger<ListOffsetsHandler> logger) : IApiHandler
{
    public const long Latest = -1;
    public const long Earliest = -2;
    public const long MaxTimestamp = -3;
    public const long EarliestLocal = -4;
    public const long LatestTiered = -5;

    public ApiKey Api => ApiKey.ListOffsets;

    public short MinVersion => 1;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.ListOffsets);

    /// <summary>The partitions a request names more than once (empty for any request a client normally sends).</summary>
    private static HashSet<(string Topic, int Partition)> Duplicates(ListOffsetsRequest body)
    {
        var seen = new HashSet<(string, int)>();
        var twice = new HashSet<(string, int)>();
        foreach (ListOffsetsRequest.ListOffsetsTopic topic in body.Topics)
        {
            foreach (ListOffsetsRequest.ListOffsetsPartition partition in topic.Partitions)
            {
                if (!seen.Add((topic.Name, partition.PartitionIndex)))
                {
                    twice.Add((topic.Name, partition.PartitionIndex));
                }
            }
        }

        return twice;
    }

    public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (ListOffsetsRequest)request;
        var response = new ListOffsetsResponse();
        HashSet<(string Topic, int Partition)> named = Duplicates(body);
        foreach (ListOffsetsRequest.ListOffsetsTopic topic in body.Topics)
        {
            var topicResponse = new ListOffsetsResponse.ListOffsetsTopicResponse { Name = topic.Name };
            response.Topics.Add(topicResponse);
            foreach (ListOffsetsRequest.ListOffsetsPartition partition in topic.Partitions)
            {
                var result = new ListOffsetsResponse.ListOffsetsPartitionResponse { PartitionIndex = partition.PartitionIndex, Timestamp = -1, Offset = -1 };
                topicResponse.Partitions.Add(result);
                if (named.Contains((topic.Name, partition.PartitionIndex)))
                {
                    // As Kafka: a partition named twice in one request is answered INVALID_REQUEST each time.
                    result.ErrorCode = (short)ErrorCode.InvalidRequest;
                    continue;
                }

                if (topics.FindStream(topic.Name, partition.PartitionIndex) is not { } stream)
                {
                    result.ErrorCode = (short)ErrorCode.UnknownTopicOrPartition;
                    continue;
                }

                if (OffsetForLeaderEpochHandler.CurrentEpochError(partition.CurrentLeaderEpoch, stream.LeaderEpoch) is var fenced and not ErrorCode.None)
                {
                    result.ErrorCode = (short)fenced;
                    continue;
                }

                result.LeaderEpoch = stream.LeaderEpoch;
                switch (partition.Timestamp)
                {
                    case Earliest or EarliestLocal:
                        result.Offset = stream.LogStartOffset;
                        break;
                    case LatestTiered:
                        // Nothing is tiered in Kafka's sense (remote.storage.enable is false): offset, timestamp and epoch -1.
                        result.LeaderEpoch = -1;
                        break;
                    case Latest:
                        result.Offset = stream.HighWatermark;
                        break;
                    default:
                        try
                        {
                            // As Kafka: the epoch of the batch the record was found in, or -1 with no record found.
                            TimestampMatch found = await streams.FindByTimestampAsync(stream.StreamId, partition.Timestamp, cancellationToken);
                            result.Offset = found.Offset;
                            result.Timestamp = found.Timestamp;
                            result.LeaderEpoch = found.LeaderEpoch;
                        }
                        catch (Exception e) when (StorageReadFailure.Is(e))
                        {
                            // As Fetch answers it: the partition's storage error, not a closed connection.
                            LogSearchFailed(logger, topic.Name, partition.PartitionIndex, partition.Timestamp, e.Message);
                            result.ErrorCode = (short)ErrorCode.KafkaStorageError;
                        }
                        catch (StreamNotOpenException)
                        {
                            result.ErrorCode = (short)ErrorCode.NotLeaderOrFollower; // deleted or moved meanwhile
                        }

                        break;
                }
            }
        }

        return response;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "ListOffsets of {Topic}-{Partition} by timestamp {Timestamp} answered KAFKA_STORAGE_ERROR: {Reason}")]
    private static partial void LogSearchFailed(ILogger logger, string topic, int partition, long timestamp, string reason);
}
