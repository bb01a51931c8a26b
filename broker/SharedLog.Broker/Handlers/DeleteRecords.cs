// DeleteRecords, versions 0-2. Raises the partition's log start offset (-1 means the high watermark);
// records below it are no longer served and their objects are removed by cleanup once no live range
// remains in them. An offset above the high watermark gets OFFSET_OUT_OF_RANGE; a topic whose cleanup.policy
// does not include delete (compact only) gets POLICY_VIOLATION, as in Kafka.
using SharedLog.Broker.Cluster;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.Streams;

namespace SharedLog.Broker.Handlers;

public sealed partial class DeleteRecordsHandler(TopicService topics, StreamStore streams, ILogger<DeleteRecordsHandler> logger) : IApiHandler
{
    public ApiKey Api => ApiKey.DeleteRecords;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.DeleteRecords);

    public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (DeleteRecordsRequest)request;
        var response = new DeleteRecordsResponse();
        foreach (DeleteRecordsRequest.DeleteRecordsTopic topic in body.Topics)
        {
            var topicResult = new DeleteRecordsResponse.DeleteRecordsTopicResult { Name = topic.Name };
            response.Topics.Add(topicResult);
            foreach (DeleteRecordsRequest.DeleteRecordsPartition partition in topic.Partitions)
            {
                var result = new DeleteRecordsResponse.DeleteRecordsPartitionResult { PartitionIndex = partition.PartitionIndex, LowWatermark = -1 };
                topicResult.Partitions.Add(result);
                if (topics.FindStream(topic.Name, partition.PartitionIndex) is not { } stream)
                {
                    result.ErrorCode = (short)ErrorCode.UnknownTopicOrPartition;
                    continue;
                }

                if (SharedLog.Contracts.InternalTopics.IsInternal(topic.Name))
                {
                    // Records deleted from a journal would be missing from the registry or contract store after a restart.
                    result.ErrorCode = (short)ErrorCode.PolicyViolation;
                    continue;
                }

                if (topics.Find(topic.Name) is { DeletesRecords: false })
                {
                    // A compact-only topic promises to keep every key's last record; Kafka refuses the same way.
                    LogCompactOnly(logger, topic.Name, partition.PartitionIndex);
                    result.ErrorCode = (short)ErrorCode.PolicyViolation;
                    continue;
                }

                if (partition.Offset < -1)
                {
                    result.ErrorCode = (short)ErrorCode.OffsetOutOfRange; // as Kafka: -1 (the high watermark) is the only negative offset
                    continue;
                }

                try
                {
                    long offset = partition.Offset == -1 ? stream.HighWatermark : partition.Offset;
                    result.LowWatermark = await streams.AdvanceLogStartAsync(stream.StreamId, offset, cancellationToken);
                }
                catch (OffsetOutOfRangeException)
                {
                    result.ErrorCode = (short)ErrorCode.OffsetOutOfRange;
                }
                catch (FencedException)
                {
                    result.ErrorCode = (short)ErrorCode.NotLeaderOrFollower;
                }
                catch (Exception e) when (e is UnknownStreamException or StreamNotOpenException)
                {
                    // The topic was deleted while this request ran.
                    result.ErrorCode = (short)ErrorCode.UnknownTopicOrPartition;
                }
            }
        }

        return response;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "DeleteRecords refused on {Topic}-{Partition}: its cleanup.policy does not include delete (POLICY_VIOLATION)")]
    private static partial void LogCompactOnly(ILogger logger, string topic, int partition);
}
