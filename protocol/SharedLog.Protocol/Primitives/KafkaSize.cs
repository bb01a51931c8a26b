using System.Buffers;
using System.Text;

namespace SharedLog.Protocol;

/// <summary>Exact encoded sizes of Kafka primitive types, used to size frames before writing them.</summary>
public static class KafkaSize
{
    public const int Uuid = 16;

    public static int Length(int length, bool compact, bool wide) =>
        compact ? Varint.SizeOfUnsigned((uint)(length + 1)) : (wide ? 4 : 2);

    public static int NullableString(string? value, bool compact)
    {
        if (value is null)
        {
            return Length(-1, compact, wide: false);
        }

        int length = Encoding.UTF8.GetByteCount(value);
        return Length(length, compact, wide: false) + length;
    }

    public static int NullableBytes(int? length, bool compact) =>
        length is { } n ? Length(n, compact, wide: true) + n : Length(-1, compact, wide: true);

    public static int NullableRecords(ReadOnlySequence<byte>? value, bool compact) =>
        value is { } records ? Length((int)records.Length, compact, wide: true) + (int)records.Length : Length(-1, compact, wide: true);

    public static int ArrayLength(int count, bool compact) => Length(count, compact, wide: true);

    /// <summary>Size of one tagged field: tag, size prefix and the value itself.</summary>
    public static int TaggedField(int tag, int valueSize) =>
        Varint.SizeOfUnsigned((uint)tag) + Varint.SizeOfUnsigned((uint)valueSize) + valueSize;
}
