// DescribeGroups, versions 0-5: state, protocol and members (with their subscription metadata and
// assignment) of groups this coordinator knows; a group with only committed offsets is Empty, and
// unknown groups are reported as Dead with no members, as Kafka does. DeleteGroups, versions 0-2: removes empty groups and their committed offsets;
// NON_EMPTY_GROUP while members remain.
using SharedLog.Broker.Coordinators;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Storage.Metadata;

namespace SharedLog.Broker.Handlers;

public sealed class DescribeGroupsHandler(GroupCoordinator groups, IMetadataStore metadata) : IApiHandler
{
    public ApiKey Api => ApiKey.DescribeGroups;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.DescribeGroups);

    public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (DescribeGroupsRequest)request;
        var response = new DescribeGroupsResponse();
        Func<string, string>? protocolTypeWithoutMembers = null; // the saved group states, read once per request at most
        // A group named again is answered again, as Kafka, from the first description: the work is per distinct group.
        var describedOnce = new Dictionary<string, DescribeGroupsResponse.DescribedGroup>(StringComparer.Ordinal);
        foreach (string groupId in body.Groups)
        {
            var described = new DescribeGroupsResponse.DescribedGroup { GroupId = groupId, GroupState = "Dead", AuthorizedOperations = int.MinValue };
            if (groupId is null)
            {
                described.ErrorCode = (short)ErrorCode.InvalidGroupId;
                response.Groups.Add(described);
                continue;
            }

            if (body.IncludeAuthorizedOperations)
            {
                described.AuthorizedOperations = AuthorizedOperations.Group;
            }

            if (describedOnce.TryGetValue(groupId, out DescribeGroupsResponse.DescribedGroup? again))
            {
                response.Groups.Add(again);
                continue;
            }

            describedOnce[groupId] = described;
            response.Groups.Add(described);
            ConsumerGroup? group = groups.Find(groupId);
            if (group is null)
            {
                // No members in memory (never joined, forgotten when it stayed empty, or before a restart): its
                // committed offsets make it an Empty group, as in Kafka.
                if ((await metadata.FetchGroupOffsetsAsync(groupId, cancellationToken)).Count > 0)
                {
                    described.GroupState = nameof(GroupState.Empty);
                    protocolTypeWithoutMembers ??= await ListGroupsHandler.ProtocolTypesWithoutMembersAsync(groups, metadata, cancellationToken);
                    described.ProtocolType = protocolTypeWithoutMembers(groupId);
                }

                continue;
            }

            GroupState state = group.State;
            // As Kafka: the protocol and each member's metadata and assignment only for a Stable group; in any other
            // state they are being renegotiated (or stale), so they are sent empty.
            bool stable = state == GroupState.Stable;
            described.GroupState = state.ToString();
            described.ProtocolType = group.ProtocolType ?? string.Empty;
            described.ProtocolData = stable ? group.ProtocolName ?? string.Empty : string.Empty;
            foreach (GroupMember member in group.Snapshot())
            {
                // Its metadata for the group's protocol: the first entry of that name, as Kafka keeps one per name.
                described.Members.Add(new DescribeGroupsResponse.DescribedGroupMember
                {
                    MemberId = member.MemberId,
                    GroupInstanceId = member.GroupInstanceId,
                    ClientId = member.ClientId,
                    ClientHost = member.ClientHost,
                    MemberMetadata = stable ? member.Protocols.FirstOrDefault(p => p.Name == group.ProtocolName).Metadata ?? [] : [],
                    MemberAssignment = stable ? member.Assignment : [],
                });
            }
        }

        return response;
    }
}

public sealed class DeleteGroupsHandler(GroupCoordinator groups, IMetadataStore metadata, GroupLagTracker lag) : IApiHandler
{
    public ApiKey Api => ApiKey.DeleteGroups;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.DeleteGroups);

    public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (DeleteGroupsRequest)request;
        var response = new DeleteGroupsResponse();
        var withOffsets = new HashSet<string>(await metadata.ListGroupsAsync(cancellationToken), StringComparer.Ordinal);
        foreach (string groupId in body.GroupsNames)
        {
            var result = new DeleteGroupsResponse.DeletableGroupResult { GroupId = groupId };
            response.Results.Add(result);
            if (groups.Find(groupId) is null && !withOffsets.Contains(groupId))
            {
                result.ErrorCode = (short)ErrorCode.GroupIdNotFound;
                continue;
            }

            if (!groups.Delete(groupId, out ErrorCode error))
            {
                result.ErrorCode = (short)error;
                continue;
            }

            await metadata.DeleteGroupOffsetsAsync(groupId, null, cancellationToken);
            lag.Deleted(groupId, null);
            withOffsets.Remove(groupId); // named again in this request, it no longer exists: GROUP_ID_NOT_FOUND, as Kafka
        }

        return response;
    }
}
