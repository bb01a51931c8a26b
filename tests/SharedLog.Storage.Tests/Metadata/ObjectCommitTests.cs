using SharedLog.Storage.Metadata;

namespace SharedLog.Storage.Tests.Metadata;

public sealed class ObjectCommitTests : MetadataStoreTestBase
{
    [Fact]
    public async Task CommitsAdvanceTheCommittedEndOffset()
    {
        PartitionMetadata partition = await CreateLedPartitionAsync("happy");
        PreparedObject first = await Store.PrepareObjectAsync("data/");
        Assert.Equal(ObjectState.Prepared, await StateOfAsync(first.ObjectId));

        await Store.CommitObjectAsync(new ObjectCommit(first.ObjectId, 500, [Range(partition.StreamId, partition.LeaderEpoch, 0, 10, position: 100, size: 400)], []));
        Assert.Equal(10, await Store.GetCommittedEndOffsetAsync(partition.StreamId));
        Assert.Equal(10, (await Store.GetPartitionAsync(partition.StreamId))!.CommittedEndOffset);
        ObjectMetadata committed = (await Store.ListObjectsAsync()).Single(o => o.ObjectId == first.ObjectId);
        Assert.Equal((ObjectState.Committed, 500L, first.Key), (committed.State, committed.Size, committed.Key));

        PreparedObject second = await CommitRangeAsync(partition, 10, 25);
        Assert.Equal(25, await Store.GetCommittedEndOffsetAsync(partition.StreamId));

        IReadOnlyList<StreamObjectRange> all = await Store.GetObjectRangesAsync(partition.StreamId, 0);
        Assert.Equal([first.ObjectId, second.ObjectId], all.Select(r => r.ObjectId));
        Assert.Equal(new StreamObjectRange(first.ObjectId, first.Key, 500, Range(partition.StreamId, partition.LeaderEpoch, 0, 10, position: 100, size: 400)), all[0]);
        Assert.Equal([first.ObjectId, second.ObjectId], (await Store.GetObjectRangesAsync(partition.StreamId, 9)).Select(r => r.ObjectId));
        Assert.Equal([second.ObjectId], (await Store.GetObjectRangesAsync(partition.StreamId, 10)).Select(r => r.ObjectId));
        Assert.Empty(await Store.GetObjectRangesAsync(partition.StreamId, 25));
    }

