using System.Reflection;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.Objects;
using SharedLog.Storage.ObjectStore;
using SharedLog.Storage.Streams;
using SharedLog.Tests.Shared;

namespace SharedLog.Storage.Tests.Objects;

/// <summary>The compactor on the local-directory store, with the janitor that deletes what it replaces.</summary>
public sealed class ObjectCompactorTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    private readonly string _root = Path.Combine(Path.GetTempPath(), "sharedlog-compact-" + Guid.NewGuid().ToString("N"));
    private readonly List<CompactionEngine> _engines = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (CompactionEngine engine in _engines)
        {
            await engine.DisposeAsync();
        }

        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    private LocalDirectoryObjectStore LocalStore() => new(new LocalObjectStoreOptions { RootDirectory = Path.Combine(_root, "objects") });

    private async Task<CompactionEngine> OpenAsync(StorageOptions? options = null, IObjectStore? objects = null)
    {
        CompactionEngine engine = await CompactionEngine.OpenAsync(_root, objects ?? LocalStore(), options);
        _engines.Add(engine);
        return engine;
    }

    private static async Task<List<IReadOnlyList<BlockIndexEntry>>> IndexesAsync(CompactionEngine engine, IEnumerable<ObjectMetadata> objects)
    {
        var indexes = new List<IReadOnlyList<BlockIndexEntry>>();
        foreach (ObjectMetadata obj in objects)
        {
            indexes.Add(await ObjectReader.ReadIndexAsync(engine.Objects, obj.Key, obj.Size));
        }

        return indexes;
    }

    [Fact]
    public async Task AnUnreadableObjectIsSetAsideAndTheOthersAreStillCompacted()
    {
        // Rounds take the oldest objects first: one whose bytes are gone must not stop compaction for good.
        CompactionEngine engine = await OpenAsync();
        long[] older = await engine.CreateTopicAsync("lost", 1);
        await engine.AppendAndUploadAsync(older, batches: 4);
        long[] newer = await engine.CreateTopicAsync("kept", 1);
        await engine.AppendAndUploadAsync(newer, batches: 4);
        List<ObjectMetadata> before = [.. (await engine.Metadata.ListObjectsAsync()).Where(o => o.State == ObjectState.Committed).OrderBy(o => o.ObjectId)];
        Assert.Equal(2, before.Count);
        await engine.Objects.DeleteAsync([before[0].Key]);

        ObjectCompactor compactor = engine.Compactor();
        CompactionReport report = await compactor.RunOnceAsync(CompactionEngine.Later);
        Assert.Equal((1, 1), (report.StreamSetObjectsReplaced, report.ObjectsWritten));
        Assert.Equal(CompactionReport.Nothing, await compactor.RunOnceAsync(CompactionEngine.Later));
        Dictionary<long, ObjectMetadata> objects = await engine.ObjectsByIdAsync();
        Assert.Equal((ObjectState.Committed, ObjectState.MarkedForDeletion), (objects[before[0].ObjectId].State, objects[before[1].ObjectId].State));
        await engine.AssertReadsBackAsync(newer[0], 0);
    }

    [Fact]
    public async Task OnlyTheObjectThatCannotBeReadIsSetAsideNotTheRestOfItsGroup()
    {
        // A partition compacted into a small stream object, then more data uploaded in a stream-set object: the next
        // round joins both. With the stream object's bytes gone, that round fails, and the one after compacts the
        // stream-set object alone (it was readable all along).
        CompactionEngine engine = await OpenAsync();
        long[] stream = await engine.CreateTopicAsync("grouped", 1);
        await engine.AppendAndUploadAsync(stream, batches: 4);
        ObjectCompactor compactor = engine.Compactor();
        Assert.Equal(1, (await compactor.RunOnceAsync(CompactionEngine.Later)).ObjectsWritten);
        ObjectMetadata small = Assert.Single(await engine.Metadata.ListObjectsAsync(), o => o.State == ObjectState.Committed && o.Kind == ObjectKind.Stream);
        await engine.AppendAndUploadAsync(stream, batches: 4);
        ObjectMetadata later = Assert.Single(await engine.Metadata.ListObjectsAsync(), o => o.State == ObjectState.Committed && o.Kind == ObjectKind.StreamSet);
        await engine.Objects.DeleteAsync([small.Key]);

        await Assert.ThrowsAnyAsync<Exception>(() => compactor.RunOnceAsync(CompactionEngine.Later));
        CompactionReport report = await compactor.RunOnceAsync(CompactionEngine.Later);
        Assert.Equal((1, 0, 1), (report.StreamSetObjectsReplaced, report.StreamObjectsReplaced, report.ObjectsWritten));
        Dictionary<long, ObjectMetadata> objects = await engine.ObjectsByIdAsync();
        Assert.Equal((ObjectState.Committed, ObjectState.MarkedForDeletion), (objects[small.ObjectId].State, objects[later.ObjectId].State));
    }

    [Fact]
    public async Task StreamSetObjectsBecomeOneStreamObjectPerStreamAndReadBackByteForByte()
    {
        CompactionEngine engine = await OpenAsync();
        long[] streams = [.. await engine.CreateTopicAsync("alpha", 3), .. await engine.CreateTopicAsync("beta")];
        for (int upload = 0; upload < 3; upload++)
        {
            await engine.AppendAndUploadAsync(streams, batches: 12);
        }

        List<ObjectMetadata> before = [.. (await engine.Metadata.ListObjectsAsync()).Where(o => o.State == ObjectState.Committed)];
        Assert.Equal(3, before.Count);
        Assert.All(before, o => Assert.Equal(ObjectKind.StreamSet, o.Kind));
        Assert.True((await IndexesAsync(engine, before)).All(index => index.Count > streams.Length), "every stream has several blocks in every object");
        foreach (long stream in streams)
        {
            await engine.AssertReadsBackAsync(stream, 0);
        }

        int cachedIndexes = engine.Streams.CachedObjectIndexCount;
        Assert.Equal(3, cachedIndexes);

        // Too young: nothing happens.
        Assert.Equal(CompactionReport.Nothing, await engine.Compactor().RunOnceAsync(DateTimeOffset.UtcNow));

        CompactionReport report = await engine.Compactor().RunOnceAsync(CompactionEngine.Later);

        Assert.Equal((3, 0, 4, 0), (report.StreamSetObjectsReplaced, report.StreamObjectsReplaced, report.ObjectsWritten, report.BlocksDropped));
        Assert.Equal(before.Sum(o => o.Size), report.InputBytes);
        Dictionary<long, ObjectMetadata> objects = await engine.ObjectsByIdAsync();
        foreach (long stream in streams)
        {
            (StreamObjectRange range, ObjectKind kind) = Assert.Single(await engine.RangesAsync(stream));
            Assert.Equal(ObjectKind.Stream, kind);
            Assert.Equal((0L, engine.HighWatermark(stream)), (range.Range.StartOffset, range.Range.EndOffset));
            IReadOnlyList<BlockIndexEntry> index = await ObjectReader.ReadIndexAsync(engine.Objects, range.Key, range.ObjectSize);
            Assert.All(index, block => Assert.Equal(stream, block.StreamId));

            long end = engine.HighWatermark(stream);
            foreach (long from in new[] { 0, end / 3, end / 2, end - 1 })
            {
                await engine.AssertReadsBackAsync(stream, from);
            }
        }

        Assert.All(before, o => Assert.Equal(ObjectState.MarkedForDeletion, objects[o.ObjectId].State));
        Assert.Equal(report.OutputBytes, objects.Values.Where(o => o.State == ObjectState.Committed).Sum(o => o.Size));

        // Within the deletion grace the replaced bytes stay; past it they go, with their cached indexes.
        ObjectJanitor janitor = engine.Janitor(TimeSpan.FromMinutes(1));
        Assert.Equal(0, (await janitor.RunOnceAsync(DateTimeOffset.UtcNow)).ObjectsDeleted);
        foreach (ObjectMetadata old in before)
        {
            Assert.True(await engine.ExistsAsync(old.Key));
        }

        Assert.Equal(cachedIndexes + 4, engine.Streams.CachedObjectIndexCount);
        Assert.Equal(3, (await janitor.RunOnceAsync(DateTimeOffset.UtcNow.AddMinutes(2))).ObjectsDeleted);
        foreach (ObjectMetadata old in before)
        {
            Assert.False(await engine.ExistsAsync(old.Key));
        }

        Assert.Equal(4, (await engine.Metadata.ListObjectsAsync()).Count);
        Assert.Equal(4, engine.Streams.CachedObjectIndexCount);
        foreach (long stream in streams)
        {
            await engine.AssertReadsBackAsync(stream, 0);
        }

        // Nothing is left to merge: a lone stream object is not rewritten.
        Assert.Equal(CompactionReport.Nothing, await engine.Compactor().RunOnceAsync(CompactionEngine.Later));
    }

    [Fact]
    public async Task BlocksBelowTheLogStartOffsetAreNotCopied()
    {
        CompactionEngine engine = await OpenAsync();
        long stream = (await engine.CreateTopicAsync("trimmed"))[0];
        for (int upload = 0; upload < 3; upload++)
        {
            await engine.AppendAndUploadAsync([stream], batches: 15);
        }

        List<ObjectMetadata> before = [.. await engine.Metadata.ListObjectsAsync()];
        List<BlockIndexEntry> blocks = [.. (await IndexesAsync(engine, before)).SelectMany(i => i)];
        long logStart = blocks[blocks.Count / 2].StartOffset + 1;
        Assert.Equal(logStart, await engine.Streams.AdvanceLogStartAsync(stream, logStart));
        int below = blocks.Count(b => b.EndOffset <= logStart);
        Assert.True(below > 2, "several blocks are wholly below the log start offset");

        CompactionReport report = await engine.Compactor().RunOnceAsync(CompactionEngine.Later);

        Assert.Equal((3, 1, below), (report.StreamSetObjectsReplaced, report.ObjectsWritten, report.BlocksDropped));
        (StreamObjectRange range, _) = Assert.Single(await engine.RangesAsync(stream));
        IReadOnlyList<BlockIndexEntry> index = await ObjectReader.ReadIndexAsync(engine.Objects, range.Key, range.ObjectSize);
        Assert.Equal(blocks.Count - below, index.Count);
        Assert.All(index, b => Assert.True(b.EndOffset > logStart));
        Assert.InRange(logStart, index[0].StartOffset, index[0].EndOffset - 1);
        Assert.Equal(index[0].StartOffset, range.Range.StartOffset);
        Assert.True(report.OutputBytes < report.InputBytes);

        await engine.AssertReadsBackAsync(stream, logStart);
        await Assert.ThrowsAsync<OffsetOutOfRangeException>(() => engine.Streams.ReadAsync(stream, logStart - 1, 100));
    }

    [Fact]
    public async Task ADeletedTopicsDataIsNotCopied()
    {
        CompactionEngine engine = await OpenAsync();
        long[] both = [.. await engine.CreateTopicAsync("kept"), .. await engine.CreateTopicAsync("doomed")];
        (long kept, long doomed) = (both[0], both[1]);
        for (int upload = 0; upload < 2; upload++)
        {
            await engine.AppendAndUploadAsync(both, batches: 10);
        }

        List<ObjectMetadata> shared = [.. await engine.Metadata.ListObjectsAsync()];
        int doomedBlocks = (await IndexesAsync(engine, shared)).SelectMany(i => i).Count(b => b.StreamId == doomed);
        Assert.True(doomedBlocks > 0);

        Assert.True(await engine.Metadata.DeleteTopicAsync("doomed"));
        engine.Streams.Close(doomed);
        Assert.All(await engine.Metadata.ListObjectsAsync(), o => Assert.Equal(ObjectState.Committed, o.State));

        CompactionReport report = await engine.Compactor().RunOnceAsync(CompactionEngine.Later);

        Assert.Equal((2, 1, doomedBlocks), (report.StreamSetObjectsReplaced, report.ObjectsWritten, report.BlocksDropped));
        ObjectMetadata written = Assert.Single(await engine.Metadata.ListObjectsAsync(), o => o.State == ObjectState.Committed);
        Assert.All(await ObjectReader.ReadIndexAsync(engine.Objects, written.Key, written.Size), b => Assert.Equal(kept, b.StreamId));
        Assert.True(report.OutputBytes < report.InputBytes / 2 + 1024, "about half the input belonged to the deleted topic");
        await engine.AssertReadsBackAsync(kept, 0);
    }

    [Fact]
    public async Task SmallStreamObjectsOfAStreamAreMergedByALaterRound()
    {
        CompactionEngine engine = await OpenAsync();
        long growing = (await engine.CreateTopicAsync("growing"))[0];
        long idle = (await engine.CreateTopicAsync("idle"))[0];
        await engine.AppendAndUploadAsync([growing, idle], batches: 6);
        Assert.Equal(2, (await engine.Compactor().RunOnceAsync(CompactionEngine.Later)).ObjectsWritten);
        (StreamObjectRange first, _) = Assert.Single(await engine.RangesAsync(growing));
        (StreamObjectRange idleObject, _) = Assert.Single(await engine.RangesAsync(idle));

        await engine.AppendAndUploadAsync([growing], batches: 6);
        Assert.Equal([ObjectKind.Stream, ObjectKind.StreamSet], (await engine.RangesAsync(growing)).Select(r => r.Kind));

        CompactionReport report = await engine.Compactor().RunOnceAsync(CompactionEngine.Later);

        Assert.Equal((1, 1, 1), (report.StreamSetObjectsReplaced, report.StreamObjectsReplaced, report.ObjectsWritten));
        (StreamObjectRange merged, ObjectKind kind) = Assert.Single(await engine.RangesAsync(growing));
        Assert.Equal((ObjectKind.Stream, 0L, engine.HighWatermark(growing)), (kind, merged.Range.StartOffset, merged.Range.EndOffset));
        Dictionary<long, ObjectMetadata> objects = await engine.ObjectsByIdAsync();
        Assert.Equal(ObjectState.MarkedForDeletion, objects[first.ObjectId].State);
        Assert.Equal(ObjectState.Committed, objects[idleObject.ObjectId].State);
        await engine.AssertReadsBackAsync(growing, 0);
        await engine.AssertReadsBackAsync(idle, 0);
    }

    [Fact]
    public async Task StreamObjectsGrowOnlyToTheTargetSize()
    {
        StorageOptions options = CompactionEngine.DefaultOptions();
        options.StreamObjectTargetBytes = 24 * 1024;
        CompactionEngine engine = await OpenAsync(options);
        long stream = (await engine.CreateTopicAsync("bounded"))[0];
        for (int round = 0; round < 8; round++)
        {
            await engine.AppendAndUploadAsync([stream], batches: 12);
            await engine.Compactor().RunOnceAsync(CompactionEngine.Later);
        }

        List<(StreamObjectRange Range, ObjectKind Kind)> ranges = await engine.RangesAsync(stream);
        long total = ranges.Sum(r => r.Range.Range.Size);
        Assert.All(ranges, r => Assert.Equal(ObjectKind.Stream, r.Kind));
        Assert.All(ranges, r => Assert.InRange(r.Range.Range.Size, 1, options.StreamObjectTargetBytes));

        // Every object but the last was filled to within one block of the target.
        Assert.All(ranges.SkipLast(1), r => Assert.True(r.Range.Range.Size > options.StreamObjectTargetBytes - (2 * options.BlockSizeBytes), $"object of {r.Range.Range.Size} bytes"));
        Assert.True(ranges.Count < 8 && ranges.Count >= total / options.StreamObjectTargetBytes, $"{ranges.Count} objects for {total} bytes");
        await engine.AssertReadsBackAsync(stream, 0);
    }

    [Fact]
    public async Task ARoundTakesTheOldestStreamSetObjectsWithinItsByteBudget()
    {
        StorageOptions options = CompactionEngine.DefaultOptions();
        CompactionEngine engine = await OpenAsync(options);
        long[] streams = await engine.CreateTopicAsync("budget", 2);
        for (int upload = 0; upload < 4; upload++)
        {
            await engine.AppendAndUploadAsync(streams, batches: 8);
        }

        List<ObjectMetadata> uploads = [.. await engine.Metadata.ListObjectsAsync()];
        options.CompactionMaxBytesPerRound = uploads[0].Size + uploads[1].Size;

        CompactionReport first = await engine.Compactor().RunOnceAsync(CompactionEngine.Later);

        Assert.Equal(2, first.StreamSetObjectsReplaced);
        Dictionary<long, ObjectMetadata> objects = await engine.ObjectsByIdAsync();
        Assert.Equal(
            [ObjectState.MarkedForDeletion, ObjectState.MarkedForDeletion, ObjectState.Committed, ObjectState.Committed],
            uploads.Select(o => objects[o.ObjectId].State));
        foreach (long stream in streams)
        {
            Assert.Equal([ObjectKind.Stream, ObjectKind.StreamSet, ObjectKind.StreamSet], (await engine.RangesAsync(stream)).Select(r => r.Kind));
            await engine.AssertReadsBackAsync(stream, 0);
        }

        // A budget smaller than the oldest object still takes that one object.
        options.CompactionMaxBytesPerRound = 1;
        CompactionReport second = await engine.Compactor().RunOnceAsync(CompactionEngine.Later);
        Assert.Equal((1, 2), (second.StreamSetObjectsReplaced, second.StreamObjectsReplaced));
        Assert.Equal(ObjectState.MarkedForDeletion, (await engine.ObjectsByIdAsync())[uploads[2].ObjectId].State);
        foreach (long stream in streams)
        {
            Assert.Equal([ObjectKind.Stream, ObjectKind.StreamSet], (await engine.RangesAsync(stream)).Select(r => r.Kind));
            await engine.AssertReadsBackAsync(stream, 0);
        }
    }

    [Fact]
    public async Task ACrashBetweenPutAndCommitLeavesOrphansThatTheJanitorRemovesAndLosesNothing()
    {
        CompactionEngine engine = await OpenAsync();
        long[] streams = await engine.CreateTopicAsync("crash", 2);
        await engine.AppendAndUploadAsync(streams, batches: 10);
        await engine.AppendAndUploadAsync(streams, batches: 10);
        List<ObjectMetadata> uploads = [.. await engine.Metadata.ListObjectsAsync()];
        IMetadataStore crashing = Intercept.Wrap<IMetadataStore>(engine.Metadata, (method, _, proceed) =>
            method.Name == nameof(IMetadataStore.CommitCompactionAsync) ? Task.FromException(new IOException("simulated crash before the commit")) : proceed());

        await Assert.ThrowsAsync<IOException>(() => engine.Compactor(metadata: crashing).RunOnceAsync(CompactionEngine.Later));

        List<ObjectMetadata> orphans = [.. (await engine.Metadata.ListObjectsAsync()).Where(o => o.State == ObjectState.Prepared)];
        Assert.Equal(2, orphans.Count);
        foreach (ObjectMetadata orphan in orphans)
        {
            Assert.True(await engine.ExistsAsync(orphan.Key));
        }

        Assert.All(uploads, o => Assert.Equal(ObjectState.Committed, o.State));
        Assert.Equal(uploads.Select(o => o.ObjectId), (await engine.Metadata.ListObjectsAsync()).Where(o => o.State == ObjectState.Committed).Select(o => o.ObjectId));
        foreach (long stream in streams)
        {
            await engine.AssertReadsBackAsync(stream, 0);
        }

        JanitorReport cleanup = await engine.Janitor().RunOnceAsync(DateTimeOffset.UtcNow.AddMinutes(11));
        Assert.Equal((2, 2), (cleanup.OrphansRemoved, cleanup.ObjectsDeleted));
        foreach (ObjectMetadata orphan in orphans)
        {
            Assert.False(await engine.ExistsAsync(orphan.Key));
        }

        foreach (ObjectMetadata upload in uploads)
        {
            Assert.True(await engine.ExistsAsync(upload.Key));
        }

        foreach (long stream in streams)
        {
            await engine.AssertReadsBackAsync(stream, 0);
        }

        Assert.Equal(2, (await engine.Compactor().RunOnceAsync(CompactionEngine.Later)).ObjectsWritten);
        foreach (long stream in streams)
        {
            await engine.AssertReadsBackAsync(stream, 0);
        }
    }

    [Fact]
    public async Task AFailedRoundIsLoggedAndTheLoopTriesAgain()
    {
        StorageOptions options = CompactionEngine.DefaultOptions();
        options.CompactionMinAge = TimeSpan.Zero;
        CompactionEngine engine = await OpenAsync(options);
        long stream = (await engine.CreateTopicAsync("retried"))[0];
        await engine.AppendAndUploadAsync([stream], batches: 5);
        int attempts = 0;
        var secondAttempt = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        IMetadataStore flaky = Intercept.Wrap<IMetadataStore>(engine.Metadata, (method, _, proceed) =>
        {
            if (method.Name != nameof(IMetadataStore.CommitCompactionAsync))
            {
                return proceed();
            }

            if (Interlocked.Increment(ref attempts) == 1)
            {
                return Task.FromException(new IOException("metadata store away"));
            }

            var committed = (Task)proceed()!;
            committed.ContinueWith(_ => secondAttempt.TrySetResult(), TaskScheduler.Default);
            return committed;
        });
        var logger = new ListLogger<ObjectCompactor>();
        using var stop = new CancellationTokenSource();

        Task loop = new ObjectCompactor(engine.Objects, flaky, options, engine.Streams, logger).RunAsync(TimeSpan.FromMilliseconds(20), stop.Token);
        await secondAttempt.Task.WaitAsync(Wait);
        await stop.CancelAsync();
        await loop.WaitAsync(Wait);

        Assert.Contains(logger.Entries, e => e.Level == LogLevel.Warning && e.Exception is IOException);
        Assert.Equal(ObjectKind.Stream, Assert.Single(await engine.RangesAsync(stream)).Kind);
        await engine.AssertReadsBackAsync(stream, 0);
    }

    [Fact]
    public async Task AReadStartedBeforeCompactionFinishesFromTheReplacedObjectWithinTheGrace()
    {
        StorageOptions options = CompactionEngine.DefaultOptions();
        options.PrefetchBlocks = 0;
        LocalDirectoryObjectStore local = LocalStore();
        string? gatedKey = null;
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        IObjectStore gated = Intercept.Wrap<IObjectStore>(local, (method, args, proceed) =>
        {
            if (method.Name != nameof(IObjectStore.GetRangeAsync) || (string)args[0]! != Volatile.Read(ref gatedKey))
            {
                return proceed();
            }

            entered.TrySetResult();
            return release.Task.ContinueWith(_ => (Task<int>)proceed()!, TaskScheduler.Default).Unwrap();
        });
        CompactionEngine engine = await OpenAsync(options, gated);
        long stream = (await engine.CreateTopicAsync("reading"))[0];
        await engine.AppendAndUploadAsync([stream], batches: 30);
        ObjectMetadata old = Assert.Single(await engine.Metadata.ListObjectsAsync());

        // The first read caches the object's index and its first block.
        StreamReadResult head = await engine.Streams.ReadAsync(stream, 0, 1);
        Assert.Single(head.Batches);
        long last = engine.HighWatermark(stream) - 1;
        Volatile.Write(ref gatedKey, old.Key);
        Task<StreamReadResult> reading = engine.Streams.ReadAsync(stream, last, 1);
        await entered.Task.WaitAsync(Wait);
        Assert.False(reading.IsCompleted);

        // The compactor reads through the ungated store; its commit marks the object being read.
        Assert.Equal(1, (await engine.Compactor(objects: local).RunOnceAsync(CompactionEngine.Later)).ObjectsWritten);
        Assert.Equal(ObjectState.MarkedForDeletion, (await engine.ObjectsByIdAsync())[old.ObjectId].State);
        ObjectJanitor janitor = engine.Janitor(TimeSpan.FromMinutes(1));
        Assert.Equal(0, (await janitor.RunOnceAsync(DateTimeOffset.UtcNow)).ObjectsDeleted);

        release.SetResult();
        StreamReadResult finished = await reading.WaitAsync(Wait);
        CompactionEngine.AssertSameBatches(engine.Expected(stream, last), [.. finished.Batches.Select(b => b.ToArray())]);

        Volatile.Write(ref gatedKey, null);
        Assert.Equal(1, (await janitor.RunOnceAsync(DateTimeOffset.UtcNow.AddMinutes(2))).ObjectsDeleted);
        Assert.False(await engine.ExistsAsync(old.Key));
        await engine.AssertReadsBackAsync(stream, last);
        await engine.AssertReadsBackAsync(stream, 0);
    }

    [Fact]
    public async Task ObjectsMarkedBeforeMarkTimesWereRecordedAreDeletedWithoutWaiting()
    {
        // A version 1 database with one object marked for deletion, and its bytes in the store.
        Directory.CreateDirectory(_root);
        const string LegacyKey = "data/0000/legacy";
        await using (var connection = new SqliteConnection($"Data Source={Path.Combine(_root, "metadata.db")};Pooling=False"))
        {
            await connection.OpenAsync();
            foreach (string statement in (string[])[SqliteMetadataSchema.VersionTable, .. SqliteMetadataSchema.Migrations[0],
                "INSERT INTO schema_version (version, applied_at_ms) VALUES (1, 0)",
                "UPDATE id_sequences SET next_value = 2 WHERE sequence_name = 'object_id'",
                $"INSERT INTO objects (object_id, object_key, object_state, object_size, created_at_ms) VALUES (1, '{LegacyKey}', {(int)ObjectState.MarkedForDeletion}, 10, 0)"])
            {
                await using SqliteCommand command = connection.CreateCommand();
                command.CommandText = statement;
                await command.ExecuteNonQueryAsync();
            }
        }

        CompactionEngine engine = await OpenAsync();
        await engine.Objects.PutAsync(LegacyKey, new byte[10]);
        ObjectMetadata legacy = Assert.Single(await engine.Metadata.ListObjectsAsync());
        Assert.Equal((ObjectState.MarkedForDeletion, ObjectKind.StreamSet, (DateTimeOffset?)null), (legacy.State, legacy.Kind, legacy.MarkedAt));

        long stream = (await engine.CreateTopicAsync("fresh"))[0];
        await engine.AppendAndUploadAsync([stream], batches: 1);
        ObjectMetadata fresh = Assert.Single(await engine.Metadata.ListObjectsAsync(), o => o.State == ObjectState.Committed);
        await engine.Metadata.MarkObjectsDeletedAsync([fresh.ObjectId]);

        JanitorReport report = await engine.Janitor(TimeSpan.FromHours(1)).RunOnceAsync(DateTimeOffset.UtcNow);

        Assert.Equal(1, report.ObjectsDeleted);
        Assert.False(await engine.ExistsAsync(LegacyKey));
        Assert.True(await engine.ExistsAsync(fresh.Key));
        Assert.Equal([fresh.ObjectId], (await engine.Metadata.ListObjectsAsync()).Select(o => o.ObjectId));
    }
}
