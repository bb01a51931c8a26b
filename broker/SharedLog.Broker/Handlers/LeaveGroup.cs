// LeaveGroup, versions 0-5. v3+ removes several members at once, by member id or group instance id
// (KIP-345); the group rebalances among those left.
using SharedLog.Broker.Coordinators;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

namespace SharedLog.Broker.Handlers;

public sealed class LeaveGroupHandler(GroupCoordinator groups) : IApiHandler
{
    public ApiKey Api => ApiKey.LeaveGroup;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.LeaveGroup);

    public ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (LeaveGroupRequest)request;
        var response = new LeaveGroupResponse();
        if (context.Version < 3 || string.IsNullOrEmpty(body.GroupId))
        {
            // An empty group id is the request's error (INVALID_GROUP_ID), not each member's.
            response.ErrorCode = (short)groups.Leave(body.GroupId, body.MemberId, null);
            return ValueTask.FromResult<IApiMessage?>(response);
        }

        foreach (LeaveGroupRequest.MemberIdentity member in body.Members)
        {
            response.Members.Add(new LeaveGroupResponse.MemberResponse
            {
                MemberId = member.MemberId,
                GroupInstanceId = member.GroupInstanceId,
                ErrorCode = (short)groups.Leave(body.GroupId, member.MemberId, member.GroupInstanceId),
            });
        }

        return ValueTask.FromResult<IApiMessage?>(response);
    }
}
