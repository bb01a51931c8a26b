// OffsetDelete, version 0 (KIP-496): removes committed offsets of partitions the group no longer
// consumes. As Kafka: an empty group loses any offsets asked for; a consumer group with members keeps
// those of topics a member subscribes to (GROUP_SUBSCRIBED_TO_TOPIC); a group of another protocol with
// members refuses the whole request (NON_EMPTY_GROUP); partitions that do not exist get
// UNKNOWN_TOPIC_OR_PARTITION, and the empty group id INVALID_GROUP_ID.
using SharedLog.Broker.Cluster;
using SharedLog.Broker.Coordinators;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Storage.Metadata;

namespace SharedLog.Broker.Handlers;

public sealed class OffsetDeleteHandler(GroupCoordinator groups, IMetadataStore metadata, GroupLagTracker lag, TopicService topics) : IApiHandler
{
    public ApiKey Api => ApiKey.OffsetDelete;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.OffsetDelete);

    public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (OffsetDeleteRequest)request;
        var response = new OffsetDeleteResponse();
        if (string.IsNullOrEmpty(body.GroupId))
        {
            // As Kafka: unlike commits and fetches, deleting offsets needs a named group.
            response.ErrorCode = (short)ErrorCode.InvalidGroupId;
            return response;
        }

        IReadOnlyList<GroupOffset> committed = await metadata.FetchGroupOffsetsAsync(body.GroupId, cancellationToken);
        if (committed.Count == 0 && groups.Find(body.GroupId) is null)
        {
            response.ErrorCode = (short)ErrorCode.GroupIdNotFound;
            return response;
        }

        HashSet<string>? subscribed = groups.Find(body.GroupId) is { } group ? group.SubscribedTopics() : [];
        if (subscribed is null)
        {
            response.ErrorCode = (short)ErrorCode.NonEmptyGroup;
            return response;
        }

        var deleted = new HashSet<(string, int)>(); // a partition named many times is deleted once
        foreach (OffsetDeleteRequest.OffsetDeleteRequestTopic topic in body.Topics)
        {
            var topicResponse = new OffsetDeleteResponse.OffsetDeleteResponseTopic { Name = topic.Name };
            response.Topics.Add(topicResponse);
            foreach (OffsetDeleteRequest.OffsetDeleteRequestPartition partition in topic.Partitions)
            {
                ErrorCode error = topics.FindPartition(topic.Name, partition.PartitionIndex) is null ? ErrorCode.UnknownTopicOrPartition
                    : subscribed.Contains(topic.Name) ? ErrorCode.GroupSubscribedToTopic
                    : ErrorCode.None;
                if (error == ErrorCode.None)
                {
                    deleted.Add((topic.Name, partition.PartitionIndex));
                }

                topicResponse.Partitions.Add(new OffsetDeleteResponse.OffsetDeleteResponsePartition { PartitionIndex = partition.PartitionIndex, ErrorCode = (short)error });
            }
        }

        if (deleted.Count > 0)
        {
            List<(string, int)> partitions = [.. deleted];
            await metadata.DeleteGroupOffsetsAsync(body.GroupId, partitions, cancellationToken);
            lag.Deleted(body.GroupId, partitions);
        }

        return response;
    }
}
