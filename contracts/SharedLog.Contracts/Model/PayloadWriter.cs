using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace SharedLog.Contracts.Model;

/// <summary>A growable byte buffer with the varint and fixed-width writes the binary codecs share.</summary>
internal sealed class PayloadWriter(int initialCapacity = 256)
{
    // A buffer grown past this by one huge payload is not kept for the thread's next one.
    private const int MaxRetainedBytes = 1024 * 1024;

    [ThreadStatic]
    private static PayloadWriter? _threadWriter;

    private byte[] _buffer = new byte[Math.Max(16, initialCapacity)];

    /// <summary>
    /// The calling thread's writer, emptied and starting with <paramref name="prefix"/>: encoders reuse
    /// one buffer per thread and copy out only the finished payload (<see cref="ToArray"/>).
    /// </summary>
    public static PayloadWriter ForThread(ReadOnlySpan<byte> prefix)
    {
        PayloadWriter writer = _threadWriter is { } cached && cached._buffer.Length <= MaxRetainedBytes
            ? cached
            : _threadWriter = new PayloadWriter(2048);
        writer.Length = 0;
        writer.WriteBytes(prefix);
        return writer;
    }

    public int Length { get; private set; }

    public void WriteByte(byte value)
    {
        Ensure(1);
        _buffer[Length++] = value;
    }

    public void WriteBytes(ReadOnlySpan<byte> bytes)
    {
        Ensure(bytes.Length);
        bytes.CopyTo(_buffer.AsSpan(Length));
        Length += bytes.Length;
    }

    public void WriteVarint(ulong value)
    {
        Ensure(10);
        while (value >= 0x80)
        {
            _buffer[Length++] = (byte)(value | 0x80);
            value >>= 7;
        }

        _buffer[Length++] = (byte)value;
    }

    public void WriteZigZag(long value) => WriteVarint((ulong)((value << 1) ^ (value >> 63)));

    public void WriteUInt32LittleEndian(uint value)
    {
        Ensure(4);
        BinaryPrimitives.WriteUInt32LittleEndian(_buffer.AsSpan(Length), value);
        Length += 4;
    }

    public void WriteUInt64LittleEndian(ulong value)
    {
        Ensure(8);
        BinaryPrimitives.WriteUInt64LittleEndian(_buffer.AsSpan(Length), value);
        Length += 8;
    }

    /// <summary>Writes the UTF-8 bytes of a string (no length).</summary>
    public void WriteUtf8(string value)
    {
        Ensure(Encoding.UTF8.GetMaxByteCount(value.Length));
        Length += Encoding.UTF8.GetBytes(value, _buffer.AsSpan(Length));
    }

    /// <summary>
    /// Inserts the varint length of everything written since <paramref name="start"/> in front of it, for
    /// length-delimited content whose size is only known once written (nested messages, packed fields).
    /// </summary>
    public void InsertLengthPrefix(int start)
    {
        var contentLength = Length - start;
        var prefixLength = VarintSize((ulong)contentLength);
        Ensure(prefixLength);
        Buffer.BlockCopy(_buffer, start, _buffer, start + prefixLength, contentLength);
        var value = (ulong)contentLength;
        var position = start;
        while (value >= 0x80)
        {
            _buffer[position++] = (byte)(value | 0x80);
            value >>= 7;
        }

        _buffer[position] = (byte)value;
        Length += prefixLength;
    }

    public byte[] ToArray()
    {
        byte[] bytes = _buffer.AsSpan(0, Length).ToArray();
        ForgetHugeBuffer();
        return bytes;
    }

    /// <summary>Writes the finished payload to <paramref name="output"/> instead of a new array.</summary>
    public void CopyTo(IBufferWriter<byte> output)
    {
        output.Write(_buffer.AsSpan(0, Length));
        ForgetHugeBuffer();
    }

    private void ForgetHugeBuffer()
    {
        if (_buffer.Length > MaxRetainedBytes && ReferenceEquals(_threadWriter, this))
        {
            // Do not keep a huge record's buffer alive on this thread until its next encode.
            _threadWriter = null;
        }
    }

    public ReadOnlySpan<byte> WrittenSpan => _buffer.AsSpan(0, Length);

    public static int VarintSize(ulong value)
    {
        var size = 1;
        while (value >= 0x80)
        {
            value >>= 7;
            size++;
        }

        return size;
    }

