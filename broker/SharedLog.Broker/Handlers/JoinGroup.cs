// JoinGroup, versions 0-9 (classic protocol). v4+ members without an id get MEMBER_ID_REQUIRED and the
// id to rejoin with (KIP-394); v5+ static membership (KIP-345; a static leader back in a stable group is told,
// v9+, to skip the assignment); the leader receives every member's
// subscription metadata and computes the assignment client-side.
using SharedLog.Broker.Coordinators;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

namespace SharedLog.Broker.Handlers;

public sealed class JoinGroupHandler(GroupCoordinator groups) : IApiHandler
{
    public ApiKey Api => ApiKey.JoinGroup;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.JoinGroup);

    public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (JoinGroupRequest)request;
        int rebalanceTimeout = context.Version >= 1 ? body.RebalanceTimeoutMs : body.SessionTimeoutMs;
        JoinResult result = await groups.JoinAsync(
            body.GroupId,
            body.MemberId,
            body.GroupInstanceId,
            body.ProtocolType,
            [.. body.Protocols.Select(p => (p.Name, p.Metadata))],
            body.SessionTimeoutMs,
            rebalanceTimeout,
            context.Header.ClientId ?? string.Empty,
            context.RemoteEndPoint?.ToString() ?? string.Empty,
            requireKnownMemberId: context.Version >= 4,
            canSkipAssignment: context.Version >= 9).WaitAsync(cancellationToken);
        var response = new JoinGroupResponse
        {
            ErrorCode = (short)result.Error,
            GenerationId = result.GenerationId,
            ProtocolType = result.ProtocolType,
            ProtocolName = result.ProtocolName ?? (context.Version >= 7 ? null : string.Empty),
            Leader = result.LeaderId,
            MemberId = result.MemberId,
            SkipAssignment = result.SkipAssignment,
        };
        foreach (GroupMember member in result.Members)
        {
            response.Members.Add(new JoinGroupResponse.JoinGroupResponseMember
            {
                MemberId = member.MemberId,
                GroupInstanceId = member.GroupInstanceId,
                Metadata = member.Protocols.FirstOrDefault(p => p.Name == result.ProtocolName).Metadata ?? [],
            });
        }

        return response;
    }
}
