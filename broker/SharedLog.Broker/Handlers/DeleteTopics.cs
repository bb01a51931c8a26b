// DeleteTopics, versions 0-6. Deletes by name, or by topic id from v6 (KIP-516). The topic's
// partitions stop being served at once; its objects are marked for deletion in the metadata store and
// removed from the object store by cleanup.
using SharedLog.Broker.Cluster;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Storage.Metadata;

namespace SharedLog.Broker.Handlers;

public sealed class DeleteTopicsHandler(TopicService topics, Coordinators.GroupLagTracker lag) : IApiHandler
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
        List<(string? Name, Guid Id)> entries = [.. wanted];
        var names = new Dictionary<string, int>(StringComparer.Ordinal);
        var ids = new Dictionary<Guid, int>();
        foreach ((string? name, Guid id) in entries)
        {
            if (name is not null)
            {
                names[name] = names.GetValueOrDefault(name) + 1;
            }
            else if (id != Guid.Empty)
            {
                ids[id] = ids.GetValueOrDefault(id) + 1;
            }
        }

        // As Kafka's controller: a name whose topic another entry names by id is the same topic twice. The name entry is
        // refused, and the id entry is dropped without an answer of its own, so neither deletes the topic.
        var namedTwice = new HashSet<Guid>();
        foreach ((string? name, Guid id) in entries)
        {
            if (name is not null && id == Guid.Empty && names[name] == 1 && topics.Find(name) is { } named && ids.ContainsKey(named.TopicId))
            {
                namedTwice.Add(named.TopicId);
            }
        }

        var answeredDuplicates = new HashSet<(string?, Guid)>();
        foreach ((string? name, Guid id) in entries)
        {
            if (name is null && namedTwice.Contains(id))
            {
                continue;
            }

            // As Kafka (v6+): an entry must name a topic by name or by id, not both nor neither, and at most once.
            string? malformed = (name, id) switch
            {
                (not null, var i) when i != Guid.Empty => "You may not specify both topic name and topic id.",
                (null, var i) when i == Guid.Empty => "Neither topic name nor id were specified.",
                (not null, _) when names[name] > 1 => "Duplicate topic name.",
                (null, _) when ids[id] > 1 => "Duplicate topic id.",
                (not null, _) when namedTwice.Count > 0 && topics.Find(name) is { } named && namedTwice.Contains(named.TopicId) => "The provided topic name maps to an ID that was already supplied.",
                _ => null,
            };

            // As Kafka: a name or id given several times is answered once.
            bool duplicate = (name is not null && id == Guid.Empty && names[name] > 1) || (name is null && id != Guid.Empty && ids[id] > 1);
            if (duplicate && !answeredDuplicates.Add((name, id)))
            {
                continue;
            }

            if (malformed is not null)
            {
                response.Responses.Add(new DeleteTopicsResponse.DeletableTopicResult { Name = name, TopicId = id, ErrorCode = (short)ErrorCode.InvalidRequest, ErrorMessage = malformed });
                continue;
            }

            TopicMetadata? topic = name is not null ? topics.Find(name) : topics.Find(id);
            var result = new DeleteTopicsResponse.DeletableTopicResult { Name = topic?.Name ?? name, TopicId = topic?.TopicId ?? id };
            response.Responses.Add(result);
            if (topic is null)
            {
                result.ErrorCode = (short)(name is null ? ErrorCode.UnknownTopicId : ErrorCode.UnknownTopicOrPartition);
                continue;
            }

            if (SharedLog.Contracts.InternalTopics.IsInternal(topic.Name))
            {
                // The registry's and contract store's journals: deleting one would drop every schema or contract at the next start.
                result.ErrorCode = (short)ErrorCode.PolicyViolation;
                result.ErrorMessage = $"Topic {topic.Name} is internal to the broker and cannot be deleted.";
                continue;
            }

            result.ErrorCode = (short)await topics.DeleteAsync(topic.Name, name is null ? topic.TopicId : null, cancellationToken);
            if (result.ErrorCode == (short)ErrorCode.None)
            {
                lag.TopicDeleted(topic.Name); // its committed offsets went with it; a topic made again under the name starts with none
            }
        }

        return response;
    }
}
