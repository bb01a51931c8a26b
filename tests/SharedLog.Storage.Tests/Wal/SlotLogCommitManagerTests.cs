using FASTER.core;
using SharedLog.Storage.FaultHost;
using SharedLog.Storage.Wal;

namespace SharedLog.Storage.Tests.Wal;

public sealed class SlotLogCommitManagerTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sharedlog-slots-" + Guid.NewGuid().ToString("N"));

    public SlotLogCommitManagerTests() => Directory.CreateDirectory(_directory);

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static byte[] Metadata(int commit) => [.. Enumerable.Range(0, 40 + commit).Select(i => (byte)(i * commit))];

    /// <summary>Flips a byte of the slot whose header names <paramref name="commitNum"/>, as a write torn by a crash would leave it.</summary>
    private void TearSlotOf(long commitNum)
    {
        string path = Path.Combine(_directory, SlotLogCommitManager.FileName);
        using FileStream file = File.Open(path, FileMode.Open, FileAccess.ReadWrite);
        byte[] header = new byte[16];
        for (int slot = 0; slot < 2; slot++)
        {
            file.Position = (long)slot * SlotLogCommitManager.SlotBytes;
            file.ReadExactly(header);
            if (BitConverter.ToInt64(header, 8) == commitNum)
            {
                file.Position = ((long)slot * SlotLogCommitManager.SlotBytes) + 30;
                int original = file.ReadByte();
                file.Position--;
                file.WriteByte((byte)(original ^ 0xFF));
                return;
            }
        }

        throw new InvalidOperationException($"No slot holds commit {commitNum}.");
    }

    [Fact]
    public void CommitNumbersThatSkipNeverOverwriteTheNewestCommit()
    {
        // FASTER writes only the last of the commits one flush covers, so numbers skip (16, then 18). The newest must
        // survive the next write whatever its number, or a write torn there would leave only an older commit.
        using (SlotLogCommitManager manager = SlotLogCommitManager.Open(_directory, directIo: true))
        {
            long previous = 14;
            manager.Commit(0, 0, Metadata(14), 14, forceWriteMetadata: false);
            foreach (int commit in new[] { 15, 16, 18, 20, 21 })
            {
                manager.Commit(0, 0, Metadata(commit), commit, forceWriteMetadata: false);
                Assert.Equal([commit, previous], manager.ListCommits());
                previous = commit;
            }

            Assert.Equal([21L, 20L], manager.ListCommits());
        }

        TearSlotOf(21);
        using (SlotLogCommitManager reopened = SlotLogCommitManager.Open(_directory, directIo: true))
        {
            Assert.Equal([20L], reopened.ListCommits());
            Assert.Equal(Metadata(20), reopened.GetCommitMetadata(20));

            // The next commit takes the torn slot, not the one holding 20; and after that, 20's slot.
            reopened.Commit(0, 0, Metadata(22), 22, forceWriteMetadata: false);
            Assert.Equal([22L, 20L], reopened.ListCommits());
            reopened.Commit(0, 0, Metadata(24), 24, forceWriteMetadata: false);
            Assert.Equal([24L, 22L], reopened.ListCommits());
        }
    }

    [Fact]
    public void CommitsAlternateBetweenTwoSlotsAndATornSlotLeavesThePreviousCommit()
    {
        using (SlotLogCommitManager manager = SlotLogCommitManager.Open(_directory, directIo: true))
        {
            Assert.Empty(manager.ListCommits());
            for (int commit = 1; commit <= 3; commit++)
            {
                manager.Commit(0, 0, Metadata(commit), commit, forceWriteMetadata: false);
            }

            Assert.Equal([3L, 2L], manager.ListCommits());
            Assert.Equal(Metadata(3), manager.GetCommitMetadata(3));
            Assert.Equal(Metadata(2), manager.GetCommitMetadata(2));
            Assert.Null(manager.GetCommitMetadata(1)); // overwritten by 3
        }

        Assert.Equal(2 * SlotLogCommitManager.SlotBytes, new FileInfo(Path.Combine(_directory, SlotLogCommitManager.FileName)).Length);
        TearSlotOf(3);
        using (SlotLogCommitManager reopened = SlotLogCommitManager.Open(_directory, directIo: true))
        {
            Assert.Equal([2L], reopened.ListCommits());
            Assert.Null(reopened.GetCommitMetadata(3));

            // A commit without a number continues after the newest valid one and takes the torn slot.
            reopened.Commit(0, 0, Metadata(9), -1, forceWriteMetadata: false);
            Assert.Equal([3L, 2L], reopened.ListCommits());
            Assert.Equal(Metadata(9), reopened.GetCommitMetadata(3));
        }
    }

    [Fact]
    public void MetadataLargerThanASlotIsAnIoErrorAndLeavesTheSlotsAlone()
    {
        using SlotLogCommitManager manager = SlotLogCommitManager.Open(_directory, directIo: false);
        manager.Commit(0, 0, Metadata(1), 1, forceWriteMetadata: false);
        Assert.Throws<IOException>(() => manager.Commit(0, 0, new byte[SlotLogCommitManager.SlotBytes], 2, forceWriteMetadata: false));
        Assert.Equal([1L], manager.ListCommits());
    }

    [Fact]
    public async Task WalReopenedAfterItsNewestCommitSlotIsTornRecoversToThePreviousCommitAndKeepsAppending()
    {
        // A commit point with every commit: these tests tear the newest one, as a crash during its write would.
        var options = new WalOptions { Directory = _directory, PageSizeBits = 20, MemorySizeBits = 22, SegmentSizeBits = 22, CommitPointInterval = TimeSpan.Zero };
        long lastCommitNum;
        await using (var wal = new FasterWriteAheadLog(options))
        {
            for (int i = 0; i < 20; i++)
            {
                await wal.AppendAsync(1, i, 1, WalTestPayload.Create(1, i, 200));
            }
        }

        using (SlotLogCommitManager slots = SlotLogCommitManager.Open(_directory, directIo: false))
        {
            lastCommitNum = slots.ListCommits().First();
        }

        TearSlotOf(lastCommitNum);
        await using (var reopened = new FasterWriteAheadLog(options))
        {
            List<WalEntry> entries = [.. reopened.ReadDurableEntries()];
            Assert.InRange(entries.Count, 1, 20);
            for (int i = 0; i < entries.Count; i++)
            {
                Assert.Equal(i, entries[i].BaseOffset);
                Assert.True(WalTestPayload.Matches(entries[i].Batch.Span, 1, i));
            }

            await reopened.AppendAsync(1, 100, 1, WalTestPayload.Create(1, 100, 200));
        }

        // The acknowledged append is there after the next start. (Read from the running WAL, it may not be yet:
        // an append is acknowledged once its pages are durable, and FASTER's commit address can follow a moment later.)
        await using (var again = new FasterWriteAheadLog(options))
        {
            Assert.Equal(100, again.ReadDurableEntries().Last().BaseOffset);
        }
    }

    private async Task<WalOptions> WriteFiveEntriesAsync()
    {
        // A commit point with every commit: these tests tear the newest one, as a crash during its write would.
        var options = new WalOptions { Directory = _directory, PageSizeBits = 20, MemorySizeBits = 22, SegmentSizeBits = 22, CommitPointInterval = TimeSpan.Zero };
        await using var wal = new FasterWriteAheadLog(options);
        for (int i = 0; i < 5; i++)
        {
            await wal.AppendAsync(1, i, 1, WalTestPayload.Create(1, i, 200));
        }

        return options;
    }

    /// <summary>
    /// A WAL that cannot tell what it acknowledged refuses to open rather than start empty (its next appends would
    /// overwrite acknowledged entries, and their offsets be handed out again): its commit-slot file lost, both slots
    /// unreadable, or FASTER's recovery failing (it swallows its own errors; here the segment file is gone).
    /// </summary>
    [Theory]
    [InlineData("slots lost")]
    [InlineData("both slots torn")]
    [InlineData("segment lost")]
    public async Task AWalThatCannotRecoverWhatItAcknowledgedRefusesToOpen(string damage)
    {
        WalOptions options = await WriteFiveEntriesAsync();
        switch (damage)
        {
            case "slots lost":
                File.Delete(Path.Combine(_directory, SlotLogCommitManager.FileName));
                break;
            case "both slots torn":
                List<long> commits;
                using (SlotLogCommitManager slots = SlotLogCommitManager.Open(_directory, directIo: false))
                {
                    commits = [.. slots.ListCommits()];
                }

                Assert.Equal(2, commits.Count);
                commits.ForEach(TearSlotOf);
                break;
            default:
                foreach (string segment in Directory.GetFiles(_directory, "*.log.*"))
                {
                    File.Delete(segment);
                }

                break;
        }

        var refused = await Assert.ThrowsAsync<InvalidDataException>(async () =>
        {
            // The lost segment reads as zeros, so FASTER recovers its addresses; reading the entries finds the loss.
            await using var wal = new FasterWriteAheadLog(options);
            _ = wal.ReadDurableEntries().Count();
        });
        Assert.Contains("refused", refused.Message, StringComparison.Ordinal);
    }

    /// <summary>Log data with no commit ever written (the first commit's slot write torn by a crash) was never acknowledged: the WAL starts empty.</summary>
    [Fact]
    public async Task AWalWhoseFirstCommitWasTornStartsEmpty()
    {
        WalOptions options = await WriteFiveEntriesAsync();
        string path = Path.Combine(_directory, SlotLogCommitManager.FileName);
        using (FileStream file = File.Open(path, FileMode.Open, FileAccess.Write))
        {
            file.Write(new byte[SlotLogCommitManager.SlotBytes * 2]);
            file.Position = SlotLogCommitManager.SlotBytes;
            file.Write([1, 2, 3, 4, 5, 6, 7, 8]);
        }

        await using var wal = new FasterWriteAheadLog(options);
        Assert.Empty(wal.ReadDurableEntries());
        await wal.AppendAsync(1, 0, 1, WalTestPayload.Create(1, 0, 200));
        Assert.Single(wal.ReadDurableEntries());
    }

    [Fact]
    public async Task WalWrittenWithFastersCommitFilesIsTakenOverWithAllItsEntries()
    {
        // The layout before the slot file: FASTER's default commit manager, one log-commits/commit.N.0 file per commit.
        using (var settings = new FasterLogSettings(_directory, deleteDirOnDispose: false) { PageSizeBits = 20, MemorySizeBits = 22, SegmentSizeBits = 22, LogChecksum = LogChecksumType.PerEntry, RemoveOutdatedCommits = true })
        using (var legacy = new FasterLog(settings))
        {
            for (int i = 0; i < 30; i++)
            {
                legacy.Enqueue(VersionOneEntry(2, i, 1, WalTestPayload.Create(2, i, 300)));
                await legacy.CommitAsync();
            }
        }

        Assert.NotEmpty(Directory.GetFiles(Path.Combine(_directory, "log-commits")));
        await using var wal = new FasterWriteAheadLog(new WalOptions { Directory = _directory, PageSizeBits = 20, MemorySizeBits = 22, SegmentSizeBits = 22 });
        List<WalEntry> entries = [.. wal.ReadDurableEntries()];
        Assert.Equal(30, entries.Count);
        Assert.Equal(Enumerable.Range(0, 30).Select(i => (long)i), entries.Select(e => e.BaseOffset));
        Assert.False(Directory.Exists(Path.Combine(_directory, "log-commits")));
        Assert.True(File.Exists(Path.Combine(_directory, SlotLogCommitManager.FileName)));
    }

    /// <summary>An entry as WALs wrote them before the log epoch: version 1, stream id, base offset, record count, batch.</summary>
    private static byte[] VersionOneEntry(long streamId, long baseOffset, int recordCount, byte[] batch)
    {
        byte[] entry = new byte[21 + batch.Length];
        entry[0] = 1;
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(entry.AsSpan(1), streamId);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(entry.AsSpan(9), baseOffset);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(entry.AsSpan(17), recordCount);
        batch.CopyTo(entry, 21);
        return entry;
    }
}
