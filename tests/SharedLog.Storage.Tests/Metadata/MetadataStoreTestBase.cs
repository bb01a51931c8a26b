using SharedLog.Storage.Metadata;

namespace SharedLog.Storage.Tests.Metadata;

/// <summary>Each test gets a fresh database file in its own temp directory, removed afterwards.</summary>
public abstract class MetadataStoreTestBase : IAsyncLifetime
{
    protected const int ObjectSize = 1_000;

    private readonly List<SqliteMetadataStore> _stores = [];

    protected MetadataStoreTestBase()
    {
        Directory = Path.Combine(Path.GetTempPath(), "sharedlog-metadata-" + Guid.NewGuid().ToString("N"));
        DatabasePath = Path.Combine(Directory, "metadata.db");
    }

    protected string Directory { get; }

    protected string DatabasePath { get; }

    protected ManualTimeProvider Time { get; } = new(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000));

    protected SqliteMetadataStore Store { get; private set; } = null!;

    public virtual async Task InitializeAsync()
    {
        Store = await OpenStoreAsync();
    }

    public async Task DisposeAsync()
    {
        foreach (SqliteMetadataStore store in _stores)
        {
            await store.DisposeAsync();
        }

        if (System.IO.Directory.Exists(Directory))
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
    }

    /// <summary>Opens another instance on the same file (disposed with the test).</summary>
    protected async Task<SqliteMetadataStore> OpenStoreAsync()
    {
        var store = new SqliteMetadataStore(new SqliteMetadataStoreOptions { DatabasePath = DatabasePath, BusyTimeout = TimeSpan.FromSeconds(30) }, Time);
        _stores.Add(store);
        await store.InitializeAsync();
        return store;
    }

    /// <summary>Disposes the current instance and opens a new one on the same file.</summary>
    protected async Task ReopenAsync()
    {
        await Store.DisposeAsync();
        Store = await OpenStoreAsync();
    }

    protected static Dictionary<string, string> NoConfigs() => [];

    protected async Task<PartitionMetadata> CreateLedPartitionAsync(string topic, int brokerId = 1)
    {
        TopicMetadata created = await Store.CreateTopicAsync(topic, 1, NoConfigs());
        return await Store.ClaimLeadershipAsync(created.Partitions[0].StreamId, brokerId);
    }

    protected static ObjectRange Range(long streamId, int epoch, long start, long end, long position = 0, long size = 10) =>
        new(streamId, epoch, start, end, position, size, FirstTimestamp: 1_000 + start, MaxTimestamp: 1_000 + end);

    protected static ObjectCommit Commit(long objectId, params ObjectRange[] ranges) => new(objectId, ObjectSize, ranges, []);

    /// <summary>Prepares and commits one object holding [start, end) of the stream.</summary>
    protected async Task<PreparedObject> CommitRangeAsync(PartitionMetadata partition, long start, long end)
    {
        PreparedObject prepared = await Store.PrepareObjectAsync("data/");
        await Store.CommitObjectAsync(Commit(prepared.ObjectId, Range(partition.StreamId, partition.LeaderEpoch, start, end)));
        return prepared;
    }

    /// <summary>Two streams of one topic, in two objects that both hold: x [0, 5) and y [0, 5), then x [5, 8) and y [5, 9).</summary>
    protected async Task<(PartitionMetadata X, PartitionMetadata Y, PreparedObject First, PreparedObject Second)> CommitTwoSharedObjectsAsync()
    {
        TopicMetadata topic = await Store.CreateTopicAsync("shared", 2, NoConfigs());
        PartitionMetadata x = await Store.ClaimLeadershipAsync(topic.Partitions[0].StreamId, 1);
        PartitionMetadata y = await Store.ClaimLeadershipAsync(topic.Partitions[1].StreamId, 1);
        PreparedObject first = await Store.PrepareObjectAsync("data/");
        await Store.CommitObjectAsync(Commit(first.ObjectId, Range(x.StreamId, x.LeaderEpoch, 0, 5), Range(y.StreamId, y.LeaderEpoch, 0, 5, position: 10)));
        PreparedObject second = await Store.PrepareObjectAsync("data/");
        await Store.CommitObjectAsync(Commit(second.ObjectId, Range(x.StreamId, x.LeaderEpoch, 5, 8), Range(y.StreamId, y.LeaderEpoch, 5, 9, position: 10)));
        return (x, y, first, second);
    }

    protected async Task<ObjectState?> StateOfAsync(long objectId) =>
        (await Store.ListObjectsAsync()).SingleOrDefault(o => o.ObjectId == objectId)?.State;

    protected static async Task<Exception?> OutcomeOf(Task task)
    {
        try
        {
            await task;
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }
}

public sealed class ManualTimeProvider(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = now;

    public override DateTimeOffset GetUtcNow() => Now;
}
