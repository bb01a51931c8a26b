using System.Buffers.Binary;
using FASTER.core;

namespace SharedLog.Storage.Wal;

/// <summary>
/// Layout of one WAL entry: format version (1 byte), the log epoch of the WAL instance that wrote it (8),
/// stream id (8), base offset (8), record count (4), then the record batch exactly as produced. FasterLog adds
/// its own length and per-entry checksum. Version 1 entries (written before the epoch) have no epoch field.
/// The epoch tells entries past the newest commit point that this WAL wrote from stale bytes an earlier one
/// left there (<see cref="WalTailScan"/>).
/// </summary>
internal static class WalEntryFormat
{
    public const byte Version = 2;
    private const byte VersionWithoutEpoch = 1;
    public const int HeaderSize = 1 + 8 + 8 + 8 + 4;
    private const int HeaderSizeWithoutEpoch = 1 + 8 + 8 + 4;

    public static void WriteHeader(Span<byte> destination, long epoch, long streamId, long baseOffset, int recordCount)
    {
        destination[0] = Version;
        BinaryPrimitives.WriteInt64BigEndian(destination[1..], epoch);
        BinaryPrimitives.WriteInt64BigEndian(destination[9..], streamId);
        BinaryPrimitives.WriteInt64BigEndian(destination[17..], baseOffset);
        BinaryPrimitives.WriteInt32BigEndian(destination[25..], recordCount);
    }

    /// <summary>The log epoch an entry was written in, or null when it is not a whole current-version header.</summary>
    public static long? EpochOf(ReadOnlySpan<byte> entry) =>
        entry.Length >= HeaderSize && entry[0] == Version ? BinaryPrimitives.ReadInt64BigEndian(entry[1..]) : null;

    public static WalEntry Parse(long position, long nextPosition, ReadOnlyMemory<byte> entry)
    {
        ReadOnlySpan<byte> span = entry.Span;
        int streamAt = span.Length > 0 && span[0] == VersionWithoutEpoch ? 1 : 9;
        int headerSize = streamAt == 1 ? HeaderSizeWithoutEpoch : HeaderSize;
        if (span.Length < headerSize || span[0] is not (Version or VersionWithoutEpoch))
        {
            throw new InvalidDataException($"WAL entry at {position} has an unknown format (length {span.Length}, version {(span.Length > 0 ? span[0] : -1)}).");
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
    }
}
