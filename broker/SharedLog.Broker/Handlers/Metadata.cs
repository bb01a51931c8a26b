// Metadata, versions 0-12. Reports this broker as the only broker, controller and leader of every
// partition (replicas and ISR are this broker: durability comes from the WAL and the object store).
// Topics: null (v1+) lists all; v0 treats an empty list as all. Missing topics are created when the
// request allows it (v4+, AllowAutoTopicCreation) and auto.create.topics.enable is on (KIP-361);
// otherwise UNKNOWN_TOPIC_OR_PARTITION. Topic ids from v10 (KIP-516); v10+ may name topics by id only.
using Microsoft.Extensions.Options;
using SharedLog.Broker.Cluster;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Storage.Metadata;

namespace SharedLog.Broker.Handlers;

public sealed class MetadataHandler(TopicService topics, IOptions<BrokerOptions> options, AdvertisedListener advertised) : IApiHandler
{
    public ApiKey Api => ApiKey.Metadata;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.Metadata);

    public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (MetadataRequest)request;
        BrokerOptions settings = options.Value;
        (string host, int port) = (advertised.Host, advertised.Port);
        var response = new MetadataResponse
        {
            ClusterId = settings.ClusterId,
            ControllerId = settings.NodeId,
            Brokers = [new MetadataResponse.MetadataResponseBroker { NodeId = settings.NodeId, Host = host, Port = port }],
            ClusterAuthorizedOperations = body.IncludeClusterAuthorizedOperations ? AuthorizedOperations.Cluster : int.MinValue,
        };

        bool all = body.Topics is null || (context.Version == 0 && body.Topics.Count == 0);
        if (all)
        {
            foreach (TopicMetadata topic in topics.All.OrderBy(t => t.Name, StringComparer.Ordinal))
            {
                response.Topics.Add(Describe(topic, settings.NodeId, body.IncludeTopicAuthorizedOperations));
            }

            return response;
        }

        bool mayCreate = settings.AutoCreateTopicsEnable && (context.Version < 4 || body.AllowAutoTopicCreation);
        var asked = new HashSet<(string?, Guid)>();
        var described = new HashSet<Guid>(); // a topic named by name and by id, or by two ids, is described once too
        foreach (MetadataRequest.MetadataRequestTopic wanted in body.Topics!)
        {
            if (!asked.Add((wanted.Name, wanted.TopicId)))
            {
                continue; // as Kafka, which takes the topics as a set: each is described once
            }

            if (context.Version < 12 && (wanted.Name is null || wanted.TopicId != Guid.Empty))
            {
                // As Kafka: v10 and v11 carry the topic id field, but look topics up by name only.
                response.Topics.Add(new MetadataResponse.MetadataResponseTopic { Name = wanted.Name ?? string.Empty, TopicId = wanted.TopicId, ErrorCode = (short)ErrorCode.InvalidRequest }); // names are non-null in responses before v12
                continue;
            }

            TopicMetadata? topic = wanted.Name is { } name ? topics.Find(name) : topics.Find(wanted.TopicId);
            if (topic is null && wanted.Name is { } missing && mayCreate)
            {
                (topic, ErrorCode error, _) = await topics.CreateAsync(missing, settings.NumPartitions, new Dictionary<string, string>(), validateOnly: false, cancellationToken);
                if (error == ErrorCode.TopicAlreadyExists)
                {
                    topic = topics.Find(missing);
                }
                else if (error != ErrorCode.None)
                {
                    // A name reserved for internal topics is no topic a client may have: INVALID_TOPIC_EXCEPTION, which clients
                    // treat as final, where CreateTopics answers INVALID_REQUEST.
                    response.Topics.Add(new MetadataResponse.MetadataResponseTopic { Name = missing, ErrorCode = (short)(error == ErrorCode.InvalidRequest ? ErrorCode.InvalidTopicException : error) });
                    continue;
                }
            }

            if (topic is null)
            {
                ErrorCode error = wanted.Name is { } n && !TopicConfigs.IsValidTopicName(n) ? ErrorCode.InvalidTopicException
                    : wanted.Name is null ? ErrorCode.UnknownTopicId
                    : ErrorCode.UnknownTopicOrPartition;
                response.Topics.Add(new MetadataResponse.MetadataResponseTopic { Name = wanted.Name, TopicId = wanted.TopicId, ErrorCode = (short)error });
                continue;
            }

            if (described.Add(topic.TopicId))
            {
                response.Topics.Add(Describe(topic, settings.NodeId, body.IncludeTopicAuthorizedOperations));
            }
        }

        return response;
    }

    private static MetadataResponse.MetadataResponseTopic Describe(TopicMetadata topic, int nodeId, bool includeOperations)
    {
        var described = new MetadataResponse.MetadataResponseTopic
        {
            Name = topic.Name,
            TopicId = topic.TopicId,
            TopicAuthorizedOperations = includeOperations ? AuthorizedOperations.Topic : int.MinValue,
        };
        foreach (PartitionMetadata partition in topic.Partitions)
        {
            described.Partitions.Add(new MetadataResponse.MetadataResponsePartition
            {
                PartitionIndex = partition.Partition,
                LeaderId = nodeId,
                LeaderEpoch = partition.LeaderEpoch,
                ReplicaNodes = [nodeId],
                IsrNodes = [nodeId],
            });
        }

        return described;
    }
}
