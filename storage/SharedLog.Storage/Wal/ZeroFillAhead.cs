using Microsoft.Win32.SafeHandles;

namespace SharedLog.Storage.Wal;

/// <summary>
/// Keeps a stretch of the newest WAL segment written with zeros ahead of the log's tail, so that a
/// commit's page write overwrites blocks the file already has. A synchronous write that extends a file
/// (or fills a hole or an unwritten extent) also has to make the new allocation durable, an ext4 journal
/// commit on top of the data; on this machine's disk a 16 KiB O_DSYNC write took 0.40 ms appending and
/// 0.21 ms overwriting (bench/RESULTS.md, "Zero-filled WAL segments"). The zeros are written from a pool thread with
/// write-through, a chunk at a time, never below the highest offset the log has asked to write, and a log
/// write that reaches a chunk being zeroed waits for it, so zeros never land on data.
/// </summary>
public sealed class ZeroFillAhead : IDisposable
{
    /// <summary>
    /// Log writes this large do not start zeroing: their allocation's journal commit is small beside the
    /// data, and at the rates that make such writes (hundreds of MB/s) zeros would double the disk's
    /// writes. In the WAL benchmark 256 KiB and 1 MiB commits gained nothing or lost (bench/RESULTS.md).
    /// </summary>
    public const int LargeWriteBytes = 256 * 1024;

    private readonly long _aheadBytes;
    private readonly int _chunkBytes;
    private readonly long _segmentBytes;
    private readonly Func<int, SafeFileHandle?> _openSegment;
    private readonly Action<Exception> _onFailure;
    private readonly object _gate = new();
    private AlignedBuffer? _zeros;

    // All under _gate. The newest segment the log wrote to, and the end of the highest write it asked for there.
    private int _dataSegment = -1;
    private long _dataEnd;

    // Bytes [0, _preparedEnd) of _preparedSegment are written (data, zeros, or older contents).
    private int _preparedSegment = -1;
    private long _preparedEnd;

    // A chunk being zeroed: [_preparedEnd, _zeroingEnd) of _preparedSegment; empty when equal.
    private long _zeroingEnd;
    private bool _running;
    private bool _stopped;
    private bool _lastWriteLarge;

    /// <param name="aheadBytes">How far past the log's highest write to keep zeroed.</param>
    /// <param name="chunkBytes">Size of one zero write (a whole number of sectors).</param>
    /// <param name="segmentBytes">Segment file size: zeros never go past it.</param>
    /// <param name="openSegment">The open handle of a segment, or null if it is not open (never creates one).</param>
    /// <param name="onFailure">Told once when zeroing fails (disk full, I/O error); zeroing then stops for good.</param>
    public ZeroFillAhead(long aheadBytes, int chunkBytes, long segmentBytes, Func<int, SafeFileHandle?> openSegment, Action<Exception> onFailure)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(aheadBytes);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(chunkBytes);
        if (chunkBytes % DirectIo.SectorSize != 0)
        {
            throw new ArgumentException($"Zero-fill chunk of {chunkBytes} bytes is not a whole number of {DirectIo.SectorSize}-byte sectors.", nameof(chunkBytes));
        }

        if (chunkBytes > aheadBytes)
        {
            throw new ArgumentException($"Zero-fill chunk of {chunkBytes} bytes is larger than the {aheadBytes} bytes to keep ahead.", nameof(chunkBytes));
        }

