using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using SharedLog.Protocol;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.Streams;

namespace SharedLog.Broker.Cluster;

/// <summary>
/// Topics as this broker sees them: a cache over the metadata store, and the streams of the partitions it
/// leads (in the embedded single-node setup, all of them) opened in the stream store.
/// </summary>
public sealed class TopicService(IMetadataStore metadata, StreamStore streams, IOptions<BrokerOptions> options) : IDisposable
{
    private readonly ConcurrentDictionary<string, TopicMetadata> _byName = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Guid, TopicMetadata> _byId = new();
    private readonly SemaphoreSlim _changes = new(1, 1);

    private int NodeId => options.Value.NodeId;

    /// <summary>Loads every topic and claims leadership of its partitions (fencing any previous leader).</summary>
    public async Task LoadAsync(CancellationToken cancellationToken)
    {
        foreach (TopicMetadata topic in await metadata.ListTopicsAsync(cancellationToken))
        {
            await LeadAsync(topic, cancellationToken);
        }
    }

    private async Task<TopicMetadata> LeadAsync(TopicMetadata topic, CancellationToken cancellationToken)
    {
        var partitions = new List<PartitionMetadata>(topic.Partitions.Count);
        foreach (PartitionMetadata partition in topic.Partitions)
        {
            PartitionMetadata led = partition.LeaderBrokerId == NodeId && streams.IsOpen(partition.StreamId)
                ? partition
                : await metadata.ClaimLeadershipAsync(partition.StreamId, NodeId, cancellationToken);
            streams.Open(led);
            partitions.Add(led);
        }

        TopicMetadata led2 = topic with { Partitions = partitions };
        _byName[topic.Name] = led2;
        _byId[topic.TopicId] = led2;
        return led2;
    }

    public IReadOnlyCollection<TopicMetadata> All => [.. _byName.Values];

    /// <summary>Why adding <paramref name="added"/> partitions would pass the broker's limit (<see cref="BrokerOptions.MaxPartitions"/>), or null.</summary>
    private string? PartitionLimitProblem(int added)
    {
        long total = 0;
        foreach (TopicMetadata topic in _byName.Values)
        {
            total += topic.Partitions.Count;
        }

        int limit = options.Value.MaxPartitions;
        return total + added > limit ? $"This broker serves at most {limit} partitions in all (Broker:MaxPartitions); it has {total}, and {added} more were asked for." : null;
    }

    public TopicMetadata? Find(string name) => _byName.TryGetValue(name, out TopicMetadata? topic) ? topic : null;

    public TopicMetadata? Find(Guid topicId) => _byId.TryGetValue(topicId, out TopicMetadata? topic) ? topic : null;

    public PartitionMetadata? FindPartition(string name, int partition) =>
        Find(name) is { } topic && partition >= 0 && partition < topic.Partitions.Count ? topic.Partitions[partition] : null;

    /// <summary>The open stream of a partition this broker serves, or null (unknown topic or partition).</summary>
    public StreamLog? FindStream(string name, int partition) =>
        FindPartition(name, partition) is { } found && streams.IsOpen(found.StreamId) ? streams.Get(found.StreamId) : null;

