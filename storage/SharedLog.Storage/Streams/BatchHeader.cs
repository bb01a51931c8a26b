using System.Buffers.Binary;

namespace SharedLog.Storage.Streams;

/// <summary>
/// The few v2 record batch header fields the storage engine needs to store and find batches (it never
/// looks inside records). Field positions are Kafka's: base offset at 0, batch length at 8 (counting
/// from byte 12), last offset delta at 23, base timestamp at 27, max timestamp at 35.
/// </summary>
public static class BatchHeader
{
    public const int LogOverhead = 12;
    public const int Size = 61;

    public static long BaseOffset(ReadOnlySpan<byte> batch) => BinaryPrimitives.ReadInt64BigEndian(batch);

    public static int TotalSize(ReadOnlySpan<byte> batch) => LogOverhead + BinaryPrimitives.ReadInt32BigEndian(batch[8..]);

    public static int LastOffsetDelta(ReadOnlySpan<byte> batch) => BinaryPrimitives.ReadInt32BigEndian(batch[23..]);

    public static long MaxTimestamp(ReadOnlySpan<byte> batch) => BinaryPrimitives.ReadInt64BigEndian(batch[35..]);

    public static long FirstTimestamp(ReadOnlySpan<byte> batch) => BinaryPrimitives.ReadInt64BigEndian(batch[27..]);

    public static int RecordCount(ReadOnlySpan<byte> batch) => BinaryPrimitives.ReadInt32BigEndian(batch[57..]);

    /// <summary>Sets the base offset; the batch CRC does not cover it, so the batch stays valid.</summary>
    public static void SetBaseOffset(Span<byte> batch, long baseOffset) => BinaryPrimitives.WriteInt64BigEndian(batch, baseOffset);

    /// <summary>
    /// Splits concatenated batches (as stored in a block) and returns those ending after
    /// <paramref name="fromOffset"/>. Data that does not parse is storage corruption and throws.
    /// </summary>
    public static void Split(ReadOnlyMemory<byte> data, long fromOffset, List<ReadOnlyMemory<byte>> into)
    {
        int at = 0;
        while (at < data.Length)
        {
            ReadOnlySpan<byte> rest = data.Span[at..];
            if (rest.Length < Size)
            {
                throw new InvalidDataException($"Stored data ends with a partial batch header ({rest.Length} bytes).");
            }

            int size = TotalSize(rest);
            if (size < Size || size > rest.Length)
            {
                throw new InvalidDataException($"Stored batch at byte {at} claims {size} bytes; {rest.Length} remain.");
            }

            if (BaseOffset(rest) + LastOffsetDelta(rest) >= fromOffset)
            {
                into.Add(data.Slice(at, size));
            }

            at += size;
        }
    }
}
