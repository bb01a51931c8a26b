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
        BrokerOptions settings = options.Value;
        var response = new DescribeClusterResponse
        {
            ClusterId = settings.ClusterId,
            ControllerId = settings.NodeId,
            Brokers = [new DescribeClusterResponse.DescribeClusterBroker { BrokerId = settings.NodeId, Host = advertised.Host, Port = advertised.Port }],
        };
        return ValueTask.FromResult<IApiMessage?>(response);
    }
}
