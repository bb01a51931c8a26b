// OffsetForLeaderEpoch, versions 2-4 (KIP-101/320): consumers validate their position after a leader
// change. A partition's epoch grows each time a broker takes it, but its log is never truncated (a new leader
// continues from the committed end), so any epoch up to the current one is answered with the high watermark.
// Kafka answers an earlier epoch with the next epoch's start offset; a consumer reads either the same way (no
// truncation unless it is below its position), and no earlier epoch here ends below a consumer's position.
// As Kafka: a CurrentLeaderEpoch newer than the broker's is UNKNOWN_LEADER_EPOCH (the client knows a leader
// this broker does not yet), an older one FENCED_LEADER_EPOCH;
// an asked-for epoch newer than any this partition had is answered with epoch and offset -1 and no error, from
// which a consumer learns its position is not in this log (for example the topic was re-created) and resets it.
using SharedLog.Broker.Cluster;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.Streams;

namespace SharedLog.Broker.Handlers;

public sealed class OffsetForLeaderEpochHandler(TopicService topics) : IApiHandler
{
    public ApiKey Api => ApiKey.OffsetForLeaderEpoch;

    public short MinVersion => 2;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.OffsetForLeaderEpoch);

    public ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (OffsetForLeaderEpochRequest)request;
        var response = new OffsetForLeaderEpochResponse();
        foreach (OffsetForLeaderEpochRequest.OffsetForLeaderTopic topic in body.Topics)
        {
            var topicResult = new OffsetForLeaderEpochResponse.OffsetForLeaderTopicResult { Topic = topic.Topic };
            response.Topics.Add(topicResult);
            foreach (OffsetForLeaderEpochRequest.OffsetForLeaderPartition partition in topic.Partitions)
            {
                var result = new OffsetForLeaderEpochResponse.EpochEndOffset { Partition = partition.Partition, LeaderEpoch = -1, EndOffset = -1 };
                topicResult.Partitions.Add(result);
                if (topics.FindStream(topic.Topic, partition.Partition) is not { } stream)
                {
                    result.ErrorCode = (short)ErrorCode.UnknownTopicOrPartition;
                    continue;
                }

                if (CurrentEpochError(partition.CurrentLeaderEpoch, stream.LeaderEpoch) is var fenced and not ErrorCode.None)
                {
                    result.ErrorCode = (short)fenced;
                }
                else if (partition.LeaderEpoch >= 0 && partition.LeaderEpoch <= stream.LeaderEpoch)
                {
                    result.LeaderEpoch = partition.LeaderEpoch;
                    result.EndOffset = stream.HighWatermark;
                }

                // Else the undefined epoch (-1) or one past this partition's latest: Kafka's leader epoch cache has no
                // end offset for either and answers -1, -1.
            }
        }

        return ValueTask.FromResult<IApiMessage?>(response);
    }

    /// <summary>
    /// KIP-320's check of the leader epoch a client believes current (Fetch, ListOffsets, OffsetForLeaderEpoch), as
    /// Kafka's partition makes it: an older one is FENCED_LEADER_EPOCH (the client's metadata is stale), a newer one
    /// UNKNOWN_LEADER_EPOCH; -1 means the client does not say.
    /// </summary>
    public static ErrorCode CurrentEpochError(int requested, int current) =>
        requested < 0 ? ErrorCode.None
        : requested < current ? ErrorCode.FencedLeaderEpoch
        : requested > current ? ErrorCode.UnknownLeaderEpoch
        : ErrorCode.None;
}