    private void Ensure(int extra)
    {
        if (_buffer.Length - Length >= extra)
        {
            return;
        }

        var wanted = (long)Length + extra;
        var size = Math.Max(wanted, (long)_buffer.Length * 2);
        if (size > Array.MaxLength)
        {
            size = wanted <= Array.MaxLength ? Array.MaxLength : throw new PayloadDecodeException("encoded payload is too large");
        }

        Array.Resize(ref _buffer, (int)size);
    }
}

/// <summary>Lenient reads of object-graph values for encoders: a policy may put any CLR number where a number was.</summary>
internal static class PayloadValues
{
    public static bool TryGetInt64(object? value, out long result)
    {
        switch (value)
        {
            case long l:
                result = l;
                return true;
            case int i:
                result = i;
                return true;
            case short s:
                result = s;
                return true;
            case sbyte sb:
                result = sb;
                return true;
            case byte b:
                result = b;
                return true;
            case ushort us:
                result = us;
                return true;
            case uint ui:
                result = ui;
                return true;
            case ulong ul when ul <= long.MaxValue:
                result = (long)ul;
                return true;
            case double d when double.IsFinite(d) && Math.Floor(d) == d && d >= long.MinValue && d < 9.2233720368547758E18:
                result = (long)d;
                return true;
            default:
                result = 0;
                return false;
        }
    }

    public static bool TryGetUInt64(object? value, out ulong result)
    {
        if (value is ulong ul)
        {
            result = ul;
            return true;
        }

        if (value is double d && double.IsFinite(d) && Math.Floor(d) == d && d >= 0 && d < 1.8446744073709552E19)
        {
            result = (ulong)d;
            return true;
        }

        if (TryGetInt64(value, out var l) && l >= 0)
        {
            result = (ulong)l;
            return true;
        }

        result = 0;
        return false;
    }

    /// <summary>
    /// A 32-bit float's bits as a double, with a NaN's sign and payload kept bit for bit. The hardware widening sets a
    /// signalling NaN's quiet bit, so a record written again changed a float no rule or policy touched.
    /// </summary>
    public static double WidenFloat(uint bits)
    {
        const uint exponent = 0x7F800000, mantissa = 0x007FFFFF;
        if ((bits & exponent) == exponent && (bits & mantissa) != 0)
        {
            ulong sign = (ulong)(bits >> 31) << 63;
            return BitConverter.UInt64BitsToDouble(sign | 0x7FF0000000000000UL | ((ulong)(bits & mantissa) << 29));
        }

        return BitConverter.UInt32BitsToSingle(bits);
    }

    /// <summary>The float bits of a double (rounded), a NaN's sign and payload kept as <see cref="WidenFloat"/> placed them.</summary>
    public static uint NarrowToFloatBits(double value)
    {
        if (!double.IsNaN(value))
        {
            return BitConverter.SingleToUInt32Bits((float)value);
        }

        ulong bits = BitConverter.DoubleToUInt64Bits(value);
        uint payload = (uint)(bits >> 29) & 0x007FFFFF;
        // A double NaN whose payload lies below a float's would read as infinity: it becomes the quiet NaN.
        return ((uint)(bits >> 63) << 31) | 0x7F800000 | (payload == 0 ? 0x00400000 : payload);
    }

    public static bool TryGetDouble(object? value, out double result)
    {
        switch (value)
        {
            case double d:
                result = d;
                return true;
            case float f:
                result = f;
                return true;
            case decimal m:
                result = (double)m;
                return true;
            case ulong ul:
                result = ul;
                return true;
            default:
                if (TryGetInt64(value, out var l))
                {
                    result = l;
                    return true;
                }

                result = 0;
                return false;
        }
    }

    /// <summary>A short name of a value's kind for error messages (never the value itself: it may be private).</summary>
    public static string KindOf(object? value) => value switch
    {
        null => "null",
        string or Utf8Text or UuidText => "string",
        bool => "boolean",
        long or int or short or sbyte or byte or ushort or uint or ulong => "integer",
        double or float or decimal => "number",
        byte[] => "bytes",
        IDictionary<string, object?> => "object",
        IList<object?> => "list",
        DateTimeOffset or NanoTimestamp => "timestamp",
        TimeSpan or NanoDuration => "duration",
        _ => "value of another kind",
    };

    public static string Invariant(long value) => value.ToString(CultureInfo.InvariantCulture);
}
