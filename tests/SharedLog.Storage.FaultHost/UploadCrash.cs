using SharedLog.Protocol.Records;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.ObjectStore;
using SharedLog.Storage.Streams;
using SharedLog.Storage.Wal;

namespace SharedLog.Storage.FaultHost;

/// <summary>
/// Crash points of an upload, for the fault tests: the process appends and acknowledges batches, then
/// uploads them and kills itself (SIGKILL, no cleanup) either after the object PUT but before the
/// metadata commit, or after the commit but before the WAL trim.
/// </summary>
public static class UploadCrash
{
    public const string TopicName = "crash-topic";

    public static WalOptions Wal(string directory) => new() { Directory = Path.Combine(directory, "wal"), PageSizeBits = 20, MemorySizeBits = 22, SegmentSizeBits = 22 };

    public static LocalObjectStoreOptions Objects(string directory) => new() { RootDirectory = Path.Combine(directory, "objects") };

    public static SqliteMetadataStoreOptions Metadata(string directory) => new() { DatabasePath = Path.Combine(directory, "metadata.db") };

    /// <summary>A batch whose single record's key is its sequence number, so a reader can check order and count.</summary>
    public static byte[] Batch(int sequence) =>
        new RecordBatchBuilder(1_700_000_000_000 + sequence).Add(BitConverter.GetBytes(sequence), new byte[64], 1_700_000_000_000 + sequence).Build();

    public static async Task<int> RunAsync(string directory, string phase, int batches)
    {
        var metadata = new SqliteMetadataStore(Metadata(directory));
        await metadata.InitializeAsync();
        TopicMetadata topic = await metadata.GetTopicAsync(TopicName) ?? await metadata.CreateTopicAsync(TopicName, 1, new Dictionary<string, string>());
        PartitionMetadata partition = await metadata.ClaimLeadershipAsync(topic.Partitions[0].StreamId, 1);
        var wal = new FasterWriteAheadLog(Wal(directory));
        var crashing = new CrashingMetadataStore(metadata, phase);
        var streams = new StreamStore(new StorageOptions { UploadInterval = TimeSpan.FromHours(1) }, wal, new LocalDirectoryObjectStore(Objects(directory)), crashing);
        streams.Open(partition);
        await streams.StartAsync();
        for (int i = 0; i < batches; i++)
        {
            await streams.AppendAsync(partition.StreamId, Batch(i));
        }

        Console.WriteLine($"acked {batches}");
        Console.Out.Flush();
        await streams.UploadAsync();
        Console.Error.WriteLine($"phase {phase} was never reached");
        return 3;
    }

    /// <summary>Fault injection: dies at the chosen point of an object commit.</summary>
    private sealed class CrashingMetadataStore(IMetadataStore inner, string phase) : IMetadataStore
    {
        public async Task CommitObjectAsync(ObjectCommit commit, CancellationToken cancellationToken = default)
        {
            if (phase == "before-commit")
            {
                Die();
            }

            await inner.CommitObjectAsync(commit, cancellationToken);
            if (phase == "before-trim")
            {
                Die();
            }
        }

        private static void Die()
        {
            Console.Out.Flush();
            System.Diagnostics.Process.GetCurrentProcess().Kill();
        }

        public Task InitializeAsync(CancellationToken cancellationToken = default) => inner.InitializeAsync(cancellationToken);

        public Task<TopicMetadata> CreateTopicAsync(string name, int partitionCount, IReadOnlyDictionary<string, string> configs, CancellationToken cancellationToken = default) => inner.CreateTopicAsync(name, partitionCount, configs, cancellationToken);

        public Task<TopicMetadata?> GetTopicAsync(string name, CancellationToken cancellationToken = default) => inner.GetTopicAsync(name, cancellationToken);

        public Task<TopicMetadata?> GetTopicAsync(Guid topicId, CancellationToken cancellationToken = default) => inner.GetTopicAsync(topicId, cancellationToken);

        public Task<IReadOnlyList<TopicMetadata>> ListTopicsAsync(CancellationToken cancellationToken = default) => inner.ListTopicsAsync(cancellationToken);

        public Task<bool> DeleteTopicAsync(string name, CancellationToken cancellationToken = default) => inner.DeleteTopicAsync(name, cancellationToken);

        public Task<TopicMetadata> AddPartitionsAsync(string name, int newPartitionCount, CancellationToken cancellationToken = default) => inner.AddPartitionsAsync(name, newPartitionCount, cancellationToken);

        public Task<TopicMetadata> AlterTopicConfigsAsync(string name, IReadOnlyDictionary<string, string?> changes, CancellationToken cancellationToken = default) => inner.AlterTopicConfigsAsync(name, changes, cancellationToken);

        public Task<PartitionMetadata> ClaimLeadershipAsync(long streamId, int brokerId, CancellationToken cancellationToken = default) => inner.ClaimLeadershipAsync(streamId, brokerId, cancellationToken);

        public Task<IReadOnlyList<PartitionMetadata>> ClaimLeadershipAsync(IReadOnlyList<long> streamIds, int brokerId, CancellationToken cancellationToken = default) =>
            inner.ClaimLeadershipAsync(streamIds, brokerId, cancellationToken);

