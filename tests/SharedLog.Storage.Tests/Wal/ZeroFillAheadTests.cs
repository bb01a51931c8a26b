using Microsoft.Win32.SafeHandles;
using SharedLog.Storage.FaultHost;
using SharedLog.Storage.Wal;

namespace SharedLog.Storage.Tests.Wal;

public sealed class ZeroFillAheadTests : IDisposable
{
    private const int Sector = DirectIo.SectorSize;
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sharedlog-zerofill-" + Guid.NewGuid().ToString("N"));

    public ZeroFillAheadTests() => Directory.CreateDirectory(_directory);

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static byte[] Pattern(long offset, int length)
    {
        byte[] data = new byte[length];
        for (int i = 0; i < length; i++)
        {
            data[i] = (byte)(1 + ((offset + i) % 251));
        }

        return data;
    }

    [Fact]
    public void ZerosAreWrittenAheadOfTheLogsWritesAndStopAtTheRequestedLead()
    {
        using SafeFileHandle file = File.OpenHandle(Path.Combine(_directory, "seg.0"), FileMode.CreateNew, FileAccess.ReadWrite);
        var failures = new List<Exception>();
        using var zeroFill = new ZeroFillAhead(aheadBytes: 256 * 1024, chunkBytes: 64 * 1024, segmentBytes: 4 << 20, _ => file, failures.Add);

        zeroFill.BeforeWrite(0, 0, 3 * Sector);
        RandomAccess.Write(file, Pattern(0, 3 * Sector), 0);

        Wait.Until(() => zeroFill.Prepared.End >= (3 * Sector) + (256 * 1024), "zeros reach 256 KiB past the log's write");
        Assert.Equal(0, zeroFill.Prepared.Segment);
        long length = RandomAccess.GetLength(file);
        Assert.True(length >= (3 * Sector) + (256 * 1024), $"file is {length} bytes");
        Assert.True(length <= (3 * Sector) + (256 * 1024) + (64 * 1024), $"zeros went {length} bytes, more than one chunk past the lead");

        byte[] all = new byte[length];
        RandomAccess.Read(file, all, 0);
        Assert.Equal(Pattern(0, 3 * Sector), all[..(3 * Sector)]);
        Assert.All(all[(3 * Sector)..], b => Assert.Equal(0, b));
        Assert.Empty(failures);
    }

    [Fact]
    public void ZerosNeverOverwriteDataTheLogWritesWhileTheyAreWritten()
    {
        // A lead of one chunk restarts the zeroer only when the log has caught up with it, right at the
        // log's tail, so the log's next write usually lands in the megabyte being zeroed and has to wait for it, as the device's writes do.
        // Opened as the WAL's device opens segments (write-through, direct where the file system allows),
        // so a zero write takes as long as it does there and really overlaps the log's writes.
        string path = Path.Combine(_directory, "seg.0");
        using SafeFileHandle file = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.ReadWrite, FileOptions.WriteThrough);
        if (DirectIo.Probe(path + ".probe", out _))
        {
            DirectIo.Enable(file, path);
        }

        using var data = new AlignedBuffer(4 * Sector);
        var failures = new List<Exception>();
        const long segmentBytes = 32 << 20;
        using var zeroFill = new ZeroFillAhead(aheadBytes: 1 << 20, chunkBytes: 1 << 20, segmentBytes, _ => file, failures.Add);

        var sizes = new Random(17);
        long offset = 0;
        while (offset < segmentBytes - (1 << 20))
        {
            int length = sizes.Next(1, 5) * Sector;
            zeroFill.BeforeWrite(0, offset, length);
            Pattern(offset, length).CopyTo(data.Span);
            RandomAccess.Write(file, data.Span[..length], offset);
            offset += length;
        }

        Wait.Until(() => zeroFill.Prepared.End >= offset, "the zeroer has caught up");

        byte[] all = File.ReadAllBytes(path)[..(int)offset];
        for (long at = 0; at < offset; at += Sector)
        {
            // Sector by sector, so a failure names where zeros landed instead of printing 32 MiB.
            Assert.True(all.AsSpan((int)at, Sector).SequenceEqual(Pattern(at, Sector)), $"data at offset {at} was overwritten");
        }

