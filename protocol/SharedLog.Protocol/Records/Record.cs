using System.Text;

namespace SharedLog.Protocol.Records;

/// <summary>The records of one batch, uncompressed; enumerate them without allocating.</summary>
public readonly struct RecordSet(ReadOnlyMemory<byte> records, int count, long baseOffset, long baseTimestamp)
{
    public int Count => count;

    public ReadOnlyMemory<byte> Bytes => records;

    public RecordEnumerator GetEnumerator() => new(records.Span, count, baseOffset, baseTimestamp);
}

/// <summary>
/// Walks the records of a batch. Every length and varint is checked against the record's own
/// declared length; the count must match the bytes exactly.
/// </summary>
public ref struct RecordEnumerator
{
    private readonly long _baseOffset;
    private readonly long _baseTimestamp;
    private ReadOnlySpan<byte> _remaining;
    private int _left;

    internal RecordEnumerator(ReadOnlySpan<byte> records, int count, long baseOffset, long baseTimestamp)
    {
        _remaining = records;
        _left = count;
        _baseOffset = baseOffset;
        _baseTimestamp = baseTimestamp;
        Current = default;
    }

    public Record Current { get; private set; }

    public bool MoveNext()
    {
        if (_left == 0)
        {
            if (!_remaining.IsEmpty)
            {
                throw new KafkaProtocolException($"{_remaining.Length} bytes follow the last record the batch declares.");
            }

            return false;
        }

        int n = Varint.ReadSigned(_remaining, out int length);
        if (length < 0 || length > _remaining.Length - n)
        {
            throw new KafkaProtocolException($"Record length {length} exceeds the {_remaining.Length - n} bytes that remain.");
        }

        ReadOnlySpan<byte> body = _remaining.Slice(n, length);
        _remaining = _remaining[(n + length)..];
        _left--;
        Current = Record.Parse(body, _baseOffset, _baseTimestamp);
        return true;
    }
}

/// <summary>One record: a view into its batch (or into the decompressed records).</summary>
public readonly ref struct Record
{
    private Record(sbyte attributes, long offset, long timestamp, ReadOnlySpan<byte> key, bool keyIsNull, ReadOnlySpan<byte> value, bool valueIsNull, ReadOnlySpan<byte> headers, int headerCount)
    {
        Attributes = attributes;
        Offset = offset;
        Timestamp = timestamp;
        Key = key;
        KeyIsNull = keyIsNull;
        Value = value;
        ValueIsNull = valueIsNull;
        HeaderBytes = headers;
        HeaderCount = headerCount;
    }

    public sbyte Attributes { get; }

    public long Offset { get; }

    public long Timestamp { get; }

    public ReadOnlySpan<byte> Key { get; }

    public bool KeyIsNull { get; }

    public ReadOnlySpan<byte> Value { get; }

    public bool ValueIsNull { get; }

    public int HeaderCount { get; }

    /// <summary>The encoded headers, as they appear in the batch (for copying a record without re-encoding them).</summary>
    public ReadOnlySpan<byte> RawHeaders => HeaderBytes;

    private ReadOnlySpan<byte> HeaderBytes { get; }

    public HeaderEnumerator Headers => new(HeaderBytes, HeaderCount);

    internal static Record Parse(ReadOnlySpan<byte> body, long baseOffset, long baseTimestamp)
    {
        if (body.IsEmpty)
        {
            throw new KafkaProtocolException("Empty record.");
        }

        sbyte attributes = (sbyte)body[0];
        int at = 1;
        at += Varint.ReadSigned(body[at..], out long timestampDelta);
        at += Varint.ReadSigned(body[at..], out int offsetDelta);
        ReadOnlySpan<byte> key = ReadBytes(body, ref at, out bool keyIsNull);
        ReadOnlySpan<byte> value = ReadBytes(body, ref at, out bool valueIsNull);
        at += Varint.ReadSigned(body[at..], out int headerCount);
        if (headerCount < 0 || headerCount > body.Length - at)
        {
            throw new KafkaProtocolException($"Record declares {headerCount} headers in {body.Length - at} bytes.");
        }

        ReadOnlySpan<byte> headers = body[at..];

        // Walk the headers once so a malformed record fails here, not halfway through a consumer's loop.
        var check = new HeaderEnumerator(headers, headerCount);
        while (check.MoveNext())
        {
        }

        return new Record(attributes, baseOffset + offsetDelta, baseTimestamp + timestampDelta, key, keyIsNull, value, valueIsNull, headers, headerCount);
    }

    internal static ReadOnlySpan<byte> ReadBytes(ReadOnlySpan<byte> body, scoped ref int at, out bool isNull)
    {
        at += Varint.ReadSigned(body[at..], out int length);
        if (length < -1 || length > body.Length - at)
        {
            throw new KafkaProtocolException($"Record field length {length} exceeds the {body.Length - at} bytes that remain.");
        }

        isNull = length == -1;
        if (isNull)
        {
            return default;
        }

        ReadOnlySpan<byte> bytes = body.Slice(at, length);
        at += length;
        return bytes;
    }
}

public readonly ref struct RecordHeader(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, bool valueIsNull)
{
    public ReadOnlySpan<byte> Key { get; } = key;

    public ReadOnlySpan<byte> Value { get; } = value;

    public bool ValueIsNull { get; } = valueIsNull;

    public string KeyString => Encoding.UTF8.GetString(Key);
}

public ref struct HeaderEnumerator
{
    private readonly ReadOnlySpan<byte> _bytes;
    private int _at;
    private int _left;

    /// <summary>Walks headers kept in their encoded form (<see cref="Record.RawHeaders"/> and its count).</summary>
    public static HeaderEnumerator Over(ReadOnlySpan<byte> rawHeaders, int count) => new(rawHeaders, count);

    internal HeaderEnumerator(ReadOnlySpan<byte> bytes, int count)
    {
        _bytes = bytes;
        _left = count;
        _at = 0;
        Current = default;
    }

    public RecordHeader Current { get; private set; }

    public readonly HeaderEnumerator GetEnumerator() => this;

    public bool MoveNext()
    {
        if (_left == 0)
        {
            if (_at != _bytes.Length)
            {
                throw new KafkaProtocolException($"{_bytes.Length - _at} bytes follow a record's last header.");
            }

            return false;
        }

        ReadOnlySpan<byte> key = Record.ReadBytes(_bytes, ref _at, out bool keyIsNull);
        if (keyIsNull)
        {
            throw new KafkaProtocolException("Record header key is null.");
        }

        ReadOnlySpan<byte> value = Record.ReadBytes(_bytes, ref _at, out bool valueIsNull);
        _left--;
        Current = new RecordHeader(key, value, valueIsNull);
        return true;
    }
}
