using SharedLog.Storage.Metadata;
using SharedLog.Storage.Objects;

namespace SharedLog.Storage.Tests.Metadata;

/// <summary>Compaction commits of several new objects at once, and the times objects are marked for deletion.</summary>
public sealed class CompactionCommitTests : MetadataStoreTestBase
{
    /// <summary>Streams x [0, 8) and y [0, 9) in two shared objects (<see cref="Replaced"/>), and two prepared objects to compact them into.</summary>
    private sealed record Setup(PartitionMetadata X, PartitionMetadata Y, long[] Replaced, PreparedObject A, PreparedObject B)
    {
        public ObjectRange AllOfX => Range(X.StreamId, X.LeaderEpoch, 0, 8);

        public ObjectRange AllOfY => Range(Y.StreamId, Y.LeaderEpoch, 0, 9);

        public ObjectRange OfX(long start, long end) => Range(X.StreamId, X.LeaderEpoch, start, end);

        public ObjectRange OfY(long start, long end) => Range(Y.StreamId, Y.LeaderEpoch, start, end);
    }

    private async Task<Setup> SetUpAsync()
    {
        (PartitionMetadata x, PartitionMetadata y, PreparedObject first, PreparedObject second) = await CommitTwoSharedObjectsAsync();
        return new Setup(x, y, [first.ObjectId, second.ObjectId], await Store.PrepareObjectAsync("data/"), await Store.PrepareObjectAsync("data/"));
    }

    private static ObjectCommit StreamObject(PreparedObject prepared, params ObjectRange[] ranges) => new(prepared.ObjectId, ObjectSize, ranges, []) { Kind = ObjectKind.Stream };

    /// <summary>Everything a refused commit must leave as it was: objects (state, kind, mark time), ranges, end offsets.</summary>
    private async Task<string> SnapshotAsync(Setup setup)
    {
        var lines = new List<string>();
        lines.AddRange((await Store.ListObjectsAsync()).Select(o => o.ToString()));
        foreach (PartitionMetadata partition in new[] { setup.X, setup.Y })
        {
            lines.AddRange((await Store.GetObjectRangesAsync(partition.StreamId, 0)).Select(r => r.ToString()));
            lines.Add($"end {partition.StreamId}: {await Store.GetCommittedEndOffsetAsync(partition.StreamId)}");
        }

        return string.Join('\n', lines);
    }

    [Fact]
    public async Task ACompactionCommitsEveryNewObjectAndMarksEveryReplacedOneInOneStep()
    {
        Setup s = await SetUpAsync();
        Time.Now = Time.Now.AddSeconds(30);

        await Store.CommitCompactionAsync([StreamObject(s.A, s.AllOfX), StreamObject(s.B, s.AllOfY)], s.Replaced);

        Dictionary<long, ObjectMetadata> objects = (await Store.ListObjectsAsync()).ToDictionary(o => o.ObjectId);
        Assert.All(s.Replaced, id => Assert.Equal((ObjectState.MarkedForDeletion, Time.Now), (objects[id].State, objects[id].MarkedAt)));
        Assert.Equal((ObjectState.Committed, ObjectKind.Stream, (DateTimeOffset?)null), (objects[s.A.ObjectId].State, objects[s.A.ObjectId].Kind, objects[s.A.ObjectId].MarkedAt));
        Assert.Equal((ObjectState.Committed, ObjectKind.Stream), (objects[s.B.ObjectId].State, objects[s.B.ObjectId].Kind));
        Assert.Equal([s.A.ObjectId], (await Store.GetObjectRangesAsync(s.X.StreamId, 0)).Select(r => r.ObjectId));
        Assert.Equal([s.B.ObjectId], (await Store.GetObjectRangesAsync(s.Y.StreamId, 0)).Select(r => r.ObjectId));
        Assert.Equal((8L, 9L), (await Store.GetCommittedEndOffsetAsync(s.X.StreamId), await Store.GetCommittedEndOffsetAsync(s.Y.StreamId)));
    }

    [Fact]
    public async Task OneStreamMayBeSplitOverSeveralNewObjects()
    {
        Setup s = await SetUpAsync();

        await Store.CommitCompactionAsync([StreamObject(s.A, s.OfX(0, 5)), StreamObject(s.B, s.OfX(5, 8), s.AllOfY)], s.Replaced);

        Assert.Equal([s.A.ObjectId, s.B.ObjectId], (await Store.GetObjectRangesAsync(s.X.StreamId, 0)).Select(r => r.ObjectId));
        Assert.Equal([s.B.ObjectId], (await Store.GetObjectRangesAsync(s.Y.StreamId, 0)).Select(r => r.ObjectId));
    }

