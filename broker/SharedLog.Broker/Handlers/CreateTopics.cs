// CreateTopics, versions 0-7. Partitions -1 take num.partitions; the replication factor (or explicit
// assignments) is accepted and reported as satisfied, since durability comes from the WAL and the
// object store, not replicas. validateOnly (v1+) checks without creating. v5+ returns the effective
// partition count, replication factor and configs (KIP-525); v7 returns the topic id (KIP-516).
using Microsoft.Extensions.Options;
using SharedLog.Broker.Cluster;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Storage.Metadata;

namespace SharedLog.Broker.Handlers;

public sealed class CreateTopicsHandler(TopicService topics, IOptions<BrokerOptions> options) : IApiHandler
{
    public ApiKey Api => ApiKey.CreateTopics;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.CreateTopics);

    public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (CreateTopicsRequest)request;
        var response = new CreateTopicsResponse();
        // As Kafka: a name asked for more than once in one request is refused wherever it appears, and not created.
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (CreateTopicsRequest.CreatableTopic wanted in body.Topics)
        {
            counts[wanted.Name] = counts.GetValueOrDefault(wanted.Name) + 1;
        }

        foreach (CreateTopicsRequest.CreatableTopic wanted in body.Topics)
        {
            var result = new CreateTopicsResponse.CreatableTopicResult { Name = wanted.Name };
            response.Topics.Add(result);
            if (counts[wanted.Name] > 1)
            {
                result.ErrorCode = (short)ErrorCode.InvalidRequest;
                result.ErrorMessage = $"Topic '{wanted.Name}' appears more than once in the request.";
                continue;
            }

            if (wanted.Configs.Find(c => c.Value is null) is { } nullConfig)
            {
                result.ErrorCode = (short)ErrorCode.InvalidConfig;
                result.ErrorMessage = $"Null value not supported for topic config '{nullConfig.Name}'.";
                continue;
            }

            int partitions = wanted.NumPartitions == -1 ? (wanted.Assignments.Count > 0 ? wanted.Assignments.Count : options.Value.NumPartitions) : wanted.NumPartitions;
            if (wanted.ReplicationFactor is 0 or < -1)
            {
                result.ErrorCode = (short)ErrorCode.InvalidReplicationFactor;
                result.ErrorMessage = "Replication factor must be -1 or at least 1.";
                continue;
            }

            var configs = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (CreateTopicsRequest.CreatableTopicConfig config in wanted.Configs)
            {
                configs[config.Name] = config.Value!;
            }

            (TopicMetadata? created, ErrorCode error, string? message) = await topics.CreateAsync(wanted.Name, partitions, configs, body.ValidateOnly, cancellationToken);
            result.ErrorCode = (short)error;
            result.ErrorMessage = message;
            if (error != ErrorCode.None)
            {
                continue;
            }

            result.NumPartitions = partitions;
            result.ReplicationFactor = wanted.ReplicationFactor == -1 ? (short)1 : wanted.ReplicationFactor;
            result.TopicId = created?.TopicId ?? Guid.Empty;
            foreach ((string name, string defaultValue) in TopicConfigs.Defaults)
            {
                result.Configs ??= [];
                result.Configs.Add(new CreateTopicsResponse.CreatableTopicConfigs
                {
                    Name = name,
                    Value = configs.TryGetValue(name, out string? set) ? set : defaultValue,
                    ConfigSource = (sbyte)(configs.ContainsKey(name) ? 1 : 5),
                    IsSensitive = false,
                    ReadOnly = false,
                });
            }
        }

        return response;
    }
}
