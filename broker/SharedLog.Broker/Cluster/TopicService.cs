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
    // Kept with the topics, so a creation's checks cost the same however many topics there are: each name by its
    // collision key ('.' as '_'), and the partitions in all.
    private readonly ConcurrentDictionary<string, string[]> _byCollisionKey = new(StringComparer.Ordinal);
    private long _partitionTotal;
    private readonly SemaphoreSlim _changes = new(1, 1);

    /// <summary>Kafka's KRaft metadata log; no client may create a topic of that name.</summary>
    public const string ClusterMetadataTopic = "__cluster_metadata";

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
        var toClaim = new List<long>();
        foreach (PartitionMetadata partition in topic.Partitions)
        {
            if (partition.LeaderBrokerId != NodeId || !streams.IsOpen(partition.StreamId))
            {
                toClaim.Add(partition.StreamId);
            }
        }

        // Claimed together: a topic's thousands of partitions cost one metadata commit, not one each.
        IReadOnlyList<PartitionMetadata> claimed = toClaim.Count == 0 ? [] : await metadata.ClaimLeadershipAsync(toClaim, NodeId, cancellationToken);
        var partitions = new List<PartitionMetadata>(topic.Partitions.Count);
        int next = 0;
        foreach (PartitionMetadata partition in topic.Partitions)
        {
            PartitionMetadata led = next < claimed.Count && claimed[next].StreamId == partition.StreamId ? claimed[next++] : partition;
            streams.Open(led);
            partitions.Add(led);
        }

        TopicMetadata led2 = topic with { Partitions = partitions };
        Put(led2);
        return led2;
    }

    /// <summary>Serves a topic (new, or a new state of one), keeping the collision keys and the partition total with it.</summary>
    private void Put(TopicMetadata topic)
    {
        int previousPartitions = _byName.TryGetValue(topic.Name, out TopicMetadata? previous) ? previous.Partitions.Count : 0;
        _byName[topic.Name] = topic;
        _byId[topic.TopicId] = topic;
        // Names per key, not one: a store from before collisions were refused may hold both a.b and a_b.
        _byCollisionKey.AddOrUpdate(CollisionKey(topic.Name), [topic.Name], (_, names) => Array.IndexOf(names, topic.Name) >= 0 ? names : [.. names, topic.Name]);
        Interlocked.Add(ref _partitionTotal, topic.Partitions.Count - previousPartitions);
    }

    /// <summary>Stops serving a topic; false when it is not served.</summary>
    private bool Forget(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out TopicMetadata? topic)
    {
        if (!_byName.TryRemove(name, out topic))
        {
            return false;
        }

        _byId.TryRemove(topic.TopicId, out _);
        string key = CollisionKey(name);
        if (_byCollisionKey.TryGetValue(key, out string[]? names))
        {
            string[] left = Array.FindAll(names, n => n != name);
            if (left.Length == 0)
            {
                _byCollisionKey.TryRemove(key, out _);
            }
            else
            {
                _byCollisionKey[key] = left;
            }
        }

        Interlocked.Add(ref _partitionTotal, -topic.Partitions.Count);
        return true;
    }

    public IReadOnlyCollection<TopicMetadata> All => [.. _byName.Values];

    /// <summary>Why adding <paramref name="added"/> partitions would pass the broker's limit (<see cref="BrokerOptions.MaxPartitions"/>), or null.</summary>
    private string? PartitionLimitProblem(int added)
    {
        long total = Interlocked.Read(ref _partitionTotal);
        int limit = options.Value.MaxPartitions;
        return total + added > limit ? $"This broker serves at most {limit} partitions in all (Broker:MaxPartitions); it has {total}, and {added} more were asked for." : null;
    }

    public TopicMetadata? Find(string name) => _byName.TryGetValue(name, out TopicMetadata? topic) ? topic : null;

    public TopicMetadata? Find(Guid topicId) => _byId.TryGetValue(topicId, out TopicMetadata? topic) ? topic : null;

    public PartitionMetadata? FindPartition(string name, int partition) =>
        Find(name) is { } topic && partition >= 0 && partition < topic.Partitions.Count ? topic.Partitions[partition] : null;

    /// <summary>The open stream of a partition this broker serves, or null (unknown topic or partition).</summary>
    public StreamLog? FindStream(string name, int partition) =>
        FindPartition(name, partition) is { } found && streams.TryGet(found.StreamId, out StreamLog? stream) ? stream : null;

    /// <summary>
    /// Why a topic of this name cannot be created, in Kafka's order: an illegal name, Kafka's own metadata topic, then
    /// existence, which "create if absent" callers (Kafka Connect's TopicAdmin, say) read as success whatever else their
    /// request would have been refused for, then a name that differs from an existing one only by '.' against '_'
    /// (Kafka refuses it: the two would share metric names). <see cref="ErrorCode.None"/> when it can.
    /// </summary>
    /// <param name="name">The topic's name.</param>
    /// <param name="brokerInternal">
    /// The broker creating one of its own journals (<c>_schemas</c>, <c>_contracts</c>, <c>_contract_audit</c>); for
    /// clients those names, and names colliding with them, are refused, so no client can create one first with its own
    /// configs (a compacted or short-lived audit) or block it with a colliding name.
    /// </param>
    public (ErrorCode Error, string? Message) NewNameProblem(string name, bool brokerInternal = false)
    {
        if (!TopicConfigs.IsValidTopicName(name))
        {
            return (ErrorCode.InvalidTopicException, $"'{name}' is not a valid topic name.");
        }

        if (name == ClusterMetadataTopic || (!brokerInternal && SharedLog.Contracts.InternalTopics.IsInternal(name)))
        {
            return (ErrorCode.InvalidRequest, $"Creation of internal topic {name} is prohibited.");
        }

        if (!brokerInternal && SharedLog.Contracts.InternalTopics.All.FirstOrDefault(i => CollideByDotOrUnderscore(i, name)) is { } reserved)
        {
            return (ErrorCode.InvalidTopicException, $"Topic '{name}' collides with the broker's internal topic {reserved}.");
        }

        if (Find(name) is not null)
        {
            return (ErrorCode.TopicAlreadyExists, $"Topic '{name}' already exists.");
        }

        if (name.AsSpan().IndexOfAny('.', '_') >= 0 && _byCollisionKey.TryGetValue(CollisionKey(name), out string[]? colliding)
            && Array.Find(colliding, n => n != name) is { } existing)
        {
            return (ErrorCode.InvalidTopicException, $"Topic '{name}' collides with existing topic: {existing}");
        }

        return (ErrorCode.None, null);
    }

    /// <summary>Whether two names differ only by '.' against '_' (Kafka refuses the second: they would share metric names).</summary>
    private static bool CollideByDotOrUnderscore(string a, string b) =>
        a.Length == b.Length && CollisionKey(a) == CollisionKey(b);

    /// <summary>What two names that collide by '.' against '_' have in common.</summary>
    private static string CollisionKey(string name) => name.Replace('.', '_');

    /// <summary>
    /// What is wrong with one partition's manual replica list, as Kafka's controller checks it: not empty, no broker twice,
    /// only registered brokers (here, this one), and as many replicas as the partitions before it
    /// (<paramref name="previousCount"/>). Null when it is acceptable; the replicas are then a formality, as every
    /// partition is led here and kept durable by the WAL and the object store.
    /// </summary>
    public string? ReplicaListProblem(IReadOnlyList<int> replicas, int? previousCount)
    {
        if (replicas.Count == 0)
        {
            return "The manual partition assignment includes an empty replica list.";
        }

        for (int i = 0; i < replicas.Count; i++)
        {
            for (int j = 0; j < i; j++)
            {
                if (replicas[j] == replicas[i])
                {
                    return $"The manual partition assignment includes the broker {replicas[i]} more than once.";
                }
            }

            if (replicas[i] != NodeId)
            {
                return $"The manual partition assignment includes broker {replicas[i]}, but no such broker is registered.";
            }
        }

        return previousCount is { } count && count != replicas.Count
            ? $"The manual partition assignment includes a partition with {replicas.Count} replica(s), but this is not consistent with previous partitions, which have {count} replica(s)."
            : null;
    }

    /// <summary>The first of <paramref name="configs"/> that is not a topic config Kafka would take, described; null when all are.</summary>
    public static string? ConfigProblem(IReadOnlyDictionary<string, string> configs)
    {
        foreach ((string key, string value) in configs)
        {
            if (TopicConfigs.Validate(key, value) is { } problem)
            {
                return problem;
            }
        }

        return TopicConfigs.ConflictProblem(configs);
    }

    /// <summary>Creates a topic; returns the error a CreateTopics or auto-creation should report.</summary>
    public async Task<(TopicMetadata? Topic, ErrorCode Error, string? Message)> CreateAsync(
        string name, int partitions, IReadOnlyDictionary<string, string> configs, bool validateOnly, CancellationToken cancellationToken, bool brokerInternal = false)
    {
        if (NewNameProblem(name, brokerInternal) is { Error: not ErrorCode.None } refused)
        {
            return (null, refused.Error, refused.Message);
        }

        configs = TopicConfigs.Normalized(configs);
        if (ConfigProblem(configs) is { } problem)
        {
            return (null, ErrorCode.InvalidConfig, problem);
        }

        if (partitions is < 1 or > 10_000)
        {
            return (null, ErrorCode.InvalidPartitions, $"Partition count {partitions} must be between 1 and 10000.");
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
            // Again under the lock: concurrent creations must not pass the limit together, nor create colliding names.
            if (NewNameProblem(name, brokerInternal) is { Error: not ErrorCode.None } refusedNow)
            {
                return (null, refusedNow.Error, refusedNow.Message);
            }

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
        // As Kafka's controller, the name is validated before the topic is looked up.
        if (name.Length == 0)
        {
            return (ErrorCode.InvalidRequest, "Default topic resources are not allowed.");
        }

        if (!TopicConfigs.IsValidTopicName(name))
        {
            return (ErrorCode.InvalidTopicException, $"'{name}' is not a valid topic name.");
        }

        if (Find(name) is not { } topic)
        {
            return (ErrorCode.UnknownTopicOrPartition, $"Topic '{name}' does not exist.");
        }

        if (PlanProblem(topic, plan(topic)) is { } problem)
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
            if (PlanProblem(current, (changes, planned)) is { } problemNow)
            {
                return (ErrorCode.InvalidConfig, problemNow);
            }

            foreach (string key in changes.Keys.ToList())
            {
                if (changes[key] is { } value)
                {
                    changes[key] = TopicConfigs.Normalized(key, value);
                }
            }

            TopicMetadata altered = await metadata.AlterTopicConfigsAsync(name, changes, CancellationToken.None);
            TopicMetadata updated = current with { Configs = altered.Configs };
            Put(updated);
            return (ErrorCode.None, null);
        }
        finally
        {
            _changes.Release();
        }
    }

    private static string? PlanProblem(TopicMetadata topic, (Dictionary<string, string?> Changes, string? Problem) plan)
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

        // As Kafka's controller: the topic's configs as they would be after the change are checked against each other.
        var after = new Dictionary<string, string>(topic.Configs, StringComparer.Ordinal);
        foreach ((string key, string? value) in plan.Changes)
        {
            if (value is null)
            {
                after.Remove(key);
            }
            else
            {
                after[key] = TopicConfigs.Normalized(key, value);
            }
        }

        return TopicConfigs.ConflictProblem(after);
    }

    /// <summary>
    /// Deletes the topic under <paramref name="name"/>; with <paramref name="topicId"/> only if it is still that topic
    /// (a delete by id waiting for the change lock while the name was deleted and created again must not take the new
    /// topic: as Kafka, that is UNKNOWN_TOPIC_ID).
    /// </summary>
    public async Task<ErrorCode> DeleteAsync(string name, Guid? topicId, CancellationToken cancellationToken)
    {
        await _changes.WaitAsync(cancellationToken);
        try
        {
            if (topicId is { } expected && Find(name)?.TopicId != expected)
            {
                return ErrorCode.UnknownTopicId;
            }

            if (!Forget(name, out TopicMetadata? topic))
            {
                return ErrorCode.UnknownTopicOrPartition;
            }

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
                    Put(topic);
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
