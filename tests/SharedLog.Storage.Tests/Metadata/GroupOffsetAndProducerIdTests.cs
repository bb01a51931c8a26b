using SharedLog.Storage.Metadata;

namespace SharedLog.Storage.Tests.Metadata;

public sealed class GroupOffsetAndProducerIdTests : MetadataStoreTestBase
{
    [Fact]
    public async Task GroupOffsetsAreUpsertedFetchedListedAndDeleted()
    {
        DateTimeOffset at = Time.Now;
        await Store.CommitGroupOffsetsAsync("g1", [new GroupOffset("t", 1, 7, 2, null, at), new GroupOffset("t", 0, 5, -1, "meta", at), new GroupOffset("u", 0, 1, 0, "", at)]);
        await Store.CommitGroupOffsetsAsync("g1", [new GroupOffset("t", 0, 9, 3, null, at.AddSeconds(1))]);
        await Store.CommitGroupOffsetsAsync("g0", [new GroupOffset("t", 0, 100, 0, null, at)]);

        Assert.Equal(
            [new GroupOffset("t", 0, 9, 3, null, at.AddSeconds(1)), new GroupOffset("t", 1, 7, 2, null, at), new GroupOffset("u", 0, 1, 0, "", at)],
            await Store.FetchGroupOffsetsAsync("g1"));
        Assert.Equal(["g0", "g1"], await Store.ListGroupsAsync());
        Assert.Empty(await Store.FetchGroupOffsetsAsync("nobody"));

        await Store.DeleteGroupOffsetsAsync("g1", [("t", 0), ("missing", 3)]);
        Assert.Equal([("t", 1), ("u", 0)], (await Store.FetchGroupOffsetsAsync("g1")).Select(o => (o.Topic, o.Partition)));
        await Store.DeleteGroupOffsetsAsync("g1", null);
        Assert.Empty(await Store.FetchGroupOffsetsAsync("g1"));
        Assert.Equal(["g0"], await Store.ListGroupsAsync());
        Assert.Single(await Store.FetchGroupOffsetsAsync("g0"));
    }

    [Fact]
    public async Task OffsetsExpireFromTheGroupsEmptyTimeOrTheirOwnCommitOrTheirOwnRetention()
    {
        DateTimeOffset now = Time.Now;
        DateTimeOffset cutoff = now.AddDays(-7);
        await Store.CommitGroupOffsetsAsync("emptied", [new GroupOffset("t", 0, 1, 0, null, now.AddDays(-9)), new GroupOffset("t", 1, 2, 0, null, now.AddHours(-1))]);
        await Store.CommitGroupOffsetsAsync("simple", [new GroupOffset("t", 0, 1, 0, null, now.AddDays(-8)), new GroupOffset("u", 0, 2, 0, null, now.AddDays(-1))]);
        await Store.CommitGroupOffsetsAsync("active", [new GroupOffset("t", 0, 1, 0, null, now.AddDays(-30)), new GroupOffset("u", 0, 2, 0, null, now.AddDays(-30)), new GroupOffset("v", 0, 3, 0, null, now)]);
        await Store.CommitGroupOffsetsAsync("own", [new GroupOffset("t", 0, 1, 0, null, now.AddMinutes(-2), now.AddMinutes(-1)), new GroupOffset("t", 1, 1, 0, null, now.AddDays(-30), now.AddDays(1))]);
        await Store.SaveGroupStateAsync(new SavedGroupState("emptied", "consumer", now.AddDays(-8)));
        await Store.SaveGroupStateAsync(new SavedGroupState("emptied", "consumer", now.AddDays(-8))); // replaced, not added
        Assert.Equal([new SavedGroupState("emptied", "consumer", DateTimeOffset.FromUnixTimeMilliseconds(now.AddDays(-8).ToUnixTimeMilliseconds()))], await Store.ListGroupStatesAsync());

        // A consumer group empty for longer than the retention loses every offset, a recent commit too, and its state.
        Assert.Equal([("t", 0), ("t", 1)], (await Store.DeleteExpiredGroupOffsetsAsync("emptied", now, cutoff, now.AddDays(-8), null)).Order());
        Assert.Empty(await Store.FetchGroupOffsetsAsync("emptied"));
        Assert.Empty(await Store.ListGroupStatesAsync());

        // A commit made after the round judged the group empty (a member joined and committed in between) is kept.
        await Store.CommitGroupOffsetsAsync("rejoined", [new GroupOffset("t", 0, 1, 0, null, now.AddDays(-9)), new GroupOffset("t", 1, 5, 0, null, now.AddMilliseconds(5))]);
        Assert.Equal([("t", 0)], await Store.DeleteExpiredGroupOffsetsAsync("rejoined", now, cutoff, now.AddDays(-8), null));
        Assert.Equal([1], (await Store.FetchGroupOffsetsAsync("rejoined")).Select(o => o.Partition));

        // A group that only commits loses each offset by its own commit time.
        Assert.Equal([("t", 0)], await Store.DeleteExpiredGroupOffsetsAsync("simple", now, cutoff, null, null));
        Assert.Equal(["u"], (await Store.FetchGroupOffsetsAsync("simple")).Select(o => o.Topic));

        // A group with members loses only stale offsets of topics it no longer subscribes to.
        Assert.Equal([("u", 0)], await Store.DeleteExpiredGroupOffsetsAsync("active", now, cutoff, null, new HashSet<string> { "t" }));
        Assert.Equal(["t", "v"], (await Store.FetchGroupOffsetsAsync("active")).Select(o => o.Topic));

        // An offset committed with its own retention expires at its expire time, whatever the group's.
        Assert.Equal([("t", 0)], await Store.DeleteExpiredGroupOffsetsAsync("own", now, cutoff, null, null));
        Assert.Equal(now.AddDays(1).ToUnixTimeMilliseconds(), (await Store.FetchGroupOffsetsAsync("own")).Single().ExpireTime!.Value.ToUnixTimeMilliseconds());

        // States of groups without offsets go, unless kept (a group with members that has not committed yet).
        await Store.SaveGroupStateAsync(new SavedGroupState("members-only", "consumer", null));
        await Store.SaveGroupStateAsync(new SavedGroupState("gone", "connect", now));
        await Store.SaveGroupStateAsync(new SavedGroupState("simple", "consumer", now));
        Assert.Equal(1, await Store.DeleteGroupStatesWithoutOffsetsAsync(new HashSet<string> { "members-only" }));
        Assert.Equal(["members-only", "simple"], (await Store.ListGroupStatesAsync()).Select(s => s.GroupId));
        await Store.DeleteGroupOffsetsAsync("simple", null);
        Assert.Equal(["members-only"], (await Store.ListGroupStatesAsync()).Select(s => s.GroupId));
        await Assert.ThrowsAsync<ArgumentNullException>(() => Store.DeleteExpiredGroupOffsetsAsync(null!, now, cutoff, null, null));
    }

