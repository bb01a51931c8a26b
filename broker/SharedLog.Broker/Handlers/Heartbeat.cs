// Heartbeat, versions 0-4. REBALANCE_IN_PROGRESS tells a member to rejoin; UNKNOWN_MEMBER_ID and
// ILLEGAL_GENERATION tell it it was removed or is behind.
using SharedLog.Broker.Coordinators;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

namespace SharedLog.Broker.Handlers;

public sealed class HeartbeatHandler(GroupCoordinator groups) : IApiHandler
{
    public ApiKey Api => ApiKey.Heartbeat;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.Heartbeat);

    public ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (HeartbeatRequest)request;
        return ValueTask.FromResult<IApiMessage?>(new HeartbeatResponse { ErrorCode = (short)groups.Heartbeat(body.GroupId, body.GenerationId, body.MemberId, body.GroupInstanceId) });
    }
}
