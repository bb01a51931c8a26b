using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using FASTER.core;
using Microsoft.Win32.SafeHandles;

namespace SharedLog.Storage.Wal;

/// <summary>
/// FasterLog's log device on Linux with direct I/O: segment files are opened write-through (O_SYNC) and
/// then switched to O_DIRECT, so a page the log flushes goes from its aligned buffer to the disk without
/// being copied into the page cache first. FASTER's own managed device writes through the page cache,
/// and at full produce load that copy (and the page cache churn behind it) was a fifth of the broker's
/// CPU. Segments keep the managed device's names (<c>{file}.{segment}</c>), so a data directory written
/// by either device opens with the other. Use <see cref="TryCreate"/>: a file system that refuses
/// O_DIRECT (tmpfs, some overlays) gets FASTER's device instead.
/// </summary>
public sealed class DirectLogDevice : StorageDeviceBase
{
    /// <summary>Writes and reads are aligned to this, which covers 512-byte and 4 KiB logical sectors.</summary>
    public const uint DirectSectorSize = DirectIo.SectorSize;

    /// <summary>Size of one zero write ahead of the log (see <see cref="ZeroFillAhead"/>).</summary>
    public const int ZeroFillChunkBytes = 256 * 1024;

    private readonly ConcurrentDictionary<int, SafeFileHandle> _segments = new();
    private readonly ZeroFillAhead? _zeroFill;
    private readonly GradualFileDeleter _deleter;
    private readonly long _segmentBytes;

    // Address-ordered durability (see OrderWritesFrom), all under _ordering. -1: writes go out as they come.
    private readonly Lock _ordering = new();
    private readonly List<HeldWrite> _held = [];
    private long _durableUntil = -1;
    private bool _orderingFailed;
    private long _heldWrites;
    private int _disposed;

    private DirectLogDevice(string filename, long zeroFillAheadBytes, long segmentBytes, Action<Exception>? onZeroFillFailure, Action<string, Exception>? onDeleteFailure)
        : base(filename, DirectSectorSize, Devices.CAPACITY_UNSPECIFIED)
    {
        _segmentBytes = segmentBytes;
        _deleter = new GradualFileDeleter(onDeleteFailure ?? (static (_, _) => { }));
        _deleter.DeleteLeftovers(Path.GetDirectoryName(Path.GetFullPath(filename))!, Path.GetFileName(filename) + ".");
        if (zeroFillAheadBytes > 0)
        {
            long chunk = Math.Min(ZeroFillChunkBytes, Math.Min(segmentBytes, zeroFillAheadBytes)) / DirectSectorSize * DirectSectorSize;
            _zeroFill = new ZeroFillAhead(Math.Max(zeroFillAheadBytes, DirectSectorSize), (int)Math.Max(chunk, DirectSectorSize), segmentBytes, OpenSegmentOrNull, onZeroFillFailure ?? (static _ => { }));
        }
    }

    /// <summary>
    /// A direct-I/O device for <paramref name="filename"/>, or null when this platform or the file system
    /// under it does not take O_DIRECT (probed with an aligned write to a scratch file beside the log).
    /// With <paramref name="zeroFillAheadBytes"/> above zero the newest segment is kept written with zeros
    /// that far past the log's tail (<see cref="ZeroFillAhead"/>); <paramref name="onZeroFillFailure"/> hears
    /// why that stopped, if it does. Segments the log no longer needs are deleted a slice at a time
    /// (<see cref="GradualFileDeleter"/>); <paramref name="onDeleteFailure"/> hears of one that could not be.
    /// </summary>
    public static DirectLogDevice? TryCreate(string filename, out string? refusal, long zeroFillAheadBytes = 0, long segmentBytes = 1L << 30, Action<Exception>? onZeroFillFailure = null, Action<string, Exception>? onDeleteFailure = null) =>
        DirectIo.Probe(filename + ".direct-probe", out refusal) ? new DirectLogDevice(filename, zeroFillAheadBytes, segmentBytes, onZeroFillFailure, onDeleteFailure) : null;

    /// <summary>How far the newest segment is written (data or zeros), when zero-fill ahead is on.</summary>
    public (int Segment, long End)? ZeroFilled => _zeroFill?.Prepared;

    private SafeFileHandle? OpenSegmentOrNull(int segment) =>
        Volatile.Read(ref _disposed) == 0 && _segments.TryGetValue(segment, out SafeFileHandle? open) ? open : null;

