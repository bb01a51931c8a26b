// DeleteTopics, versions 0-6. Deletes by name, or by topic id from v6 (KIP-516). The topic's
// partitions stop being served at once; its objects are marked for deletion in the metadata store and
// removed from the object store by cleanup.
using SharedLog.Broker.Cluster;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Storage.Metadata;

namespace SharedLog.Broker.Handlers;

public sealed class DeleteTopicsHandler(TopicService topics) : IApiHandler
{
    public ApiKey Api => ApiKey.DeleteTopics;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.DeleteTopics);

    public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (DeleteTopicsRequest)request;
        var response = new DeleteTopicsResponse();
        IEnumerable<(string? Name, Guid Id)> wanted = context.Version >= 6
            ? body.Topics.Select(t => (t.Name, t.TopicId))
            : body.TopicNames.Select(n => ((string?)n, Guid.Empty));
        foreach ((string? name, Guid id) in wanted)
        {
            TopicMetadata? topic = name is not null ? topics.Find(name) : topics.Find(id);
            var result = new DeleteTopicsResponse.DeletableTopicResult { Name = topic?.Name ?? name, TopicId = topic?.TopicId ?? id };
            response.Responses.Add(result);
            if (topic is null)
            {
                result.ErrorCode = (short)(name is null ? ErrorCode.UnknownTopicId : ErrorCode.UnknownTopicOrPartition);
                continue;
            }

            result.ErrorCode = (short)await topics.DeleteAsync(topic.Name, cancellationToken);
        }

        return response;
    }
}
