using SharedLog.Protocol.Records;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.ObjectStore;
using SharedLog.Storage.Streams;
using SharedLog.Storage.Wal;

namespace SharedLog.Storage.Tests.Streams;

/// <summary>The storage engine with real parts: FasterLog WAL, local-directory objects, SQLite metadata.</summary>
public sealed class StreamStoreTests : IAsyncLifetime
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "sharedlog-streams-" + Guid.NewGuid().ToString("N"));
    private Engine _engine = null!;

    private sealed record Engine(FasterWriteAheadLog Wal, IObjectStore Objects, SqliteMetadataStore Metadata, StreamStore Streams) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await Streams.DisposeAsync();
            await Wal.DisposeAsync();
            await Metadata.DisposeAsync();
        }
    }

    private async Task<Engine> OpenAsync(StorageOptions? options = null, Func<IObjectStore, IObjectStore>? wrap = null, Func<IMetadataStore, IMetadataStore>? wrapMetadata = null, TimeProvider? objectStoreTime = null)
    {
        FasterWriteAheadLog wal = OpenWal();
        IObjectStore objects = new LocalDirectoryObjectStore(new LocalObjectStoreOptions { RootDirectory = Path.Combine(_root, "objects") }, objectStoreTime);
        objects = wrap?.Invoke(objects) ?? objects;
        var metadata = new SqliteMetadataStore(new SqliteMetadataStoreOptions { DatabasePath = Path.Combine(_root, "metadata.db") });
        await metadata.InitializeAsync();
        var streams = new StreamStore(options ?? new StorageOptions { UploadInterval = TimeSpan.FromHours(1), BlockSizeBytes = 8192 }, wal, objects, wrapMetadata?.Invoke(metadata) ?? metadata);
        foreach (TopicMetadata topic in await metadata.ListTopicsAsync())
        {
            foreach (PartitionMetadata partition in topic.Partitions)
            {
                streams.Open(await metadata.ClaimLeadershipAsync(partition.StreamId, 1));
            }
        }

        var engine = new Engine(wal, objects, metadata, streams);
        try
        {
            await streams.StartAsync();
        }
        catch
        {
            await engine.DisposeAsync();
            throw;
        }

        return engine;
    }

    private FasterWriteAheadLog OpenWal() => new(new WalOptions { Directory = Path.Combine(_root, "wal"), PageSizeBits = 22, MemorySizeBits = 24, SegmentSizeBits = 26 });

    public async Task InitializeAsync() => _engine = await OpenAsync();

    public async Task DisposeAsync()
    {
        await _engine.DisposeAsync();
        Directory.Delete(_root, recursive: true);
    }

    private async Task<long> CreateStreamAsync(string name, Dictionary<string, string>? configs = null)
    {
        TopicMetadata topic = await _engine.Metadata.CreateTopicAsync(name, 1, configs ?? new Dictionary<string, string>());
        _engine.Streams.Open(await _engine.Metadata.ClaimLeadershipAsync(topic.Partitions[0].StreamId, 1));
        return topic.Partitions[0].StreamId;
    }

    private static byte[] Batch(int records, int tag)
    {
        var builder = new RecordBatchBuilder(1_000 + tag);
        for (int i = 0; i < records; i++)
        {
            builder.Add(BitConverter.GetBytes(tag), new byte[200], 1_000 + tag + i);
        }

        return builder.Build();
    }

    private static List<(long Offset, int Tag)> Decode(StreamReadResult read)
    {
        var records = new List<(long, int)>();
        foreach (ReadOnlyMemory<byte> bytes in read.Batches)
        {
            RecordBatch batch = RecordBatch.Parse(bytes);
            Assert.True(batch.IsCrcValid());
            foreach (SharedLog.Protocol.Records.Record record in batch.Records())
            {
                records.Add((record.Offset, BitConverter.ToInt32(record.Key)));
            }
        }

        return records;
    }

    private async Task<List<(long Offset, int Tag)>> ReadAllAsync(long stream, long from, long to)
    {
        var all = new List<(long, int)>();
        long next = from;
        for (int guard = 0; next < to && guard < 10_000; guard++)
        {
            List<(long Offset, int Tag)> part = Decode(await _engine.Streams.ReadAsync(stream, next, 4096));
            Assert.NotEmpty(part);
            all.AddRange(part.Where(r => r.Offset >= next));
            next = part[^1].Offset + 1;
        }

        return all;
    }

    [Fact]
    public async Task ABatchLargerThanAWalEntryIsRefusedWithoutClosingThePartitionOrSkippingOffsets()
    {
        long stream = await CreateStreamAsync("too-large");
        Assert.Equal(0, await _engine.Streams.AppendAsync(stream, Batch(3, 1)));

        var builder = new RecordBatchBuilder(2_000);
        builder.Add(BitConverter.GetBytes(2), new byte[_engine.Wal.MaxEntryBytes + 1], 2_000);
        byte[] tooLarge = builder.Build();
        ArgumentException refused = await Assert.ThrowsAsync<ArgumentException>(() => _engine.Streams.AppendAsync(stream, tooLarge).AsTask());
        Assert.Contains("exceeds the largest batch", refused.Message);

        // The partition stays open and the next batch gets the very next offsets.
        Assert.Equal(3, await _engine.Streams.AppendAsync(stream, Batch(2, 3)));
        Assert.Equal([(0L, 1), (1L, 1), (2L, 1), (3L, 3), (4L, 3)], await ReadAllAsync(stream, 0, 5));
    }

    [Fact]
    public async Task AppendsGetConsecutiveOffsetsAndReadBackFromTheCache()
    {
        long stream = await CreateStreamAsync("cache");
        Assert.Equal(0, await _engine.Streams.AppendAsync(stream, Batch(3, 1)));
        Assert.Equal(3, await _engine.Streams.AppendAsync(stream, Batch(2, 2)));
        StreamReadResult read = await _engine.Streams.ReadAsync(stream, 4, 1_000_000);
        Assert.Equal(5, read.HighWatermark);
        Assert.Equal([(3L, 2), (4L, 2)], Decode(read));
        Assert.Empty((await _engine.Streams.ReadAsync(stream, 5, 100)).Batches);
        await Assert.ThrowsAsync<OffsetOutOfRangeException>(() => _engine.Streams.ReadAsync(stream, 6, 100));
    }

    [Fact]
    public async Task AnAppendWhoseCallerStopsWaitingStillLandsAndThePartitionKeepsServing()
    {
        // A producer that disconnects cancels its request. Before offsets are assigned that cancels the
        // append; after, nothing: the batch has offsets and a WAL entry, so it lands and the partition keeps
        // serving (it used to be abandoned, which closed the partition until a restart).
        long stream = await CreateStreamAsync("cancelled");
        using var gone = new CancellationTokenSource();
        await gone.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => _engine.Streams.AppendAsync(stream, Batch(5, 9), gone.Token).AsTask());

        using var leaving = new CancellationTokenSource();
        Task<long> waiting = _engine.Streams.AppendAsync(stream, Batch(2, 1), leaving.Token).AsTask();
        await leaving.CancelAsync();
        Assert.Equal(2, await _engine.Streams.AppendAsync(stream, Batch(1, 2)));
        Assert.Equal(0, await waiting);
        Assert.Equal([(0L, 1), (1L, 1), (2L, 2)], await ReadAllAsync(stream, 0, 3));
    }

    /// <summary>Two new streams with four batches of five records each (tags 0-3), for the upload rounds that lose one of them.</summary>
    private async Task<(long First, long Second)> TwoStreamsOfFourBatchesAsync(string first, string second)
    {
        long a = await CreateStreamAsync(first);
        long b = await CreateStreamAsync(second);
        for (int i = 0; i < 4; i++)
        {
            await _engine.Streams.AppendAsync(a, Batch(5, i));
            await _engine.Streams.AppendAsync(b, Batch(5, i));
        }

        return (a, b);
    }

    [Fact]
    public async Task AStreamDeletedBeforeItsUploadDoesNotHoldBackTheOthers()
    {
        (long kept, long deleted) = await TwoStreamsOfFourBatchesAsync("kept", "deleted");

        // The topic is gone from the metadata store, but its stream is still open here (the deletion has not closed it yet).
        Assert.True(await _engine.Metadata.DeleteTopicAsync("deleted"));
        Assert.Equal(4, await _engine.Streams.UploadAsync());
        Assert.Equal(20, await _engine.Metadata.GetCommittedEndOffsetAsync(kept));
        Assert.False(_engine.Streams.IsOpen(deleted));
        Assert.Equal(0, _engine.Streams.PendingUploadBytes);
        Assert.Empty(_engine.Wal.ReadDurableEntries());
    }

    [Fact]
    public async Task AStreamWhoseRangeIsRefusedAsFencedIsHeldBackWithItsDataAndTheOthersUpload()
    {
        (long kept, long taken) = await TwoStreamsOfFourBatchesAsync("kept-too", "taken");

        // Another leader claims the stream at a newer epoch: this broker's commit of its range is fenced.
        await _engine.Metadata.ClaimLeadershipAsync(taken, 2);
        long pendingBefore = _engine.Streams.PendingUploadBytes;

        Assert.Equal(4, await _engine.Streams.UploadAsync());
        Assert.Equal(20, await _engine.Metadata.GetCommittedEndOffsetAsync(kept));
        Assert.Equal(0, await _engine.Metadata.GetCommittedEndOffsetAsync(taken));

        // The fenced stream keeps its acknowledged data: still open, still readable, still pending, still in the WAL.
        Assert.True(_engine.Streams.IsOpen(taken));
        Assert.Equal([.. Enumerable.Range(0, 20).Select(i => ((long)i, i / 5))], await ReadAllAsync(taken, 0, 20));
        Assert.True(_engine.Streams.PendingUploadBytes > 0 && _engine.Streams.PendingUploadBytes < pendingBefore);
        Assert.NotEmpty(_engine.Wal.ReadDurableEntries());
    }

    [Fact]
    public async Task ARangeCommittedByAnAttemptThatReportedAFailureCountsAsUploadedNextRound()
    {
        await _engine.DisposeAsync();
        MetadataFaults? faults = null;
        _engine = await OpenAsync(wrapMetadata: inner => MetadataFaults.Wrap(inner, out faults));
        (long first, long second) = await TwoStreamsOfFourBatchesAsync("ambiguous", "other");
        faults!.FailNextCommitAfterMakingIt = true;
        await Assert.ThrowsAsync<IOException>(() => _engine.Streams.UploadAsync());
        Assert.Equal(20, await _engine.Metadata.GetCommittedEndOffsetAsync(first)); // the commit happened
        Assert.True(_engine.Streams.PendingUploadBytes > 0);

        // The next round's range starts below the committed end: refused, then taken as uploaded, not held back for good.
        await _engine.Streams.AppendAsync(first, Batch(5, 4));
        await _engine.Streams.AppendAsync(second, Batch(5, 4));
        await _engine.Streams.UploadAsync();
        Assert.Equal((25L, 25L), (await _engine.Metadata.GetCommittedEndOffsetAsync(first), await _engine.Metadata.GetCommittedEndOffsetAsync(second)));
        Assert.Equal(0, _engine.Streams.PendingUploadBytes);
        Assert.Empty(_engine.Wal.ReadDurableEntries()); // the WAL is trimmed past both streams

        // Each record once, in order.
        Assert.Equal([.. Enumerable.Range(0, 25).Select(i => ((long)i, i / 5))], await ReadAllAsync(first, 0, 25));
        Assert.Equal([.. Enumerable.Range(0, 25).Select(i => ((long)i, i / 5))], await ReadAllAsync(second, 0, 25));
    }

    [Fact]
    public async Task TheObjectIndexCacheStaysWithinItsBound()
    {
        await _engine.DisposeAsync();
        _engine = await OpenAsync(new StorageOptions { UploadInterval = TimeSpan.FromHours(1), BlockSizeBytes = 8192, LogCacheBytes = 0 });
        _engine.Streams.MaxCachedObjectIndexes = 2;
        long stream = await CreateStreamAsync("many-objects");
        for (int i = 0; i < 5; i++)
        {
            await _engine.Streams.AppendAsync(stream, Batch(5, i));
            Assert.Equal(1, await _engine.Streams.UploadAsync()); // one object each
        }

        // Reading all five objects (the cache budget is 0: every read goes to them) keeps at most two indexes, and every
        // record still comes back once, in order.
        Assert.Equal([.. Enumerable.Range(0, 25).Select(i => ((long)i, i / 5))], await ReadAllAsync(stream, 0, 25));
        Assert.InRange(_engine.Streams.CachedObjectIndexCount, 1, 2);
    }

    [Fact]
    public async Task UploadedDataIsReadFromObjectsAfterEvictionAndTheWalIsTrimmed()
    {
        await _engine.DisposeAsync();
        _engine = await OpenAsync(new StorageOptions { UploadInterval = TimeSpan.FromHours(1), BlockSizeBytes = 8192, LogCacheBytes = 0 });
        long stream = await CreateStreamAsync("objects");
        for (int i = 0; i < 40; i++)
        {
            await _engine.Streams.AppendAsync(stream, Batch(5, i));
        }

        long walBefore = _engine.Wal.TrimPosition;
        Assert.Equal(40, await _engine.Streams.UploadAsync());
        Assert.True(_engine.Wal.TrimPosition > walBefore, "the WAL is trimmed once data is in an object");
        Assert.Empty(_engine.Wal.ReadDurableEntries());
        Assert.Equal(0, _engine.Streams.PendingUploadBytes);
        Assert.Equal(200, await _engine.Metadata.GetCommittedEndOffsetAsync(stream));

        // The cache budget is 0, so every read now goes to the object (index, then ranged block reads).
        List<(long Offset, int Tag)> all = await ReadAllAsync(stream, 0, 200);
        Assert.Equal(Enumerable.Range(0, 200).Select(i => ((long)i, i / 5)), all);
        List<(long Offset, int Tag)> middle = Decode(await _engine.Streams.ReadAsync(stream, 123, 1));
        Assert.Equal(120, middle[0].Offset);
        Assert.True(_engine.Streams.BlockCache.Misses > 0);
    }

    [Fact]
    public async Task ReadsThroughObjectsReuseARecentRangeLookupAndStillReturnEveryRecordInOrder()
    {
        await _engine.DisposeAsync();
        _engine = await OpenAsync(new StorageOptions { UploadInterval = TimeSpan.FromHours(1), BlockSizeBytes = 8192, LogCacheBytes = 0, DeletionGrace = TimeSpan.FromMinutes(10), RangeLookupReuse = TimeSpan.FromMinutes(1) });
        long stream = await CreateStreamAsync("through-objects");
        for (int i = 0; i < 40; i++)
        {
            // One object per batch, so a read crosses objects and a lookup's 8 ranges serve several reads.
            await _engine.Streams.AppendAsync(stream, Batch(5, i));
            await _engine.Streams.UploadAsync();
        }

        long before = _engine.Streams.RangeLookups;
        int reads = 0;
        var all = new List<(long Offset, int Tag)>();
        for (long next = 0; next < 200 && reads < 1_000; reads++)
        {
            // At most 2 KiB per read: one batch of about 1.1 KiB, so one read per object and 40 reads in all.
            List<(long Offset, int Tag)> part = Decode(await _engine.Streams.ReadAsync(stream, next, 2048));
            Assert.NotEmpty(part);
            all.AddRange(part.Where(r => r.Offset >= next));
            next = part[^1].Offset + 1;
        }

        Assert.Equal(Enumerable.Range(0, 200).Select(i => ((long)i, i / 5)), all);
        long lookups = _engine.Streams.RangeLookups - before;
        Assert.True(lookups * 4 <= reads, $"{lookups} range lookups for {reads} reads");
        Assert.True(lookups >= 40 / 8, $"{lookups} range lookups cannot have covered 40 objects 8 at a time");

        // Reads at any offset inside a remembered lookup, backwards too, come back exact.
        Assert.Equal((120L, 24), Decode(await _engine.Streams.ReadAsync(stream, 123, 1))[0]);
        Assert.Equal((5L, 1), Decode(await _engine.Streams.ReadAsync(stream, 9, 1))[0]);

        // Deleting an object (the janitor's hook) drops remembered lookups: the next read asks again.
        long beforeForget = _engine.Streams.RangeLookups;
        _engine.Streams.ForgetObjectIndex("no-such-object");
        Assert.Equal((120L, 24), Decode(await _engine.Streams.ReadAsync(stream, 121, 1))[0]);
        Assert.Equal(beforeForget + 1, _engine.Streams.RangeLookups);
    }

    [Fact]
    public async Task ALookupUnderWayWhenLookupsAreDroppedIsNotRemembered()
    {
        MetadataFaults? held = null;
        await _engine.DisposeAsync();
        _engine = await OpenAsync(
            new StorageOptions { UploadInterval = TimeSpan.FromHours(1), BlockSizeBytes = 8192, LogCacheBytes = 0, DeletionGrace = TimeSpan.FromMinutes(10), RangeLookupReuse = TimeSpan.FromMinutes(1) },
            wrapMetadata: inner => MetadataFaults.Wrap(inner, out held));
        long stream = await CreateStreamAsync("dropped-during-lookup");
        for (int i = 0; i < 3; i++)
        {
            await _engine.Streams.AppendAsync(stream, Batch(5, i));
            await _engine.Streams.UploadAsync();
        }

        // This broker's compactor commits (dropping remembered lookups) while a read's lookup is being answered.
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        held!.Hold = hold;
        Task<StreamReadResult> read = _engine.Streams.ReadAsync(stream, 0, 2048);
        await held.Entered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        _engine.Streams.ForgetRangeLookups();
        hold.SetResult();
        Assert.Equal((0L, 0), Decode(await read.WaitAsync(TimeSpan.FromSeconds(10)))[0]);

        // That answer predates the drop, so the next read looks its ranges up again.
        long before = _engine.Streams.RangeLookups;
        Assert.Equal((5L, 1), Decode(await _engine.Streams.ReadAsync(stream, 5, 2048))[0]);
        Assert.Equal(before + 1, _engine.Streams.RangeLookups);

        // Lookups made after the drop are remembered again.
        Assert.Equal((10L, 2), Decode(await _engine.Streams.ReadAsync(stream, 10, 2048))[0]);
        Assert.Equal(before + 1, _engine.Streams.RangeLookups);
    }

    /// <summary>
    /// Fault injection: a metadata store whose next range lookup, once held, waits until the test lets it go; and whose
    /// next object commit, once armed, is made and then reported as failed (a reply lost after the commit).
    /// </summary>
    public class MetadataFaults : System.Reflection.DispatchProxy
    {
        private IMetadataStore _inner = null!;

        public TaskCompletionSource? Hold { get; set; }

        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public bool FailNextCommitAfterMakingIt { get; set; }

        public static IMetadataStore Wrap(IMetadataStore inner, out MetadataFaults control)
        {
            IMetadataStore proxy = Create<IMetadataStore, MetadataFaults>();
            control = (MetadataFaults)(object)proxy;
            control._inner = inner;
            return proxy;
        }

        protected override object? Invoke(System.Reflection.MethodInfo? targetMethod, object?[]? args)
        {
            ArgumentNullException.ThrowIfNull(targetMethod);
            if (targetMethod.Name == nameof(IMetadataStore.GetObjectRangesAsync) && Hold is { } hold)
            {
                Hold = null;
                return HeldAsync(targetMethod, args, hold);
            }

            if (targetMethod.Name == nameof(IMetadataStore.CommitObjectAsync) && FailNextCommitAfterMakingIt)
            {
                FailNextCommitAfterMakingIt = false;
                return CommitThenFailAsync(targetMethod, args);
            }

            try
            {
                return targetMethod.Invoke(_inner, args);
            }
            catch (System.Reflection.TargetInvocationException e) when (e.InnerException is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.InnerException);
                throw;
            }
        }

        private async Task CommitThenFailAsync(System.Reflection.MethodInfo method, object?[]? args)
        {
            await (Task)method.Invoke(_inner, args)!;
            throw new IOException("the metadata store's reply was lost after the commit");
        }

        private async Task<IReadOnlyList<StreamObjectRange>> HeldAsync(System.Reflection.MethodInfo method, object?[]? args, TaskCompletionSource hold)
        {
            Entered.TrySetResult();
            await hold.Task;
            return await (Task<IReadOnlyList<StreamObjectRange>>)method.Invoke(_inner, args)!;
        }
    }

    [Fact]
    public async Task RestartRecoversUnuploadedDataFromTheWalAndSkipsUploadedData()
    {
        long stream = await CreateStreamAsync("restart");
        for (int i = 0; i < 10; i++)
        {
            await _engine.Streams.AppendAsync(stream, Batch(2, i));
        }

        await _engine.Streams.UploadAsync();
        for (int i = 10; i < 15; i++)
        {
            await _engine.Streams.AppendAsync(stream, Batch(2, i));
        }

        await _engine.DisposeAsync();
        _engine = await OpenAsync();
        StreamLog log = _engine.Streams.Get(stream);
        Assert.Equal(30, log.HighWatermark);
        Assert.Equal(20, log.UploadedEndOffset);
        Assert.Equal(30, await _engine.Streams.AppendAsync(stream, Batch(1, 99)));
        List<(long Offset, int Tag)> all = await ReadAllAsync(stream, 0, 31);
        Assert.Equal(31, all.Count);
        Assert.Equal(Enumerable.Range(0, 31).Select(i => (long)i), all.Select(r => r.Offset));
        Assert.Equal(99, all[^1].Tag);
    }

    [Fact]
    public async Task AStretchOfAStreamMissingFromTheWalStopsTheStartInsteadOfServingOtherRecordsAtItsOffsets()
    {
        long stream = await CreateStreamAsync("lost-stretch");
        await _engine.Streams.AppendAsync(stream, Batch(5, 1));
        await _engine.DisposeAsync();

        // As the WAL reads after a lost write in its middle: the entry of offsets 5-9 is gone, the one after it is whole.
        await using (FasterWriteAheadLog wal = OpenWal())
        {
            await wal.AppendAsync(stream, 10, 5, Batch(5, 3));
        }

        InvalidDataException refused = await Assert.ThrowsAsync<InvalidDataException>(() => OpenAsync());
        Assert.Contains($"stream {stream} lacks offsets 5 to 9", refused.Message, StringComparison.Ordinal);

        // The same data again, its records now following on: it starts, with every record where it was written.
        Directory.Delete(Path.Combine(_root, "wal"), recursive: true);
        await using (FasterWriteAheadLog wal = OpenWal())
        {
            await wal.AppendAsync(stream, 0, 5, Batch(5, 1));
            await wal.AppendAsync(stream, 5, 5, Batch(5, 2));
        }

        _engine = await OpenAsync();
        Assert.Equal(10, _engine.Streams.Get(stream).HighWatermark);
        Assert.Equal([1, 1, 1, 1, 1, 2, 2, 2, 2, 2], (await ReadAllAsync(stream, 0, 10)).Select(r => r.Tag));
    }

    [Fact]
    public async Task ACrashBetweenCommitAndTrimDoesNotDuplicateData()
    {
        long stream = await CreateStreamAsync("no-dupes");
        for (int i = 0; i < 6; i++)
        {
            await _engine.Streams.AppendAsync(stream, Batch(3, i));
        }

        // Commit an object by hand for the first 9 records without trimming, as a crash right after the commit would leave it.
        var builder = new SharedLog.Storage.Objects.ObjectBuilder(SharedLog.Storage.Objects.ObjectKind.StreamSet);
        List<WalEntry> entries = [.. _engine.Wal.ReadDurableEntries()];
        foreach (WalEntry entry in entries.Take(3))
        {
            builder.Add(entry.StreamId, entry.BaseOffset, entry.BaseOffset + entry.RecordCount, 0, 0, entry.RecordCount, entry.Batch);
        }

        byte[] data = builder.Build();
        PreparedObject prepared = await _engine.Metadata.PrepareObjectAsync("data/");
        await _engine.Objects.PutAsync(prepared.Key, data);
        int epoch = _engine.Streams.Get(stream).LeaderEpoch;
        await _engine.Metadata.CommitObjectAsync(new ObjectCommit(prepared.ObjectId, data.Length, [new ObjectRange(stream, epoch, 0, 9, 0, builder.DataSize, 0, 0)], []));

        await _engine.DisposeAsync();
        _engine = await OpenAsync();
        Assert.Equal(18, _engine.Streams.Get(stream).HighWatermark);
        Assert.Equal(9, _engine.Streams.Get(stream).UploadedEndOffset);
        Assert.Equal(entries.Skip(3).Sum(e => (long)e.Batch.Length), _engine.Streams.PendingUploadBytes);
        await _engine.Streams.UploadAsync();
        Assert.Equal(18, await _engine.Metadata.GetCommittedEndOffsetAsync(stream));
        List<(long Offset, int Tag)> all = await ReadAllAsync(stream, 0, 18);
        Assert.Equal(Enumerable.Range(0, 18).Select(i => (long)i), all.Select(r => r.Offset));
    }

    [Fact]
    public async Task LongPollWaiterIsWokenByTheAppend()
    {
        long stream = await CreateStreamAsync("wake");
        StreamLog log = _engine.Streams.Get(stream);
        Task waiting = log.WaitForDataAsync(0, CancellationToken.None);
        Assert.False(waiting.IsCompleted);
        await _engine.Streams.AppendAsync(stream, Batch(1, 1));
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Theory]
    [InlineData(true, false, 100)]
    [InlineData(true, true, 0)]
    [InlineData(false, false, 0)]
    public async Task OnlyUploadsTheIntervalStartsAreSpreadOverHalfOfIt(bool paceIntervalUploads, bool pastUploadBytes, int expectedSpreadMs)
    {
        var spreads = new SpreadRecordingObjectStore();
        await _engine.DisposeAsync();
        // Past upload.bytes the append itself starts the upload (the interval is too long to); below it the interval does.
        var options = new StorageOptions
        {
            UploadInterval = pastUploadBytes ? TimeSpan.FromHours(1) : TimeSpan.FromMilliseconds(200),
            UploadBytes = pastUploadBytes ? 100 : 16L * 1024 * 1024,
            PaceIntervalUploads = paceIntervalUploads,
            BlockSizeBytes = 8192,
        };
        _engine = await OpenAsync(options, spreads.Wrap);
        long stream = await CreateStreamAsync("spread");
        await _engine.Streams.AppendAsync(stream, Batch(3, 1));
        Wait.Until(() => _engine.Streams.PendingUploadBytes == 0, "the batch is uploaded");
        Assert.Equal(TimeSpan.FromMilliseconds(expectedSpreadMs), Assert.Single(spreads.Spreads));
        Assert.Equal([(0L, 1), (1L, 1), (2L, 1)], await ReadAllAsync(stream, 0, 3));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task APacedUploadFinishesAtFullSpeedWhenAnUploadIsAskedForOrUploadBytesIsReached(bool byUploadBytes)
    {
        var spreads = new SpreadRecordingObjectStore();
        await _engine.DisposeAsync();
        // The object store's clock never moves, so a paced PUT (with direct I/O) waits until it is hurried.
        var options = new StorageOptions { UploadInterval = TimeSpan.FromMilliseconds(200), UploadBytes = 1024 * 1024, BlockSizeBytes = 8192 };
        _engine = await OpenAsync(options, spreads.Wrap, objectStoreTime: new Microsoft.Extensions.Time.Testing.FakeTimeProvider());
        long stream = await CreateStreamAsync("hurried");
        await _engine.Streams.AppendAsync(stream, Batch(500, 1));
        Wait.Until(() => !spreads.Spreads.IsEmpty, "the interval starts a paced upload");
        Assert.Equal(TimeSpan.FromMilliseconds(100), spreads.Spreads.First());
        if (SharedLog.Storage.DirectIo.Probe(Path.Combine(_root, "direct-probe"), out _))
        {
            // Where objects are written direct the PUT is paced, and on a clock that does not move it waits until hurried.
            Assert.NotEqual(0, _engine.Streams.PendingUploadBytes);
        }

        int records = 500;
        if (byUploadBytes)
        {
            for (int tag = 2; _engine.Streams.PendingUploadBytes < options.UploadBytes; tag++)
            {
                Assert.True(tag < 100, "appends reach upload.bytes");
                await _engine.Streams.AppendAsync(stream, Batch(500, tag));
                records += 500;
            }
        }
        else
        {
            await _engine.Streams.UploadAsync().WaitAsync(Wait.Deadline);
        }

        Wait.Until(() => _engine.Streams.PendingUploadBytes == 0, "everything is uploaded");
        Assert.Equal(records, (await ReadAllAsync(stream, 0, records)).Count);
    }

    /// <summary>Records the spread each PUT was given, and passes it on.</summary>
    private sealed class SpreadRecordingObjectStore
    {
        public System.Collections.Concurrent.ConcurrentQueue<TimeSpan> Spreads { get; } = new();

        public IObjectStore Wrap(IObjectStore inner) => Objects.Intercept.Wrap(inner, (method, arguments, call) =>
        {
            if (method.Name == nameof(IObjectStore.PutAsync))
            {
                Spreads.Enqueue(arguments.OfType<WriteSpread>().SingleOrDefault().Over);
            }

            return call();
        });
    }

    [Fact]
    public async Task StoreOutageBlocksAppendsAtTheBoundAndUploadResumesWhenItReturns()
    {
        var outage = new SwitchableObjectStore();
        await _engine.DisposeAsync();
        _engine = await OpenAsync(new StorageOptions { UploadInterval = TimeSpan.FromMilliseconds(50), UploadBytes = 4096, MaxPendingUploadBytes = 16384, BlockSizeBytes = 8192 }, inner => outage.Wrap(inner));
        long stream = await CreateStreamAsync("outage");
        outage.Available = false;
        var acknowledged = new List<long>();
        StorageBackpressureException? refused = null;
        for (int i = 0; i < 100 && refused is null; i++)
        {
            try
            {
                acknowledged.Add(await _engine.Streams.AppendAsync(stream, Batch(10, i)));
            }
            catch (StorageBackpressureException e)
            {
                refused = e;
            }
        }

        Assert.NotNull(refused);
        Assert.InRange(acknowledged.Count, 1, 10);

        // The appends can reach the bound before the uploader's first round runs; it must still try while the store is away.
        DateTime deadline = DateTime.UtcNow.AddSeconds(20);
        while (Volatile.Read(ref outage.FailedPuts) == 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        Assert.True(Volatile.Read(ref outage.FailedPuts) > 0, "the uploader never tried while the store was away");

        outage.Available = true;
        deadline = DateTime.UtcNow.AddSeconds(20);
        while (_engine.Streams.PendingUploadBytes > 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        Assert.Equal(0, _engine.Streams.PendingUploadBytes);
        Assert.Equal(acknowledged.Count * 10L, await _engine.Metadata.GetCommittedEndOffsetAsync(stream));
        Assert.Equal(acknowledged.Count * 10L, await _engine.Streams.AppendAsync(stream, Batch(1, 500)));
    }

    [Fact]
    public async Task AStreamForgottenWhileItsUploadRunsIsDiscountedFromThePendingBytesOnce()
    {
        HeldObjectStore held = await ReopenWithHeldPutAsync();
        long forgotten = await CreateStreamAsync("forgotten");
        long kept = await CreateStreamAsync("kept");
        await _engine.Streams.AppendAsync(forgotten, Batch(4, 1));
        await _engine.Streams.AppendAsync(kept, Batch(2, 2));
        long keptBytes = Batch(2, 2).Length;

        Task upload = _engine.Streams.UploadAsync();
        await held.Entered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        _engine.Streams.Close(forgotten);
        Assert.Equal(keptBytes, _engine.Streams.PendingUploadBytes);

        held.Release.SetResult();
        await upload.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(0, _engine.Streams.PendingUploadBytes);
        Assert.Equal([(0L, 2), (1L, 2)], await ReadAllAsync(kept, 0, 2));
    }

    /// <summary>The engine opened again over an object store whose first put waits until the test lets it go.</summary>
    private async Task<HeldObjectStore> ReopenWithHeldPutAsync()
    {
        var held = new HeldObjectStore();
        await _engine.DisposeAsync();
        _engine = await OpenAsync(wrap: inner => held.Wrap(inner));
        return held;
    }

    /// <summary>Fault injection: an object store whose first put waits until the test lets it go.</summary>
    private sealed class HeldObjectStore
    {
        private IObjectStore _inner = null!;

        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public IObjectStore Wrap(IObjectStore inner)
        {
            _inner = inner;
            return new Held(this);
        }

        private sealed class Held(HeldObjectStore owner) : IObjectStore
        {
            public async Task PutAsync(string key, System.Buffers.ReadOnlySequence<byte> data, CancellationToken cancellationToken = default)
            {
                owner.Entered.TrySetResult();
                await owner.Release.Task.WaitAsync(cancellationToken);
                await owner._inner.PutAsync(key, data, cancellationToken);
            }

            public Task<int> GetRangeAsync(string key, long offset, Memory<byte> destination, CancellationToken cancellationToken = default) => owner._inner.GetRangeAsync(key, offset, destination, cancellationToken);

            public Task<byte[]> GetAsync(string key, CancellationToken cancellationToken = default) => owner._inner.GetAsync(key, cancellationToken);

            public Task<ObjectInfo?> HeadAsync(string key, CancellationToken cancellationToken = default) => owner._inner.HeadAsync(key, cancellationToken);

            public IAsyncEnumerable<ObjectInfo> ListAsync(string prefix, CancellationToken cancellationToken = default) => owner._inner.ListAsync(prefix, cancellationToken);

            public Task DeleteAsync(IReadOnlyCollection<string> keys, CancellationToken cancellationToken = default) => owner._inner.DeleteAsync(keys, cancellationToken);
        }
    }

    /// <summary>Fault injection: an object store that can be switched off.</summary>
    private sealed class SwitchableObjectStore
    {
        private IObjectStore _inner = null!;

        public volatile bool Available = true;

        public int FailedPuts;

        public IObjectStore Wrap(IObjectStore inner)
        {
            _inner = inner;
            return new Switch(this);
        }

        private sealed class Switch(SwitchableObjectStore owner) : IObjectStore
        {
            private IObjectStore Inner => owner.Available ? owner._inner : throw new ObjectStoreUnavailableException("object store switched off by the test");

            public Task PutAsync(string key, System.Buffers.ReadOnlySequence<byte> data, CancellationToken cancellationToken = default)
            {
                if (!owner.Available)
                {
                    Interlocked.Increment(ref owner.FailedPuts);
                }

                return Inner.PutAsync(key, data, cancellationToken);
            }

            public Task<int> GetRangeAsync(string key, long offset, Memory<byte> destination, CancellationToken cancellationToken = default) => Inner.GetRangeAsync(key, offset, destination, cancellationToken);

            public Task<byte[]> GetAsync(string key, CancellationToken cancellationToken = default) => Inner.GetAsync(key, cancellationToken);

            public Task<ObjectInfo?> HeadAsync(string key, CancellationToken cancellationToken = default) => Inner.HeadAsync(key, cancellationToken);

            public IAsyncEnumerable<ObjectInfo> ListAsync(string prefix, CancellationToken cancellationToken = default) => Inner.ListAsync(prefix, cancellationToken);

            public Task DeleteAsync(IReadOnlyCollection<string> keys, CancellationToken cancellationToken = default) => Inner.DeleteAsync(keys, cancellationToken);
        }
    }

    [Fact]
    public async Task RetentionByTimeRaisesTheLogStartAndDeletesOldObjects()
    {
        long stream = await CreateStreamAsync("aged", new Dictionary<string, string> { ["retention.ms"] = "60000" });
        for (int i = 0; i < 4; i++)
        {
            await _engine.Streams.AppendAsync(stream, Batch(5, i));
        }

        await _engine.Streams.UploadAsync();
        string oldKey = (await _engine.Metadata.GetObjectRangesAsync(stream, 0)).Single().Key;
        var janitor = new SharedLog.Storage.Objects.ObjectJanitor(_engine.Objects, _engine.Metadata, _engine.Streams, TimeSpan.FromMinutes(10), TimeSpan.Zero);

        // The batches carry 1970 timestamps, far older than one minute.
        SharedLog.Storage.Objects.JanitorReport report = await janitor.RunOnceAsync(DateTimeOffset.UtcNow);
        Assert.Equal(1, report.StreamsTrimmed);
        Assert.Equal(20, _engine.Streams.Get(stream).LogStartOffset);
        Assert.Equal(20, (await _engine.Metadata.GetPartitionAsync(stream))!.LogStartOffset);
        Assert.Null(await _engine.Objects.HeadAsync(oldKey));
        await Assert.ThrowsAsync<OffsetOutOfRangeException>(() => _engine.Streams.ReadAsync(stream, 0, 100));
        Assert.Equal(20, await _engine.Streams.AppendAsync(stream, Batch(1, 9)));
    }

    [Fact]
    public async Task ATopicWithoutRetentionMsTakesTheDefaultItsContractGivesAndItsOwnSettingWins()
    {
        // Two topics without retention.ms and one with it; the contract's default (one minute) names all three.
        long governed = await CreateStreamAsync("governed", []);
        long ungoverned = await CreateStreamAsync("ungoverned", []);
        long ownSetting = await CreateStreamAsync("own-setting", new Dictionary<string, string> { ["retention.ms"] = "-1" });
        foreach (long stream in new[] { governed, ungoverned, ownSetting })
        {
            await _engine.Streams.AppendAsync(stream, Batch(5, 1));
        }

        await _engine.Streams.UploadAsync();
        var asked = new List<string>();
        long? Default(string topic)
        {
            asked.Add(topic);
            return topic is "governed" or "own-setting" ? 60_000 : null;
        }

        var janitor = new SharedLog.Storage.Objects.ObjectJanitor(_engine.Objects, _engine.Metadata, _engine.Streams, TimeSpan.FromMinutes(10), TimeSpan.Zero, retentionDefault: Default);

        // The batches carry 1970 timestamps: older than a minute, younger than the broker's default as seen from 1970 + 1 day.
        await janitor.RunOnceAsync(DateTimeOffset.UnixEpoch.AddDays(1));
        Assert.Equal(5, _engine.Streams.Get(governed).LogStartOffset);
        Assert.Equal(0, _engine.Streams.Get(ungoverned).LogStartOffset);
        Assert.Equal(0, _engine.Streams.Get(ownSetting).LogStartOffset);
        Assert.Contains("ungoverned", asked);
    }

    [Fact]
    public async Task ATopicWithoutRetentionBytesTakesTheLimitItsContractGivesAndItsOwnSettingWins()
    {
        long governed = await CreateStreamAsync("sized", []);
        long ownSetting = await CreateStreamAsync("sized-own", new Dictionary<string, string> { ["retention.bytes"] = "-1" });
        long ungoverned = await CreateStreamAsync("unsized", []);
        foreach (long stream in new[] { governed, ownSetting, ungoverned })
        {
            // Four uploaded ranges per partition, so a limit of one range's bytes leaves the newest whole ones.
            for (int i = 0; i < 4; i++)
            {
                await _engine.Streams.AppendAsync(stream, Batch(5, i));
                await _engine.Streams.UploadAsync();
            }
        }

        long oneRange = (await _engine.Metadata.GetObjectRangesAsync(governed, 0))[0].Range.Size;
        long? Limit(string topic) => topic is "sized" or "sized-own" ? oneRange : null;
        var janitor = new SharedLog.Storage.Objects.ObjectJanitor(_engine.Objects, _engine.Metadata, _engine.Streams, TimeSpan.FromMinutes(10), TimeSpan.Zero, retentionBytesDefault: Limit);

        // The default retention.ms (7 days) seen from 1970 keeps every record by time.
        await janitor.RunOnceAsync(DateTimeOffset.UnixEpoch.AddDays(1));
        Assert.True(_engine.Streams.Get(governed).LogStartOffset > 0, "the contract's retention.bytes trims the governed topic");
        Assert.Equal(0, _engine.Streams.Get(ownSetting).LogStartOffset);
        Assert.Equal(0, _engine.Streams.Get(ungoverned).LogStartOffset);
    }

    [Theory]
    [InlineData("compact")]
    [InlineData("compact, delete")]
    public async Task RetentionAppliesOnlyWhenTheCleanupPolicyIncludesDelete(string policy)
    {
        // A compact-only topic with an explicit short retention.ms: Kafka keeps every record of it.
        long stream = await CreateStreamAsync("compacted", new Dictionary<string, string> { ["cleanup.policy"] = policy, ["retention.ms"] = "60000", ["retention.bytes"] = "1000" });
        for (int i = 0; i < 4; i++)
        {
            await _engine.Streams.AppendAsync(stream, Batch(5, i));
        }

        await _engine.Streams.UploadAsync();
        var janitor = new SharedLog.Storage.Objects.ObjectJanitor(_engine.Objects, _engine.Metadata, _engine.Streams, TimeSpan.FromMinutes(10), TimeSpan.Zero);
        await janitor.RunOnceAsync(DateTimeOffset.UtcNow); // the batches carry 1970 timestamps

        long expectedStart = policy.Contains("delete", StringComparison.Ordinal) ? 20 : 0;
        Assert.Equal(expectedStart, _engine.Streams.Get(stream).LogStartOffset);
    }

    [Fact]
    public async Task RetentionByBytesKeepsAtLeastTheBudgetAsKafkaDoes()
    {
        // One upload of about 2.2 KB under a budget of 1,000 bytes: deleting it would leave less than the budget.
        long alone = await CreateStreamAsync("sized-one", new Dictionary<string, string> { ["retention.ms"] = "-1", ["retention.bytes"] = "1000" });
        await _engine.Streams.AppendAsync(alone, Batch(10, 1));
        await _engine.Streams.UploadAsync();
        var janitor = new SharedLog.Storage.Objects.ObjectJanitor(_engine.Objects, _engine.Metadata, _engine.Streams, TimeSpan.FromMinutes(10), TimeSpan.Zero);
        await janitor.RunOnceAsync(DateTimeOffset.UtcNow);
        Assert.Equal(0, _engine.Streams.Get(alone).LogStartOffset);
    }

    [Fact]
    public async Task RetentionByBytesKeepsTheNewestRanges()
    {
        // Two uploads of about 2.2 KB under a budget of 2,000 bytes: the older goes (the newer alone still holds the budget).
        long stream = await CreateStreamAsync("sized", new Dictionary<string, string> { ["retention.ms"] = "-1", ["retention.bytes"] = "2000" });
        await _engine.Streams.AppendAsync(stream, Batch(10, 1));
        await _engine.Streams.UploadAsync();
        await _engine.Streams.AppendAsync(stream, Batch(10, 2));
        await _engine.Streams.UploadAsync();
        IReadOnlyList<StreamObjectRange> before = await _engine.Metadata.GetObjectRangesAsync(stream, 0);
        Assert.Equal(2, before.Count);
        Assert.True(before[0].Range.Size >= 2000 && before[1].Range.Size is >= 2000 and < 4000, "each upload is one batch of about 2.2 KB");

        var janitor = new SharedLog.Storage.Objects.ObjectJanitor(_engine.Objects, _engine.Metadata, _engine.Streams, TimeSpan.FromMinutes(10), TimeSpan.Zero);
        await janitor.RunOnceAsync(DateTimeOffset.UtcNow);
        Assert.Equal(10, _engine.Streams.Get(stream).LogStartOffset);
        StreamObjectRange kept = Assert.Single(await _engine.Metadata.GetObjectRangesAsync(stream, 0));
        Assert.Equal(before[1].Key, kept.Key);
        Assert.Null(await _engine.Objects.HeadAsync(before[0].Key));
        Assert.Equal(10, Decode(await _engine.Streams.ReadAsync(stream, 10, 100_000)).Count);
    }

    [Fact]
    public async Task AnUploadWhosePutOutlastsTheOrphanGraceIsNotTakenForAnOrphan()
    {
        HeldObjectStore held = await ReopenWithHeldPutAsync();
        long stream = await CreateStreamAsync("slow-put");
        await _engine.Streams.AppendAsync(stream, Batch(3, 1));
        var janitor = new SharedLog.Storage.Objects.ObjectJanitor(_engine.Objects, _engine.Metadata, _engine.Streams, TimeSpan.FromMinutes(10), TimeSpan.Zero);

        // The PUT is held; meanwhile the janitor runs as if 11 minutes had passed since the object was prepared.
        Task upload = _engine.Streams.UploadAsync();
        await held.Entered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(0, (await janitor.RunOnceAsync(DateTimeOffset.UtcNow.AddMinutes(11))).OrphansRemoved);

        held.Release.SetResult();
        await upload.WaitAsync(TimeSpan.FromSeconds(10)); // was: the commit failed, its row deleted under it
        Assert.Equal(3, await _engine.Metadata.GetCommittedEndOffsetAsync(stream));
        Assert.Equal(0, _engine.Streams.PendingUploadBytes);
        Assert.All(await _engine.Metadata.ListObjectsAsync(), o => Assert.Equal(ObjectState.Committed, o.State));
    }

    [Fact]
    public async Task OrphanUploadsAreRemovedAfterTheGracePeriod()
    {
        // A crash between PUT and commit leaves a prepared object whose bytes are in the store.
        PreparedObject orphan = await _engine.Metadata.PrepareObjectAsync("data/");
        await _engine.Objects.PutAsync(orphan.Key, new byte[100]);
        var janitor = new SharedLog.Storage.Objects.ObjectJanitor(_engine.Objects, _engine.Metadata, _engine.Streams, TimeSpan.FromMinutes(10), TimeSpan.Zero);

        Assert.Equal(0, (await janitor.RunOnceAsync(DateTimeOffset.UtcNow)).OrphansRemoved);
        Assert.NotNull(await _engine.Objects.HeadAsync(orphan.Key));

        SharedLog.Storage.Objects.JanitorReport later = await janitor.RunOnceAsync(DateTimeOffset.UtcNow.AddMinutes(11));
        Assert.Equal(1, later.OrphansRemoved);
        Assert.Null(await _engine.Objects.HeadAsync(orphan.Key));
        Assert.DoesNotContain(await _engine.Metadata.ListObjectsAsync(), o => o.ObjectId == orphan.ObjectId);
    }
}
