// DescribeLogDirs, versions 0-4: one "log dir", the data directory, with each partition's size as the
// bytes held for it in objects from its log start on, and in the WAL not yet uploaded. v4+ reports the
// directory's total and usable bytes.
using Microsoft.Extensions.Options;
using SharedLog.Broker.Cluster;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.Streams;

namespace SharedLog.Broker.Handlers;

public sealed class DescribeLogDirsHandler(TopicService topics, IMetadataStore metadata, StreamStore streams, IOptions<BrokerOptions> options) : IApiHandler
{
    public ApiKey Api => ApiKey.DescribeLogDirs;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.DescribeLogDirs);

    public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (DescribeLogDirsRequest)request;
        string dataDir = Path.GetFullPath(options.Value.DataDir);
        var drive = new DriveInfo(dataDir);
        var result = new DescribeLogDirsResponse.DescribeLogDirsResult { LogDir = dataDir, TotalBytes = drive.TotalSize, UsableBytes = drive.AvailableFreeSpace };
        IEnumerable<(string Name, IEnumerable<int>? Partitions)> wanted = body.Topics is null
            ? topics.All.Select(t => (t.Name, (IEnumerable<int>?)null))
            : body.Topics.GroupBy(t => t.Topic, StringComparer.Ordinal).Select(g => (g.Key, (IEnumerable<int>?)g.SelectMany(t => t.Partitions))); // each topic once, as Kafka
        foreach ((string name, IEnumerable<int>? partitions) in wanted)
        {
            TopicMetadata? topic = topics.Find(name);
            if (topic is null)
            {
                continue;
            }

            var topicResult = new DescribeLogDirsResponse.DescribeLogDirsTopic { Name = name };
            // Each asked-for partition once, by index: a long list must not cost its length times the topic's partitions.
            IEnumerable<PartitionMetadata> selected = partitions is null
                ? topic.Partitions
                : partitions.Where(p => p >= 0 && p < topic.Partitions.Count).Distinct().Order().Select(p => topic.Partitions[p]);
            foreach (PartitionMetadata partition in selected)
            {
                // The open stream knows the current log start (DeleteRecords moves it) and what is only in the WAL.
                StreamLog? stream = streams.TryGet(partition.StreamId, out StreamLog? open) ? open : null;
                long logStart = stream?.LogStartOffset ?? partition.LogStartOffset;
                IReadOnlyList<StreamObjectRange> ranges = await metadata.GetObjectRangesAsync(partition.StreamId, logStart, cancellationToken: cancellationToken);
                long size = ranges.Sum(r => r.Range.Size) + (stream?.NotUploadedBytes() ?? 0);
                topicResult.Partitions.Add(new DescribeLogDirsResponse.DescribeLogDirsPartition { PartitionIndex = partition.Partition, PartitionSize = size });
            }

            result.Topics.Add(topicResult);
        }

        return new DescribeLogDirsResponse { Results = [result] };
    }
}
