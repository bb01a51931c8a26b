using SharedLog.Storage.Metadata;

namespace SharedLog.Storage.Tests.Metadata;

public sealed class TopicMetadataTests : MetadataStoreTestBase
{
    [Fact]
    public async Task TopicsAreCreatedFoundListedAndDeleted()
    {
        TopicMetadata orders = await Store.CreateTopicAsync("orders", 3, new Dictionary<string, string> { ["retention.ms"] = "1000", ["cleanup.policy"] = "delete" });
        TopicMetadata audit = await Store.CreateTopicAsync("audit", 1, NoConfigs());

        Assert.Equal("orders", orders.Name);
        Assert.NotEqual(Guid.Empty, orders.TopicId);
        Assert.NotEqual(orders.TopicId, audit.TopicId);
        Assert.Equal(Time.Now, orders.CreatedAt);
        Assert.Equal([0, 1, 2], orders.Partitions.Select(p => p.Partition));
        Assert.Equal(3, orders.Partitions.Select(p => p.StreamId).Distinct().Count());
        Assert.All(orders.Partitions, p =>
        {
            Assert.Equal(orders.TopicId, p.TopicId);
            Assert.Equal("orders", p.TopicName);
            Assert.Equal(SqliteMetadataStore.NoLeader, p.LeaderBrokerId);
            Assert.Equal(0, p.LeaderEpoch);
            Assert.Equal(0, p.LogStartOffset);
            Assert.Equal(0, p.CommittedEndOffset);
        });
        Assert.Equal("1000", orders.Configs["retention.ms"]);
        Assert.Equal(2, orders.Configs.Count);

        TopicMetadata byName = (await Store.GetTopicAsync("orders"))!;
        TopicMetadata byId = (await Store.GetTopicAsync(orders.TopicId))!;
        foreach (TopicMetadata found in new[] { byName, byId })
        {
            Assert.Equal(orders.TopicId, found.TopicId);
            Assert.Equal(orders.Partitions, found.Partitions);
            Assert.Equal(orders.Configs.OrderBy(c => c.Key), found.Configs.OrderBy(c => c.Key));
        }

        Assert.Null(await Store.GetTopicAsync("missing"));
        Assert.Null(await Store.GetTopicAsync(Guid.NewGuid()));

        IReadOnlyList<TopicMetadata> listed = await Store.ListTopicsAsync();
        Assert.Equal(["audit", "orders"], listed.Select(t => t.Name));
        Assert.Equal(orders.Partitions, listed[1].Partitions);
        Assert.Equal("delete", listed[1].Configs["cleanup.policy"]);
        Assert.Empty(listed[0].Configs);

        Assert.True(await Store.DeleteTopicAsync("orders"));
        Assert.Null(await Store.GetTopicAsync("orders"));
        Assert.Null(await Store.GetTopicAsync(orders.TopicId));
        Assert.Null(await Store.GetPartitionAsync(orders.Partitions[0].StreamId));
        Assert.False(await Store.DeleteTopicAsync("orders"));
        Assert.Equal(["audit"], (await Store.ListTopicsAsync()).Select(t => t.Name));
    }

    [Fact]
    public async Task CreatingAnExistingTopicFailsAndChangesNothing()
    {
        TopicMetadata first = await Store.CreateTopicAsync("orders", 2, new Dictionary<string, string> { ["a"] = "1" });
        await Assert.ThrowsAsync<TopicExistsException>(() => Store.CreateTopicAsync("orders", 5, new Dictionary<string, string> { ["a"] = "2" }));

        TopicMetadata after = Assert.Single(await Store.ListTopicsAsync());
        Assert.Equal(first.TopicId, after.TopicId);
        Assert.Equal(2, after.Partitions.Count);
        Assert.Equal("1", after.Configs["a"]);
    }