    [Fact]
    public async Task ACompactionThatWouldDropLiveRecordsChangesNothing()
    {
        Setup s = await SetUpAsync();
        string before = await SnapshotAsync(s);

        // Stream y is left out entirely.
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitCompactionAsync([StreamObject(s.A, s.AllOfX)], s.Replaced));
        // Stream y loses its records [5, 9), which are above its log start offset.
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitCompactionAsync([StreamObject(s.A, s.AllOfX), StreamObject(s.B, s.OfY(0, 5))], s.Replaced));
        // Stream x is split with a hole at [5, 6).
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitCompactionAsync([StreamObject(s.A, s.OfX(0, 5)), StreamObject(s.B, s.OfX(6, 8), s.AllOfY)], s.Replaced));
        // A new range beyond what the replaced object holds.
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitCompactionAsync([StreamObject(s.A, s.OfX(0, 5)), StreamObject(s.B, s.AllOfY)], [s.Replaced[0]]));

        Assert.Equal(before, await SnapshotAsync(s));
    }

    [Fact]
    public async Task ACompactionNamingAnObjectThatIsNotCommittedChangesNothing()
    {
        Setup s = await SetUpAsync();
        PreparedObject pending = await Store.PrepareObjectAsync("data/");
        ObjectCommit[] newObjects = [StreamObject(s.A, s.AllOfX), StreamObject(s.B, s.AllOfY)];
        string before = await SnapshotAsync(s);

        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitCompactionAsync(newObjects, [.. s.Replaced, pending.ObjectId]));
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitCompactionAsync(newObjects, [.. s.Replaced, 987_654]));
        Assert.Equal(before, await SnapshotAsync(s));

        await Store.MarkObjectsDeletedAsync([s.Replaced[1]]);
        before = await SnapshotAsync(s);
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitCompactionAsync(newObjects, s.Replaced));
        Assert.Equal(before, await SnapshotAsync(s));
    }

    [Fact]
    public async Task NewObjectsMustBePreparedDistinctAndNotOverlap()
    {
        Setup s = await SetUpAsync();
        string before = await SnapshotAsync(s);

        // Overlapping new ranges of one stream.
        await Assert.ThrowsAsync<ArgumentException>(() => Store.CommitCompactionAsync([StreamObject(s.A, s.OfX(0, 6), s.AllOfY), StreamObject(s.B, s.OfX(5, 8))], s.Replaced));
        // The same new object twice.
        await Assert.ThrowsAsync<ArgumentException>(() => Store.CommitCompactionAsync([StreamObject(s.A, s.OfX(0, 5), s.AllOfY), StreamObject(s.A, s.OfX(5, 8))], s.Replaced));
        // Replaced objects named per new object, none for the compaction, or a new object among them.
        await Assert.ThrowsAsync<ArgumentException>(() => Store.CommitCompactionAsync([StreamObject(s.A, s.AllOfX, s.AllOfY) with { Replaces = s.Replaced }], s.Replaced));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.CommitCompactionAsync([StreamObject(s.A, s.AllOfX, s.AllOfY)], []));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.CommitCompactionAsync([StreamObject(s.A, s.AllOfX, s.AllOfY)], [s.A.ObjectId, .. s.Replaced]));
        // An object that is already committed cannot be committed again as a compaction result.
        var committed = new PreparedObject(s.Replaced[0], "data/committed");
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitCompactionAsync(
            [StreamObject(s.A, s.AllOfX, s.AllOfY), StreamObject(committed, s.OfX(8, 9))], [s.Replaced[1]]));

        Assert.Equal(before, await SnapshotAsync(s));
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
        Setup s = await SetUpAsync();
        Assert.All(await Store.ListObjectsAsync(), o => Assert.Null(o.MarkedAt));
        DateTimeOffset start = Time.Now;

        Time.Now = start.AddSeconds(1);
        await Store.MarkObjectsDeletedAsync([s.B.ObjectId]);
        Time.Now = start.AddSeconds(2);
        await Store.CommitCompactionAsync([StreamObject(s.A, s.AllOfX, s.AllOfY)], s.Replaced);
        Time.Now = start.AddSeconds(3);
        Assert.True(await Store.DeleteTopicAsync("shared"));

        // Marking again does not move the time the grace started from.
        Time.Now = start.AddSeconds(4);
        await Store.MarkObjectsDeletedAsync([s.B.ObjectId, .. s.Replaced]);

        Dictionary<long, ObjectMetadata> objects = (await Store.ListObjectsAsync()).ToDictionary(o => o.ObjectId);
        Assert.Equal(start.AddSeconds(1), objects[s.B.ObjectId].MarkedAt);
        Assert.All(s.Replaced, id => Assert.Equal(start.AddSeconds(2), objects[id].MarkedAt));
        Assert.Equal((ObjectKind.Stream, start.AddSeconds(3)), (objects[s.A.ObjectId].Kind, objects[s.A.ObjectId].MarkedAt));
        Assert.All(objects.Values, o => Assert.Equal(ObjectState.MarkedForDeletion, o.State));
    }
}