        Assert.Empty(failures);
    }

    [Fact]
    public void AChunkLargerThanTheLeadIsRefused()
    {
        using SafeFileHandle file = File.OpenHandle(Path.Combine(_directory, "seg.0"), FileMode.CreateNew, FileAccess.ReadWrite);
        Assert.Throws<ArgumentException>(() => new ZeroFillAhead(aheadBytes: Sector, chunkBytes: 2 * Sector, segmentBytes: 1 << 20, _ => file, _ => { }));
        Assert.Throws<ArgumentException>(() => new ZeroFillAhead(aheadBytes: 1 << 20, chunkBytes: Sector + 1, segmentBytes: 1 << 20, _ => file, _ => { }));
    }

    [Fact]
    public void AFailedZeroWriteIsReportedOnceAndTheLogsWritesGoOn()
    {
        string path = Path.Combine(_directory, "seg.0");
        File.WriteAllBytes(path, new byte[Sector]);
        using SafeFileHandle readOnly = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        var failures = new List<Exception>();
        using var zeroFill = new ZeroFillAhead(aheadBytes: 64 * 1024, chunkBytes: 16 * 1024, segmentBytes: 1 << 20, _ => readOnly, e =>
        {
            lock (failures)
            {
                failures.Add(e);
            }
        });

        zeroFill.BeforeWrite(0, 0, Sector);
        Wait.Until(() => { lock (failures) { return failures.Count > 0; } }, "the failed zero write is reported");

        // Later writes neither wait on a zeroer that stopped nor start it again.
        for (int i = 1; i < 50; i++)
        {
            zeroFill.BeforeWrite(0, i * (long)Sector, Sector);
        }

        Assert.Single(failures);
        Assert.Equal(Sector, RandomAccess.GetLength(readOnly));
    }

    [Fact]
    public void LargeWritesDoNotStartZeroingAndASmallOneDoes()
    {
        using SafeFileHandle file = File.OpenHandle(Path.Combine(_directory, "seg.0"), FileMode.CreateNew, FileAccess.ReadWrite);
        int smallWriteIssued = 0;
        int zeroerRanBeforeSmallWrite = 0;
        using var zeroFill = new ZeroFillAhead(aheadBytes: 1 << 20, chunkBytes: 64 * 1024, segmentBytes: 64 << 20, _ =>
        {
            if (Volatile.Read(ref smallWriteIssued) == 0)
            {
                Interlocked.Increment(ref zeroerRanBeforeSmallWrite);
            }

            return file;
        }, _ => { });

        zeroFill.BeforeWrite(0, 0, ZeroFillAhead.LargeWriteBytes);
        zeroFill.BeforeWrite(0, ZeroFillAhead.LargeWriteBytes, ZeroFillAhead.LargeWriteBytes * 2);

        // A zeroer started by those writes would have been queued to the pool before this item ran.
        using var poolRan = new ManualResetEventSlim();
        ThreadPool.UnsafeQueueUserWorkItem(static e => e.Set(), poolRan, preferLocal: false);
        Assert.True(poolRan.Wait(Wait.Deadline));

        Volatile.Write(ref smallWriteIssued, 1);
        zeroFill.BeforeWrite(0, ZeroFillAhead.LargeWriteBytes * 3, Sector);
        Wait.Until(() => zeroFill.Prepared.End >= (ZeroFillAhead.LargeWriteBytes * 3) + Sector + (1 << 20), "a small write starts zeroing");
        Assert.Equal(0, Volatile.Read(ref zeroerRanBeforeSmallWrite));
    }

    [Fact]
    public async Task TheWalKeepsZerosAheadOfItsTailAndRecoversEveryEntryAcrossSegments()
    {
        var options = new WalOptions { Directory = _directory, PageSizeBits = 16, MemorySizeBits = 18, SegmentSizeBits = 18, ZeroFillAheadBytes = 64 * 1024 };
        var written = new List<(long Stream, long Offset, int Size)>();
        bool direct;
        await using (var wal = new FasterWriteAheadLog(options))
        {
            direct = wal.UsesDirectIo;
            for (int i = 0; i < 400; i++)
            {
                (long stream, long offset, int size) = (i % 3, i, 100 + (i * 131 % 3000));
                await wal.AppendAsync(stream, offset, 1, WalTestPayload.Create(stream, offset, size));
                written.Add((stream, offset, size));
            }

            if (direct)
            {
                Assert.True(wal.ZeroFilled is not null, "zero-fill ahead is on with direct I/O");
                Wait.Until(() => wal.ZeroFilled!.Value.End > 0, "zeros are written in the newest segment");
            }
            else
            {
                // FASTER's buffered device (no O_DIRECT here) has no zero-fill ahead.
                Assert.Null(wal.ZeroFilled);
            }
        }

        await using (var reopened = new FasterWriteAheadLog(options))
        {
            List<WalEntry> entries = [.. reopened.ReadDurableEntries()];
            Assert.Equal(written.Count, entries.Count);
            for (int i = 0; i < entries.Count; i++)
            {
                Assert.Equal(written[i].Offset, entries[i].BaseOffset);
                Assert.Equal(written[i].Size, entries[i].Batch.Length);
                Assert.True(WalTestPayload.Matches(entries[i].Batch.Span, written[i].Stream, written[i].Offset), $"entry {i} intact");
            }

            // Appending after recovery overwrites zeros and stale bytes past the recovered tail.
            await reopened.AppendAsync(7, 1000, 1, WalTestPayload.Create(7, 1000, 2000));
        }

        await using (var again = new FasterWriteAheadLog(options))
        {
            List<WalEntry> entries = [.. again.ReadDurableEntries()];
            Assert.Equal(written.Count + 1, entries.Count);
            Assert.True(WalTestPayload.Matches(entries[^1].Batch.Span, 7, 1000));
        }
    }
}
