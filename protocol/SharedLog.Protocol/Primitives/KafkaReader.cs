using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Text;

namespace SharedLog.Protocol;

/// <summary>
/// Reads Kafka primitive types from a <see cref="ReadOnlySequence{T}"/>. Every length and count is
/// checked against the bytes that remain before anything is allocated, so a hostile frame costs at
/// most its own size. <c>records</c> fields come back as slices of the input, never copies.
/// </summary>
public ref struct KafkaReader
{
    private SequenceReader<byte> _reader;

    public KafkaReader(ReadOnlySequence<byte> input)
    {
        _reader = new SequenceReader<byte>(input);
    }

    public KafkaReader(ReadOnlyMemory<byte> input)
        : this(new ReadOnlySequence<byte>(input))
    {
    }

    public readonly long Remaining => _reader.Remaining;

    public readonly long Consumed => _reader.Consumed;

    public readonly bool End => _reader.End;

    public sbyte ReadInt8()
    {
        if (!_reader.TryRead(out byte value))
        {
            throw Truncated("int8");
        }

        return (sbyte)value;
    }

    public bool ReadBool() => ReadInt8() != 0;

    public short ReadInt16()
    {
        if (!_reader.TryReadBigEndian(out short value))
        {
            throw Truncated("int16");
        }

        return value;
    }

    public ushort ReadUInt16() => (ushort)ReadInt16();

    public int ReadInt32()
    {
        if (!_reader.TryReadBigEndian(out int value))
        {
            throw Truncated("int32");
        }

        return value;
    }

    public uint ReadUInt32() => (uint)ReadInt32();

    public long ReadInt64()
    {
        if (!_reader.TryReadBigEndian(out long value))
        {
            throw Truncated("int64");
        }

        return value;
    }

    public double ReadFloat64() => BitConverter.Int64BitsToDouble(ReadInt64());

    public Guid ReadUuid()
    {
        Span<byte> bytes = stackalloc byte[16];
        if (!_reader.TryCopyTo(bytes))
        {
            throw Truncated("uuid");
        }

        _reader.Advance(16);
        return new Guid(bytes, bigEndian: true);
    }

    public uint ReadUnsignedVarInt()
    {
        ReadOnlySpan<byte> span = _reader.UnreadSpan;
        int n;
        uint value;
        if (span.Length >= Varint.MaxBytes32)
        {
            n = Varint.TryReadUnsigned(span, out value);
        }
        else
        {
            Span<byte> copy = stackalloc byte[Varint.MaxBytes32];
            int available = (int)Math.Min(_reader.Remaining, Varint.MaxBytes32);
            _reader.TryCopyTo(copy[..available]);
            n = Varint.TryReadUnsigned(copy[..available], out value);
        }

        if (n == 0)
        {
            throw Truncated("varint");
        }

        _reader.Advance(n);
        return value;
    }

    public int ReadVarInt() => Varint.UnZigZag(ReadUnsignedVarInt());

    public long ReadVarLong()
    {
        ReadOnlySpan<byte> span = _reader.UnreadSpan;
        int n;
        ulong value;
        if (span.Length >= Varint.MaxBytes64)
        {
            n = Varint.TryReadUnsigned(span, out value);
        }
        else
        {
            Span<byte> copy = stackalloc byte[Varint.MaxBytes64];
            int available = (int)Math.Min(_reader.Remaining, Varint.MaxBytes64);
            _reader.TryCopyTo(copy[..available]);
            n = Varint.TryReadUnsigned(copy[..available], out value);
        }

        if (n == 0)
        {
            throw Truncated("varlong");
        }

        _reader.Advance(n);
        return Varint.UnZigZag(value);
    }

    /// <summary>Reads a length prefix: int16/int32 (classic) or unsigned varint minus one (compact). -1 means null.</summary>
    private int ReadLength(bool compact, bool wide)
    {
        if (compact)
        {
            uint raw = ReadUnsignedVarInt();
            return raw > int.MaxValue ? throw new KafkaProtocolException($"Compact length {raw} is out of range.") : (int)raw - 1;
        }

        return wide ? ReadInt32() : ReadInt16();
    }

    private readonly void CheckLength(int length, string what)
    {
        if (length < -1)
        {
            throw new KafkaProtocolException($"Negative {what} length {length}.");
        }

        if (length > _reader.Remaining)
        {
            throw new KafkaProtocolException($"{what} length {length} exceeds the {_reader.Remaining} bytes that remain.");
        }
    }

    public string? ReadNullableString(bool compact)
    {
        int length = ReadLength(compact, wide: false);
        CheckLength(length, "string");
        if (length < 0)
        {
            return null;
        }

        return ReadUtf8(length);
    }

    public string ReadString(bool compact) =>
        ReadNullableString(compact) ?? throw new KafkaProtocolException("Null value for a non-nullable string.");

    private string ReadUtf8(int length)
    {
        if (length == 0)
        {
            return string.Empty;
        }

        ReadOnlySpan<byte> span = _reader.UnreadSpan;
        string value;
        if (span.Length >= length)
        {
            value = Encoding.UTF8.GetString(span[..length]);
        }
        else
        {
            value = Encoding.UTF8.GetString(_reader.UnreadSequence.Slice(0, length));
        }

        _reader.Advance(length);
        return value;
    }

    public byte[]? ReadNullableBytes(bool compact)
    {
        int length = ReadLength(compact, wide: true);
        CheckLength(length, "bytes");
        if (length < 0)
        {
            return null;
        }

        byte[] value = length == 0 ? [] : new byte[length];
        _reader.TryCopyTo(value);
        _reader.Advance(length);
        return value;
    }

    public byte[] ReadBytes(bool compact) =>
        ReadNullableBytes(compact) ?? throw new KafkaProtocolException("Null value for non-nullable bytes.");

    /// <summary>Reads a <c>records</c> field as a slice of the input (no copy).</summary>
    public ReadOnlySequence<byte>? ReadNullableRecords(bool compact)
    {
        int length = ReadLength(compact, wide: true);
        CheckLength(length, "records");
        if (length < 0)
        {
            return null;
        }

        ReadOnlySequence<byte> slice = _reader.UnreadSequence.Slice(0, length);
        _reader.Advance(length);
        return slice;
    }

    public ReadOnlySequence<byte> ReadRecords(bool compact) =>
        ReadNullableRecords(compact) ?? throw new KafkaProtocolException("Null value for non-nullable records.");

    /// <summary>
    /// Reads an array count. Each element takes at least <paramref name="minElementSize"/> bytes, so a
    /// count larger than the remaining input allows is rejected before any list is allocated.
    /// </summary>
    public int ReadArrayLength(bool compact, int minElementSize = 1)
    {
        int count = ReadLength(compact, wide: true);
        if (count < -1)
        {
            throw new KafkaProtocolException($"Negative array length {count}.");
        }

        if (count > 0 && (long)count * Math.Max(minElementSize, 1) > _reader.Remaining)
        {
            throw new KafkaProtocolException($"Array of {count} elements cannot fit in the {_reader.Remaining} bytes that remain.");
        }

        return count;
    }

    /// <summary>Copies the next <paramref name="length"/> bytes out (used for unknown tagged fields).</summary>
    public byte[] ReadRaw(int length)
    {
        CheckLength(length, "field");
        byte[] value = length == 0 ? [] : new byte[length];
        _reader.TryCopyTo(value);
        _reader.Advance(length);
        return value;
    }

    /// <summary>Returns the next <paramref name="length"/> bytes as a slice and skips them.</summary>
    public ReadOnlySequence<byte> ReadSlice(int length)
    {
        CheckLength(length, "field");
        ReadOnlySequence<byte> slice = _reader.UnreadSequence.Slice(0, length);
        _reader.Advance(length);
        return slice;
    }

    public void Skip(int length)
    {
        CheckLength(length, "field");
        _reader.Advance(length);
    }

    /// <summary>Reads the tagged-field count that opens a flexible struct's tag section.</summary>
    public int ReadTaggedFieldCount()
    {
        uint count = ReadUnsignedVarInt();
        if (count > _reader.Remaining / 2)
        {
            throw new KafkaProtocolException($"{count} tagged fields cannot fit in the {_reader.Remaining} bytes that remain.");
        }

        return (int)count;
    }

    /// <summary>Reads a tagged field's tag number.</summary>
    public int ReadTag()
    {
        uint tag = ReadUnsignedVarInt();
        return tag > int.MaxValue ? throw new KafkaProtocolException($"Tag {tag} is out of range.") : (int)tag;
    }

    /// <summary>Reads one tagged field's size and checks it fits.</summary>
    public int ReadTaggedFieldSize()
    {
        uint size = ReadUnsignedVarInt();
        if (size > _reader.Remaining)
        {
            throw new KafkaProtocolException($"Tagged field of {size} bytes exceeds the {_reader.Remaining} bytes that remain.");
        }

        return (int)size;
    }

    /// <summary>Confirms a tagged field's decoder consumed exactly the bytes its size announced.</summary>
    public readonly void CheckTaggedFieldEnd(long expectedConsumed, int tag)
    {
        if (_reader.Consumed != expectedConsumed)
        {
            throw new KafkaProtocolException($"Tagged field {tag} did not match its declared size.");
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private readonly KafkaProtocolException Truncated(string what) =>
        new($"Input ended while reading {what} at byte {_reader.Consumed}.");
}