        _aheadBytes = aheadBytes;
        _chunkBytes = chunkBytes;
        _segmentBytes = segmentBytes;
        _openSegment = openSegment;
        _onFailure = onFailure;
    }

    /// <summary>Bytes zeroed (or otherwise written) in the newest segment, for tests and diagnostics.</summary>
    public (int Segment, long End) Prepared
    {
        get
        {
            lock (_gate)
            {
                return (_preparedSegment, _preparedEnd);
            }
        }
    }

    /// <summary>
    /// Called before the log writes [offset, offset + length) of a segment: waits while that range is being
    /// zeroed, records how far the log has written, and starts zeroing further ahead when the lead is short.
    /// </summary>
    public void BeforeWrite(int segment, long offset, long length)
    {
        long end = offset + length;
        bool start = false;
        lock (_gate)
        {
            // Bounded: one chunk write, after which the zeroer moves on past this write's end.
            while (segment == _preparedSegment && _zeroingEnd > _preparedEnd && offset < _zeroingEnd && end > _preparedEnd)
            {
                Monitor.Wait(_gate);
            }

            if (segment > _dataSegment)
            {
                (_dataSegment, _dataEnd) = (segment, end);
            }
            else if (segment == _dataSegment && end > _dataEnd)
            {
                _dataEnd = end;
            }

            _lastWriteLarge = length >= LargeWriteBytes;
            if (!_running && !_stopped && !_lastWriteLarge && segment == _dataSegment && Lead() <= _aheadBytes - _chunkBytes)
            {
                _running = true;
                start = true;
            }
        }

        if (start)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static self => self.Run(), this, preferLocal: false);
        }
    }

    private long Lead() => _preparedSegment == _dataSegment ? _preparedEnd - _dataEnd : 0;

    private void Run()
    {
        try
        {
            while (NextChunk() is (long from, long to, SafeFileHandle file))
            {
                _zeros ??= NewZeros();
                RandomAccess.Write(file, _zeros.Span[..(int)(to - from)], from);

                lock (_gate)
                {
                    // Only this loop moves _preparedSegment, so the chunk is still in the segment it claimed.
                    _preparedEnd = to;
                    Monitor.PulseAll(_gate);
                }
            }
        }
        catch (Exception e)
        {
            // ENOSPC, EIO or the segment closed under us: the log's own writes still work, only slower.
            lock (_gate)
            {
                _stopped = true;
                _running = false;
                _zeroingEnd = _preparedEnd;
                Monitor.PulseAll(_gate);
            }

            if (e is not ObjectDisposedException)
            {
                _onFailure(e);
            }
        }
    }

    private AlignedBuffer NewZeros()
    {
        var zeros = new AlignedBuffer(_chunkBytes);
        zeros.Span.Clear();
        return zeros;
    }

    /// <summary>Claims the next chunk to zero, past every write the log has asked for; null when far enough ahead.</summary>
    private (long From, long To, SafeFileHandle File)? NextChunk()
    {
        while (true)
        {
            int newSegment;
            SafeFileHandle? file;
            lock (_gate)
            {
                file = _stopped || _lastWriteLarge || _dataSegment < 0 ? null : _openSegment(_dataSegment);
                if (file is null)
                {
                    _running = false;
                    return null;
                }

                if (_preparedSegment == _dataSegment)
                {
                    return Claim(file);
                }

                newSegment = _dataSegment;
            }

            // A segment seen for the first time: whatever it already holds counts as written. Its length is a
            // system call, made outside the lock; a log write that lands meanwhile is above it and is never zeroed,
            // because a claim starts past the log's highest requested write.
            long written = RandomAccess.GetLength(file) / DirectIo.SectorSize * DirectIo.SectorSize;
            lock (_gate)
            {
                if (_dataSegment == newSegment && _preparedSegment != newSegment)
                {
                    _preparedSegment = newSegment;
                    _preparedEnd = written;
                    _zeroingEnd = written;
                }
            }
        }
    }

    /// <summary>Under the lock, in the prepared segment: the chunk after the prepared bytes and the log's writes, or null.</summary>
    private (long From, long To, SafeFileHandle File)? Claim(SafeFileHandle file)
    {
        long from = Math.Max(_preparedEnd, DirectIo.AlignUp(_dataEnd));
        long to = Math.Min(from + _chunkBytes, _segmentBytes);
        if (from - _dataEnd >= _aheadBytes || from >= to)
        {
            _running = false;
            return null;
        }

        _preparedEnd = from;
        _zeroingEnd = to;
        return (from, to, file);
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _stopped = true;
        }

        // The zero buffer is native memory; a zeroer still writing from it keeps it reachable until it
        // fails on the closed segment, so it is left to its finalizer rather than freed under a write.
    }
}