    [Fact]
    public async Task TheNextRangesAtAnOffsetComeInOrderFromTheStreamIndexWithoutSortingEveryLaterRange()
    {
        PartitionMetadata partition = await CreateLedPartitionAsync("long-retention");
        PartitionMetadata other = await CreateLedPartitionAsync("neighbour");
        var objects = new List<long>();
        for (int i = 0; i < 40; i++)
        {
            // Two streams per object, as the uploader writes them, with ranges of uneven length.
            PreparedObject prepared = await Store.PrepareObjectAsync("data/");
            long start = i * 10L + (i > 0 ? 3 : 0);
            long end = (i + 1) * 10L + 3;
            await Store.CommitObjectAsync(Commit(prepared.ObjectId, Range(other.StreamId, other.LeaderEpoch, i * 5L, (i + 1) * 5L), Range(partition.StreamId, partition.LeaderEpoch, start, end)));
            objects.Add(prepared.ObjectId);
        }

        IReadOnlyList<StreamObjectRange> next = await Store.GetObjectRangesAsync(partition.StreamId, 212, limit: 8);
        Assert.Equal(objects.GetRange(20, 8), next.Select(r => r.ObjectId));
        Assert.Equal(203, next[0].Range.StartOffset);
        Assert.True(next.Zip(next.Skip(1)).All(pair => pair.First.Range.EndOffset == pair.Second.Range.StartOffset));
        Assert.Equal(objects.GetRange(38, 2), (await Store.GetObjectRangesAsync(partition.StreamId, 392, limit: 8)).Select(r => r.ObjectId));

        // A read's lookup must stop after its limit: a sort of every later range costs milliseconds once a
        // stream has thousands of objects, on every fetch from objects.
        IReadOnlyList<string> plan = await Store.ExplainQueryPlanAsync(SqliteMetadataStore.ObjectRangesSql, CancellationToken.None,
            ("@stream", partition.StreamId), ("@from", 212L), ("@committed", (int)ObjectState.Committed), ("@limit", 8L));
        Assert.Contains(plan, step => step.Contains("object_ranges_by_stream", StringComparison.Ordinal));
        Assert.DoesNotContain(plan, step => step.Contains("TEMP B-TREE", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AFencedCommitIsRefusedAndWritesNothing()
    {
        PartitionMetadata old = await CreateLedPartitionAsync("fenced", brokerId: 1);
        await CommitRangeAsync(old, 0, 10);
        PartitionMetadata current = await Store.ClaimLeadershipAsync(old.StreamId, 2);

        PreparedObject stale = await Store.PrepareObjectAsync("data/");
        await Assert.ThrowsAsync<FencedException>(() => Store.CommitObjectAsync(Commit(stale.ObjectId, Range(old.StreamId, old.LeaderEpoch, 10, 20))));
        // Fencing wins even when the offsets are also wrong: the old leader must stop, not retry.
        await Assert.ThrowsAsync<FencedException>(() => Store.CommitObjectAsync(Commit(stale.ObjectId, Range(old.StreamId, old.LeaderEpoch, 3, 20))));
        await Assert.ThrowsAsync<FencedException>(() => Store.CommitObjectAsync(Commit(stale.ObjectId, Range(old.StreamId, current.LeaderEpoch + 1, 10, 20))));

        Assert.Equal(10, await Store.GetCommittedEndOffsetAsync(old.StreamId));
        Assert.Equal(ObjectState.Prepared, await StateOfAsync(stale.ObjectId));
        Assert.Single(await Store.GetObjectRangesAsync(old.StreamId, 0));

        await Store.CommitObjectAsync(Commit(stale.ObjectId, Range(old.StreamId, current.LeaderEpoch, 10, 20)));
        Assert.Equal(20, await Store.GetCommittedEndOffsetAsync(old.StreamId));
    }

    [Theory]
    [InlineData(11)]
    [InlineData(9)]
    [InlineData(5)]
    [InlineData(0)]
    public async Task GapsAndOverlapsAreRefused(long start)
    {
        PartitionMetadata partition = await CreateLedPartitionAsync("gaps");
        await CommitRangeAsync(partition, 0, 10);

        PreparedObject next = await Store.PrepareObjectAsync("data/");
        await Assert.ThrowsAsync<OffsetConflictException>(() => Store.CommitObjectAsync(Commit(next.ObjectId, Range(partition.StreamId, partition.LeaderEpoch, start, 30))));

        Assert.Equal(10, await Store.GetCommittedEndOffsetAsync(partition.StreamId));
        Assert.Equal(ObjectState.Prepared, await StateOfAsync(next.ObjectId));
        Assert.Single(await Store.GetObjectRangesAsync(partition.StreamId, 0));
    }

    [Fact]
    public async Task AMultiStreamCommitIsAllOrNothing()
    {
        TopicMetadata topic = await Store.CreateTopicAsync("multi", 3, NoConfigs());
        PartitionMetadata[] p = await Task.WhenAll(topic.Partitions.Select(x => Store.ClaimLeadershipAsync(x.StreamId, 1)));
        PreparedObject obj = await Store.PrepareObjectAsync("data/");

        // One bad offset among good ranges.
        await Assert.ThrowsAsync<OffsetConflictException>(() => Store.CommitObjectAsync(Commit(obj.ObjectId,
            Range(p[0].StreamId, p[0].LeaderEpoch, 0, 5, position: 0),
            Range(p[1].StreamId, p[1].LeaderEpoch, 3, 5, position: 10),
            Range(p[2].StreamId, p[2].LeaderEpoch, 0, 7, position: 20))));
        // One stale epoch among good ranges.
        await Assert.ThrowsAsync<FencedException>(() => Store.CommitObjectAsync(Commit(obj.ObjectId,
            Range(p[0].StreamId, p[0].LeaderEpoch, 0, 5, position: 0),
            Range(p[1].StreamId, p[1].LeaderEpoch - 1, 0, 5, position: 10),
            Range(p[2].StreamId, p[2].LeaderEpoch, 0, 7, position: 20))));
        // One stream that does not exist.
        await Assert.ThrowsAsync<UnknownStreamException>(() => Store.CommitObjectAsync(Commit(obj.ObjectId,
            Range(p[0].StreamId, p[0].LeaderEpoch, 0, 5, position: 0),
            Range(999_999, 1, 0, 5, position: 10))));

        foreach (PartitionMetadata partition in p)
        {
            Assert.Equal(0, await Store.GetCommittedEndOffsetAsync(partition.StreamId));
            Assert.Empty(await Store.GetObjectRangesAsync(partition.StreamId, 0));
        }

        Assert.Equal(ObjectState.Prepared, await StateOfAsync(obj.ObjectId));

        await Store.CommitObjectAsync(Commit(obj.ObjectId,
            Range(p[0].StreamId, p[0].LeaderEpoch, 0, 5, position: 0),
            Range(p[1].StreamId, p[1].LeaderEpoch, 0, 5, position: 10),
            Range(p[2].StreamId, p[2].LeaderEpoch, 0, 7, position: 20)));
        long[] endOffsets = await Task.WhenAll(p.Select(x => Store.GetCommittedEndOffsetAsync(x.StreamId)));
        Assert.Equal([5L, 5L, 7L], endOffsets);
    }

    [Fact]
    public async Task RangesOfOneStreamInOneCommitMustBeContiguous()
    {
        PartitionMetadata partition = await CreateLedPartitionAsync("contiguous");
        PreparedObject obj = await Store.PrepareObjectAsync("data/");
        int epoch = partition.LeaderEpoch;

        await Assert.ThrowsAsync<ArgumentException>(() => Store.CommitObjectAsync(Commit(obj.ObjectId,
            Range(partition.StreamId, epoch, 0, 5), Range(partition.StreamId, epoch, 6, 10, position: 10))));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.CommitObjectAsync(Commit(obj.ObjectId,
            Range(partition.StreamId, epoch, 0, 5), Range(partition.StreamId, epoch, 4, 10, position: 10))));
        Assert.Equal(0, await Store.GetCommittedEndOffsetAsync(partition.StreamId));

        // Given out of order, contiguous ranges are fine.
        await Store.CommitObjectAsync(Commit(obj.ObjectId,
            Range(partition.StreamId, epoch, 5, 10, position: 10), Range(partition.StreamId, epoch, 0, 5)));
        Assert.Equal(10, await Store.GetCommittedEndOffsetAsync(partition.StreamId));
        Assert.Equal([0L, 5L], (await Store.GetObjectRangesAsync(partition.StreamId, 0)).Select(r => r.Range.StartOffset));
    }

    [Fact]
    public async Task OnlyPreparedObjectsCanBeCommitted()
    {
        PartitionMetadata partition = await CreateLedPartitionAsync("states");
        PreparedObject obj = await CommitRangeAsync(partition, 0, 10);

        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitObjectAsync(Commit(obj.ObjectId, Range(partition.StreamId, partition.LeaderEpoch, 10, 20))));
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CommitObjectAsync(Commit(123_456, Range(partition.StreamId, partition.LeaderEpoch, 10, 20))));
        Assert.Equal(10, await Store.GetCommittedEndOffsetAsync(partition.StreamId));
        Assert.Single(await Store.GetObjectRangesAsync(partition.StreamId, 0));
    }

