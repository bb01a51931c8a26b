using Microsoft.Data.Sqlite;
using SharedLog.Storage.Metadata;

namespace SharedLog.Storage.Tests.Metadata;

public sealed class DurabilityAndConcurrencyTests : MetadataStoreTestBase
{
    [Fact]
    public async Task ConnectionsUseWalFullSyncAndForeignKeys()
    {
        (string journalMode, long synchronous, long foreignKeys) = await Store.ReadConnectionSettingsAsync();
        Assert.Equal("wal", journalMode, ignoreCase: true);
        Assert.Equal(2, synchronous); // FULL
        Assert.Equal(1, foreignKeys);
    }

    [Fact]
    public async Task TheSchemaIsVersionedAndInitializingAgainChangesNothing()
    {
        await Store.CreateTopicAsync("before", 1, NoConfigs());
        await Store.InitializeAsync();
        await OpenStoreAsync();

        // Each migration applied exactly once.
        Assert.Equal(Enumerable.Range(1, SqliteMetadataSchema.CurrentVersion).Select(v => (long)v), await ReadVersionsAsync());
        Assert.Equal(4, SqliteMetadataSchema.CurrentVersion);
        Assert.Single(await Store.ListTopicsAsync());
    }

    [Fact]
    public async Task ADatabaseFromANewerBuildIsRefused()
    {
        await ExecuteRawAsync("INSERT INTO schema_version (version, applied_at_ms) VALUES (99, 0)");
        var newer = new SqliteMetadataStore(new SqliteMetadataStoreOptions { DatabasePath = DatabasePath });
        await using (newer)
        {
            InvalidOperationException error = await Assert.ThrowsAsync<InvalidOperationException>(() => newer.InitializeAsync());
            Assert.Contains("99", error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task EverythingSurvivesReopening()
    {
        TopicMetadata topic = await Store.CreateTopicAsync("durable", 2, new Dictionary<string, string> { ["retention.bytes"] = "5" });
        PartitionMetadata led = await Store.ClaimLeadershipAsync(topic.Partitions[0].StreamId, 3);
        PreparedObject committed = await CommitRangeAsync(led, 0, 42);
        await Store.SetLogStartOffsetAsync(led.StreamId, led.LeaderEpoch, 7);
        PreparedObject orphan = await Store.PrepareObjectAsync("data/");
        await Store.CommitGroupOffsetsAsync("g", [new GroupOffset("durable", 1, 11, 1, "m", Time.Now)]);
        ProducerIdBlock block = await Store.AllocateProducerIdsAsync(100);
        IReadOnlyList<ObjectMetadata> objectsBefore = await Store.ListObjectsAsync();

        await ReopenAsync();

        TopicMetadata reopened = (await Store.GetTopicAsync("durable"))!;
        Assert.Equal(topic.TopicId, reopened.TopicId);
        Assert.Equal(topic.CreatedAt, reopened.CreatedAt);
        Assert.Equal("5", reopened.Configs["retention.bytes"]);
        Assert.Equal(led with { LogStartOffset = 7, CommittedEndOffset = 42 }, reopened.Partitions[0]);
        Assert.Equal(topic.Partitions[1], reopened.Partitions[1]);
        Assert.Equal(objectsBefore, await Store.ListObjectsAsync());
        Assert.Equal([committed.ObjectId], (await Store.GetObjectRangesAsync(led.StreamId, 0)).Select(r => r.ObjectId));
        Assert.Equal(ObjectState.Prepared, await StateOfAsync(orphan.ObjectId));
        Assert.Equal([new GroupOffset("durable", 1, 11, 1, "m", Time.Now)], await Store.FetchGroupOffsetsAsync("g"));

        // Sequences continue where they were, fencing continues at the stored epoch.
        Assert.True((await Store.AllocateProducerIdsAsync(1)).FirstProducerId >= block.FirstProducerId + block.Count);
        Assert.True((await Store.PrepareObjectAsync("data/")).ObjectId > orphan.ObjectId);
        Assert.True((await Store.CreateTopicAsync("later", 1, NoConfigs())).Partitions[0].StreamId > topic.Partitions.Max(p => p.StreamId));
        Assert.Equal(led.LeaderEpoch + 1, (await Store.ClaimLeadershipAsync(led.StreamId, 4)).LeaderEpoch);
        await CommitRangeAsync((await Store.GetPartitionAsync(led.StreamId))!, 42, 50);
    }

    [Fact]
    public async Task UseBeforeInitializeOrAfterDisposeFailsClearly()
    {
        var uninitialized = new SqliteMetadataStore(new SqliteMetadataStoreOptions { DatabasePath = DatabasePath });
        await using (uninitialized)
        {
            await Assert.ThrowsAsync<InvalidOperationException>(() => uninitialized.ListTopicsAsync());
        }

        await Store.DisposeAsync();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => Store.ListTopicsAsync());
        await Assert.ThrowsAsync<ObjectDisposedException>(() => Store.CreateTopicAsync("x", 1, NoConfigs()));
        await Store.DisposeAsync();
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData(":memory:")]
    public void InvalidOptionsAreRejected(string path)
    {
        Assert.Throws<ArgumentException>(() => new SqliteMetadataStore(new SqliteMetadataStoreOptions { DatabasePath = path }));
        Assert.Throws<ArgumentException>(() => new SqliteMetadataStore(new SqliteMetadataStoreOptions { DatabasePath = DatabasePath, BusyTimeout = TimeSpan.Zero }));
        Assert.Throws<ArgumentException>(() => new SqliteMetadataStore(new SqliteMetadataStoreOptions { DatabasePath = DatabasePath, BusyTimeout = TimeSpan.FromHours(1) }));
    }

    [Fact]
    public async Task ParallelWritersOnDifferentStreamsAllSucceed()
    {
        const int Writers = 8;
        const int CommitsEach = 25;
        TopicMetadata topic = await Store.CreateTopicAsync("parallel", Writers, NoConfigs());
        PartitionMetadata[] partitions = await Task.WhenAll(topic.Partitions.Select(p => Store.ClaimLeadershipAsync(p.StreamId, 1)));

        await Task.WhenAll(partitions.Select(partition => Task.Run(async () =>
        {
            for (int i = 0; i < CommitsEach; i++)
            {
                await CommitRangeAsync(partition, i * 4L, (i + 1) * 4L);
            }
        })));

        foreach (PartitionMetadata partition in partitions)
        {
            Assert.Equal(CommitsEach * 4L, await Store.GetCommittedEndOffsetAsync(partition.StreamId));
            IReadOnlyList<StreamObjectRange> ranges = await Store.GetObjectRangesAsync(partition.StreamId, 0);
            Assert.Equal(Enumerable.Range(0, CommitsEach).Select(i => i * 4L), ranges.Select(r => r.Range.StartOffset));
        }

        Assert.Equal(Writers * CommitsEach, (await Store.ListObjectsAsync()).Count(o => o.State == ObjectState.Committed));
    }

    [Fact]
    public async Task TwoStoreInstancesOnOneFileSerializeThroughSqlite()
    {
        // Separate instances share no in-memory gate, so this exercises BEGIN IMMEDIATE and the busy timeout.
        SqliteMetadataStore other = await OpenStoreAsync();
        TopicMetadata topic = await Store.CreateTopicAsync("two-instances", 4, NoConfigs());
        PartitionMetadata[] partitions = await Task.WhenAll(topic.Partitions.Select(p => Store.ClaimLeadershipAsync(p.StreamId, 1)));

        await Task.WhenAll(partitions.Select((partition, index) => Task.Run(async () =>
        {
            SqliteMetadataStore store = index % 2 == 0 ? Store : other;
            for (int i = 0; i < 15; i++)
            {
                PreparedObject prepared = await store.PrepareObjectAsync("data/");
                await store.CommitObjectAsync(Commit(prepared.ObjectId, Range(partition.StreamId, partition.LeaderEpoch, i * 2L, (i + 1) * 2L)));
            }
        })));

        foreach (PartitionMetadata partition in partitions)
        {
            Assert.Equal(30, await other.GetCommittedEndOffsetAsync(partition.StreamId));
        }

        Assert.Equal(60, (await Store.ListObjectsAsync()).Select(o => o.ObjectId).Distinct().Count());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task RacingCommitsAtTheSameOffsetLetExactlyOneWin(bool separateInstances)
    {
        const int Rounds = 20;
        SqliteMetadataStore rival = separateInstances ? await OpenStoreAsync() : Store;
        PartitionMetadata partition = await CreateLedPartitionAsync("race");

        for (int round = 0; round < Rounds; round++)
        {
            long start = round * 10L;
            PreparedObject a = await Store.PrepareObjectAsync("data/");
            PreparedObject b = await rival.PrepareObjectAsync("data/");
            Task first = Task.Run(() => Store.CommitObjectAsync(Commit(a.ObjectId, Range(partition.StreamId, partition.LeaderEpoch, start, start + 10))));
            Task second = Task.Run(() => rival.CommitObjectAsync(Commit(b.ObjectId, Range(partition.StreamId, partition.LeaderEpoch, start, start + 10))));
            Exception?[] outcomes = await Task.WhenAll(OutcomeOf(first), OutcomeOf(second));

            Assert.Single(outcomes, o => o is null);
            Assert.Single(outcomes, o => o is OffsetConflictException);
            long loser = outcomes[0] is null ? b.ObjectId : a.ObjectId;
            Assert.Equal(ObjectState.Prepared, await StateOfAsync(loser));
            Assert.Equal(start + 10, await Store.GetCommittedEndOffsetAsync(partition.StreamId));
        }

        Assert.Equal(Rounds, (await Store.GetObjectRangesAsync(partition.StreamId, 0)).Count);
    }

    private async Task<List<long>> ReadVersionsAsync()
    {
        await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = DatabasePath, Pooling = false }.ToString());
        await connection.OpenAsync();
        await using SqliteCommand command = connection.CreateCommand();
        command.CommandText = "SELECT version FROM schema_version ORDER BY version";
        await using SqliteDataReader reader = await command.ExecuteReaderAsync();
        var versions = new List<long>();
        while (await reader.ReadAsync())
        {
            versions.Add(reader.GetInt64(0));
        }

        return versions;
    }

    private async Task ExecuteRawAsync(string sql)
    {
        await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = DatabasePath, Pooling = false }.ToString());
        await connection.OpenAsync();
        await using SqliteCommand command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }
}
