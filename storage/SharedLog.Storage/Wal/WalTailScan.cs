using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;

namespace SharedLog.Storage.Wal;

/// <summary>
/// Finds the entries a WAL made durable after its newest commit point, by reading FasterLog's segment files
/// directly. <see cref="FasterWriteAheadLog"/> acknowledges an append once the log pages holding it are on the
/// disk and writes a commit point only now and then (<see cref="WalOptions.CommitPointInterval"/>); FasterLog's
/// own recovery stops at the commit point, so the acknowledged entries after it are found here and a commit
/// point covering them is written before FasterLog opens.
///
/// FasterLog's entry layout (Microsoft.FASTER.Core 2.x, per-entry checksums): an 8-byte checksum (the XOR of the
/// little-endian 8-byte words of the length field and the payload, a short tail XORed byte by byte), a 4-byte
/// payload length, then the payload; the next entry starts after the payload rounded up to 4 bytes. An entry never
/// spans pages: one that does not fit moves the tail to the next page, leaving the rest of the page zero.
///
/// Safe because the log device issues no write above bytes not yet durable (<see cref="DirectLogDevice.OrderWritesFrom"/>),
/// so the durable log is one unbroken stretch: a later page's entries are on the disk only if every byte before them
/// is, padding included. The scan stops at the first place that is not a whole entry of the commit point's epoch (with its own CRC), and
/// takes zeros for page-end padding only when they run to the page's end and the next page starts with such an entry.
/// (Whether that entry would have fitted in the padding tells nothing: an append that overflowed a page while the log's
/// memory was full gives up its turn, and a smaller one may open the next page.)
/// </summary>
/// </summary>
internal sealed class WalTailScan : IDisposable
{
    private const int ChecksumBytes = 8;
    private const int FasterHeaderBytes = ChecksumBytes + 4;

    private readonly string _segmentPrefix;
    private readonly int _pageSizeBits;
    private readonly int _segmentSizeBits;
    private readonly int _maxPayload;
    private readonly byte[] _page;
    private readonly Dictionary<int, SafeFileHandle?> _segments = [];
    private long _loadedPage = -1;

    /// <param name="segmentPrefix">Path of the log device's files without the <c>.N</c> segment suffix.</param>
    public WalTailScan(string segmentPrefix, int pageSizeBits, int segmentSizeBits, int maxPayload)
    {
        _segmentPrefix = segmentPrefix;
        _pageSizeBits = pageSizeBits;
        _segmentSizeBits = segmentSizeBits;
        _maxPayload = maxPayload;
        _page = GC.AllocateUninitializedArray<byte>(1 << pageSizeBits);
    }

    private long PageSize => 1L << _pageSizeBits;

    /// <summary>
    /// The address after the last whole entry of <paramref name="epoch"/> reached from <paramref name="from"/> (an entry
    /// boundary: a commit point's until address), and how many entries were found; <paramref name="from"/> and 0 when none.
    /// </summary>
    public (long End, int Entries) FindEnd(long from, long epoch)
    {
        long position = from;
        int entries = 0;
        while (true)
        {
            long pageEnd = (position | (PageSize - 1)) + 1;
            int size = EntrySizeAt(position, epoch);
            if (size > 0)
            {
                position += size;
                entries++;
                continue;
            }

            // Zeros to the page's end, and the next page starts with an entry: padding. At a page's start it is the end.
            if (size < 0 || (position & (PageSize - 1)) == 0 || Page(position >> _pageSizeBits)[(int)(position & (PageSize - 1))..].ContainsAnyExcept((byte)0)
                || EntrySizeAt(pageEnd, epoch) <= 0)
            {
                return (position, entries);
            }

            position = pageEnd;
        }
    }

    /// <summary>
    /// The allocated size of the whole entry of <paramref name="epoch"/> at <paramref name="address"/>; 0 for a zero
    /// length field or no room for a header before the page's end (padding, or nothing written); -1 for anything else
    /// (a torn or stale entry).
    /// </summary>
    private int EntrySizeAt(long address, long epoch)
    {
        int offset = (int)(address & (PageSize - 1));
        if (offset + FasterHeaderBytes > PageSize)
        {
            return 0;
        }

        ReadOnlySpan<byte> page = Page(address >> _pageSizeBits);
        int length = BinaryPrimitives.ReadInt32LittleEndian(page[(offset + ChecksumBytes)..]);
        if (length == 0)
        {
            return 0;
        }

        int allocated = FasterHeaderBytes + ((length + 3) & ~3);
        if (length < 0 || length > _maxPayload || offset + allocated > PageSize)
        {
            return -1;
        }

        ReadOnlySpan<byte> payload = page.Slice(offset + FasterHeaderBytes, length);
        bool intact = BinaryPrimitives.ReadUInt64LittleEndian(page[offset..]) == Checksum(page.Slice(offset + ChecksumBytes, length + 4))
            && WalEntryFormat.IsIntact(payload, epoch);
        return intact ? allocated : -1;
    }

    /// <summary>FasterLog's per-entry checksum (Utility.XorBytes): 8-byte words XORed, then each left-over byte into the low byte.</summary>
    internal static ulong Checksum(ReadOnlySpan<byte> bytes)
    {
        ulong result = 0;
        int i = 0;
        for (; i + 8 <= bytes.Length; i += 8)
        {
            result ^= BinaryPrimitives.ReadUInt64LittleEndian(bytes[i..]);
        }

        for (; i < bytes.Length; i++)
        {
            result ^= bytes[i];
        }

        return result;
    }

    /// <summary>One log page as it is on the disk; bytes past a segment file's end (or of a missing file) read as zeros.</summary>
    private ReadOnlySpan<byte> Page(long page)
    {
        if (page == _loadedPage)
        {
            return _page;
        }

        long address = page << _pageSizeBits;
        int segment = (int)(address >> _segmentSizeBits);
        long offset = address & ((1L << _segmentSizeBits) - 1);
        int read = 0;
        if (SegmentFile(segment) is { } file)
        {
            while (read < _page.Length)
            {
                int got = RandomAccess.Read(file, _page.AsSpan(read), offset + read);
                if (got == 0)
                {
                    break;
                }

                read += got;
            }
        }

        _page.AsSpan(read).Clear();
        _loadedPage = page;
        return _page;
    }

    private SafeFileHandle? SegmentFile(int segment)
    {
        if (!_segments.TryGetValue(segment, out SafeFileHandle? file))
        {
            string path = $"{_segmentPrefix}.{segment}";
            file = File.Exists(path) ? File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete) : null;
            _segments[segment] = file;
        }

        return file;
    }

    public void Dispose()
    {
        foreach (SafeFileHandle? file in _segments.Values)
        {
            file?.Dispose();
        }
    }
}
