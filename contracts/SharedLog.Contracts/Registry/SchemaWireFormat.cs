using System.Buffers.Binary;

namespace SharedLog.Contracts.Registry;

/// <summary>
/// The framing Confluent serializers put before a serialized key or value: magic byte 0, the schema id
/// as a 4-byte big-endian integer, and for Protobuf the path of message indexes that names the message
/// within its .proto file (a zig-zag varint count, then that many zig-zag varint indexes; the common
/// path [0] is written as the single count 0). Readers never trust the input: every length is checked.
/// </summary>
public static class SchemaWireFormat
{
    public const byte MagicByte = 0;

    /// <summary>Magic byte plus schema id.</summary>
    public const int HeaderSize = 5;

    /// <summary>Deepest message-index path accepted (message nesting is bounded the same way).</summary>
    public const int MaxMessageIndexes = SchemaLimits.MaxDepth;

    private const int MaxVarintBytes = 5;

    /// <summary>Reads the header; false when the payload is shorter than 5 bytes or does not start with magic byte 0.</summary>
    public static bool TryReadSchemaId(ReadOnlySpan<byte> payload, out int schemaId)
    {
        if (payload.Length < HeaderSize || payload[0] != MagicByte)
        {
            schemaId = 0;
            return false;
        }

        schemaId = BinaryPrimitives.ReadInt32BigEndian(payload[1..]);
        return true;
    }

    public static void WriteHeader(Span<byte> destination, int schemaId)
    {
        destination[0] = MagicByte;
        BinaryPrimitives.WriteInt32BigEndian(destination[1..], schemaId);
    }

    /// <summary>
    /// Reads the Protobuf message-index path that follows the header into <paramref name="indexes"/>
    /// (at least <see cref="MaxMessageIndexes"/> long). Returns false on truncated input, malformed or
    /// negative varints, or a path longer than the buffer.
    /// </summary>
    public static bool TryReadMessageIndexes(ReadOnlySpan<byte> afterHeader, Span<int> indexes, out int count, out int bytesRead)
    {
        count = 0;
        bytesRead = 0;
        if (!TryReadZigZag(afterHeader, ref bytesRead, out int declared) || declared < 0 || declared > Math.Min(indexes.Length, MaxMessageIndexes))
        {
            return false;
        }

        if (declared == 0)
        {
            if (indexes.Length == 0)
            {
                return false;
            }

            indexes[0] = 0;
            count = 1;
            return true;
        }

        for (int i = 0; i < declared; i++)
        {
            if (!TryReadZigZag(afterHeader, ref bytesRead, out int index) || index < 0)
            {
                return false;
            }

            indexes[i] = index;
        }

        count = declared;
        return true;
    }

    /// <summary>Bytes <see cref="WriteMessageIndexes"/> needs for a path.</summary>
    public static int MessageIndexesSize(ReadOnlySpan<int> indexes)
    {
        if (indexes is [0])
        {
            return 1;
        }

        int size = ZigZagSize(indexes.Length);
        foreach (int index in indexes)
        {
            size += ZigZagSize(index);
        }

        return size;
    }

    /// <summary>Writes a message-index path; returns the bytes written.</summary>
    public static int WriteMessageIndexes(Span<byte> destination, ReadOnlySpan<int> indexes)
    {
        int written = 0;
        if (indexes is [0])
        {
            destination[written++] = 0;
            return written;
        }

        WriteZigZag(destination, ref written, indexes.Length);
        foreach (int index in indexes)
        {
            WriteZigZag(destination, ref written, index);
        }

        return written;
    }

    private static bool TryReadZigZag(ReadOnlySpan<byte> source, ref int position, out int value)
    {
        uint raw = 0;
        for (int shift = 0, i = 0; i < MaxVarintBytes; i++, shift += 7)
        {
            if (position >= source.Length)
            {
                break;
            }

            byte b = source[position++];
            if (i == MaxVarintBytes - 1 && b > 0x0F)
            {
                break; // more than 32 bits
            }

            raw |= (uint)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                value = (int)(raw >> 1) ^ -(int)(raw & 1);
                return true;
            }
        }

        value = 0;
        return false;
    }

    private static void WriteZigZag(Span<byte> destination, ref int position, int value)
    {
        uint raw = (uint)((value << 1) ^ (value >> 31));
        while (raw >= 0x80)
        {
            destination[position++] = (byte)(raw | 0x80);
            raw >>= 7;
        }

        destination[position++] = (byte)raw;
    }

    private static int ZigZagSize(int value)
    {
        uint raw = (uint)((value << 1) ^ (value >> 31));
        int size = 1;
        while (raw >= 0x80)
        {
            raw >>= 7;
            size++;
        }

        return size;
    }
}