    /// <summary>Creates a topic; returns the error a CreateTopics or auto-creation should report.</summary>
    public async Task<(TopicMetadata? Topic, ErrorCode Error, string? Message)> CreateAsync(
        string name, int partitions, IReadOnlyDictionary<string, string> configs, bool validateOnly, CancellationToken cancellationToken)
    {
        if (!TopicConfigs.IsValidTopicName(name))
        {
            return (null, ErrorCode.InvalidTopicException, $"'{name}' is not a valid topic name.");
        }

        // Existence first, as Kafka: "create if absent" callers (Kafka Connect's TopicAdmin, say) read
        // TOPIC_ALREADY_EXISTS as success, whatever else their request would have been refused for.
        if (Find(name) is not null)
        {
            return (null, ErrorCode.TopicAlreadyExists, $"Topic '{name}' already exists.");
        }

        if (partitions is < 1 or > 10_000)
        {
            return (null, ErrorCode.InvalidPartitions, $"Partition count {partitions} must be between 1 and 10000.");
        }

        foreach ((string key, string value) in configs)
        {
            if (TopicConfigs.Validate(key, value) is { } problem)
            {
                return (null, ErrorCode.InvalidConfig, problem);
            }
        }

        if (PartitionLimitProblem(partitions) is { } tooMany)
        {
            return (null, ErrorCode.InvalidPartitions, tooMany);
        }

        if (validateOnly)
        {
            return (null, ErrorCode.None, null);
        }

        // Once started, a creation runs to the end even if the asking client disconnects: a half-done
        // creation would leave the topic in the store but not served.
        await _changes.WaitAsync(cancellationToken);
        try
        {
            // Again under the lock: concurrent creations must not pass the limit together.
            if (PartitionLimitProblem(partitions) is { } tooManyNow)
            {
                return (null, ErrorCode.InvalidPartitions, tooManyNow);
            }

            TopicMetadata created;
            try
            {
                created = await metadata.CreateTopicAsync(name, partitions, configs, CancellationToken.None);
            }
            catch (TopicExistsException)
            {
                if (Find(name) is null && await metadata.GetTopicAsync(name, CancellationToken.None) is { } stored)
                {
                    await LeadAsync(stored, CancellationToken.None);
                }

                return (null, ErrorCode.TopicAlreadyExists, $"Topic '{name}' already exists.");
            }

            return (await LeadAsync(created, CancellationToken.None), ErrorCode.None, null);
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>Raises a topic's partition count; the new partitions are led here.</summary>
    public async Task<(ErrorCode Error, string? Message)> AddPartitionsAsync(string name, int count, bool validateOnly, CancellationToken cancellationToken)
    {
        TopicMetadata? topic = Find(name);
        if (topic is null)
        {
            return (ErrorCode.UnknownTopicOrPartition, $"Topic '{name}' does not exist.");
        }

        if (count <= topic.Partitions.Count || count > 10_000)
        {
            return (ErrorCode.InvalidPartitions, $"Topic '{name}' has {topic.Partitions.Count} partitions; the new count must be larger (and at most 10000), not {count}.");
        }

        if (PartitionLimitProblem(count - topic.Partitions.Count) is { } tooMany)
        {
            return (ErrorCode.InvalidPartitions, tooMany);
        }

        if (validateOnly)
        {
            return (ErrorCode.None, null);
        }

        await _changes.WaitAsync(cancellationToken);
        try
        {
            // Checked again under the lock: the topic may have been deleted or grown since the checks above.
            if (Find(name) is not { } now)
            {
                return (ErrorCode.UnknownTopicOrPartition, $"Topic '{name}' does not exist.");
            }

            if (count <= now.Partitions.Count)
            {
                return (ErrorCode.InvalidPartitions, $"Topic '{name}' has {now.Partitions.Count} partitions; the new count must be larger, not {count}.");
            }

            if (PartitionLimitProblem(count - now.Partitions.Count) is { } tooManyNow)
            {
                return (ErrorCode.InvalidPartitions, tooManyNow);
            }

            TopicMetadata grown = await metadata.AddPartitionsAsync(name, count, CancellationToken.None);
            await LeadAsync(grown, CancellationToken.None);
            return (ErrorCode.None, null);
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>
    /// Applies the config changes <paramref name="plan"/> derives from the topic (null removes a setting, back to the
    /// default) after validating them all. The plan is made again under the change lock, from the topic as it is then:
    /// a concurrent change must not be lost by applying changes derived from the topic before it.
    /// </summary>
    public async Task<(ErrorCode Error, string? Message)> AlterConfigsAsync(
        string name, Func<TopicMetadata, (Dictionary<string, string?> Changes, string? Problem)> plan, bool validateOnly, CancellationToken cancellationToken)
    {
        if (Find(name) is not { } topic)
        {
            return (ErrorCode.UnknownTopicOrPartition, $"Topic '{name}' does not exist.");
        }

        if (PlanProblem(plan(topic)) is { } problem)
        {
            return (ErrorCode.InvalidConfig, problem);
        }

        if (validateOnly)
        {
            return (ErrorCode.None, null);
        }

        await _changes.WaitAsync(cancellationToken);
        try
        {
            if (Find(name) is not { } current)
            {
                return (ErrorCode.UnknownTopicOrPartition, $"Topic '{name}' does not exist."); // deleted meanwhile
            }

            (Dictionary<string, string?> changes, string? planned) = plan(current);
            if (PlanProblem((changes, planned)) is { } problemNow)
            {
                return (ErrorCode.InvalidConfig, problemNow);
            }

            TopicMetadata altered = await metadata.AlterTopicConfigsAsync(name, changes, CancellationToken.None);
            TopicMetadata updated = current with { Configs = altered.Configs };
            _byName[name] = updated;
            _byId[updated.TopicId] = updated;
            return (ErrorCode.None, null);
        }
        finally
        {
            _changes.Release();
        }
    }

    private static string? PlanProblem((Dictionary<string, string?> Changes, string? Problem) plan)
    {
        if (plan.Problem is not null)
        {
            return plan.Problem;
        }

        foreach ((string key, string? value) in plan.Changes)
        {
            if (TopicConfigs.Validate(key, value) is { } problem)
            {
                return problem;
            }
        }

        return null;
    }

    public async Task<ErrorCode> DeleteAsync(string name, CancellationToken cancellationToken)
    {
        await _changes.WaitAsync(cancellationToken);
        try
        {
            if (!_byName.TryRemove(name, out TopicMetadata? topic))
            {
                return ErrorCode.UnknownTopicOrPartition;
            }

            _byId.TryRemove(topic.TopicId, out _);
            try
            {
                // Not cancellable once begun: a client that gives up must not leave the topic gone from memory but
                // still in the store, where a retry, a CreateTopics of the name or a restart would bring it back.
                await metadata.DeleteTopicAsync(name, CancellationToken.None);
            }
            catch (Exception)
            {
                // If the store still has it, serve it again. Its streams are closed only after the store forgot the
                // topic: closing drops acknowledged batches not yet uploaded, and a stream opened again starts from
                // what objects hold, so closing first lost those records and handed their offsets out again.
                if (await metadata.GetTopicAsync(name, CancellationToken.None) is not null)
                {
                    _byName[name] = topic;
                    _byId[topic.TopicId] = topic;
                    throw;
                }

                CloseStreams(topic);
                throw;
            }

            CloseStreams(topic);
            return ErrorCode.None;
        }
        finally
        {
            _changes.Release();
        }
    }

    private void CloseStreams(TopicMetadata topic)
    {
        foreach (PartitionMetadata partition in topic.Partitions)
        {
            streams.Close(partition.StreamId);
        }
    }

    public void Dispose() => _changes.Dispose();
}
