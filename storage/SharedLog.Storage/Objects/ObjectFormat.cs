using System.Buffers.Binary;
using System.IO.Hashing;

namespace SharedLog.Storage.Objects;

/// <summary>
/// Kinds of data object. Values are written into objects: append only, never renumber (a test freezes them).
/// </summary>
public enum ObjectKind : byte
{
    /// <summary>Many streams' recent data, written by the uploader.</summary>
    StreamSet = 1,

    /// <summary>One stream's data, written by the compactor.</summary>
    Stream = 2,
}

/// <summary>One data block of an object: consecutive record batches of one stream, as produced.</summary>
public readonly record struct BlockIndexEntry(
    long StreamId,
    long StartOffset,
    long EndOffset,
    long FirstTimestamp,
    long MaxTimestamp,
    long Position,
    int Size,
    int RecordCount)
{
    public const int EncodedSize = 8 + 8 + 8 + 8 + 8 + 8 + 4 + 4;
}

/// <summary>
/// The object layout: <c>[data blocks][index][footer]</c>. The footer is fixed-size at the end, so a
/// reader fetches the tail, finds the index, then range-reads exactly the blocks it needs.
/// Footer: index position (int64), index length (int32), index CRC32C (uint32), format version (int16),
/// kind (int8), reserved (int8), magic (8 bytes). All integers big-endian.
/// </summary>
public static class ObjectFormat
{
    public const short FormatVersion = 1;
    public const int FooterSize = 8 + 4 + 4 + 2 + 1 + 1 + 8;

    /// <summary>"SLOGOBJ1" in ASCII.</summary>
    public const ulong Magic = 0x534C4F474F424A31;

    public static int IndexSize(int blockCount) => 4 + blockCount * BlockIndexEntry.EncodedSize;

    public static void WriteIndex(Span<byte> destination, IReadOnlyList<BlockIndexEntry> blocks)
    {
        BinaryPrimitives.WriteInt32BigEndian(destination, blocks.Count);
        int at = 4;
        foreach (BlockIndexEntry block in blocks)
        {
            Span<byte> d = destination.Slice(at, BlockIndexEntry.EncodedSize);
            BinaryPrimitives.WriteInt64BigEndian(d, block.StreamId);
            BinaryPrimitives.WriteInt64BigEndian(d[8..], block.StartOffset);
            BinaryPrimitives.WriteInt64BigEndian(d[16..], block.EndOffset);
            BinaryPrimitives.WriteInt64BigEndian(d[24..], block.FirstTimestamp);
            BinaryPrimitives.WriteInt64BigEndian(d[32..], block.MaxTimestamp);
            BinaryPrimitives.WriteInt64BigEndian(d[40..], block.Position);
            BinaryPrimitives.WriteInt32BigEndian(d[48..], block.Size);
            BinaryPrimitives.WriteInt32BigEndian(d[52..], block.RecordCount);
            at += BlockIndexEntry.EncodedSize;
        }
    }

    public static void WriteFooter(Span<byte> destination, long indexPosition, ReadOnlySpan<byte> index, ObjectKind kind)
    {
        BinaryPrimitives.WriteInt64BigEndian(destination, indexPosition);
        BinaryPrimitives.WriteInt32BigEndian(destination[8..], index.Length);
        BinaryPrimitives.WriteUInt32BigEndian(destination[12..], Crc32C(index));
        BinaryPrimitives.WriteInt16BigEndian(destination[16..], FormatVersion);
        destination[18] = (byte)kind;
        destination[19] = 0;
        BinaryPrimitives.WriteUInt64BigEndian(destination[20..], Magic);
    }

    /// <summary>Reads the footer of an object of <paramref name="objectSize"/> bytes.</summary>
    public static ObjectFooter ReadFooter(ReadOnlySpan<byte> footer, long objectSize)
    {
        if (footer.Length != FooterSize)
        {
            throw new InvalidDataException($"Object footer must be {FooterSize} bytes, got {footer.Length}.");
        }

        if (BinaryPrimitives.ReadUInt64BigEndian(footer[20..]) != Magic)
        {
            throw new InvalidDataException("Object footer has the wrong magic number: not a SharedLog data object.");
        }

        short version = BinaryPrimitives.ReadInt16BigEndian(footer[16..]);
        if (version != FormatVersion)
        {
            throw new InvalidDataException($"Object format version {version} is not supported (this build reads {FormatVersion}).");
        }

        long indexPosition = BinaryPrimitives.ReadInt64BigEndian(footer);
        int indexLength = BinaryPrimitives.ReadInt32BigEndian(footer[8..]);
        if (indexPosition < 0 || indexLength < 4 || indexPosition + indexLength != objectSize - FooterSize)
        {
            throw new InvalidDataException($"Object index at {indexPosition} (+{indexLength}) does not end at the footer of a {objectSize}-byte object.");
        }

        var kind = (ObjectKind)footer[18];
        if (kind is not (ObjectKind.StreamSet or ObjectKind.Stream))
        {
            throw new InvalidDataException($"Unknown object kind {footer[18]}.");
        }

        return new ObjectFooter(indexPosition, indexLength, BinaryPrimitives.ReadUInt32BigEndian(footer[12..]), kind);
    }

    /// <summary>Parses and checks the index that <paramref name="footer"/> points to.</summary>
    public static IReadOnlyList<BlockIndexEntry> ReadIndex(ReadOnlySpan<byte> index, ObjectFooter footer)
    {
        if (index.Length != footer.IndexLength || Crc32C(index) != footer.IndexCrc)
        {
            throw new InvalidDataException("Object index is corrupt (length or CRC32C mismatch).");
        }

        int count = BinaryPrimitives.ReadInt32BigEndian(index);
        if (count < 0 || IndexSize(count) != index.Length)
        {
            throw new InvalidDataException($"Object index claims {count} blocks but holds {index.Length} bytes.");
        }

        var blocks = new BlockIndexEntry[count];
        int at = 4;
        for (int i = 0; i < count; i++)
        {
            ReadOnlySpan<byte> s = index.Slice(at, BlockIndexEntry.EncodedSize);
            blocks[i] = new BlockIndexEntry(
                BinaryPrimitives.ReadInt64BigEndian(s),
                BinaryPrimitives.ReadInt64BigEndian(s[8..]),
                BinaryPrimitives.ReadInt64BigEndian(s[16..]),
                BinaryPrimitives.ReadInt64BigEndian(s[24..]),
                BinaryPrimitives.ReadInt64BigEndian(s[32..]),
                BinaryPrimitives.ReadInt64BigEndian(s[40..]),
                BinaryPrimitives.ReadInt32BigEndian(s[48..]),
                BinaryPrimitives.ReadInt32BigEndian(s[52..]));
            if (blocks[i].Position < 0 || blocks[i].Size < 0 || blocks[i].Position + blocks[i].Size > footer.IndexPosition || blocks[i].EndOffset <= blocks[i].StartOffset)
            {
                throw new InvalidDataException($"Object index entry {i} points outside the data section or has an empty offset range.");
            }

            at += BlockIndexEntry.EncodedSize;
        }

        return blocks;
    }

    private static uint Crc32C(ReadOnlySpan<byte> data) => Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, data);
}

public readonly record struct ObjectFooter(long IndexPosition, int IndexLength, uint IndexCrc, ObjectKind Kind);
