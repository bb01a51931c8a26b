// DescribeCluster, versions 0-1 (KIP-700): this broker, as the only broker and the controller.
using Microsoft.Extensions.Options;
using SharedLog.Broker.Cluster;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

namespace SharedLog.Broker.Handlers;

public sealed class DescribeClusterHandler(IOptions<BrokerOptions> options, AdvertisedListener advertised) : IApiHandler
{
    public ApiKey Api => ApiKey.DescribeCluster;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.DescribeCluster);

    public ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (DescribeClusterRequest)request;
        BrokerOptions settings = options.Value;

        // As Kafka's brokers: they describe brokers (endpoint type 1); controllers (2) are asked on their own listener.
        if (body.EndpointType != 1)
        {
            ErrorCode refused = body.EndpointType == 2 ? ErrorCode.MismatchedEndpointType : ErrorCode.UnsupportedEndpointType;
            return ValueTask.FromResult<IApiMessage?>(new DescribeClusterResponse { ErrorCode = (short)refused, ErrorMessage = $"This broker describes brokers (endpoint type 1), not endpoint type {body.EndpointType}.", EndpointType = body.EndpointType });
        }

        var response = new DescribeClusterResponse
        {
            ClusterId = settings.ClusterId,
            ControllerId = settings.NodeId,
            Brokers = [new DescribeClusterResponse.DescribeClusterBroker { BrokerId = settings.NodeId, Host = advertised.Host, Port = advertised.Port }],
            ClusterAuthorizedOperations = body.IncludeClusterAuthorizedOperations ? AuthorizedOperations.Cluster : int.MinValue,
        };
        return ValueTask.FromResult<IApiMessage?>(response);
    }
}
