using System.Diagnostics;
using SharedLog.Protocol.Records;
using SharedLog.Storage;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.Objects;
using SharedLog.Storage.ObjectStore;
using SharedLog.Storage.Streams;

namespace SharedLog.Benchmarks;

/// <summary>
/// One compaction round over stream-set objects laid out as the uploader writes them, on the local-directory
/// object store and SQLite metadata, timed from the start of the round to its commit. Throughput is input
/// (bytes of the replaced objects) per second. The objects are written and committed beforehand, untimed.
/// </summary>
public static class CompactionThroughput
{
    private sealed record Case(string Name, int Objects, int Streams, int BytesPerStream);

    private static readonly Case[] Cases =
    [
        // A busy broker: 8 MiB uploads holding 16 partitions each.
        new("16 streams x 512 KiB per object", 32, 16, 512 * 1024),
        // Many quiet partitions: small uploads, one small block per partition.
        new("32 streams x 2 KiB per object", 1000, 32, 2 * 1024),
    ];

    public static async Task<int> RunAsync(string directory, int runs)
    {
        Console.WriteLine($"# Compaction round, local-directory store, {runs} run(s) per case, directory {directory}");
        Console.WriteLine("| case | input objects | input MiB | blocks | output objects | output MiB | seconds | MB/s of input |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (Case c in Cases)
        {
            for (int run = 0; run < runs; run++)
            {
                await RunCaseAsync(Path.Combine(directory, "compact-" + Guid.NewGuid().ToString("N")), c);
            }
        }

        return 0;
    }

    private static async Task RunCaseAsync(string root, Case c)
    {
        var options = new StorageOptions { CompactionMaxBytesPerRound = 1L << 30 };
        var objects = new LocalDirectoryObjectStore(new LocalObjectStoreOptions { RootDirectory = Path.Combine(root, "objects") });
        await using (var metadata = new SqliteMetadataStore(new SqliteMetadataStoreOptions { DatabasePath = Path.Combine(root, "metadata.db") }))
        {
            await metadata.InitializeAsync();
            int blocks = await WriteStreamSetObjectsAsync(metadata, objects, options, c);
            var compactor = new ObjectCompactor(objects, metadata, options);

            var clock = Stopwatch.StartNew();
            CompactionReport report = await compactor.RunOnceAsync(DateTimeOffset.UtcNow.AddHours(1));
            double seconds = clock.Elapsed.TotalSeconds;

            if (report.StreamSetObjectsReplaced != c.Objects || report.ObjectsWritten == 0)
            {
                throw new InvalidOperationException($"The round did not take every object: {report}");
            }

            Console.WriteLine(
                $"| {c.Name} | {report.StreamSetObjectsReplaced} | {report.InputBytes / 1048576.0:0.0} | {blocks} | {report.ObjectsWritten} | {report.OutputBytes / 1048576.0:0.0} | {seconds:0.000} | {report.InputBytes / seconds / 1e6:0.0} |");
        }

        Directory.Delete(root, recursive: true);
    }

    /// <summary>What the uploader would have written: per object, each stream's next batches, in stream order.</summary>
    private static async Task<int> WriteStreamSetObjectsAsync(SqliteMetadataStore metadata, LocalDirectoryObjectStore objects, StorageOptions options, Case c)
    {
        TopicMetadata topic = await metadata.CreateTopicAsync("bench", c.Streams, new Dictionary<string, string>());
        var partitions = new List<PartitionMetadata>();
        foreach (PartitionMetadata partition in topic.Partitions)
        {
            partitions.Add(await metadata.ClaimLeadershipAsync(partition.StreamId, 1));
        }

        // Records of 1000 bytes, up to 16 to a batch (about 16 KiB), as a producer's linger would batch them.
        int recordsPerBatch = Math.Clamp(c.BytesPerStream / 1024, 1, 16);
        var template = new RecordBatchBuilder(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        for (int i = 0; i < recordsPerBatch; i++)
        {
            template.Add(BitConverter.GetBytes(i), new byte[1000], template.BaseTimestamp + i);
        }

        byte[] batchTemplate = template.Build();
        int batchesPerStream = Math.Max(1, c.BytesPerStream / batchTemplate.Length);
        var next = new long[c.Streams];
        int blocks = 0;
        for (int o = 0; o < c.Objects; o++)
        {
            var builder = new ObjectBuilder(ObjectKind.StreamSet, options.BlockSizeBytes);
            var ranges = new List<ObjectRange>();
            for (int s = 0; s < c.Streams; s++)
            {
                long start = next[s];
                for (int b = 0; b < batchesPerStream; b++)
                {
                    byte[] batch = (byte[])batchTemplate.Clone();
                    BatchHeader.SetBaseOffset(batch, next[s]);
                    builder.Add(partitions[s].StreamId, next[s], next[s] + recordsPerBatch, template.BaseTimestamp, template.BaseTimestamp + recordsPerBatch, recordsPerBatch, batch);
                    next[s] += recordsPerBatch;
                }

                List<BlockIndexEntry> own = [.. builder.Blocks.Where(block => block.StreamId == partitions[s].StreamId)];
                ranges.Add(new ObjectRange(partitions[s].StreamId, partitions[s].LeaderEpoch, start, next[s], own[0].Position, own.Sum(block => (long)block.Size), template.BaseTimestamp, template.BaseTimestamp + recordsPerBatch));
            }

            byte[] data = builder.Build();
            blocks += builder.Blocks.Count;
            PreparedObject prepared = await metadata.PrepareObjectAsync(options.ObjectKeyPrefix);
            await objects.PutAsync(prepared.Key, data);
            await metadata.CommitObjectAsync(new ObjectCommit(prepared.ObjectId, data.Length, ranges, []));
        }

        return blocks;
    }
}
