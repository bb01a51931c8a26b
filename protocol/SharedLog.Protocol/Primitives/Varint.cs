namespace SharedLog.Protocol;

/// <summary>
/// Kafka's variable-length integers: unsigned LEB128 for lengths and tags, zig-zag for the signed
/// varint/varlong fields of records. Every decoder is bounded: at most 5 bytes for 32-bit values
/// and 10 bytes for 64-bit values, so hostile input can neither overflow nor loop.
/// </summary>
public static class Varint
{
    public const int MaxBytes32 = 5;
    public const int MaxBytes64 = 10;

    public static int SizeOfUnsigned(uint value)
    {
        // (bits needed + 6) / 7, with 0 taking one byte
        int bits = 32 - System.Numerics.BitOperations.LeadingZeroCount(value | 1);
        return (bits + 6) / 7;
    }

    public static int SizeOfUnsigned(ulong value)
    {
        int bits = 64 - System.Numerics.BitOperations.LeadingZeroCount(value | 1);
        return (bits + 6) / 7;
    }

    public static int SizeOfSigned(int value) => SizeOfUnsigned(ZigZag(value));

    public static int SizeOfSigned(long value) => SizeOfUnsigned(ZigZag(value));

    public static uint ZigZag(int value) => (uint)((value << 1) ^ (value >> 31));

    public static ulong ZigZag(long value) => (ulong)((value << 1) ^ (value >> 63));

    public static int UnZigZag(uint value) => (int)(value >> 1) ^ -(int)(value & 1);

    public static long UnZigZag(ulong value) => (long)(value >> 1) ^ -(long)(value & 1);

    /// <summary>Writes an unsigned varint; the destination must hold <see cref="SizeOfUnsigned(uint)"/> bytes.</summary>
    public static int WriteUnsigned(Span<byte> destination, uint value)
    {
        int i = 0;
        while (value >= 0x80)
        {
            destination[i++] = (byte)(value | 0x80);
            value >>= 7;
        }

        destination[i++] = (byte)value;
        return i;
    }

    public static int WriteUnsigned(Span<byte> destination, ulong value)
    {
        int i = 0;
        while (value >= 0x80)
        {
            destination[i++] = (byte)(value | 0x80);
            value >>= 7;
        }

        destination[i++] = (byte)value;
        return i;
    }

    public static int WriteSigned(Span<byte> destination, int value) => WriteUnsigned(destination, ZigZag(value));

    public static int WriteSigned(Span<byte> destination, long value) => WriteUnsigned(destination, ZigZag(value));

    /// <summary>
    /// Reads an unsigned 32-bit varint from the start of <paramref name="source"/>.
    /// Returns the number of bytes consumed, 0 if the input ends first, or throws when the
    /// encoding is longer than five bytes or overflows 32 bits.
    /// </summary>
    public static int TryReadUnsigned(ReadOnlySpan<byte> source, out uint value)
    {
        uint result = 0;
        int limit = Math.Min(source.Length, MaxBytes32);
        for (int i = 0; i < limit; i++)
        {
            uint b = source[i];
            if (i == MaxBytes32 - 1 && b > 0x0F)
            {
                throw new KafkaProtocolException("Varint is longer than 32 bits.");
            }

            result |= (b & 0x7F) << (7 * i);
            if (b < 0x80)
            {
                value = result;
                return i + 1;
            }
        }

        if (source.Length >= MaxBytes32)
        {
            throw new KafkaProtocolException("Varint is longer than 5 bytes.");
        }

        value = 0;
        return 0;
    }

    /// <summary>64-bit counterpart of <see cref="TryReadUnsigned(ReadOnlySpan{byte}, out uint)"/>.</summary>
    public static int TryReadUnsigned(ReadOnlySpan<byte> source, out ulong value)
    {
        ulong result = 0;
        int limit = Math.Min(source.Length, MaxBytes64);
        for (int i = 0; i < limit; i++)
        {
            ulong b = source[i];
            if (i == MaxBytes64 - 1 && b > 0x01)
            {
                throw new KafkaProtocolException("Varlong is longer than 64 bits.");
            }

            result |= (b & 0x7F) << (7 * i);
            if (b < 0x80)
            {
                value = result;
                return i + 1;
            }
        }

        if (source.Length >= MaxBytes64)
        {
            throw new KafkaProtocolException("Varlong is longer than 10 bytes.");
        }

        value = 0;
        return 0;
    }

    /// <summary>Reads a zig-zag varint, throwing when the input is truncated.</summary>
    public static int ReadSigned(ReadOnlySpan<byte> source, out int value)
    {
        int n = TryReadUnsigned(source, out uint raw);
        if (n == 0)
        {
            throw new KafkaProtocolException("Varint is truncated.");
        }

        value = UnZigZag(raw);
        return n;
    }

    /// <summary>Reads a zig-zag varlong, throwing when the input is truncated.</summary>
    public static int ReadSigned(ReadOnlySpan<byte> source, out long value)
    {
        int n = TryReadUnsigned(source, out ulong raw);
        if (n == 0)
        {
            throw new KafkaProtocolException("Varlong is truncated.");
        }

        value = UnZigZag(raw);
        return n;
    }
}