    [Fact]
    public async Task MalformedCommitsAreRejectedBeforeTouchingTheDatabase()
    {
        PartitionMetadata partition = await CreateLedPartitionAsync("malformed");
        PreparedObject obj = await Store.PrepareObjectAsync("data/");
        long s = partition.StreamId;
        int e = partition.LeaderEpoch;

        ObjectCommit[] bad =
        [
            new(obj.ObjectId, ObjectSize, [], []),
            new(obj.ObjectId, ObjectSize, [Range(s, e, 5, 5)], []),
            new(obj.ObjectId, ObjectSize, [Range(s, e, 5, 4)], []),
            new(obj.ObjectId, ObjectSize, [Range(s, e, -1, 4)], []),
            new(obj.ObjectId, ObjectSize, [Range(s, e, 0, 4, position: -1)], []),
            new(obj.ObjectId, ObjectSize, [Range(s, e, 0, 4, size: 0)], []),
            new(obj.ObjectId, ObjectSize, [Range(s, e, 0, 4, position: ObjectSize - 5, size: 10)], []),
            new(obj.ObjectId, ObjectSize, [Range(s, e, 0, 4, position: long.MaxValue, size: long.MaxValue)], []),
            new(obj.ObjectId, -1, [Range(s, e, 0, 4)], []),
            new(obj.ObjectId, ObjectSize, [Range(s, e, 0, 4)], [obj.ObjectId]),
        ];
        foreach (ObjectCommit commit in bad)
        {
            await Assert.ThrowsAsync<ArgumentException>(() => Store.CommitObjectAsync(commit));
        }

        await Assert.ThrowsAsync<ArgumentNullException>(() => Store.CommitObjectAsync(null!));
        Assert.Equal(ObjectState.Prepared, await StateOfAsync(obj.ObjectId));
        Assert.Equal(0, await Store.GetCommittedEndOffsetAsync(s));
    }

    [Fact]
    public async Task UnknownStreamsHaveNoEndOffsetAndNoRanges()
    {
        await Assert.ThrowsAsync<UnknownStreamException>(() => Store.GetCommittedEndOffsetAsync(424_242));
        Assert.Empty(await Store.GetObjectRangesAsync(424_242, 0));
    }

    [Fact]
    public async Task PreparedObjectsGetFreshIdsAndKeysUnderThePrefix()
    {
        PreparedObject[] prepared = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => Store.PrepareObjectAsync("data/")));

        Assert.Equal(20, prepared.Select(p => p.ObjectId).Distinct().Count());
        Assert.Equal(20, prepared.Select(p => p.Key).Distinct().Count());
        Assert.All(prepared, p => Assert.StartsWith("data/", p.Key, StringComparison.Ordinal));
        Assert.All(prepared, p => Assert.EndsWith(p.ObjectId.ToString("D20", System.Globalization.CultureInfo.InvariantCulture), p.Key, StringComparison.Ordinal));
        // The hash spreads consecutive ids over key prefixes.
        Assert.True(prepared.Select(p => p.Key[..9]).Distinct().Count() > 10);
        await Assert.ThrowsAsync<ArgumentNullException>(() => Store.PrepareObjectAsync(null!));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.PrepareObjectAsync(new string('p', 513)));
    }
}
