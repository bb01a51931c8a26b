using FASTER.core;
using SharedLog.Storage.FaultHost;
using SharedLog.Storage.Wal;

namespace SharedLog.Storage.Tests.Wal;

/// <summary>
/// Appends acknowledged after the newest commit point (commits that skip the commit-point write) are found by the
/// tail scan at the next start. A crash is simulated by copying the WAL directory while the log is open: the copy
/// holds exactly what reached the disk. Damage to the copy stands in for writes a power loss cut short.
/// </summary>
public sealed class WalTailRecoveryTests : IDisposable
{
    private const int PageSizeBits = 20;

    private const int PayloadBytes = 40_000;

    // Beside the test binaries rather than in the temp directory, which may be a tmpfs (no direct I/O, so no skipped commit points).
    private readonly string _directory = Path.Combine(AppContext.BaseDirectory, "sharedlog-waltail-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private static WalOptions Options(string directory) => new()
    {
        Directory = directory,
        PageSizeBits = PageSizeBits,
        MemorySizeBits = 22,
        SegmentSizeBits = 22,
        CommitPointInterval = TimeSpan.FromMinutes(1),
    };

    private string Copy(string name, string from = "live")
    {
        string source = Path.Combine(_directory, from);
        string target = Path.Combine(_directory, name);
        Directory.CreateDirectory(target);
        foreach (string file in Directory.GetFiles(source))
        {
            File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        }

        return target;
    }

    /// <summary>Appends <paramref name="count"/> same-size entries to stream 1 and returns their positions, then leaves the log open.</summary>
    private static async Task<List<long>> AppendAsync(FasterWriteAheadLog wal, int from, int count)
    {
        var positions = new List<long>();
        for (int i = from; i < from + count; i++)
        {
            positions.Add(await wal.AppendAsync(1, i, 1, WalTestPayload.Create(1, i, PayloadBytes)));
        }

        return positions;
    }

    private static List<WalEntry> Recovered(FasterWriteAheadLog wal)
    {
        List<WalEntry> entries = [.. wal.ReadDurableEntries()];
        for (int i = 0; i < entries.Count; i++)
        {
            Assert.Equal(i, entries[i].BaseOffset);
            Assert.True(WalTestPayload.Matches(entries[i].Batch.Span, 1, i), $"entry {i} is corrupt");
        }

        return entries;
    }

    private static async Task<List<long>> WriteAndCrashAsync(FasterWriteAheadLog wal, int count)
    {
        List<long> positions = await AppendAsync(wal, 0, count);
        Assert.True(wal.CommitManager.SkippedCommitPoints > 0, "no commit skipped its commit point");
        Assert.Null(wal.Failure);
        return positions;
    }

    [Fact]
    public async Task AcknowledgedAppendsPastTheNewestCommitPointSurviveACrashAndTheLogGoesOn()
    {
        string crashed;
        await using (var wal = new FasterWriteAheadLog(Options(Path.Combine(_directory, "live"))))
        {
            await WriteAndCrashAsync(wal, 100);
            crashed = Copy("crashed");
        }

        await using (var recovered = new FasterWriteAheadLog(Options(crashed)))
        {
            Assert.Equal(100, Recovered(recovered).Count);
            await AppendAsync(recovered, 100, 30);
            Assert.Equal(130, Recovered(recovered).Count);
        }

        // After a clean close (which writes a commit point) the next start recovers the same.
        await using var reopened = new FasterWriteAheadLog(Options(crashed));
        Assert.Equal(130, Recovered(reopened).Count);
    }

    [Theory]
    [InlineData("zeroed header mid-page")]
    [InlineData("one payload byte changed")]
    public async Task RecoveryStopsAtTheFirstDamagedEntryAndTakesNothingAfterIt(string damage)
    {
        List<long> positions;
        string crashed;
        await using (var wal = new FasterWriteAheadLog(Options(Path.Combine(_directory, "live"))))
        {
            positions = await WriteAndCrashAsync(wal, 100);
            crashed = Copy("crashed");
        }

        // An entry well past the first commit point (which covers entry 0), in the middle of a page with more after it. (A
        // page's end zeroed with the next page written is not a state the device's write ordering can leave.)
        long pageSize = 1L << PageSizeBits;
        int lost = positions.FindIndex(p => p > 2 * pageSize && (p & (pageSize - 1)) > pageSize / 3);
        Assert.InRange(lost, 2, 97);
        long position = positions[lost];
        using (FileStream segment = File.Open(Path.Combine(crashed, "fasterlog.log.0"), FileMode.Open, FileAccess.ReadWrite))
        {
            switch (damage)
            {
                case "zeroed header mid-page":
                    segment.Position = position;
                    segment.Write(new byte[12]);
                    break;
                default:
                    segment.Position = position + 12 + 1000;
                    int original = segment.ReadByte();
                    segment.Position = position + 12 + 1000;
                    segment.WriteByte((byte)(original ^ 0x40));
                    break;
            }
        }

        await using var recovered = new FasterWriteAheadLog(Options(crashed));
        Assert.Equal(lost, Recovered(recovered).Count);
    }

    [Fact]
    public async Task AnEntryCutShortWhereFastersChecksumCannotTellIsNotRecovered()
    {
        // Constant payloads (a run of one byte, as a batch of zeros or "AAAA..." would be): a lost stretch of an even
        // number of 8-byte words XORs to zero, so FasterLog's checksum still matches. The entry's own CRC does not.
        byte[] payload = new byte[PayloadBytes];
        payload.AsSpan().Fill((byte)'A');
        var positions = new List<long>();
        string crashed;
        await using (var wal = new FasterWriteAheadLog(Options(Path.Combine(_directory, "live"))))
        {
            for (int i = 0; i < 60; i++)
            {
                positions.Add(await wal.AppendAsync(1, i, 1, payload));
            }

            Assert.True(wal.CommitManager.SkippedCommitPoints > 0, "no commit skipped its commit point");
            crashed = Copy("crashed");
        }

        // 4 KiB of entry 40's payload never reached the disk; the words FasterLog XORs start 8 bytes into the entry.
        long wordsFrom = positions[40] + 8;
        long lostFrom = wordsFrom + (((12 + WalEntryFormat.HeaderSize - 8) / 8) + 1) * 8;
        using (FileStream segment = File.Open(Path.Combine(crashed, "fasterlog.log.0"), FileMode.Open, FileAccess.ReadWrite))
        {
            segment.Position = lostFrom;
            segment.Write(new byte[4096]);
        }

        await using var recovered = new FasterWriteAheadLog(Options(crashed));
        List<WalEntry> entries = [.. recovered.ReadDurableEntries()];
        Assert.Equal(40, entries.Count);
        Assert.All(entries, e => Assert.True(e.Batch.Span.IndexOfAnyExcept((byte)'A') < 0));
    }

    [Fact]
    public async Task ACleanCloseWritesACommitPointCoveringEveryAppend()
    {
        string directory = Path.Combine(_directory, "live");
        long durable;
        await using (var wal = new FasterWriteAheadLog(Options(directory)))
        {
            await AppendAsync(wal, 0, 20);
            Assert.True(wal.CommitManager.SkippedCommitPoints > 0, "no commit skipped its commit point");
            durable = wal.DurablePosition;
        }

        using SlotLogCommitManager slots = SlotLogCommitManager.Open(directory, directIo: false);
        var info = new FasterLogRecoveryInfo();
        using (var reader = new BinaryReader(new MemoryStream(slots.NewestCommitMetadata()!)))
        {
            info.Initialize(reader);
        }

        Assert.Equal(durable, info.UntilAddress);
    }

    [Fact]
    public async Task EntriesAnEarlierInstanceLeftPastTheCommitPointAreNotTakenForTheNewOnes()
    {
        List<long> positions;
        string crashed;
        await using (var wal = new FasterWriteAheadLog(Options(Path.Combine(_directory, "live"))))
        {
            positions = await WriteAndCrashAsync(wal, 60);
            crashed = Copy("crashed");
        }

        // The first crash lost entry 40 (zeros), so entries 41-59 of that instance stay behind in the file, unrecovered.
        using (FileStream segment = File.Open(Path.Combine(crashed, "fasterlog.log.0"), FileMode.Open, FileAccess.ReadWrite))
        {
            segment.Position = positions[40];
            segment.Write(new byte[12]);
        }

        string second;
        await using (var wal = new FasterWriteAheadLog(Options(crashed)))
        {
            Assert.Equal(40, Recovered(wal).Count);

            // The new instance writes entry 40 again, same size and place; its commit skips the commit point.
            long skipped = wal.CommitManager.SkippedCommitPoints;
            Assert.Equal(positions[40], (await AppendAsync(wal, 40, 1))[0]);
            Assert.True(wal.CommitManager.SkippedCommitPoints > skipped);
            second = Copy("second", from: "crashed");
        }

        // Entry 41 of the first instance follows the new entry 40 exactly, checksum and all; only its epoch tells it apart.
        await using var recovered = new FasterWriteAheadLog(Options(second));
        Assert.Equal(41, Recovered(recovered).Count);
    }

    [Fact]
    public async Task TheDeviceHoldsAWriteBackUntilEverythingBelowItIsOnTheDisk()
    {
        string path = Path.Combine(_directory, "device", "log");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using DirectLogDevice? device = DirectLogDevice.TryCreate(path, out string? refusal, segmentBytes: 1 << 20);
        Assert.True(device is not null, $"direct I/O is needed for this test: {refusal}");
        device.Initialize(1 << 20);
        device.OrderWritesFrom(0);
        using var buffer = new AlignedBuffer(8192);
        buffer.Span.Fill(7);
        var upperDone = new TaskCompletionSource<uint>(TaskCreationOptions.RunContinuationsAsynchronously);
        var lowerDone = new TaskCompletionSource<uint>(TaskCreationOptions.RunContinuationsAsynchronously);
        bool lowerWrittenWhenUpperFinished = false;

        // Callbacks may come in either order (the held write goes out before the lower one's callback runs); what the
        // device promises is that the lower bytes are on the disk by the time the upper write is done.
        device.WriteAsync(buffer.Address + 4096, 0, 4096, 4096, (error, _, _) =>
        {
            try
            {
                lowerWrittenWhenUpperFinished = ReadSegment(path, 0, 4096).AsSpan().IndexOfAnyExcept((byte)7) < 0;
                upperDone.SetResult(error);
            }
            catch (Exception e)
            {
                upperDone.SetException(e);
            }
        }, null!);

        // Nothing below 4096 is written yet: the upper write must not go out (bounded wait for something that must not happen).
        Task first = await Task.WhenAny(upperDone.Task, Task.Delay(TimeSpan.FromMilliseconds(300)));
        Assert.NotSame(upperDone.Task, first);
        Assert.Equal(1, device.HeldWrites);

        device.WriteAsync(buffer.Address, 0, 0, 4096, (error, _, _) => lowerDone.SetResult(error), null!);
        Assert.Equal(0u, await lowerDone.Task.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(0u, await upperDone.Task.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.True(lowerWrittenWhenUpperFinished, "the upper write finished before the lower bytes were on the disk");
        byte[] written = File.ReadAllBytes(path + ".0");
        Assert.True(written.AsSpan(0, 8192).IndexOfAnyExcept((byte)7) < 0);
    }

    private static byte[] ReadSegment(string path, long offset, int length)
    {
        using FileStream file = new(path + ".0", FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var bytes = new byte[length];
        file.Position = offset;
        file.ReadExactly(bytes);
        return bytes;
    }
}
