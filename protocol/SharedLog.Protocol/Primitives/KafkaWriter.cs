using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace SharedLog.Protocol;

/// <summary>
/// Writes Kafka primitive types to an <see cref="IBufferWriter{T}"/>. It fills the span it was given
/// and only asks the output for more when that runs out; call <see cref="Flush"/> when done.
/// </summary>
public ref struct KafkaWriter
{
    private const int MinimumBuffer = 512;

    private readonly IBufferWriter<byte> _output;
    private Span<byte> _span;
    private int _position;
    private long _committed;

    public KafkaWriter(IBufferWriter<byte> output)
    {
        _output = output;
        _span = default;
        _position = 0;
        _committed = 0;
    }

    /// <summary>Bytes written so far, flushed or not.</summary>
    public readonly long Written => _committed + _position;

    public void Flush()
    {
        if (_position > 0)
        {
            _output.Advance(_position);
            _committed += _position;
            _position = 0;
        }

        _span = default;
    }

    private Span<byte> Reserve(int size)
    {
        if (_span.Length - _position < size)
        {
            Grow(size);
        }

        return _span.Slice(_position, size);
    }

    private void Grow(int size)
    {
        Flush();
        _span = _output.GetSpan(Math.Max(size, MinimumBuffer));
    }

    public void WriteInt8(sbyte value)
    {
        Reserve(1)[0] = (byte)value;
        _position += 1;
    }

    public void WriteBool(bool value) => WriteInt8(value ? (sbyte)1 : (sbyte)0);

    public void WriteInt16(short value)
    {
        BinaryPrimitives.WriteInt16BigEndian(Reserve(2), value);
        _position += 2;
    }

    public void WriteUInt16(ushort value) => WriteInt16((short)value);

    public void WriteInt32(int value)
    {
        BinaryPrimitives.WriteInt32BigEndian(Reserve(4), value);
        _position += 4;
    }

    public void WriteUInt32(uint value) => WriteInt32((int)value);

    public void WriteInt64(long value)
    {
        BinaryPrimitives.WriteInt64BigEndian(Reserve(8), value);
        _position += 8;
    }

    public void WriteFloat64(double value) => WriteInt64(BitConverter.DoubleToInt64Bits(value));

    public void WriteUuid(Guid value)
    {
        value.TryWriteBytes(Reserve(16), bigEndian: true, out _);
        _position += 16;
    }

    public void WriteUnsignedVarInt(uint value)
    {
        // Reserve may flush and reset _position, so it must run before _position is read.
        int written = Varint.WriteUnsigned(Reserve(Varint.MaxBytes32), value);
        _position += written;
    }

    public void WriteVarInt(int value) => WriteUnsignedVarInt(Varint.ZigZag(value));

    public void WriteVarLong(long value)
    {
        int written = Varint.WriteUnsigned(Reserve(Varint.MaxBytes64), Varint.ZigZag(value));
        _position += written;
    }

    private void WriteLength(int length, bool compact, bool wide)
    {
        if (compact)
        {
            WriteUnsignedVarInt((uint)(length + 1));
        }
        else if (wide)
        {
            WriteInt32(length);
        }
        else
        {
            if (length > short.MaxValue)
            {
                throw new KafkaProtocolException($"String of {length} bytes is longer than int16 allows.");
            }

            WriteInt16((short)length);
        }
    }

    public void WriteNullableString(string? value, bool compact)
    {
        if (value is null)
        {
            WriteLength(-1, compact, wide: false);
            return;
        }

        int length = Encoding.UTF8.GetByteCount(value);
        WriteLength(length, compact, wide: false);
        if (length > 0)
        {
            Encoding.UTF8.GetBytes(value, Reserve(length));
            _position += length;
        }
    }

    public void WriteString(string? value, bool compact) =>
        WriteNullableString(value ?? throw new KafkaProtocolException("Null value for a non-nullable string."), compact);

    public void WriteNullableBytes(byte[]? value, bool compact)
    {
        if (value is null)
        {
            WriteLength(-1, compact, wide: true);
            return;
        }

        WriteLength(value.Length, compact, wide: true);
        WriteRaw(value);
    }

    public void WriteNullableRecords(ReadOnlySequence<byte>? value, bool compact)
    {
        if (value is not { } records)
        {
            WriteLength(-1, compact, wide: true);
            return;
        }

        if (records.Length > int.MaxValue - 1)
        {
            throw new KafkaProtocolException("Records are larger than a Kafka frame allows.");
        }

        WriteLength((int)records.Length, compact, wide: true);
        if (_output is IReferencingBufferWriter referencing && records.Length >= ReferencedRecordsMinBytes)
        {
            // The output sends these bytes from where they are: a fetch's batches are not copied into it.
            Flush();
            referencing.AppendReferenced(records);
            _committed += records.Length;
            return;
        }

        foreach (ReadOnlyMemory<byte> segment in records)
        {
            WriteRaw(segment.Span);
        }
    }

    /// <summary>Record sets smaller than this are copied even into an <see cref="IReferencingBufferWriter"/>: a copy costs less than a send buffer of their own.</summary>
    public const int ReferencedRecordsMinBytes = 4096;

    public void WriteArrayLength(int count, bool compact) => WriteLength(count, compact, wide: true);

    /// <summary>Copies bytes as they are, in chunks when they exceed the current buffer.</summary>
    public void WriteRaw(ReadOnlySpan<byte> value)
    {
        while (!value.IsEmpty)
        {
            if (_span.Length == _position)
            {
                Grow(Math.Min(value.Length, 64 * 1024));
            }

            int chunk = Math.Min(value.Length, _span.Length - _position);
            value[..chunk].CopyTo(_span[_position..]);
            _position += chunk;
            value = value[chunk..];
        }
    }
}

/// <summary>
/// An output that can take bytes by reference, to send them from where they are instead of copying them in (the
/// record batches of a fetch response). The referenced memory must stay unchanged until the output has sent it.
/// </summary>
public interface IReferencingBufferWriter : IBufferWriter<byte>
{
    void AppendReferenced(ReadOnlySequence<byte> data);
}
