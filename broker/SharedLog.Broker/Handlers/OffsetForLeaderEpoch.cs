// OffsetForLeaderEpoch, versions 2-4 (KIP-101/320): consumers validate their position after a leader
// change. Each partition has had a single leader lineage here, so the end offset of any epoch up to
// the current one is the high watermark; an epoch newer than the current one is UNKNOWN_LEADER_EPOCH,
// an older CurrentLeaderEpoch FENCED_LEADER_EPOCH.
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

                if (partition.CurrentLeaderEpoch >= 0 && partition.CurrentLeaderEpoch < stream.LeaderEpoch)
                {
                    result.ErrorCode = (short)ErrorCode.FencedLeaderEpoch;
                }
                else if (partition.CurrentLeaderEpoch > stream.LeaderEpoch || partition.LeaderEpoch > stream.LeaderEpoch)
                {
                    result.ErrorCode = (short)ErrorCode.UnknownLeaderEpoch;
                }
                else
                {
                    result.LeaderEpoch = partition.LeaderEpoch < 0 ? stream.LeaderEpoch : partition.LeaderEpoch;
                    result.EndOffset = stream.HighWatermark;
                }
            }
        }

        return ValueTask.FromResult<IApiMessage?>(response);
    }
}
