// CreatePartitions, versions 0-3. Raises a topic's partition count; explicit replica assignments are
// accepted and ignored (every partition is led by this broker). validateOnly checks without changing.
using SharedLog.Broker.Cluster;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

namespace SharedLog.Broker.Handlers;

public sealed class CreatePartitionsHandler(TopicService topics) : IApiHandler
{
    public ApiKey Api => ApiKey.CreatePartitions;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.CreatePartitions);

    public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (CreatePartitionsRequest)request;
        var response = new CreatePartitionsResponse();
        foreach (CreatePartitionsRequest.CreatePartitionsTopic topic in body.Topics)
        {
            (ErrorCode error, string? message) = await topics.AddPartitionsAsync(topic.Name, topic.Count, body.ValidateOnly, cancellationToken);
            response.Results.Add(new CreatePartitionsResponse.CreatePartitionsTopicResult { Name = topic.Name, ErrorCode = (short)error, ErrorMessage = message });
        }

        return response;
    }
}
