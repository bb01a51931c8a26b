// OffsetFetch, versions 0-9 (v0 reads the same offsets as every other version). Topics null (v2+) means every committed partition of the group; a
// partition without a committed offset answers -1. v8+ asks for several groups at once (KIP-709).
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Storage.Metadata;

namespace SharedLog.Broker.Handlers;

public sealed class OffsetFetchHandler(IMetadataStore metadata) : IApiHandler
{
    public ApiKey Api => ApiKey.OffsetFetch;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.OffsetFetch);

    public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (OffsetFetchRequest)request;
        var response = new OffsetFetchResponse();
        if (context.Version >= 8)
        {
            // A group named again is read from the store once per request.
            var committedByGroup = new Dictionary<string, IReadOnlyList<GroupOffset>>(StringComparer.Ordinal);
            foreach (OffsetFetchRequest.OffsetFetchRequestGroup group in body.Groups)
            {
                var wanted = group.Topics?.Select(t => (t.Name, (IReadOnlyList<int>)t.PartitionIndexes)).ToList();
                var groupResponse = new OffsetFetchResponse.OffsetFetchResponseGroup { GroupId = group.GroupId };
                if (!committedByGroup.TryGetValue(group.GroupId, out IReadOnlyList<GroupOffset>? committed))
                {
                    committed = await metadata.FetchGroupOffsetsAsync(group.GroupId, cancellationToken);
                    committedByGroup[group.GroupId] = committed;
                }

                foreach ((string topic, List<(int Partition, GroupOffset? Offset)> partitions) in LookUp(committed, wanted))
                {
                    groupResponse.Topics.Add(new OffsetFetchResponse.OffsetFetchResponseTopics
                    {
                        Name = topic,
                        Partitions = [.. partitions.Select(p => new OffsetFetchResponse.OffsetFetchResponsePartitions
                        {
                            PartitionIndex = p.Partition,
                            CommittedOffset = p.Offset?.Offset ?? -1,
                            CommittedLeaderEpoch = p.Offset?.LeaderEpoch ?? -1,
                            Metadata = p.Offset?.Metadata ?? string.Empty,
                        })],
                    });
                }

                response.Groups.Add(groupResponse);
            }

            return response;
        }

        var single = body.Topics?.Select(t => (t.Name, (IReadOnlyList<int>)t.PartitionIndexes)).ToList();
        foreach ((string topic, List<(int Partition, GroupOffset? Offset)> partitions) in LookUp(await metadata.FetchGroupOffsetsAsync(body.GroupId, cancellationToken), single))
        {
            response.Topics.Add(new OffsetFetchResponse.OffsetFetchResponseTopic
            {
                Name = topic,
                Partitions = [.. partitions.Select(p => new OffsetFetchResponse.OffsetFetchResponsePartition
                {
                    PartitionIndex = p.Partition,
                    CommittedOffset = p.Offset?.Offset ?? -1,
                    CommittedLeaderEpoch = p.Offset?.LeaderEpoch ?? -1,
                    Metadata = p.Offset?.Metadata ?? string.Empty,
                })],
            });
        }

        return response;
    }

    private static List<(string Topic, List<(int Partition, GroupOffset? Offset)> Partitions)> LookUp(
        IReadOnlyList<GroupOffset> committed, List<(string Name, IReadOnlyList<int> Partitions)>? wanted)
    {
        var byKey = committed.ToDictionary(o => (o.Topic, o.Partition));
        if (wanted is null)
        {
            return [.. committed.GroupBy(o => o.Topic).Select(g => (g.Key, g.Select(o => (o.Partition, (GroupOffset?)o)).ToList()))];
        }

        return [.. wanted.Select(t => (t.Name, t.Partitions.Select(p => (p, byKey.TryGetValue((t.Name, p), out GroupOffset? o) ? o : null)).ToList()))];
    }
}
