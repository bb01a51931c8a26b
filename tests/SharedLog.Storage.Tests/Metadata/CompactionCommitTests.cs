using SharedLog.Storage.Metadata;
using SharedLog.Storage.Objects;

namespace SharedLog.Storage.Tests.Metadata;

/// <summary>Compaction commits of several new objects at once, and the times objects are marked for deletion.</summary>
public sealed class CompactionCommitTests : MetadataStoreTestBase
{
    /// <summary>Two streams in two shared objects: x [0, 8) and y [0, 9).</summary>
    private async Task<(PartitionMetadata X, PartitionMetadata Y, PreparedObject First, PreparedObject Second)> TwoSharedObjectsAsync()
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

    private static ObjectCommit StreamObject(long objectId, params ObjectRange[] ranges) => new(objectId, ObjectSize, ranges, []) { Kind = ObjectKind.Stream };

    /// <summary>Everything a refused commit must leave as it was.</summary>
    private async Task<string> SnapshotAsync(params PartitionMetadata[] partitions)
    {
        var lines = new List<string>();
        lines.AddRange((await Store.ListObjectsAsync()).Select(o => o.ToString()));
        foreach (PartitionMetadata partition in partitions)
        {
            lines.AddRange((await Store.GetObjectRangesAsync(partition.StreamId, 0)).Select(r => r.ToString()));
            lines.Add($"end {partition.StreamId}: {await Store.GetCommittedEndOffsetAsync(partition.StreamId)}");
        }

        return string.Join('\n', lines);
    }

    [Fact]
    public async Task ACompactionCommitsEveryNewObjectAndMarksEveryReplacedOneInOneStep()
    {
        (PartitionMetadata x, PartitionMetadata y, PreparedObject first, PreparedObject second) = await TwoSharedObjectsAsync();
        PreparedObject forX = await Store.PrepareObjectAsync("data/");
        PreparedObject forY = await Store.PrepareObjectAsync("data/");
        Time.Now = Time.Now.AddSeconds(30);

        await Store.CommitCompactionAsync(
            [StreamObject(forX.ObjectId, Range(x.StreamId, x.LeaderEpoch, 0, 8)), StreamObject(forY.ObjectId, Range(y.StreamId, y.LeaderEpoch, 0, 9))],
            [first.ObjectId, second.ObjectId]);

        Dictionary<long, ObjectMetadata> objects = (await Store.ListObjectsAsync()).ToDictionary(o => o.ObjectId);
        Assert.Equal((ObjectState.MarkedForDeletion, Time.Now), (objects[first.ObjectId].State, objects[first.ObjectId].MarkedAt));
        Assert.Equal((ObjectState.MarkedForDeletion, Time.Now), (objects[second.ObjectId].State, objects[second.ObjectId].MarkedAt));
        Assert.Equal((ObjectState.Committed, ObjectKind.Stream, (DateTimeOffset?)null), (objects[forX.ObjectId].State, objects[forX.ObjectId].Kind, objects[forX.ObjectId].MarkedAt));
        Assert.Equal((ObjectState.Committed, ObjectKind.Stream), (objects[forY.ObjectId].State, objects[forY.ObjectId].Kind));
        Assert.Equal([forX.ObjectId], (await Store.GetObjectRangesAsync(x.StreamId, 0)).Select(r => r.ObjectId));
        Assert.Equal([forY.ObjectId], (await Store.GetObjectRangesAsync(y.StreamId, 0)).Select(r => r.ObjectId));
        Assert.Equal((8L, 9L), (await Store.GetCommittedEndOffsetAsync(x.StreamId), await Store.GetCommittedEndOffsetAsync(y.StreamId)));
    }

    [Fact]
    public async Task OneStreamMayBeSplitOverSeveralNewObjects()
    {
        (PartitionMetadata x, PartitionMetadata y, PreparedObject first, PreparedObject second) = await TwoSharedObjectsAsync();
        PreparedObject low = await Store.PrepareObjectAsync("data/");
        PreparedObject high = await Store.PrepareObjectAsync("data/");
        PreparedObject forY = await Store.PrepareObjectAsync("data/");

        await Store.CommitCompactionAsync(
            [StreamObject(low.ObjectId, Range(x.StreamId, x.LeaderEpoch, 0, 5)), StreamObject(high.ObjectId, Range(x.StreamId, x.LeaderEpoch, 5, 8)),
             StreamObject(forY.ObjectId, Range(y.StreamId, y.LeaderEpoch, 0, 9))],
            [first.ObjectId, second.ObjectId]);

        Assert.Equal([low.ObjectId, high.ObjectId], (await Store.GetObjectRangesAsync(x.StreamId, 0)).Select(r => r.ObjectId));
    }