    /// <param name="mode">OpenOrCreate for a write; Open for a read, which must not bring back a segment that was removed.</param>
    private static SafeFileHandle OpenDirect(string path, FileMode mode)
    {
        // WriteThrough is O_SYNC: a completed write is on the disk, as FasterLog's commit expects of its device.
        SafeFileHandle handle = File.OpenHandle(path, mode, FileAccess.ReadWrite, FileShare.ReadWrite, FileOptions.WriteThrough);
        try
        {
            DirectIo.Enable(handle, path);
            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private string SegmentPath(int segment) => $"{FileName}.{segment}";

    /// <param name="forRead">A read finds the segment's file or fails (FileNotFoundException); a write creates it.</param>
    private SafeFileHandle Segment(int segment, bool forRead = false)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (_segments.TryGetValue(segment, out SafeFileHandle? open))
        {
            return open;
        }

        lock (_segments)
        {
            // Under the lock so that two first writes to a segment do not both open it.
            return _segments.GetOrAdd(segment, static (s, state) => OpenSegment(state.Device.SegmentPath(s), state.Mode), (Device: this, Mode: forRead ? FileMode.Open : FileMode.OpenOrCreate));
        }
    }

    /// <summary>Opens a segment's file; one this creates is made durable in the WAL directory before any entry in it is acknowledged.</summary>
    private static SafeFileHandle OpenSegment(string path, FileMode mode)
    {
        bool creates = mode != FileMode.Open && !File.Exists(path);
        SafeFileHandle file = OpenDirect(path, mode);
        if (creates)
        {
            FileDurability.FlushDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        }

        return file;
    }

    /// <summary>
    /// From now on a log write is issued only once every byte below its start is on the disk, starting from
    /// <paramref name="durableUntil"/> (the log's flushed address after recovery). FasterLog flushes pages from more
    /// than one thread and can issue a write above one it has not issued yet; a crash between the two would leave a
    /// stretch of never-written bytes below durable entries. With writes held back, the durable log is always one
    /// unbroken stretch, so recovery can scan forward from a commit point and stop at the first entry that is not
    /// there (<see cref="FasterWriteAheadLog"/> acknowledges entries without a commit-point write in between).
    /// </summary>
    public void OrderWritesFrom(long durableUntil)
    {
        lock (_ordering)
        {
            _durableUntil = durableUntil;
        }
    }

    /// <summary>Log writes that had to wait for a lower one to finish (see <see cref="OrderWritesFrom"/>).</summary>
    public long HeldWrites => Interlocked.Read(ref _heldWrites);

    private long SegmentBytes => segmentSize > 0 ? segmentSize : _segmentBytes;

    public override void WriteAsync(IntPtr sourceAddress, int segmentId, ulong destinationAddress, uint numBytesToWrite, DeviceIOCompletionCallback callback, object context)
    {
        var write = new HeldWrite(sourceAddress, segmentId, destinationAddress, numBytesToWrite, callback, context, segmentId * SegmentBytes + (long)destinationAddress);
        bool refused;
        lock (_ordering)
        {
            refused = _orderingFailed;
            if (!refused && _durableUntil >= 0 && write.Start > _durableUntil)
            {
                _held.Add(write);
                Interlocked.Increment(ref _heldWrites);
                return;
            }
        }

        if (refused)
        {
            // A lower write failed: this one must not land above the hole it left.
            callback(uint.MaxValue, 0, context);
            return;
        }

        Issue(write);
    }

    private void Issue(HeldWrite write) =>
        // The blocking write runs off the caller's thread: FasterLog issues flushes from inside its epoch.
        ThreadPool.UnsafeQueueUserWorkItem(static state => state.Device.Write(state.Write), (Device: this, Write: write), preferLocal: false);

    private unsafe void Write(HeldWrite write)
    {
        uint error = 0;
        uint length = write.Length;
        try
        {
            SafeFileHandle file = Segment(write.Segment);
            _zeroFill?.BeforeWrite(write.Segment, (long)write.Offset, length);
            long started = System.Diagnostics.Stopwatch.GetTimestamp();
            RandomAccess.Write(file, new ReadOnlySpan<byte>((void*)write.Source, (int)length), (long)write.Offset);
            StorageMetrics.RecordWalWrite(commitPoint: false, started);
        }
        catch (Exception e)
        {
            // Any failure (EIO, ENOSPC, EFBIG surfaces as ArgumentOutOfRangeException) goes back to
            // FasterLog as an error: an exception on this pool thread would end the process.
            error = ErrorCode(e);
            length = 0;
        }

        ReleaseHeldWrites(write, failed: error != 0);
        write.Callback(error, length, write.Context);
    }

    /// <summary>
    /// After <paramref name="finished"/>: issues the held writes it made eligible, or, when it <paramref name="failed"/>,
    /// fails every held write and every later one, which would otherwise land above a hole.
    /// </summary>
    private void ReleaseHeldWrites(HeldWrite? finished, bool failed)
    {
        List<HeldWrite>? ready = null;
        lock (_ordering)
        {
            if (_durableUntil < 0)
            {
                return;
            }

            if (failed)
            {
                _orderingFailed = true;
            }
            else if (finished is { } write && write.Start <= _durableUntil)
            {
                // Issued with nothing missing below it, so the log is durable up to its end.
                _durableUntil = Math.Max(_durableUntil, write.Start + write.Length);
            }

            failed = _orderingFailed;
            for (int i = _held.Count - 1; i >= 0; i--)
            {
                if (failed || _held[i].Start <= _durableUntil)
                {
                    (ready ??= []).Add(_held[i]);
                    _held.RemoveAt(i);
                }
            }
        }

        if (ready is null)
        {
            return;
        }

        // Lowest first, though each is eligible on its own.
        ready.Sort(static (a, b) => a.Start.CompareTo(b.Start));
        foreach (HeldWrite write in ready)
        {
            if (failed)
            {
                write.Callback(uint.MaxValue, 0, write.Context);
            }
            else
            {
                Issue(write);
            }
        }
    }

    /// <summary>One log write as FasterLog asked for it, with its logical start address.</summary>
    private readonly record struct HeldWrite(IntPtr Source, int Segment, ulong Offset, uint Length, DeviceIOCompletionCallback Callback, object Context, long Start);

    public override unsafe void ReadAsync(int segmentId, ulong sourceAddress, IntPtr destinationAddress, uint readLength, DeviceIOCompletionCallback callback, object context)
    {
        ThreadPool.UnsafeQueueUserWorkItem(
            static state =>
            {
                (DirectLogDevice device, int segment, ulong offset, IntPtr destination, uint length, DeviceIOCompletionCallback done, object context) = state;
                uint error = 0;
                uint read = 0;
                try
                {
                    read = (uint)RandomAccess.Read(device.Segment(segment, forRead: true), new Span<byte>((void*)destination, (int)length), (long)offset);
                }
                catch (Exception e)
                {
                    error = ErrorCode(e);
                }

                done(error, read, context);
            },
            (this, segmentId, sourceAddress, destinationAddress, readLength, callback, context),
            preferLocal: false);
    }

    private static uint ErrorCode(Exception e) => e is IOException { HResult: not 0 } io && (io.HResult & 0xFFFF) != 0 ? (uint)(io.HResult & 0xFFFF) : uint.MaxValue;

    public override void RemoveSegment(int segment)
    {
        // Under the lock that opens segments, so a read cannot open the file again between its removal and its rename.
        lock (_segments)
        {
            if (_segments.TryRemove(segment, out SafeFileHandle? handle))
            {
                handle.Dispose();
            }

            // Unlinked whole, a 1 GiB segment held the file system's journal long enough to stall log writes. Never throws:
            // FASTER calls this from its truncation, which would wait forever for the callback. Delete only renames here.
            _deleter.Delete(SegmentPath(segment));
        }
    }

    public override void RemoveSegmentAsync(int segment, AsyncCallback callback, IAsyncResult result)
    {
        RemoveSegment(segment);
        callback(result);
    }

    public override long GetFileSize(int segment) => segmentSize > 0 ? segmentSize : RandomAccess.GetLength(Segment(segment));

    public override void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // A write still held back was never issued; FasterLog is closing and must not wait for it.
        ReleaseHeldWrites(null, failed: true);
        _zeroFill?.Dispose();
        _deleter.Dispose();
        foreach (SafeFileHandle handle in _segments.Values)
        {
            handle.Dispose();
        }

        _segments.Clear();
    }
}
