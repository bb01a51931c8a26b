using System.Buffers.Binary;
using FASTER.core;

namespace SharedLog.Storage.Wal;

/// <summary>
/// Layout of one WAL entry: format version (1 byte), stream id (8), base offset (8), record count (4),
/// then the record batch exactly as produced. FasterLog adds its own length and per-entry checksum.
/// </summary>
internal static class WalEntryFormat
{
    public const byte Version = 1;
    public const int HeaderSize = 1 + 8 + 8 + 4;

    public static void WriteHeader(Span<byte> destination, long streamId, long baseOffset, int recordCount)
    {
        destination[0] = Version;
        BinaryPrimitives.WriteInt64BigEndian(destination[1..], streamId);
        BinaryPrimitives.WriteInt64BigEndian(destination[9..], baseOffset);
        BinaryPrimitives.WriteInt32BigEndian(destination[17..], recordCount);
    }

    public static WalEntry Parse(long position, long nextPosition, ReadOnlyMemory<byte> entry)
    {
        ReadOnlySpan<byte> span = entry.Span;
        if (span.Length < HeaderSize || span[0] != Version)
        {
            throw new InvalidDataException($"WAL entry at {position} has an unknown format (length {span.Length}, version {(span.Length > 0 ? span[0] : -1)}).");
        }

        return new WalEntry(
            position,
            nextPosition,
            BinaryPrimitives.ReadInt64BigEndian(span[1..]),
            BinaryPrimitives.ReadInt64BigEndian(span[9..]),
            BinaryPrimitives.ReadInt32BigEndian(span[17..]),
            entry[HeaderSize..]);
    }
}

/// <summary>Serializes header and batch straight into the log's page (no intermediate copy).</summary>
internal readonly struct WalEnqueueEntry(long streamId, long baseOffset, int recordCount, ReadOnlyMemory<byte> batch) : ILogEnqueueEntry
{
    public int SerializedLength => WalEntryFormat.HeaderSize + batch.Length;

    public void SerializeTo(Span<byte> dest)
    {
        WalEntryFormat.WriteHeader(dest, streamId, baseOffset, recordCount);
        batch.Span.CopyTo(dest[WalEntryFormat.HeaderSize..]);
    }
}