    [Fact]
    public async Task ACompactionThatWouldDropLiveRecordsChangesNothing()
    {
        (PartitionMetadata x, PartitionMetadata y, PreparedObject first, PreparedObject second) = await TwoSharedObjectsAsync();
        PreparedObject forX = await Store.PrepareObjectAsync("data/");
        PreparedObject forY = await Store.PrepareObjectAsync("data/");
        string before = await SnapshotAsync(x, y);

        // Stream y is left out entirely.
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitCompactionAsync(
            [StreamObject(forX.ObjectId, Range(x.StreamId, x.LeaderEpoch, 0, 8))], [first.ObjectId, second.ObjectId]));
        // Stream y loses its records [5, 9), which are above its log start offset.
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitCompactionAsync(
            [StreamObject(forX.ObjectId, Range(x.StreamId, x.LeaderEpoch, 0, 8)), StreamObject(forY.ObjectId, Range(y.StreamId, y.LeaderEpoch, 0, 5))],
            [first.ObjectId, second.ObjectId]));
        // Stream x is split with a hole at [5, 6).
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitCompactionAsync(
            [StreamObject(forX.ObjectId, Range(x.StreamId, x.LeaderEpoch, 0, 5)), StreamObject(forY.ObjectId, Range(x.StreamId, x.LeaderEpoch, 6, 8), Range(y.StreamId, y.LeaderEpoch, 0, 9))],
            [first.ObjectId, second.ObjectId]));
        // A new range beyond what the replaced objects hold.
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitCompactionAsync(
            [StreamObject(forX.ObjectId, Range(x.StreamId, x.LeaderEpoch, 0, 5)), StreamObject(forY.ObjectId, Range(y.StreamId, y.LeaderEpoch, 0, 9))],
            [first.ObjectId]));

        Assert.Equal(before, await SnapshotAsync(x, y));
    }

    [Fact]
    public async Task ACompactionNamingAnObjectThatIsNotCommittedChangesNothing()
    {
        (PartitionMetadata x, PartitionMetadata y, PreparedObject first, PreparedObject second) = await TwoSharedObjectsAsync();
        PreparedObject forX = await Store.PrepareObjectAsync("data/");
        PreparedObject forY = await Store.PrepareObjectAsync("data/");
        PreparedObject pending = await Store.PrepareObjectAsync("data/");
        ObjectCommit[] newObjects = [StreamObject(forX.ObjectId, Range(x.StreamId, x.LeaderEpoch, 0, 8)), StreamObject(forY.ObjectId, Range(y.StreamId, y.LeaderEpoch, 0, 9))];
        string before = await SnapshotAsync(x, y);

        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitCompactionAsync(newObjects, [first.ObjectId, second.ObjectId, pending.ObjectId]));
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitCompactionAsync(newObjects, [first.ObjectId, second.ObjectId, 987_654]));
        Assert.Equal(before, await SnapshotAsync(x, y));

        await Store.MarkObjectsDeletedAsync([second.ObjectId]);
        before = await SnapshotAsync(x, y);
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitCompactionAsync(newObjects, [first.ObjectId, second.ObjectId]));
        Assert.Equal(before, await SnapshotAsync(x, y));
    }

    [Fact]
    public async Task NewObjectsMustBePreparedDistinctAndNotOverlap()
    {
        (PartitionMetadata x, PartitionMetadata y, PreparedObject first, PreparedObject second) = await TwoSharedObjectsAsync();
        PreparedObject a = await Store.PrepareObjectAsync("data/");
        PreparedObject b = await Store.PrepareObjectAsync("data/");
        ObjectRange allOfY = Range(y.StreamId, y.LeaderEpoch, 0, 9);
        long[] replaced = [first.ObjectId, second.ObjectId];
        string before = await SnapshotAsync(x, y);

        await Assert.ThrowsAsync<ArgumentException>(() => Store.CommitCompactionAsync(
            [StreamObject(a.ObjectId, Range(x.StreamId, x.LeaderEpoch, 0, 6), allOfY), StreamObject(b.ObjectId, Range(x.StreamId, x.LeaderEpoch, 5, 8))], replaced));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.CommitCompactionAsync(
            [StreamObject(a.ObjectId, Range(x.StreamId, x.LeaderEpoch, 0, 5), allOfY), StreamObject(a.ObjectId, Range(x.StreamId, x.LeaderEpoch, 5, 8))], replaced));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.CommitCompactionAsync(
            [StreamObject(a.ObjectId, Range(x.StreamId, x.LeaderEpoch, 0, 8), allOfY) with { Replaces = replaced }], replaced));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.CommitCompactionAsync([StreamObject(a.ObjectId, Range(x.StreamId, x.LeaderEpoch, 0, 8), allOfY)], []));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.CommitCompactionAsync([StreamObject(a.ObjectId, Range(x.StreamId, x.LeaderEpoch, 0, 8), allOfY)], [a.ObjectId, .. replaced]));
        // An object that is already committed cannot be committed again as a compaction result.
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitCompactionAsync(
            [StreamObject(a.ObjectId, Range(x.StreamId, x.LeaderEpoch, 0, 8), allOfY), StreamObject(first.ObjectId, Range(x.StreamId, x.LeaderEpoch, 8, 9))], [second.ObjectId]));

        Assert.Equal(before, await SnapshotAsync(x, y));
    }

    [Fact]
    public async Task ACompactionMayKeepNothingWhenEveryRecordIsBelowTheLogStartOffset()
    {
        PartitionMetadata partition = await CreateLedPartitionAsync("expired");
        PreparedObject old = await CommitRangeAsync(partition, 0, 10);
        await CommitRangeAsync(partition, 10, 20);

        await Store.SetLogStartOffsetAsync(partition.StreamId, partition.LeaderEpoch, 5);
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitCompactionAsync([], [old.ObjectId]));

        await Store.SetLogStartOffsetAsync(partition.StreamId, partition.LeaderEpoch, 10);
        await Store.CommitCompactionAsync([], [old.ObjectId]);
        Assert.Equal(ObjectState.MarkedForDeletion, await StateOfAsync(old.ObjectId));
        Assert.Equal([10L], (await Store.GetObjectRangesAsync(partition.StreamId, 0)).Select(r => r.Range.StartOffset));
    }

    [Fact]
    public async Task EveryWayOfMarkingAnObjectRecordsWhen()
    {
        PartitionMetadata partition = await CreateLedPartitionAsync("marked");
        PreparedObject retained = await CommitRangeAsync(partition, 0, 10);
        PreparedObject compacted = await CommitRangeAsync(partition, 10, 20);
        PreparedObject merged = await Store.PrepareObjectAsync("data/");
        PreparedObject orphan = await Store.PrepareObjectAsync("data/");
        PartitionMetadata doomed = await CreateLedPartitionAsync("doomed");
        PreparedObject ofDeletedTopic = await CommitRangeAsync(doomed, 0, 10);
        Assert.All(await Store.ListObjectsAsync(), o => Assert.Null(o.MarkedAt));
        DateTimeOffset start = Time.Now;

        Time.Now = start.AddSeconds(1);
        await Store.MarkObjectsDeletedAsync([retained.ObjectId, orphan.ObjectId]);
        Time.Now = start.AddSeconds(2);
        await Store.CommitObjectAsync(new ObjectCommit(merged.ObjectId, ObjectSize, [Range(partition.StreamId, partition.LeaderEpoch, 10, 20)], [compacted.ObjectId]));
        Time.Now = start.AddSeconds(3);
        Assert.True(await Store.DeleteTopicAsync("doomed"));

        // Marking again does not move the time its grace started from.
        Time.Now = start.AddSeconds(4);
        await Store.MarkObjectsDeletedAsync([retained.ObjectId]);

        Dictionary<long, ObjectMetadata> objects = (await Store.ListObjectsAsync()).ToDictionary(o => o.ObjectId);
        Assert.Equal(start.AddSeconds(1), objects[retained.ObjectId].MarkedAt);
        Assert.Equal(start.AddSeconds(1), objects[orphan.ObjectId].MarkedAt);
        Assert.Equal(start.AddSeconds(2), objects[compacted.ObjectId].MarkedAt);
        Assert.Equal(start.AddSeconds(3), objects[ofDeletedTopic.ObjectId].MarkedAt);
        Assert.Null(objects[merged.ObjectId].MarkedAt);
        Assert.Equal(ObjectKind.StreamSet, objects[merged.ObjectId].Kind);
    }
}
