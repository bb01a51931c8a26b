using SharedLog.Storage.Metadata;

namespace SharedLog.Storage.Tests.Metadata;

public sealed class CompactionAndCleanupTests : MetadataStoreTestBase
{
    [Fact]
    public async Task ACompactionCommitReplacesItsSourceObjects()
    {
        PartitionMetadata partition = await CreateLedPartitionAsync("compacted");
        PreparedObject a = await CommitRangeAsync(partition, 0, 10);
        PreparedObject b = await CommitRangeAsync(partition, 10, 20);
        PreparedObject merged = await Store.PrepareObjectAsync("data/");

        await Store.CommitObjectAsync(new ObjectCommit(merged.ObjectId, ObjectSize, [Range(partition.StreamId, partition.LeaderEpoch, 0, 20, size: 20)], [a.ObjectId, b.ObjectId]));

        Assert.Equal(ObjectState.MarkedForDeletion, await StateOfAsync(a.ObjectId));
        Assert.Equal(ObjectState.MarkedForDeletion, await StateOfAsync(b.ObjectId));
        Assert.Equal(ObjectState.Committed, await StateOfAsync(merged.ObjectId));
        StreamObjectRange only = Assert.Single(await Store.GetObjectRangesAsync(partition.StreamId, 0));
        Assert.Equal((merged.ObjectId, merged.Key, 0L, 20L), (only.ObjectId, only.Key, only.Range.StartOffset, only.Range.EndOffset));
        Assert.Equal(20, await Store.GetCommittedEndOffsetAsync(partition.StreamId));

        // Appends continue from the unchanged end offset.
        await CommitRangeAsync(partition, 20, 30);
        Assert.Equal(30, await Store.GetCommittedEndOffsetAsync(partition.StreamId));
    }

    [Fact]
    public async Task CompactionOfSharedObjectsCoversEveryStream()
    {
        (PartitionMetadata x, PartitionMetadata y, PreparedObject first, PreparedObject second) = await CommitTwoSharedObjectsAsync();

        // Dropping stream y's data is refused: it is still live.
        PreparedObject onlyX = await Store.PrepareObjectAsync("data/");
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitObjectAsync(
            new ObjectCommit(onlyX.ObjectId, ObjectSize, [Range(x.StreamId, x.LeaderEpoch, 0, 8)], [first.ObjectId, second.ObjectId])));
        Assert.Equal(ObjectState.Committed, await StateOfAsync(first.ObjectId));
        Assert.Equal(ObjectState.Prepared, await StateOfAsync(onlyX.ObjectId));