        public Task<PartitionMetadata?> GetPartitionAsync(long streamId, CancellationToken cancellationToken = default) => inner.GetPartitionAsync(streamId, cancellationToken);

        public Task SetLogStartOffsetAsync(long streamId, int leaderEpoch, long logStartOffset, CancellationToken cancellationToken = default) => inner.SetLogStartOffsetAsync(streamId, leaderEpoch, logStartOffset, cancellationToken);

        public Task<PreparedObject> PrepareObjectAsync(string keyPrefix, CancellationToken cancellationToken = default) => inner.PrepareObjectAsync(keyPrefix, cancellationToken);

        public Task CommitCompactionAsync(IReadOnlyList<ObjectCommit> newObjects, IReadOnlyCollection<long> replaces, CancellationToken cancellationToken = default) => inner.CommitCompactionAsync(newObjects, replaces, cancellationToken);

        public Task<IReadOnlyList<StreamObjectRange>> GetObjectRangesAsync(long streamId, long fromOffset, int limit = int.MaxValue, CancellationToken cancellationToken = default) => inner.GetObjectRangesAsync(streamId, fromOffset, limit, cancellationToken);

        public Task<long> GetCommittedEndOffsetAsync(long streamId, CancellationToken cancellationToken = default) => inner.GetCommittedEndOffsetAsync(streamId, cancellationToken);

        public Task<IReadOnlyList<ObjectMetadata>> ListObjectsAsync(CancellationToken cancellationToken = default) => inner.ListObjectsAsync(cancellationToken);

        public Task MarkObjectsDeletedAsync(IReadOnlyCollection<long> objectIds, CancellationToken cancellationToken = default) => inner.MarkObjectsDeletedAsync(objectIds, cancellationToken);

        public Task<IReadOnlyList<long>> MarkDeadObjectsAsync(IReadOnlyCollection<long> objectIds, CancellationToken cancellationToken = default) => inner.MarkDeadObjectsAsync(objectIds, cancellationToken);

        public Task<IReadOnlyList<long>> MarkOrphansAsync(IReadOnlyCollection<long> objectIds, CancellationToken cancellationToken = default) => inner.MarkOrphansAsync(objectIds, cancellationToken);

        public Task ForgetObjectsAsync(IReadOnlyCollection<long> objectIds, CancellationToken cancellationToken = default) => inner.ForgetObjectsAsync(objectIds, cancellationToken);

        public Task CommitGroupOffsetsAsync(string groupId, IReadOnlyList<GroupOffset> offsets, CancellationToken cancellationToken = default) => inner.CommitGroupOffsetsAsync(groupId, offsets, cancellationToken);

        public Task<IReadOnlyList<GroupOffset>> FetchGroupOffsetsAsync(string groupId, CancellationToken cancellationToken = default) => inner.FetchGroupOffsetsAsync(groupId, cancellationToken);

        public Task DeleteGroupOffsetsAsync(string groupId, IReadOnlyList<(string Topic, int Partition)>? partitions, CancellationToken cancellationToken = default) => inner.DeleteGroupOffsetsAsync(groupId, partitions, cancellationToken);

        public Task<IReadOnlyList<string>> ListGroupsAsync(CancellationToken cancellationToken = default) => inner.ListGroupsAsync(cancellationToken);

        public Task<IReadOnlyList<(string Topic, int Partition)>> DeleteExpiredGroupOffsetsAsync(string groupId, DateTimeOffset now, DateTimeOffset cutoff, DateTimeOffset? emptySince, IReadOnlySet<string>? keepTopics, CancellationToken cancellationToken = default) =>
            inner.DeleteExpiredGroupOffsetsAsync(groupId, now, cutoff, emptySince, keepTopics, cancellationToken);

        public Task SaveGroupStateAsync(SavedGroupState state, CancellationToken cancellationToken = default) => inner.SaveGroupStateAsync(state, cancellationToken);

        public Task<IReadOnlyList<SavedGroupState>> ListGroupStatesAsync(CancellationToken cancellationToken = default) => inner.ListGroupStatesAsync(cancellationToken);

        public Task<int> DeleteGroupStatesWithoutOffsetsAsync(IReadOnlySet<string> keep, CancellationToken cancellationToken = default) => inner.DeleteGroupStatesWithoutOffsetsAsync(keep, cancellationToken);

        public Task<ProducerIdBlock> AllocateProducerIdsAsync(int blockSize, CancellationToken cancellationToken = default) => inner.AllocateProducerIdsAsync(blockSize, cancellationToken);

        public Task SaveProducerSnapshotsAsync(IReadOnlyList<ProducerSnapshot> snapshots, CancellationToken cancellationToken = default) => inner.SaveProducerSnapshotsAsync(snapshots, cancellationToken);

        public Task<ProducerSnapshot?> GetProducerSnapshotAsync(long streamId, CancellationToken cancellationToken = default) => inner.GetProducerSnapshotAsync(streamId, cancellationToken);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
