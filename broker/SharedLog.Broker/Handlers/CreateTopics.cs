// CreateTopics, versions 0-7. Partitions -1 take num.partitions; the replication factor (or explicit
// assignments) is accepted and reported as satisfied, since durability comes from the WAL and the
// object store, not replicas. validateOnly (v1+) checks without creating. v5+ returns the effective
// partition count, replication factor and configs (KIP-525); v7 returns the topic id (KIP-516).
// Checks run in the order of Kafka's controller, so a client sees the same first error: a name asked
// for twice, the name (illegal, existing, colliding), the configs, then assignments and counts.
using Microsoft.Extensions.Options;
using SharedLog.Broker.Cluster;
using SharedLog.Contracts.Model;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Storage.Metadata;

namespace SharedLog.Broker.Handlers;

public sealed class CreateTopicsHandler(TopicService topics, IOptions<BrokerOptions> options, ContractStore contracts) : IApiHandler
{
    public ApiKey Api => ApiKey.CreateTopics;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.CreateTopics);

    public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (CreateTopicsRequest)request;
        var response = new CreateTopicsResponse();
        // As Kafka: a name asked for more than once in one request is answered once, refused, and not created.
        HashSet<string> duplicated = RequestEntries.Repeated(body.Topics.Select(t => t.Name), StringComparer.Ordinal);
        foreach (string name in duplicated)
        {
            response.Topics.Add(new CreateTopicsResponse.CreatableTopicResult { Name = name, ErrorCode = (short)ErrorCode.InvalidRequest, ErrorMessage = "Duplicate topic name." });
        }

        foreach (CreateTopicsRequest.CreatableTopic wanted in body.Topics)
        {
            if (duplicated.Contains(wanted.Name))
            {
                continue;
            }

            var result = new CreateTopicsResponse.CreatableTopicResult { Name = wanted.Name };
            response.Topics.Add(result);
            (ErrorCode error, string? message) = await CreateAsync(wanted, body.ValidateOnly, result, cancellationToken);
            result.ErrorCode = (short)error;
            result.ErrorMessage = message;
        }

        return response;
    }

    private async Task<(ErrorCode Error, string? Message)> CreateAsync(CreateTopicsRequest.CreatableTopic wanted, bool validateOnly, CreateTopicsResponse.CreatableTopicResult result, CancellationToken cancellationToken)
    {
        if (topics.NewNameProblem(wanted.Name) is { Error: not ErrorCode.None } refused)
        {
            return refused;
        }

        var configs = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (CreateTopicsRequest.CreatableTopicConfig config in wanted.Configs)
        {
            if (config.Value is null)
            {
                return (ErrorCode.InvalidConfig, $"Null value not supported for topic config '{config.Name}'.");
            }

            configs[config.Name] = config.Value;
        }

        if (TopicService.ConfigProblem(configs) is { } configProblem)
        {
            return (ErrorCode.InvalidConfig, configProblem);
        }

        (int partitions, short replicationFactor, ErrorCode countError, string? countMessage) = Counts(wanted);
        if (countError != ErrorCode.None)
        {
            return (countError, countMessage);
        }

        (TopicMetadata? created, ErrorCode error, string? message) = await topics.CreateAsync(wanted.Name, partitions, configs, validateOnly, cancellationToken);
        if (error != ErrorCode.None)
        {
            return (error, message);
        }

        result.NumPartitions = partitions;
        result.ReplicationFactor = replicationFactor;
        result.TopicId = created?.TopicId ?? Guid.Empty;
        var contractRetention = ContractRetention.Of(contracts, wanted.Name);

        // Values as stored and as DescribeConfigs will report them (also for validate_only, which stores nothing).
        IReadOnlyDictionary<string, string> stored = created?.Configs ?? TopicConfigs.Normalized(configs);
        foreach ((string name, string defaultValue) in TopicConfigs.Defaults)
        {
            (string value, sbyte source) = TopicConfigs.Effective(name, stored, defaultValue, contractRetention);
            result.Configs ??= [];
            result.Configs.Add(new CreateTopicsResponse.CreatableTopicConfigs
            {
                Name = name,
                Value = value,
                ConfigSource = source,
                IsSensitive = false,
                ReadOnly = false,
            });
        }

        return (ErrorCode.None, null);
    }

    /// <summary>
    /// The partition count and replication factor the topic gets, from the counts asked for or from a manual assignment
    /// (KIP-464: which then needs both counts at -1, partitions numbered 0 to n-1 once each, and valid replica lists).
    /// </summary>
    private (int Partitions, short ReplicationFactor, ErrorCode Error, string? Message) Counts(CreateTopicsRequest.CreatableTopic wanted)
    {
        if (wanted.Assignments.Count == 0)
        {
            if (wanted.ReplicationFactor is 0 or < -1)
            {
                return (0, 0, ErrorCode.InvalidReplicationFactor, "Replication factor must be -1 or at least 1.");
            }

            return (wanted.NumPartitions == -1 ? options.Value.NumPartitions : wanted.NumPartitions, wanted.ReplicationFactor == -1 ? (short)1 : wanted.ReplicationFactor, ErrorCode.None, null);
        }

        if (wanted.ReplicationFactor != -1)
        {
            return (0, 0, ErrorCode.InvalidRequest, "A manual partition assignment was specified, but replication factor was not set to -1.");
        }

        if (wanted.NumPartitions != -1)
        {
            return (0, 0, ErrorCode.InvalidRequest, "A manual partition assignment was specified, but numPartitions was not set to -1.");
        }

        var assigned = new HashSet<int>();
        int? replicas = null;
        foreach (CreateTopicsRequest.CreatableReplicaAssignment assignment in wanted.Assignments)
        {
            if (!assigned.Add(assignment.PartitionIndex))
            {
                return (0, 0, ErrorCode.InvalidReplicaAssignment, $"Found multiple manual partition assignments for partition {assignment.PartitionIndex}");
            }

            if (topics.ReplicaListProblem(assignment.BrokerIds, replicas) is { } problem)
            {
                return (0, 0, ErrorCode.InvalidReplicaAssignment, problem);
            }

            replicas = assignment.BrokerIds.Count;
        }

        for (int index = 0; index < assigned.Count; index++)
        {
            if (!assigned.Contains(index))
            {
                return (0, 0, ErrorCode.InvalidReplicaAssignment, "partitions should be a consecutive 0-based integer sequence");
            }
        }

        return (assigned.Count, (short)replicas!.Value, ErrorCode.None, null);
    }
}