        await Store.CommitObjectAsync(new ObjectCommit(onlyX.ObjectId, ObjectSize,
            [Range(x.StreamId, x.LeaderEpoch, 0, 8), Range(y.StreamId, y.LeaderEpoch, 0, 9, position: 10)], [first.ObjectId, second.ObjectId]));
        Assert.Equal([onlyX.ObjectId], (await Store.GetObjectRangesAsync(x.StreamId, 0)).Select(r => r.ObjectId));
        Assert.Equal([onlyX.ObjectId], (await Store.GetObjectRangesAsync(y.StreamId, 0)).Select(r => r.ObjectId));
        Assert.Equal((8L, 9L), (await Store.GetCommittedEndOffsetAsync(x.StreamId), await Store.GetCommittedEndOffsetAsync(y.StreamId)));
    }

    [Fact]
    public async Task OnlyObjectsWithoutLiveDataInAnyStreamAreMarkedDead()
    {
        // first: x [0,5) and y [0,5); second: x [5,8) and y [5,9).
        (PartitionMetadata x, PartitionMetadata y, PreparedObject first, PreparedObject second) = await CommitTwoSharedObjectsAsync();
        await Store.SetLogStartOffsetAsync(x.StreamId, x.LeaderEpoch, 8);

        // All of x is below its log start, but both objects still hold live records of y: a janitor that walked x
        // after y (or before an upload into y) must not get them marked.
        Assert.Empty(await Store.MarkDeadObjectsAsync([first.ObjectId, second.ObjectId]));
        Assert.Equal(ObjectState.Committed, await StateOfAsync(first.ObjectId));

        await Store.SetLogStartOffsetAsync(y.StreamId, y.LeaderEpoch, 5);
        Assert.Equal([first.ObjectId], await Store.MarkDeadObjectsAsync([first.ObjectId, second.ObjectId]));
        Assert.Equal((ObjectState.MarkedForDeletion, ObjectState.Committed), (await StateOfAsync(first.ObjectId), await StateOfAsync(second.ObjectId)));

        // A range of a stream whose topic is gone is dead; prepared objects and unknown ids are never marked here.
        PartitionMetadata gone = await CreateLedPartitionAsync("gone");
        PreparedObject goneObject = await CommitRangeAsync(gone, 0, 10);
        PreparedObject prepared = await Store.PrepareObjectAsync("data/");
        Assert.True(await Store.DeleteTopicAsync("gone"));
        await Store.MarkDeadObjectsAsync([goneObject.ObjectId, prepared.ObjectId, 424_242]);
        Assert.Equal((ObjectState.MarkedForDeletion, ObjectState.Prepared), (await StateOfAsync(goneObject.ObjectId), await StateOfAsync(prepared.ObjectId)));
    }

    [Fact]
    public async Task CompactionMustStayInsideTheReplacedData()
    {
        PartitionMetadata partition = await CreateLedPartitionAsync("inside");
        PreparedObject a = await CommitRangeAsync(partition, 0, 10);
        PreparedObject b = await CommitRangeAsync(partition, 10, 20);
        PreparedObject c = await CommitRangeAsync(partition, 20, 30);
        PreparedObject merged = await Store.PrepareObjectAsync("data/");
        long s = partition.StreamId;
        int e = partition.LeaderEpoch;

        // Beyond what the replaced object holds.
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitObjectAsync(new ObjectCommit(merged.ObjectId, ObjectSize, [Range(s, e, 0, 20)], [a.ObjectId])));
        // Across a hole: object b is not replaced.
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitObjectAsync(new ObjectCommit(merged.ObjectId, ObjectSize, [Range(s, e, 0, 30)], [a.ObjectId, c.ObjectId])));
        // Less than the live data of the replaced objects.
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitObjectAsync(new ObjectCommit(merged.ObjectId, ObjectSize, [Range(s, e, 0, 10)], [a.ObjectId, b.ObjectId])));

        Assert.Equal(ObjectState.Prepared, await StateOfAsync(merged.ObjectId));
        Assert.Equal(3, (await Store.ListObjectsAsync()).Count(o => o.State == ObjectState.Committed));
        Assert.Equal(30, await Store.GetCommittedEndOffsetAsync(s));
    }

    [Fact]
    public async Task CompactionMayDropRecordsBelowTheLogStartOffset()
    {
        PartitionMetadata partition = await CreateLedPartitionAsync("retention");
        PreparedObject a = await CommitRangeAsync(partition, 0, 10);
        PreparedObject b = await CommitRangeAsync(partition, 10, 20);
        await Store.SetLogStartOffsetAsync(partition.StreamId, partition.LeaderEpoch, 12);

        // [10, 12) stays in the new object because a batch cannot be cut; [0, 10) is gone.
        PreparedObject kept = await Store.PrepareObjectAsync("data/");
        await Store.CommitObjectAsync(new ObjectCommit(kept.ObjectId, ObjectSize, [Range(partition.StreamId, partition.LeaderEpoch, 10, 20)], [a.ObjectId, b.ObjectId]));

        Assert.Equal([kept.ObjectId], (await Store.GetObjectRangesAsync(partition.StreamId, 0)).Select(r => r.ObjectId));
        Assert.Equal(ObjectState.MarkedForDeletion, await StateOfAsync(a.ObjectId));
    }

    [Fact]
    public async Task OnlyCommittedObjectsCanBeReplaced()
    {
        PartitionMetadata partition = await CreateLedPartitionAsync("sources");
        PreparedObject committed = await CommitRangeAsync(partition, 0, 10);
        PreparedObject prepared = await Store.PrepareObjectAsync("data/");
        PreparedObject merged = await Store.PrepareObjectAsync("data/");
        long s = partition.StreamId;
        int e = partition.LeaderEpoch;

        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitObjectAsync(new ObjectCommit(merged.ObjectId, ObjectSize, [Range(s, e, 0, 10)], [committed.ObjectId, prepared.ObjectId])));
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitObjectAsync(new ObjectCommit(merged.ObjectId, ObjectSize, [Range(s, e, 0, 10)], [committed.ObjectId, 987_654])));
        await Store.MarkObjectsDeletedAsync([committed.ObjectId]);
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitObjectAsync(new ObjectCommit(merged.ObjectId, ObjectSize, [Range(s, e, 0, 10)], [committed.ObjectId])));
        Assert.Equal(ObjectState.Prepared, await StateOfAsync(merged.ObjectId));
    }

    [Fact]
    public async Task PreparedButNeverCommittedObjectsAreListedForOrphanCleanup()
    {
        PartitionMetadata partition = await CreateLedPartitionAsync("orphans");
        DateTimeOffset preparedAt = Time.Now;
        PreparedObject orphan = await Store.PrepareObjectAsync("data/");
        Time.Now = preparedAt.AddMinutes(5);
        PreparedObject done = await CommitRangeAsync(partition, 0, 10);

        IReadOnlyList<ObjectMetadata> objects = await Store.ListObjectsAsync();
        Assert.Equal([orphan.ObjectId, done.ObjectId], objects.Select(o => o.ObjectId));
        Assert.Equal(new ObjectMetadata(orphan.ObjectId, orphan.Key, ObjectState.Prepared, 0, preparedAt), objects[0]);
        Assert.Equal(ObjectState.Committed, objects[1].State);
        Assert.Equal(preparedAt.AddMinutes(5), objects[1].CreatedAt);
    }

    [Fact]
    public async Task MarkingAnOrphanFencesItsLateCommitAndThenItCanBeForgotten()
    {
        PartitionMetadata partition = await CreateLedPartitionAsync("late");
        PreparedObject orphan = await Store.PrepareObjectAsync("data/");

        await Store.MarkObjectsDeletedAsync([orphan.ObjectId, 55_555]);
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitObjectAsync(Commit(orphan.ObjectId, Range(partition.StreamId, partition.LeaderEpoch, 0, 10))));
        Assert.Equal(0, await Store.GetCommittedEndOffsetAsync(partition.StreamId));

        await Store.ForgetObjectsAsync([orphan.ObjectId]);
        Assert.Empty(await Store.ListObjectsAsync());
    }

    [Fact]
    public async Task OrphanMarkingLeavesAnUploadThatCommittedAfterItWasListed()
    {
        PartitionMetadata partition = await CreateLedPartitionAsync("raced");
        PreparedObject orphan = await Store.PrepareObjectAsync("data/");
        PreparedObject lateButCommitted = await Store.PrepareObjectAsync("data/");

        // The janitor listed both as prepared; one commits before the janitor marks.
        await Store.CommitObjectAsync(Commit(lateButCommitted.ObjectId, Range(partition.StreamId, partition.LeaderEpoch, 0, 10)));
        IReadOnlyList<long> marked = await Store.MarkOrphansAsync([orphan.ObjectId, lateButCommitted.ObjectId, 55_555]);

        Assert.Equal([orphan.ObjectId], marked);
        IReadOnlyList<ObjectMetadata> objects = await Store.ListObjectsAsync();
        Assert.Equal(ObjectState.MarkedForDeletion, objects.Single(o => o.ObjectId == orphan.ObjectId).State);
        Assert.Equal(ObjectState.Committed, objects.Single(o => o.ObjectId == lateButCommitted.ObjectId).State);
        Assert.Equal(10, await Store.GetCommittedEndOffsetAsync(partition.StreamId));
    }

    [Fact]
    public async Task ObjectsAreForgottenOnlyOnceMarkedForDeletion()
    {
        PartitionMetadata partition = await CreateLedPartitionAsync("forget");
        PreparedObject old = await CommitRangeAsync(partition, 0, 10);
        PreparedObject live = await CommitRangeAsync(partition, 10, 20);
        PreparedObject pending = await Store.PrepareObjectAsync("data/");

        await Store.MarkObjectsDeletedAsync([old.ObjectId]);
        Assert.Equal([live.ObjectId], (await Store.GetObjectRangesAsync(partition.StreamId, 0)).Select(r => r.ObjectId));
        Assert.Equal(20, await Store.GetCommittedEndOffsetAsync(partition.StreamId));

        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.ForgetObjectsAsync([old.ObjectId, live.ObjectId]));
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.ForgetObjectsAsync([pending.ObjectId]));
        Assert.Equal(3, (await Store.ListObjectsAsync()).Count);

        await Store.ForgetObjectsAsync([old.ObjectId, 77_777]);
        await Store.ForgetObjectsAsync([old.ObjectId]);
        Assert.Equal([live.ObjectId, pending.ObjectId], (await Store.ListObjectsAsync()).Select(o => o.ObjectId));

        // Ids are never handed out again, even after their rows are gone.
        PreparedObject next = await Store.PrepareObjectAsync("data/");
        Assert.True(next.ObjectId > pending.ObjectId);
    }

    [Fact]
    public async Task DeletingATopicMarksItsOwnObjectsAndKeepsSharedOnes()
    {
        TopicMetadata doomedTopic = await Store.CreateTopicAsync("doomed", 1, NoConfigs());
        TopicMetadata keptTopic = await Store.CreateTopicAsync("kept", 1, NoConfigs());
        PartitionMetadata doomed = await Store.ClaimLeadershipAsync(doomedTopic.Partitions[0].StreamId, 1);
        PartitionMetadata kept = await Store.ClaimLeadershipAsync(keptTopic.Partitions[0].StreamId, 1);
        PreparedObject own = await CommitRangeAsync(doomed, 0, 10);
        PreparedObject shared = await Store.PrepareObjectAsync("data/");
        await Store.CommitObjectAsync(Commit(shared.ObjectId, Range(doomed.StreamId, doomed.LeaderEpoch, 10, 20), Range(kept.StreamId, kept.LeaderEpoch, 0, 5, position: 10)));
        PreparedObject other = await CommitRangeAsync(kept, 5, 9);
        await Store.CommitGroupOffsetsAsync("readers", [new GroupOffset("doomed", 0, 3, 1, null, Time.Now), new GroupOffset("kept", 0, 4, 1, null, Time.Now)]);

        Assert.True(await Store.DeleteTopicAsync("doomed"));

        Assert.Equal(ObjectState.MarkedForDeletion, await StateOfAsync(own.ObjectId));
        Assert.Equal(ObjectState.Committed, await StateOfAsync(shared.ObjectId));
        Assert.Equal(ObjectState.Committed, await StateOfAsync(other.ObjectId));
        Assert.Equal([shared.ObjectId, other.ObjectId], (await Store.GetObjectRangesAsync(kept.StreamId, 0)).Select(r => r.ObjectId));
        Assert.Empty(await Store.GetObjectRangesAsync(doomed.StreamId, 0));
        await Assert.ThrowsAsync<UnknownStreamException>(() => Store.GetCommittedEndOffsetAsync(doomed.StreamId));
        Assert.Equal(["kept"], (await Store.FetchGroupOffsetsAsync("readers")).Select(o => o.Topic));

        // The shared object can later be compacted down to the surviving stream.
        PreparedObject rewritten = await Store.PrepareObjectAsync("data/");
        await Store.CommitObjectAsync(new ObjectCommit(rewritten.ObjectId, ObjectSize, [Range(kept.StreamId, kept.LeaderEpoch, 0, 9)], [shared.ObjectId, other.ObjectId]));
        Assert.Equal([rewritten.ObjectId], (await Store.GetObjectRangesAsync(kept.StreamId, 0)).Select(r => r.ObjectId));
    }

    [Fact]
    public async Task AnOffsetCommittedForATopicsIdHoldsOnlyForThatTopicNotOneCreatedAgainUnderItsName()
    {
        TopicMetadata first = await Store.CreateTopicAsync("reborn", 1, NoConfigs());
        await Store.CommitGroupOffsetsAsync("replay", [new GroupOffset("reborn", 0, 3, -1, null, Time.Now) { TopicId = first.TopicId }]);
        Assert.Equal([3L], (await Store.FetchGroupOffsetsAsync("replay")).Select(o => o.Offset));

        Assert.True(await Store.DeleteTopicAsync("reborn"));
        var gone = await Assert.ThrowsAsync<UnknownTopicException>(() => Store.CommitGroupOffsetsAsync("replay", [new GroupOffset("reborn", 0, 450, -1, null, Time.Now) { TopicId = first.TopicId }]));
        Assert.Equal("reborn", gone.Topic);

        TopicMetadata second = await Store.CreateTopicAsync("reborn", 1, NoConfigs());
        await Assert.ThrowsAsync<UnknownTopicException>(() => Store.CommitGroupOffsetsAsync("replay", [new GroupOffset("reborn", 0, 450, -1, null, Time.Now) { TopicId = first.TopicId }]));
        Assert.Empty(await Store.FetchGroupOffsetsAsync("replay"));

        // The new topic's own id, and a commit that names no id (a consumer's, checked by the broker), are kept.
        await Store.CommitGroupOffsetsAsync("replay", [new GroupOffset("reborn", 0, 4, -1, null, Time.Now) { TopicId = second.TopicId }]);
        await Store.CommitGroupOffsetsAsync("readers", [new GroupOffset("reborn", 0, 5, -1, null, Time.Now)]);
        Assert.Equal([4L], (await Store.FetchGroupOffsetsAsync("replay")).Select(o => o.Offset));
        Assert.Equal([5L], (await Store.FetchGroupOffsetsAsync("readers")).Select(o => o.Offset));
    }

    [Fact]
    public async Task RangeQueriesCanBeLimitedToTheNextObjects()
    {
        PartitionMetadata partition = await CreateLedPartitionAsync("limited");
        for (int i = 0; i < 5; i++)
        {
            await CommitRangeAsync(partition, i * 10, (i * 10) + 10);
        }

        IReadOnlyList<StreamObjectRange> next = await Store.GetObjectRangesAsync(partition.StreamId, 15, limit: 2);
        Assert.Equal([10L, 20L], next.Select(r => r.Range.StartOffset));
        Assert.Equal(5, (await Store.GetObjectRangesAsync(partition.StreamId, 0)).Count);
    }
}
