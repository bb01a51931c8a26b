using SharedLog.Storage.FaultHost;
using SharedLog.Storage.Wal;

namespace SharedLog.Storage.Tests.Wal;

public sealed class WalTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sharedlog-wal-" + Guid.NewGuid().ToString("N"));

    private WalOptions Options() => new() { Directory = _directory, PageSizeBits = 20, MemorySizeBits = 22, SegmentSizeBits = 22 };

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public async Task ACommitPointThatCannotBeWrittenFailsTheWaitingAppendAndEveryLaterOne()
    {
        var acknowledged = new List<long>();
        WalOptions options = Options();
        options.CommitPointInterval = TimeSpan.Zero; // every commit writes its commit point, so the next one meets the fault
        await using (var wal = new FasterWriteAheadLog(options))
        {
            for (int i = 0; i < 20; i++)
            {
                acknowledged.Add(await wal.AppendAsync(1, i, 1, WalTestPayload.Create(1, i, 100)));
            }

            // The commit-slot file refuses writes (an EIO). FASTER swallows the exception of its commit worker and
            // never completes that commit, so this append waited forever, and so did every produce after it.
            Assert.Null(wal.Failure);
            wal.CommitManager.InjectedWriteFault = new IOException("Input/output error (injected)");
            var failed = await Assert.ThrowsAsync<WalUnavailableException>(() => wal.AppendAsync(1, 20, 1, WalTestPayload.Create(1, 20, 100)).AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Contains("commit point", failed.Message, StringComparison.Ordinal);
            await Assert.ThrowsAsync<WalUnavailableException>(() => wal.AppendAsync(1, 21, 1, WalTestPayload.Create(1, 21, 100)).AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.NotNull(wal.Failure); // what the broker's /health reports (503)
            wal.CommitManager.InjectedWriteFault = null;
        }

        // What was acknowledged before the failure is there after a restart.
        await using var reopened = new FasterWriteAheadLog(Options());
        Assert.Equal(acknowledged, reopened.ReadDurableEntries().Select(e => e.Position).Take(acknowledged.Count));
    }

    [Fact]
    public async Task AppendsAreRecoveredInOrderAfterReopen()
    {
        var positions = new List<long>();
        await using (var wal = new FasterWriteAheadLog(Options()))
        {
            for (int i = 0; i < 200; i++)
            {
                positions.Add(await wal.AppendAsync(i % 3, i, 1, WalTestPayload.Create(i % 3, i, 100 + i)));
            }

            Assert.True(wal.DurablePosition > positions[^1]);
        }

        await using (var reopened = new FasterWriteAheadLog(Options()))
        {
            List<WalEntry> entries = [.. reopened.ReadDurableEntries()];
            Assert.Equal(200, entries.Count);
            for (int i = 0; i < entries.Count; i++)
            {
                Assert.Equal(positions[i], entries[i].Position);
                Assert.Equal(i % 3, entries[i].StreamId);
                Assert.Equal(i, entries[i].BaseOffset);
                Assert.Equal(100 + i, entries[i].Batch.Length);
                Assert.True(WalTestPayload.Matches(entries[i].Batch.Span, i % 3, i));
            }
        }
    }

    /// <summary>The open-file flags (from /proc/self/fdinfo) of this process's descriptors on files under <paramref name="directory"/>.</summary>
    private static List<int> OpenFileFlags(string directory)
    {
        var flags = new List<int>();
        foreach (string fd in Directory.GetFiles("/proc/self/fd"))
        {
            try
            {
                if (new FileInfo(fd).LinkTarget?.StartsWith(directory, StringComparison.Ordinal) == true)
                {
                    string line = File.ReadLines($"/proc/self/fdinfo/{Path.GetFileName(fd)}").First(l => l.StartsWith("flags:", StringComparison.Ordinal));
                    flags.Add(Convert.ToInt32(line["flags:".Length..].Trim(), 8));
                }
            }
            catch (IOException)
            {
                // Another test closed that descriptor meanwhile.
            }
        }

        return flags;
    }

    [Fact]
    public async Task DirectIoAndBufferedLogsReadEachOthersSegments()
    {
        // Whether this file system takes O_DIRECT decides which device the log must pick.
        bool directAvailable = DirectLogDevice.TryCreate(Path.Combine(Path.GetTempPath(), "sharedlog-probe-" + Guid.NewGuid().ToString("N")), out string? refusal) is not null;
        var written = new List<(long Stream, long Offset, int Size)>();
        async Task AppendAsync(FasterWriteAheadLog wal, int count)
        {
            for (int i = 0; i < count; i++)
            {
                (long stream, long offset, int size) = (written.Count % 2, written.Count, 50 + (written.Count * 37 % 5000));
                await wal.AppendAsync(stream, offset, 1, WalTestPayload.Create(stream, offset, size));
                written.Add((stream, offset, size));
            }
        }

        void AssertAll(FasterWriteAheadLog wal)
        {
            List<WalEntry> entries = [.. wal.ReadDurableEntries()];
            Assert.Equal(written.Count, entries.Count);
            for (int i = 0; i < entries.Count; i++)
            {
                Assert.Equal(written[i].Offset, entries[i].BaseOffset);
                Assert.Equal(written[i].Size, entries[i].Batch.Length);
                Assert.True(WalTestPayload.Matches(entries[i].Batch.Span, written[i].Stream, written[i].Offset));
            }
        }

        await using (var direct = new FasterWriteAheadLog(Options()))
        {
            Assert.True(direct.UsesDirectIo == directAvailable, $"direct I/O available: {directAvailable} ({refusal}), used: {direct.UsesDirectIo}");
            await AppendAsync(direct, 300);
            if (direct.UsesDirectIo)
            {
                // The segment the appends went to is really open with O_DIRECT.
                Assert.Contains(OpenFileFlags(_directory), flags => (flags & DirectIo.OpenFlag) != 0);
            }
        }

        await using (var buffered = new FasterWriteAheadLog(new WalOptions { Directory = _directory, PageSizeBits = 20, MemorySizeBits = 22, SegmentSizeBits = 22, DirectIo = false }))
        {
            Assert.False(buffered.UsesDirectIo);
            AssertAll(buffered);
            await AppendAsync(buffered, 300);
        }

        await using (var again = new FasterWriteAheadLog(Options()))
        {
            AssertAll(again);
            await AppendAsync(again, 10);
            AssertAll(again);
        }
    }

    [Fact]
    public async Task ConcurrentAppendsAllBecomeDurable()
    {
        const int writers = 8;
        const int perWriter = 100;
        await using (var wal = new FasterWriteAheadLog(Options()))
        {
            await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
            {
                for (int i = 0; i < perWriter; i++)
                {
                    await wal.AppendAsync(w, i, 1, WalTestPayload.Create(w, i, 64 + i));
                }
            })));
        }

        await using var reopened = new FasterWriteAheadLog(Options());
        var byStream = reopened.ReadDurableEntries().GroupBy(e => e.StreamId).ToDictionary(g => g.Key, g => g.Select(e => e.BaseOffset).ToList());
        Assert.Equal(writers, byStream.Count);
        foreach ((long stream, List<long> offsets) in byStream)
        {
            Assert.Equal(Enumerable.Range(0, perWriter).Select(i => (long)i), offsets);
        }
    }

    [Fact]
    public async Task TrimDropsEntriesBeforeThePositionAcrossRestarts()
    {
        long trimAt;
        await using (var wal = new FasterWriteAheadLog(Options()))
        {
            for (int i = 0; i < 50; i++)
            {
                await wal.AppendAsync(1, i, 1, WalTestPayload.Create(1, i, 2000));
            }

            trimAt = wal.ReadDurableEntries().Skip(30).First().Position;
            await wal.TrimAsync(trimAt);
            Assert.Equal(trimAt, wal.TrimPosition);
            Assert.Equal(30, wal.ReadDurableEntries().First().BaseOffset);
        }

        await using var reopened = new FasterWriteAheadLog(Options());
        List<WalEntry> entries = [.. reopened.ReadDurableEntries()];
        Assert.Equal(20, entries.Count);
        Assert.Equal(30, entries[0].BaseOffset);
    }

    [Fact]
    public async Task ATrimPastASegmentDeletesItsFileInTheBackgroundAndALeftoverIsDeletedAtTheNextStart()
    {
        // 64 KiB segments: 2,000-byte entries fill one in about 30.
        WalOptions options = Options();
        options.PageSizeBits = 14;
        options.MemorySizeBits = 16;
        options.SegmentSizeBits = 16;
        string segment0 = Path.Combine(_directory, "fasterlog.log.0");
        bool direct;
        await using (var wal = new FasterWriteAheadLog(options))
        {
            direct = wal.UsesDirectIo;
            for (int i = 0; i < 100; i++)
            {
                await wal.AppendAsync(1, i, 1, WalTestPayload.Create(1, i, 2000));
            }

            Assert.True(File.Exists(segment0));
            WalEntry keep = wal.ReadDurableEntries().First(e => e.Position >= 1L << options.SegmentSizeBits);
            await wal.TrimAsync(keep.Position);
            Wait.Until(() => !File.Exists(segment0) && !File.Exists(segment0 + GradualFileDeleter.Suffix), "segment 0 is deleted after the trim");

            Assert.Equal(keep.BaseOffset, wal.ReadDurableEntries().First().BaseOffset);
        }

        // A segment a stop left half deleted: gone after the next start, which recovers the log as it was. Only the
        // direct-I/O device deletes gradually; FASTER's buffered one (where O_DIRECT is refused) unlinks at once.
        string leftover = Path.Combine(_directory, "fasterlog.log.0" + GradualFileDeleter.Suffix);
        await File.WriteAllBytesAsync(leftover, new byte[8192]);
        await using var reopened = new FasterWriteAheadLog(options);
        Wait.Until(() => !direct || !File.Exists(leftover), "the leftover is deleted after the start");

        Assert.Equal(100 - (int)reopened.ReadDurableEntries().First().BaseOffset, reopened.ReadDurableEntries().Count());
    }

    [Fact]
    public async Task OversizedBatchIsRejectedAndTheLogKeepsWorking()
    {
        await using var wal = new FasterWriteAheadLog(Options());
        var e = await Assert.ThrowsAsync<ArgumentException>(async () => await wal.AppendAsync(1, 0, 1, new byte[Options().MaxEntryBytes + 1]));
        Assert.Contains("maximum entry", e.Message, StringComparison.Ordinal);
        await wal.AppendAsync(1, 0, 1, WalTestPayload.Create(1, 0, 10));
        Assert.Single(wal.ReadDurableEntries());
    }

    [Fact]
    public void InvalidOptionsAreRejected()
    {
        Assert.Throws<ArgumentException>(() => new WalOptions().Validate());
        Assert.Throws<ArgumentException>(() => new WalOptions { Directory = "x", PageSizeBits = 24, MemorySizeBits = 24 }.Validate());
        Assert.Contains("commit point interval", Assert.Throws<ArgumentException>(() => new WalOptions { Directory = "x", CommitPointInterval = TimeSpan.FromMilliseconds(-1) }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("commit point interval", Assert.Throws<ArgumentException>(() => new WalOptions { Directory = "x", CommitPointInterval = TimeSpan.FromMinutes(2) }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("commit point bytes", Assert.Throws<ArgumentException>(() => new WalOptions { Directory = "x", CommitPointBytes = 0 }.Validate()).Message, StringComparison.Ordinal);
        new WalOptions { Directory = "x", CommitPointInterval = TimeSpan.Zero }.Validate();

        // From a review: lowering only the pending-upload bound below the default upload size stopped the broker with names
        // ("upload.bytes", "the pending-upload bound") found nowhere in its configuration.
        string pending = Assert.Throws<ArgumentException>(() => new SharedLog.Storage.StorageOptions { MaxPendingUploadBytes = 3_000_000 }.Validate()).Message;
        Assert.Contains("Storage:UploadBytes (16777216) must be positive and no larger than Storage:MaxPendingUploadBytes (3000000)", pending, StringComparison.Ordinal);
        new SharedLog.Storage.StorageOptions { MaxPendingUploadBytes = 3_000_000, UploadBytes = 1_000_000 }.Validate();
    }
}