    [Fact]
    public async Task PartitionsAreAddedButNeverRemoved()
    {
        TopicMetadata topic = await Store.CreateTopicAsync("grow", 2, NoConfigs());
        TopicMetadata grown = await Store.AddPartitionsAsync("grow", 5);

        Assert.Equal([0, 1, 2, 3, 4], grown.Partitions.Select(p => p.Partition));
        Assert.Equal(topic.Partitions, grown.Partitions.Take(2));
        Assert.Equal(5, grown.Partitions.Select(p => p.StreamId).Distinct().Count());

        TopicMetadata same = await Store.AddPartitionsAsync("grow", 5);
        Assert.Equal(grown.Partitions, same.Partitions);

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Store.AddPartitionsAsync("grow", 3));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Store.AddPartitionsAsync("grow", 0));
        Assert.Equal(5, (await Store.GetTopicAsync("grow"))!.Partitions.Count);
        await Assert.ThrowsAsync<UnknownTopicException>(() => Store.AddPartitionsAsync("missing", 3));
    }

    [Fact]
    public async Task ConfigsAreSetOverwrittenAndRemoved()
    {
        await Store.CreateTopicAsync("configured", 1, new Dictionary<string, string> { ["retention.ms"] = "1000", ["max.message.bytes"] = "100" });
        TopicMetadata altered = await Store.AlterTopicConfigsAsync("configured", new Dictionary<string, string?>
        {
            ["retention.ms"] = null,
            ["max.message.bytes"] = "200",
            ["cleanup.policy"] = "compact",
            ["never.set"] = null,
        });

        Assert.Equal(2, altered.Configs.Count);
        Assert.Equal("200", altered.Configs["max.message.bytes"]);
        Assert.Equal("compact", altered.Configs["cleanup.policy"]);
        Assert.Equal(altered.Configs.OrderBy(c => c.Key), (await Store.GetTopicAsync("configured"))!.Configs.OrderBy(c => c.Key));

        await Assert.ThrowsAsync<UnknownTopicException>(() => Store.AlterTopicConfigsAsync("missing", new Dictionary<string, string?> { ["a"] = "b" }));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.AlterTopicConfigsAsync("configured", new Dictionary<string, string?> { [""] = "b" }));
    }

    [Fact]
    public async Task ValuesThatLookLikeSqlAreStoredLiterally()
    {
        const string Hostile = "'); DROP TABLE topics; --";
        await Store.CreateTopicAsync("plain", 1, new Dictionary<string, string> { [Hostile] = Hostile });
        await Store.CommitGroupOffsetsAsync(Hostile, [new GroupOffset("plain", 0, 1, 0, Hostile, Time.Now)]);

        Assert.Equal(Hostile, (await Store.GetTopicAsync("plain"))!.Configs[Hostile]);
        Assert.Equal(Hostile, Assert.Single(await Store.FetchGroupOffsetsAsync(Hostile)).Metadata);
        Assert.Single(await Store.ListTopicsAsync());
    }

    [Theory]
    [InlineData("")]
    [InlineData(".")]
    [InlineData("..")]
    [InlineData("has space")]
    [InlineData("slash/name")]
    [InlineData("back\\slash")]
    [InlineData("quote'name")]
    [InlineData("semi;colon")]
    [InlineData("tab\tname")]
    [InlineData("nul\0name")]
    [InlineData("caf\u00e9")]
    public async Task InvalidTopicNamesAreRejected(string name)
    {
        await Assert.ThrowsAsync<ArgumentException>(() => Store.CreateTopicAsync(name, 1, NoConfigs()));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.AddPartitionsAsync(name, 2));
        Assert.Empty(await Store.ListTopicsAsync());
    }

    [Fact]
    public async Task NamesUpTo249AllowedCharactersAreAccepted()
    {
        string longest = new('a', 249);
        await Store.CreateTopicAsync(longest, 1, NoConfigs());
        await Store.CreateTopicAsync("Az09._-", 1, NoConfigs());
        await Assert.ThrowsAsync<ArgumentException>(() => Store.CreateTopicAsync(new string('a', 250), 1, NoConfigs()));
        await Assert.ThrowsAsync<ArgumentNullException>(() => Store.CreateTopicAsync(null!, 1, NoConfigs()));

        Assert.Equal(["Az09._-", longest], (await Store.ListTopicsAsync()).Select(t => t.Name));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    [InlineData(100_001)]
    public async Task PartitionCountsOutOfRangeAreRejected(int count)
    {
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Store.CreateTopicAsync("t", count, NoConfigs()));
        Assert.Empty(await Store.ListTopicsAsync());
    }

    [Fact]
    public async Task StreamIdsAreNeverReused()
    {
        TopicMetadata first = await Store.CreateTopicAsync("again", 3, NoConfigs());
        Assert.True(await Store.DeleteTopicAsync("again"));
        TopicMetadata second = await Store.CreateTopicAsync("again", 3, NoConfigs());

        Assert.NotEqual(first.TopicId, second.TopicId);
        Assert.True(second.Partitions.Min(p => p.StreamId) > first.Partitions.Max(p => p.StreamId));
    }

    [Fact]
    public async Task ClaimingLeadershipRaisesTheEpoch()
    {
        TopicMetadata topic = await Store.CreateTopicAsync("led", 2, NoConfigs());
        long stream = topic.Partitions[1].StreamId;

        PartitionMetadata first = await Store.ClaimLeadershipAsync(stream, 7);
        Assert.Equal((7, 1), (first.LeaderBrokerId, first.LeaderEpoch));
        PartitionMetadata second = await Store.ClaimLeadershipAsync(stream, 8);
        Assert.Equal((8, 2), (second.LeaderBrokerId, second.LeaderEpoch));
        PartitionMetadata reclaimed = await Store.ClaimLeadershipAsync(stream, 8);
        Assert.Equal(3, reclaimed.LeaderEpoch);

        Assert.Equal(reclaimed, await Store.GetPartitionAsync(stream));
        Assert.Equal(0, (await Store.GetPartitionAsync(topic.Partitions[0].StreamId))!.LeaderEpoch);
        await Assert.ThrowsAsync<UnknownStreamException>(() => Store.ClaimLeadershipAsync(999_999, 1));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Store.ClaimLeadershipAsync(stream, -1));
        Assert.Null(await Store.GetPartitionAsync(999_999));
    }

    [Fact]
    public async Task ClaimingManyPartitionsAtOnceClaimsAllInTheOrderAskedOrNone()
    {
        TopicMetadata topic = await Store.CreateTopicAsync("many", 3, NoConfigs());
        await Store.ClaimLeadershipAsync(topic.Partitions[1].StreamId, 4);

        IReadOnlyList<PartitionMetadata> claimed = await Store.ClaimLeadershipAsync([topic.Partitions[2].StreamId, topic.Partitions[1].StreamId], 5);
        Assert.Equal([(2, 5, 1), (1, 5, 2)], claimed.Select(p => (p.Partition, p.LeaderBrokerId, p.LeaderEpoch)));
        Assert.Equal(claimed[0], await Store.GetPartitionAsync(topic.Partitions[2].StreamId));
        Assert.Equal(claimed[1], await Store.GetPartitionAsync(topic.Partitions[1].StreamId));

        // An unknown stream among them undoes the whole claim: partition 0 keeps having no leader.
        await Assert.ThrowsAsync<UnknownStreamException>(() => Store.ClaimLeadershipAsync([topic.Partitions[0].StreamId, 999_999], 6));
        PartitionMetadata untouched = (await Store.GetPartitionAsync(topic.Partitions[0].StreamId))!;
        Assert.Equal((SqliteMetadataStore.NoLeader, 0), (untouched.LeaderBrokerId, untouched.LeaderEpoch));
        Assert.Empty(await Store.ClaimLeadershipAsync([], 6));
    }

    [Fact]
    public async Task LogStartOffsetIsFencedByEpochAndNeverLowered()
    {
        PartitionMetadata old = await CreateLedPartitionAsync("retained");
        await Store.SetLogStartOffsetAsync(old.StreamId, old.LeaderEpoch, 50);
        Assert.Equal(50, (await Store.GetPartitionAsync(old.StreamId))!.LogStartOffset);

        await Store.SetLogStartOffsetAsync(old.StreamId, old.LeaderEpoch, 20);
        await Store.SetLogStartOffsetAsync(old.StreamId, old.LeaderEpoch, 50);
        Assert.Equal(50, (await Store.GetPartitionAsync(old.StreamId))!.LogStartOffset);

        PartitionMetadata current = await Store.ClaimLeadershipAsync(old.StreamId, 2);
        await Assert.ThrowsAsync<FencedException>(() => Store.SetLogStartOffsetAsync(old.StreamId, old.LeaderEpoch, 80));
        await Assert.ThrowsAsync<FencedException>(() => Store.SetLogStartOffsetAsync(old.StreamId, current.LeaderEpoch + 1, 80));
        Assert.Equal(50, (await Store.GetPartitionAsync(old.StreamId))!.LogStartOffset);

        await Store.SetLogStartOffsetAsync(old.StreamId, current.LeaderEpoch, 80);
        Assert.Equal(80, (await Store.GetPartitionAsync(old.StreamId))!.LogStartOffset);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Store.SetLogStartOffsetAsync(old.StreamId, current.LeaderEpoch, -1));
        await Assert.ThrowsAsync<UnknownStreamException>(() => Store.SetLogStartOffsetAsync(999_999, 0, 1));
    }
}
