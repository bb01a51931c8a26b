// DescribeProducers, version 0 (KIP-664): the idempotent producers that wrote to each partition since
// this broker started, with epoch and last sequence. No transactions are served, so no producer has an
// open transaction (CurrentTxnStartOffset -1).
using SharedLog.Broker.Cluster;
using SharedLog.Broker.Coordinators;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.Streams;

namespace SharedLog.Broker.Handlers;

public sealed class DescribeProducersHandler(TopicService topics, ProducerStateManager producers) : IApiHandler
{
    public ApiKey Api => ApiKey.DescribeProducers;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.DescribeProducers);

    public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (DescribeProducersRequest)request;
        var response = new DescribeProducersResponse();
        foreach (DescribeProducersRequest.TopicRequest topic in body.Topics)
        {
            var topicResponse = new DescribeProducersResponse.TopicResponse { Name = topic.Name };
            response.Topics.Add(topicResponse);
            foreach (int index in topic.PartitionIndexes)
            {
                var result = new DescribeProducersResponse.PartitionResponse { PartitionIndex = index };
                topicResponse.Partitions.Add(result);
                PartitionMetadata? partition = topics.FindPartition(topic.Name, index);
                if (partition is null)
                {
                    result.ErrorCode = (short)ErrorCode.UnknownTopicOrPartition;
                    continue;
                }

                ProducerStateManager.PartitionProducers state;
                try
                {
                    state = await producers.ForAsync(partition.StreamId, cancellationToken);
                }
                catch (StreamNotOpenException e)
                {
                    result.ErrorCode = (short)ErrorCode.NotLeaderOrFollower;
                    result.ErrorMessage = e.Message;
                    continue;
                }

                foreach ((long id, short epoch, int lastSequence, long lastTimestamp) in state.Snapshot())
                {
                    result.ActiveProducers.Add(new DescribeProducersResponse.ProducerState
                    {
                        ProducerId = id,
                        ProducerEpoch = epoch,
                        LastSequence = lastSequence,
                        LastTimestamp = lastTimestamp,
                        CoordinatorEpoch = -1,
                        CurrentTxnStartOffset = -1,
                    });
                }
            }
        }

        return response;
    }
}
