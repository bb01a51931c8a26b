// FindCoordinator, versions 0-6. This broker coordinates every group and transaction (key types 0
// and 1). v4+ batches several keys (KIP-699).
using Microsoft.Extensions.Options;
using SharedLog.Broker.Cluster;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

namespace SharedLog.Broker.Handlers;

public sealed class FindCoordinatorHandler(IOptions<BrokerOptions> options, AdvertisedListener advertised) : IApiHandler
{
    public ApiKey Api => ApiKey.FindCoordinator;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.FindCoordinator);

    public ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (FindCoordinatorRequest)request;
        int nodeId = options.Value.NodeId;
        var response = new FindCoordinatorResponse { NodeId = nodeId, Host = advertised.Host, Port = advertised.Port };
        if (body.KeyType is not (0 or 1))
        {
            response.ErrorCode = (short)ErrorCode.InvalidRequest;
            response.ErrorMessage = $"Unknown coordinator key type {body.KeyType}.";
        }

        foreach (string key in body.CoordinatorKeys)
        {
            response.Coordinators.Add(new FindCoordinatorResponse.Coordinator { Key = key, NodeId = nodeId, Host = advertised.Host, Port = advertised.Port, ErrorCode = response.ErrorCode });
        }

        return ValueTask.FromResult<IApiMessage?>(response);
    }
}
