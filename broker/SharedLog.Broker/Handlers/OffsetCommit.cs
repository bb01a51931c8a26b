// OffsetCommit, versions 0-9 (0-1 are deprecated in the spec but still sent by older clients, such as sarama
// before 1.27 by default). Offsets are stored in the metadata store, so they survive broker
// restarts and replacement. Group members are checked (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION,
// REBALANCE_IN_PROGRESS; a generation for a group without members but with committed offsets is
// UNKNOWN_MEMBER_ID, for one that does not exist GROUP_ID_NOT_FOUND from v9, ILLEGAL_GENERATION before);
// generation -1 without a member id is a standalone commit (as every v0 commit is). A v1 partition may name its
// commit time; -1 means now. Unknown partitions get
// UNKNOWN_TOPIC_OR_PARTITION; metadata over 4 KiB gets OFFSET_METADATA_TOO_LARGE.
using SharedLog.Broker.Cluster;
using SharedLog.Broker.Coordinators;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Storage.Metadata;

namespace SharedLog.Broker.Handlers;

public sealed class OffsetCommitHandler(GroupCoordinator groups, TopicService topics, IMetadataStore metadata, GroupLagTracker lag) : IApiHandler
{
    private const int MaxMetadataLength = 4096;

    public ApiKey Api => ApiKey.OffsetCommit;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.OffsetCommit);

    public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (OffsetCommitRequest)request;
        // As Kafka, the empty group id is a group for offsets (clients that commit without one); the spec makes the id non-null.
        ErrorCode groupError = groups.ValidateCommit(body.GroupId, body.GenerationIdOrMemberEpoch, body.MemberId, body.GroupInstanceId);
        if (groupError == ErrorCode.GroupIdNotFound)
        {
            groupError = await UnknownGroupErrorAsync(body.GroupId, context.Version, cancellationToken);
        }

        var response = new OffsetCommitResponse();
        var accepted = new List<GroupOffset>();
        DateTimeOffset now = DateTimeOffset.UtcNow;
        // v2-4 may ask for the offsets' own retention (-1: the broker's offsets.retention.minutes), as Kafka keeps it.
        DateTimeOffset? expireTime = body.RetentionTimeMs == -1 ? null : ExpireTime(now, body.RetentionTimeMs);
        foreach (OffsetCommitRequest.OffsetCommitRequestTopic topic in body.Topics)
        {
            var topicResponse = new OffsetCommitResponse.OffsetCommitResponseTopic { Name = topic.Name };
            response.Topics.Add(topicResponse);
            foreach (OffsetCommitRequest.OffsetCommitRequestPartition partition in topic.Partitions)
            {
                // As Kafka: unknown partitions are answered before the group is asked about the rest.
                ErrorCode error = topics.FindPartition(topic.Name, partition.PartitionIndex) is null ? ErrorCode.UnknownTopicOrPartition : groupError;
                if (error == ErrorCode.None && partition.CommittedMetadata is { Length: > MaxMetadataLength })
                {
                    error = ErrorCode.OffsetMetadataTooLarge;
                }

                if (error == ErrorCode.None)
                {
                    accepted.Add(new GroupOffset(topic.Name, partition.PartitionIndex, partition.CommittedOffset, partition.CommittedLeaderEpoch, partition.CommittedMetadata, CommitTime(now, partition.CommitTimestamp), expireTime));
                }

                topicResponse.Partitions.Add(new OffsetCommitResponse.OffsetCommitResponsePartition { PartitionIndex = partition.PartitionIndex, ErrorCode = (short)error });
            }
        }

        if (accepted.Count > 0)
        {
            await metadata.CommitGroupOffsetsAsync(body.GroupId, accepted, cancellationToken);
            lag.Committed(body.GroupId, accepted);
        }

        return response;
    }

    /// <summary>
    /// A commit with a generation for a group the coordinator holds no members of. As Kafka: a group that has committed
    /// offsets or a saved state exists (Kafka reloads it, empty, after a restart), and its members are unknown to it:
    /// UNKNOWN_MEMBER_ID, on which a consumer rejoins. A group that does not exist at all is GROUP_ID_NOT_FOUND from v9;
    /// before v9, ILLEGAL_GENERATION.
    /// </summary>
    private async Task<ErrorCode> UnknownGroupErrorAsync(string groupId, short version, CancellationToken cancellationToken)
    {
        bool exists = (await metadata.FetchGroupOffsetsAsync(groupId, cancellationToken)).Count > 0
            || (await metadata.ListGroupStatesAsync(cancellationToken)).Any(state => state.GroupId == groupId);
        return exists ? ErrorCode.UnknownMemberId
            : version >= 9 ? ErrorCode.GroupIdNotFound
            : ErrorCode.IllegalGeneration;
    }

    /// <summary>
    /// The time a v1 commit names for itself (Kafka keeps it as the commit time, from which the offset's retention counts),
    /// or now when it names none (-1, and every other version). Never later than now: a time in the future would keep the
    /// offset, and its group, from ever expiring.
    /// </summary>
    private static DateTimeOffset CommitTime(DateTimeOffset now, long commitTimestampMs) =>
        commitTimestampMs == -1 ? now : DateTimeOffset.FromUnixTimeMilliseconds(Math.Clamp(commitTimestampMs, 0, now.ToUnixTimeMilliseconds()));

    /// <summary>Now plus a client's retention, kept within what a timestamp holds (a negative one is already past).</summary>
    private static DateTimeOffset ExpireTime(DateTimeOffset now, long retentionMs)
    {
        long nowMs = now.ToUnixTimeMilliseconds();
        long maxMs = DateTimeOffset.MaxValue.ToUnixTimeMilliseconds();
        long at = retentionMs > maxMs - nowMs ? maxMs : Math.Max(0, nowMs + retentionMs);
        return DateTimeOffset.FromUnixTimeMilliseconds(at);
    }
}
