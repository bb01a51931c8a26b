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
        short error = body.KeyType is 0 or 1 ? (short)ErrorCode.None : (short)ErrorCode.InvalidRequest;
        string? message = error == 0 ? null : $"Unknown coordinator key type {body.KeyType}.";

        // v4+ answers per key and has no top-level error on the wire: the error is set where the version sends it, so the
        // request metrics count it once.
        if (context.Version < 4)
        {
            response.ErrorCode = error;
            response.ErrorMessage = message;
        }

        foreach (string key in body.CoordinatorKeys)
        {
            response.Coordinators.Add(new FindCoordinatorResponse.Coordinator { Key = key, NodeId = nodeId, Host = advertised.Host, Port = advertised.Port, ErrorCode = error, ErrorMessage = message });
        }

        return ValueTask.FromResult<IApiMessage?>(response);
    }
}
