using System.Buffers.Binary;
using FASTER.core;

namespace SharedLog.Storage.Wal;

/// <summary>
/// Layout of one WAL entry: format version (1 byte), the log epoch of the WAL instance that wrote it (8), a CRC-32C
/// of everything after it (4), stream id (8), base offset (8), record count (4), then the record batch exactly as
/// produced. FasterLog adds its own length and per-entry checksum. Version 1 entries (written before the epoch) have
/// neither epoch nor CRC. Both serve <see cref="WalTailScan"/>, which reads entries no commit point vouches for: the
/// epoch tells this WAL's entries from stale bytes an earlier one left, and the CRC tells a whole entry from one cut
/// short by a crash (FasterLog's XOR checksum misses a lost stretch whose words XOR to zero, e.g. a run of zeros).
/// </summary>
internal static class WalEntryFormat
{
    public const byte Version = 2;
    private const byte VersionWithoutEpoch = 1;
    public const int HeaderSize = 1 + 8 + 4 + 8 + 8 + 4;
    private const int CrcAt = 9;
    private const int CoveredFrom = CrcAt + 4;
    private const int HeaderSizeWithoutEpoch = 1 + 8 + 8 + 4;

    public static void WriteHeader(Span<byte> destination, long epoch, long streamId, long baseOffset, int recordCount)
    {
        destination[0] = Version;
        BinaryPrimitives.WriteInt64BigEndian(destination[1..], epoch);
        BinaryPrimitives.WriteInt64BigEndian(destination[CoveredFrom..], streamId);
        BinaryPrimitives.WriteInt64BigEndian(destination[(CoveredFrom + 8)..], baseOffset);
        BinaryPrimitives.WriteInt32BigEndian(destination[(CoveredFrom + 16)..], recordCount);
    }

    /// <summary>Sets the CRC of an entry whose header and batch are written (the bytes were just copied, so they are in cache).</summary>
    public static void Seal(Span<byte> entry) =>
        BinaryPrimitives.WriteUInt32BigEndian(entry[CrcAt..], SharedLog.Protocol.Records.Crc32C.Compute(entry[CoveredFrom..]));

    /// <summary>Whether <paramref name="entry"/> is a whole current-version entry of <paramref name="epoch"/> whose CRC checks out.</summary>
    public static bool IsIntact(ReadOnlySpan<byte> entry, long epoch) =>
        entry.Length >= HeaderSize && entry[0] == Version && BinaryPrimitives.ReadInt64BigEndian(entry[1..]) == epoch
        && BinaryPrimitives.ReadUInt32BigEndian(entry[CrcAt..]) == SharedLog.Protocol.Records.Crc32C.Compute(entry[CoveredFrom..]);

    public static WalEntry Parse(long position, long nextPosition, ReadOnlyMemory<byte> entry)
    {
        ReadOnlySpan<byte> span = entry.Span;
        int streamAt = span.Length > 0 && span[0] == VersionWithoutEpoch ? 1 : CoveredFrom;
        int headerSize = streamAt == 1 ? HeaderSizeWithoutEpoch : HeaderSize;
        if (span.Length < headerSize || span[0] is not (Version or VersionWithoutEpoch))
        {
            throw new InvalidDataException($"WAL entry at {position} has an unknown format (length {span.Length}, version {(span.Length > 0 ? span[0] : -1)}).");
        }

        // FasterLog's own per-entry checksum is an XOR that a zeroed stretch passes; the entry's CRC is not.
        if (streamAt == CoveredFrom && BinaryPrimitives.ReadUInt32BigEndian(span[CrcAt..]) != SharedLog.Protocol.Records.Crc32C.Compute(span[CoveredFrom..]))
        {
            throw new InvalidDataException($"WAL entry at {position} fails its CRC: the WAL is damaged, and the broker does not start on damaged storage.");
        }

        return new WalEntry(
            position,
            nextPosition,
            BinaryPrimitives.ReadInt64BigEndian(span[streamAt..]),
            BinaryPrimitives.ReadInt64BigEndian(span[(streamAt + 8)..]),
            BinaryPrimitives.ReadInt32BigEndian(span[(streamAt + 16)..]),
            entry[headerSize..]);
    }
}

/// <summary>Serializes header and batch straight into the log's page (no intermediate copy).</summary>
internal readonly struct WalEnqueueEntry(long epoch, long streamId, long baseOffset, int recordCount, ReadOnlyMemory<byte> batch) : ILogEnqueueEntry
{
    public int SerializedLength => WalEntryFormat.HeaderSize + batch.Length;

    public void SerializeTo(Span<byte> dest)
    {
        WalEntryFormat.WriteHeader(dest, epoch, streamId, baseOffset, recordCount);
        batch.Span.CopyTo(dest[WalEntryFormat.HeaderSize..]);
        WalEntryFormat.Seal(dest[..SerializedLength]);
    }
}
