using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using SharedLog.Broker.Cluster;
using SharedLog.Storage.Metadata;

namespace SharedLog.Broker.Coordinators;

/// <summary>
/// Consumer group lag for the metrics: the last committed offset of every (group, topic, partition),
/// loaded from the metadata store at start and kept current by the offset handlers, against the
/// partition's high watermark when the metrics are scraped.
/// </summary>
public sealed class GroupLagTracker(TopicService topics)
{
    private readonly ConcurrentDictionary<(string Group, string Topic, int Partition), long> _committed = new();

    public async Task LoadAsync(IMetadataStore metadata, CancellationToken cancellationToken)
    {
        foreach (string group in await metadata.ListGroupsAsync(cancellationToken))
        {
            Committed(group, await metadata.FetchGroupOffsetsAsync(group, cancellationToken));
        }
    }

    public void Committed(string group, IReadOnlyList<GroupOffset> offsets)
    {
        foreach (GroupOffset offset in offsets)
        {
            _committed[(group, offset.Topic, offset.Partition)] = offset.Offset;
        }
    }

    /// <summary>Forgets a group's partitions (all of them when <paramref name="partitions"/> is null).</summary>
    public void Deleted(string group, IReadOnlyList<(string Topic, int Partition)>? partitions)
    {
        HashSet<(string, int)>? named = partitions is null ? null : [.. partitions];
        foreach ((string Group, string Topic, int Partition) key in _committed.Keys)
        {
            if (key.Group == group && (named is null || named.Contains((key.Topic, key.Partition))))
            {
                _committed.TryRemove(key, out _);
            }
        }
    }

    /// <summary>Forgets every group's offsets of a deleted topic.</summary>
    public void TopicDeleted(string topic)
    {
        foreach ((string Group, string Topic, int Partition) key in _committed.Keys)
        {
            if (key.Topic == topic)
            {
                _committed.TryRemove(key, out _);
            }
        }
    }

    /// <summary>Lag per group and partition: records between the committed offset and the high watermark.</summary>
    public IEnumerable<Measurement<long>> Lags()
    {
        foreach (((string group, string topic, int partition), long committed) in _committed)
        {
            if (topics.FindStream(topic, partition) is { } stream)
            {
                yield return new Measurement<long>(
                    Math.Max(0, stream.HighWatermark - committed),
                    new KeyValuePair<string, object?>("group", group),
                    new KeyValuePair<string, object?>("topic", topic),
                    new KeyValuePair<string, object?>("partition", partition));
            }
        }
    }
}