    [Fact]
    public async Task ProducerSnapshotsAreReplacedPerPartitionAndGoWithTheirTopic()
    {
        TopicMetadata kept = await Store.CreateTopicAsync("kept", 1, new Dictionary<string, string>());
        TopicMetadata deleted = await Store.CreateTopicAsync("deleted", 2, new Dictionary<string, string>());
        long keptStream = kept.Partitions[0].StreamId;
        Assert.Null(await Store.GetProducerSnapshotAsync(keptStream));

        await Store.SaveProducerSnapshotsAsync([new ProducerSnapshot(keptStream, 10, "a"), new ProducerSnapshot(deleted.Partitions[1].StreamId, 3, "b")]);
        await Store.SaveProducerSnapshotsAsync([new ProducerSnapshot(keptStream, 25, "c")]);
        Assert.Equal(new ProducerSnapshot(keptStream, 25, "c"), await Store.GetProducerSnapshotAsync(keptStream));
        Assert.Equal(new ProducerSnapshot(deleted.Partitions[1].StreamId, 3, "b"), await Store.GetProducerSnapshotAsync(deleted.Partitions[1].StreamId));

        Assert.True(await Store.DeleteTopicAsync("deleted"));
        Assert.Null(await Store.GetProducerSnapshotAsync(deleted.Partitions[1].StreamId));
        Assert.NotNull(await Store.GetProducerSnapshotAsync(keptStream));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Store.SaveProducerSnapshotsAsync([new ProducerSnapshot(keptStream, -1, "x")]));
    }

    [Fact]
    public async Task InvalidGroupOffsetsAreRejected()
    {
        await Assert.ThrowsAsync<ArgumentNullException>(() => Store.CommitGroupOffsetsAsync(null!, [new GroupOffset("t", 0, 1, 0, null, Time.Now)]));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Store.CommitGroupOffsetsAsync("g", [new GroupOffset("t", -1, 1, 0, null, Time.Now)]));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.CommitGroupOffsetsAsync("g", [new GroupOffset("bad topic", 0, 1, 0, null, Time.Now)]));
        // The valid first entry is not written either: validation precedes the transaction.
        await Assert.ThrowsAsync<ArgumentException>(() => Store.CommitGroupOffsetsAsync("g", [new GroupOffset("t", 0, 1, 0, null, Time.Now), new GroupOffset("", 0, 1, 0, null, Time.Now)]));
        Assert.Empty(await Store.ListGroupsAsync());

        // As Kafka, the empty group id holds offsets (clients that commit without a group).
        await Store.CommitGroupOffsetsAsync("", [new GroupOffset("t", 0, 7, 0, null, Time.Now)]);
        Assert.Equal(7, Assert.Single(await Store.FetchGroupOffsetsAsync("")).Offset);
    }

    [Fact]
    public async Task ProducerIdBlocksAreDisjointUnderConcurrency()
    {
        const int Allocators = 8;
        const int BlocksEach = 5;
        ProducerIdBlock[][] perAllocator = await Task.WhenAll(Enumerable.Range(0, Allocators).Select(async allocator =>
        {
            var blocks = new ProducerIdBlock[BlocksEach];
            for (int i = 0; i < BlocksEach; i++)
            {
                blocks[i] = await Store.AllocateProducerIdsAsync(10 + allocator * 3 + i);
            }

            return blocks;
        }));

        ProducerIdBlock[] ordered = [.. perAllocator.SelectMany(b => b).OrderBy(b => b.FirstProducerId)];
        Assert.Equal(Allocators * BlocksEach, ordered.Length);
        Assert.True(ordered[0].FirstProducerId >= 0);
        for (int i = 1; i < ordered.Length; i++)
        {
            Assert.True(ordered[i].FirstProducerId >= ordered[i - 1].FirstProducerId + ordered[i - 1].Count,
                $"block {ordered[i - 1]} overlaps {ordered[i]}");
        }

        Assert.All(perAllocator.SelectMany(b => b), b => Assert.True(b.Count >= 10));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    [InlineData(1_000_001)]
    public async Task ProducerIdBlockSizesOutOfRangeAreRejected(int size)
    {
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Store.AllocateProducerIdsAsync(size));
    }
}
