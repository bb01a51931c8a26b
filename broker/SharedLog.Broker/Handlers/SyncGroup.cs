// SyncGroup, versions 0-5. The leader sends the assignment; every member (leader included) gets its
// own part once the leader's arrives. v5+ echoes protocol type and name (KIP-559).
using SharedLog.Broker.Coordinators;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

namespace SharedLog.Broker.Handlers;

public sealed class SyncGroupHandler(GroupCoordinator groups) : IApiHandler
{
    public ApiKey Api => ApiKey.SyncGroup;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.SyncGroup);

    public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (SyncGroupRequest)request;
        var assignments = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (SyncGroupRequest.SyncGroupRequestAssignment assignment in body.Assignments)
        {
            assignments[assignment.MemberId] = assignment.Assignment;
        }

        SyncResult result = await groups.SyncAsync(body.GroupId, body.GenerationId, body.MemberId, assignments, body.GroupInstanceId, body.ProtocolType, body.ProtocolName).WaitAsync(cancellationToken);
        return new SyncGroupResponse
        {
            ErrorCode = (short)result.Error,
            ProtocolType = result.ProtocolType,
            ProtocolName = result.ProtocolName,
            Assignment = result.Assignment,
        };
    }
}
