using SharedLog.Storage.Metadata;

namespace SharedLog.Storage.Tests.Metadata;

public sealed class SqliteMetadataStoreTests : IAsyncLifetime
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), "sharedlog-meta-" + Guid.NewGuid().ToString("N"), "metadata.db");
    private SqliteMetadataStore _store = null!;

    public async Task InitializeAsync()
    {
        _store = new SqliteMetadataStore(new SqliteMetadataStoreOptions { DatabasePath = _path });
        await _store.InitializeAsync();
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        Directory.Delete(Path.GetDirectoryName(_path)!, recursive: true);
    }

    private static ObjectRange Range(long stream, int epoch, long start, long end) => new(stream, epoch, start, end, 0, 100, 1, 2);

    [Fact]
    public async Task TopicsAreCreatedListedAlteredAndDeleted()
    {
        TopicMetadata created = await _store.CreateTopicAsync("orders", 3, new Dictionary<string, string> { ["retention.ms"] = "1000" });
        Assert.Equal(3, created.Partitions.Count);
        Assert.Equal(3, created.Partitions.Select(p => p.StreamId).Distinct().Count());
        Assert.Equal("1000", created.Configs["retention.ms"]);
        await Assert.ThrowsAsync<TopicExistsException>(() => _store.CreateTopicAsync("orders", 1, new Dictionary<string, string>()));

        TopicMetadata grown = await _store.AddPartitionsAsync("orders", 5);
        Assert.Equal(5, grown.Partitions.Count);
        await Assert.ThrowsAsync<ArgumentException>(() => _store.AddPartitionsAsync("orders", 2));

        TopicMetadata altered = await _store.AlterTopicConfigsAsync("orders", new Dictionary<string, string?> { ["retention.ms"] = null, ["cleanup.policy"] = "compact" });
        Assert.False(altered.Configs.ContainsKey("retention.ms"));
        Assert.Equal("compact", altered.Configs["cleanup.policy"]);

        Assert.Equal(created.TopicId, (await _store.GetTopicAsync(created.TopicId))!.TopicId);
        Assert.Single(await _store.ListTopicsAsync());
        Assert.True(await _store.DeleteTopicAsync("orders"));
        Assert.False(await _store.DeleteTopicAsync("orders"));
        Assert.Null(await _store.GetTopicAsync("orders"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("..")]
    [InlineData("has space")]
    [InlineData("slash/name")]
    public async Task InvalidTopicNamesAreRejected(string name)
    {
        await Assert.ThrowsAsync<ArgumentException>(() => _store.CreateTopicAsync(name, 1, new Dictionary<string, string>()));
    }

    [Fact]
    public async Task TooLongNamesAndNoPartitionsAreRejected()
    {
        await Assert.ThrowsAsync<ArgumentException>(() => _store.CreateTopicAsync(new string('a', 250), 1, new Dictionary<string, string>()));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => _store.CreateTopicAsync("zero", 0, new Dictionary<string, string>()));
    }

    [Fact]
    public async Task CommitsAdvanceTheEndOffsetAndAreFencedByEpoch()
    {
        TopicMetadata topic = await _store.CreateTopicAsync("t", 1, new Dictionary<string, string>());
        long stream = topic.Partitions[0].StreamId;
        PartitionMetadata led = await _store.ClaimLeadershipAsync(stream, 1);
        Assert.Equal(topic.Partitions[0].LeaderEpoch + 1, led.LeaderEpoch);

        PreparedObject first = await _store.PrepareObjectAsync("data/");
        await _store.CommitObjectAsync(new ObjectCommit(first.ObjectId, 500, [Range(stream, led.LeaderEpoch, 0, 10)], []));
        Assert.Equal(10, await _store.GetCommittedEndOffsetAsync(stream));

        // A new leader fences the old one: its commit is refused and changes nothing.
        PartitionMetadata next = await _store.ClaimLeadershipAsync(stream, 2);
        PreparedObject stale = await _store.PrepareObjectAsync("data/");
        await Assert.ThrowsAsync<FencedException>(() => _store.CommitObjectAsync(new ObjectCommit(stale.ObjectId, 500, [Range(stream, led.LeaderEpoch, 10, 20)], [])));
        Assert.Equal(10, await _store.GetCommittedEndOffsetAsync(stream));
        Assert.Equal(ObjectState.Prepared, (await _store.ListObjectsAsync()).Single(o => o.ObjectId == stale.ObjectId).State);

        // Gaps and overlaps are refused.
        await Assert.ThrowsAsync<OffsetConflictException>(() => _store.CommitObjectAsync(new ObjectCommit(stale.ObjectId, 500, [Range(stream, next.LeaderEpoch, 11, 20)], [])));
        await Assert.ThrowsAsync<OffsetConflictException>(() => _store.CommitObjectAsync(new ObjectCommit(stale.ObjectId, 500, [Range(stream, next.LeaderEpoch, 5, 20)], [])));
        await _store.CommitObjectAsync(new ObjectCommit(stale.ObjectId, 500, [Range(stream, next.LeaderEpoch, 10, 20)], []));
        IReadOnlyList<StreamObjectRange> ranges = await _store.GetObjectRangesAsync(stream, 12);
        StreamObjectRange only = Assert.Single(ranges);
        Assert.Equal(stale.Key, only.Key);
        Assert.Equal(2, (await _store.GetObjectRangesAsync(stream, 0)).Count);
    }

    [Fact]
    public async Task MultiStreamCommitIsAtomic()
    {
        TopicMetadata topic = await _store.CreateTopicAsync("two", 2, new Dictionary<string, string>());
        PartitionMetadata a = topic.Partitions[0];
        PartitionMetadata b = topic.Partitions[1];
        PreparedObject obj = await _store.PrepareObjectAsync("data/");
        await Assert.ThrowsAsync<OffsetConflictException>(() => _store.CommitObjectAsync(new ObjectCommit(obj.ObjectId, 100, [Range(a.StreamId, a.LeaderEpoch, 0, 5), Range(b.StreamId, b.LeaderEpoch, 3, 5)], [])));
        Assert.Equal(0, await _store.GetCommittedEndOffsetAsync(a.StreamId));
        Assert.Empty(await _store.GetObjectRangesAsync(a.StreamId, 0));
    }

    [Fact]
    public async Task CompactionReplacesObjects()
    {
        TopicMetadata topic = await _store.CreateTopicAsync("c", 1, new Dictionary<string, string>());
        PartitionMetadata p = topic.Partitions[0];
        PreparedObject one = await _store.PrepareObjectAsync("data/");
        await _store.CommitObjectAsync(new ObjectCommit(one.ObjectId, 10, [Range(p.StreamId, p.LeaderEpoch, 0, 5)], []));
        PreparedObject two = await _store.PrepareObjectAsync("data/");
        await _store.CommitObjectAsync(new ObjectCommit(two.ObjectId, 10, [Range(p.StreamId, p.LeaderEpoch, 5, 9)], []));
        PreparedObject merged = await _store.PrepareObjectAsync("data/");
        await _store.CommitObjectAsync(new ObjectCommit(merged.ObjectId, 20, [Range(p.StreamId, p.LeaderEpoch, 0, 9)], [one.ObjectId, two.ObjectId]));

        StreamObjectRange range = Assert.Single(await _store.GetObjectRangesAsync(p.StreamId, 0));
        Assert.Equal(merged.ObjectId, range.ObjectId);
        IReadOnlyList<ObjectMetadata> objects = await _store.ListObjectsAsync();
        Assert.All(objects.Where(o => o.ObjectId != merged.ObjectId), o => Assert.Equal(ObjectState.MarkedForDeletion, o.State));
        Assert.Equal(9, await _store.GetCommittedEndOffsetAsync(p.StreamId));

        await _store.ForgetObjectsAsync([one.ObjectId, two.ObjectId]);
        Assert.Single(await _store.ListObjectsAsync());
    }

    [Fact]
    public async Task LogStartOffsetIsFencedAndNeverLowered()
    {
        TopicMetadata topic = await _store.CreateTopicAsync("l", 1, new Dictionary<string, string>());
        PartitionMetadata p = topic.Partitions[0];
        await _store.SetLogStartOffsetAsync(p.StreamId, p.LeaderEpoch, 50);
        await _store.SetLogStartOffsetAsync(p.StreamId, p.LeaderEpoch, 20);
        Assert.Equal(50, (await _store.GetPartitionAsync(p.StreamId))!.LogStartOffset);
        await Assert.ThrowsAsync<FencedException>(() => _store.SetLogStartOffsetAsync(p.StreamId, p.LeaderEpoch + 7, 60));
    }

    [Fact]
    public async Task GroupOffsetsAndProducerIds()
    {
        DateTimeOffset now = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        await _store.CommitGroupOffsetsAsync("g1", [new GroupOffset("t", 0, 5, -1, "m", now), new GroupOffset("t", 1, 7, 2, null, now)]);
        await _store.CommitGroupOffsetsAsync("g1", [new GroupOffset("t", 0, 9, -1, null, now)]);
        IReadOnlyList<GroupOffset> offsets = await _store.FetchGroupOffsetsAsync("g1");
        Assert.Equal([9L, 7L], offsets.Select(o => o.Offset));
        Assert.Equal(["g1"], await _store.ListGroupsAsync());
        await _store.DeleteGroupOffsetsAsync("g1", [("t", 0)]);
        Assert.Single(await _store.FetchGroupOffsetsAsync("g1"));

        ProducerIdBlock[] blocks = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => _store.AllocateProducerIdsAsync(100)));
        var ids = blocks.SelectMany(b => Enumerable.Range(0, b.Count).Select(i => b.FirstProducerId + i)).ToList();
        Assert.Equal(800, ids.Distinct().Count());
    }

    [Fact]
    public async Task RacingCommitsForTheSameOffsetLetExactlyOneWin()
    {
        TopicMetadata topic = await _store.CreateTopicAsync("race", 1, new Dictionary<string, string>());
        PartitionMetadata p = topic.Partitions[0];
        PreparedObject a = await _store.PrepareObjectAsync("data/");
        PreparedObject b = await _store.PrepareObjectAsync("data/");
        Task first = _store.CommitObjectAsync(new ObjectCommit(a.ObjectId, 1, [Range(p.StreamId, p.LeaderEpoch, 0, 10)], []));
        Task second = _store.CommitObjectAsync(new ObjectCommit(b.ObjectId, 1, [Range(p.StreamId, p.LeaderEpoch, 0, 10)], []));
        Exception?[] outcomes = await Task.WhenAll(Outcome(first), Outcome(second));
        Assert.Single(outcomes, o => o is null);
        Assert.Single(outcomes, o => o is OffsetConflictException);
    }

    private static async Task<Exception?> Outcome(Task task)
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

    [Fact]
    public async Task EverythingSurvivesReopening()
    {
        TopicMetadata topic = await _store.CreateTopicAsync("durable", 2, new Dictionary<string, string> { ["retention.bytes"] = "5" });
        await _store.DisposeAsync();
        _store = new SqliteMetadataStore(new SqliteMetadataStoreOptions { DatabasePath = _path });
        await _store.InitializeAsync();
        TopicMetadata reopened = (await _store.GetTopicAsync("durable"))!;
        Assert.Equal(topic.TopicId, reopened.TopicId);
        Assert.Equal(topic.Partitions.Select(p => p.StreamId), reopened.Partitions.Select(p => p.StreamId));
        Assert.Equal("5", reopened.Configs["retention.bytes"]);
    }
}
