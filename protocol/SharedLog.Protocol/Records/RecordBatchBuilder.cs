using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace SharedLog.Protocol.Records;

/// <summary>A header to write: a UTF-8 key and a value that may be null.</summary>
public readonly record struct RecordHeaderValue(string Key, byte[]? Value)
{
    /// <summary>
    /// The key's bytes as a record held them, for a header copied from it: written as they are, since a producer's key need
    /// not be valid UTF-8 and its text (<see cref="Key"/>) would write other bytes.
    /// </summary>
    public byte[]? KeyBytes { get; init; }

    internal int KeyByteCount => KeyBytes?.Length ?? Encoding.UTF8.GetByteCount(Key);

    internal int WriteKey(Span<byte> destination)
    {
        if (KeyBytes is { } raw)
        {
            raw.CopyTo(destination);
            return raw.Length;
        }

        return Encoding.UTF8.GetBytes(Key, destination);
    }
}

/// <summary>
/// Builds v2 record batches: data batches (any codec, idempotent or transactional producer fields) and
/// control batches (transaction markers). Not a hot path: re-encoding and markers only.
/// </summary>
public sealed class RecordBatchBuilder
{
    // Records go into a pooled buffer copied into the batch at Build, or, when the caller knows their exact
    // size (the contract gate rewriting a batch), straight into the batch's own array.
    private readonly PooledBufferWriter? _records;
    private readonly byte[]? _exact;
    private int _exactWritten;
    private int _count;
    private int _nextDelta;
    private long _maxTimestamp = -1;
    private bool _built;

    /// <param name="baseTimestamp">Timestamps of records are written relative to this.</param>
    /// <param name="expectedRecordBytes">Sizes the record buffer up front (e.g. the size of a batch being rewritten).</param>
    public RecordBatchBuilder(long baseTimestamp, int expectedRecordBytes = 256)
    {
        BaseTimestamp = baseTimestamp;
        _records = new PooledBufferWriter(expectedRecordBytes);
    }

    private RecordBatchBuilder(long baseTimestamp, byte[] exact)
    {
        BaseTimestamp = baseTimestamp;
        _exact = exact;
    }

    /// <summary>
    /// A builder whose records (added with <see cref="AddCopy"/> only) are written straight into the batch
    /// it returns, one copy instead of two: <paramref name="recordBytes"/> must be the exact sum of
    /// <see cref="CopiedRecordSize"/> over the records added, or <see cref="Build"/> throws.
    /// </summary>
    public static RecordBatchBuilder WithExactRecordBytes(long baseTimestamp, int recordBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(recordBytes);
        // Every byte is written before Build returns; skipping the zeroing matters on the large object heap.
        return new RecordBatchBuilder(baseTimestamp, RecordBatch.AllocateForStorage(RecordBatch.HeaderSize + recordBytes));
    }

    public long BaseOffset { get; set; }

    public long BaseTimestamp { get; }

    public CompressionCodec Compression { get; set; } = CompressionCodec.None;

    /// <summary>How hard gzip works when <see cref="Compression"/> is gzip: fastest by default, as the broker compresses on hot paths.</summary>
    public System.IO.Compression.CompressionLevel GzipLevel { get; set; } = System.IO.Compression.CompressionLevel.Fastest;

    public TimestampType TimestampType { get; set; } = TimestampType.CreateTime;

    public int PartitionLeaderEpoch { get; set; } = -1;

    public long ProducerId { get; set; } = -1;

    public short ProducerEpoch { get; set; } = -1;

    public int BaseSequence { get; set; } = -1;

    public bool IsTransactional { get; set; }

    public bool IsControl { get; set; }

    public int Count => _count;

    /// <summary>
    /// Offset delta of the batch's last offset; null means the last record's. Set it past the last record
    /// to keep a batch's original offset span after records were taken out (they leave offset gaps).
    /// </summary>
    public int? LastOffsetDelta { get; set; }

    /// <summary>Appends a record; offsets follow in order from <see cref="BaseOffset"/>.</summary>
    public RecordBatchBuilder Add(byte[]? key, byte[]? value, long timestamp, IReadOnlyList<RecordHeaderValue>? headers = null)
    {
        if (_records is null)
        {
            throw new InvalidOperationException("A builder of exact size takes copied records only.");
        }

        var body = new ArrayBufferWriter<byte>();
        WriteRecordStart(body, timestamp, _nextDelta, key, key is null, value, value is null);
        WriteVarInt(body, headers?.Count ?? 0);
        WriteHeaders(body, headers);
        Append(body, _nextDelta, timestamp);
        return this;
    }

    /// <summary>
    /// Appends a record copied from another batch at an explicit offset delta (strictly increasing),
    /// keeping its encoded headers verbatim and adding <paramref name="extraHeaders"/> after them.
    /// </summary>
    public RecordBatchBuilder AddCopy(int offsetDelta, long timestamp, ReadOnlySpan<byte> key, bool keyIsNull, ReadOnlySpan<byte> value, bool valueIsNull, ReadOnlySpan<byte> rawHeaders, int headerCount, IReadOnlyList<RecordHeaderValue>? extraHeaders = null)
    {
        if (offsetDelta < _nextDelta)
        {
            throw new ArgumentOutOfRangeException(nameof(offsetDelta), "Offset deltas must increase.");
        }

        // Sized exactly and written in place: the contract gate copies every record of a batch this way.
        long timestampDelta = timestamp - BaseTimestamp;
        int totalHeaders = headerCount + (extraHeaders?.Count ?? 0);
        int bodySize = CopiedBodySize(timestampDelta, offsetDelta, key.Length, keyIsNull, value.Length, valueIsNull, rawHeaders.Length, headerCount, extraHeaders);
        Span<byte> span = _records is null ? _exact.AsSpan(RecordBatch.HeaderSize + _exactWritten) : _records.GetSpan(Varint.MaxBytes32 + bodySize);
        if (span.Length < Varint.SizeOfSigned(bodySize) + bodySize)
        {
            throw new InvalidOperationException("The records exceed the exact size the builder was given.");
        }

        int at = Varint.WriteSigned(span, bodySize);
        span[at++] = 0;
        at += Varint.WriteSigned(span[at..], timestampDelta);
        at += Varint.WriteSigned(span[at..], offsetDelta);
        at += WriteBytes(span[at..], key, keyIsNull);
        at += WriteBytes(span[at..], value, valueIsNull);
        at += Varint.WriteSigned(span[at..], totalHeaders);
        rawHeaders.CopyTo(span[at..]);
        at += rawHeaders.Length;
        foreach (RecordHeaderValue header in extraHeaders ?? [])
        {
            at += Varint.WriteSigned(span[at..], header.KeyByteCount);
            at += header.WriteKey(span[at..]);
            at += WriteBytes(span[at..], header.Value, header.Value is null);
        }

        if (_records is null)
        {
            _exactWritten += at;
        }
        else
        {
            _records.Advance(at);
        }

        _count++;
        _nextDelta = offsetDelta + 1;
        _maxTimestamp = Math.Max(_maxTimestamp, timestamp);
        return this;
    }

    /// <summary>Bytes <see cref="AddCopy"/> writes for a record: its length prefix and body.</summary>
    public static int CopiedRecordSize(long timestampDelta, int offsetDelta, int keyLength, bool keyIsNull, int valueLength, bool valueIsNull, int rawHeadersLength, int headerCount, IReadOnlyList<RecordHeaderValue>? extraHeaders = null)
    {
        int body = CopiedBodySize(timestampDelta, offsetDelta, keyLength, keyIsNull, valueLength, valueIsNull, rawHeadersLength, headerCount, extraHeaders);
        return Varint.SizeOfSigned(body) + body;
    }

    private static int CopiedBodySize(long timestampDelta, int offsetDelta, int keyLength, bool keyIsNull, int valueLength, bool valueIsNull, int rawHeadersLength, int headerCount, IReadOnlyList<RecordHeaderValue>? extraHeaders)
    {
        int totalHeaders = headerCount + (extraHeaders?.Count ?? 0);
        int bodySize = 1 + Varint.SizeOfSigned(timestampDelta) + Varint.SizeOfSigned(offsetDelta)
            + BytesSize(keyLength, keyIsNull) + BytesSize(valueLength, valueIsNull)
            + Varint.SizeOfSigned(totalHeaders) + rawHeadersLength;
        foreach (RecordHeaderValue header in extraHeaders ?? [])
        {
            bodySize += BytesSize(header.KeyByteCount, isNull: false) + BytesSize(header.Value?.Length ?? 0, header.Value is null);
        }

        return bodySize;
    }

    private static int BytesSize(int length, bool isNull) => isNull ? 1 : Varint.SizeOfSigned(length) + length;

    private static int WriteBytes(Span<byte> destination, ReadOnlySpan<byte> bytes, bool isNull)
    {
        if (isNull)
        {
            return Varint.WriteSigned(destination, -1);
        }

        int at = Varint.WriteSigned(destination, bytes.Length);
        bytes.CopyTo(destination[at..]);
        return at + bytes.Length;
    }

    private void WriteRecordStart(ArrayBufferWriter<byte> body, long timestamp, int offsetDelta, ReadOnlySpan<byte> key, bool keyIsNull, ReadOnlySpan<byte> value, bool valueIsNull)
    {
        WriteByte(body, 0);
        WriteVarLong(body, timestamp - BaseTimestamp);
        WriteVarInt(body, offsetDelta);
        WriteBytes(body, key, keyIsNull);
        WriteBytes(body, value, valueIsNull);
    }

    private static void WriteHeaders(ArrayBufferWriter<byte> body, IReadOnlyList<RecordHeaderValue>? headers)
    {
        foreach (RecordHeaderValue header in headers ?? [])
        {
            WriteBytes(body, header.KeyBytes ?? Encoding.UTF8.GetBytes(header.Key), isNull: false);
            WriteBytes(body, header.Value, header.Value is null);
        }
    }

    private void Append(ArrayBufferWriter<byte> body, int offsetDelta, long timestamp)
    {
        WriteVarInt(_records!, body.WrittenCount);
        _records!.Write(body.WrittenSpan);
        _count++;
        _nextDelta = offsetDelta + 1;
        _maxTimestamp = Math.Max(_maxTimestamp, timestamp);
    }

    public byte[] Build()
    {
        if (_built)
        {
            throw new InvalidOperationException("A record batch builder builds one batch.");
        }

        _built = true;
        int lastOffsetDelta = LastOffsetDelta ?? _nextDelta - 1;
        if (lastOffsetDelta < 0 || lastOffsetDelta < _nextDelta - 1)
        {
            throw new InvalidOperationException("A record batch needs at least one record or an explicit last offset delta covering its records.");
        }

        ReadOnlySpan<byte> records = _records is null ? _exact.AsSpan(RecordBatch.HeaderSize, _exactWritten) : _records.WrittenSpan;
        if (_exact is not null && _exactWritten != _exact.Length - RecordBatch.HeaderSize)
        {
            throw new InvalidOperationException($"The builder was given {_exact.Length - RecordBatch.HeaderSize} record bytes exactly but {_exactWritten} were added.");
        }

        // A batch without records (all a producer's records taken out by a contract) carries no codec, as Kafka writes one:
        // an empty gzip, snappy, LZ4 or zstd frame made librdkafka consumers spin, fail or abort at that offset.
        CompressionCodec codec = _count == 0 ? CompressionCodec.None : Compression;

        // The record buffer is pooled and returned once the batch is built; a builder builds once.
        PooledBufferWriter? compressed = codec == CompressionCodec.None ? null : new PooledBufferWriter(records.Length);
        if (compressed is not null)
        {
            RecordCompression.Compress(codec, records, compressed, GzipLevel);
        }

        byte[] batch;
        if (_exact is not null && compressed is null)
        {
            batch = _exact;
        }
        else
        {
            ReadOnlySpan<byte> section = compressed is null ? records : compressed.WrittenSpan;
            // Every byte is written below; skipping the zeroing matters for batches on the large object heap.
            batch = RecordBatch.AllocateForStorage(RecordBatch.HeaderSize + section.Length);
            section.CopyTo(batch.AsSpan(RecordBatch.HeaderSize));
        }

        Span<byte> s = batch;
        BinaryPrimitives.WriteInt64BigEndian(s, BaseOffset);
        BinaryPrimitives.WriteInt32BigEndian(s[8..], batch.Length - RecordBatch.LogOverhead);
        BinaryPrimitives.WriteInt32BigEndian(s[12..], PartitionLeaderEpoch);
        s[16] = RecordBatch.CurrentMagic;
        short attributes = (short)((int)codec
            | (TimestampType == TimestampType.LogAppendTime ? 0x08 : 0)
            | (IsTransactional ? 0x10 : 0)
            | (IsControl ? 0x20 : 0));
        BinaryPrimitives.WriteInt16BigEndian(s[21..], attributes);
        BinaryPrimitives.WriteInt32BigEndian(s[23..], lastOffsetDelta);
        BinaryPrimitives.WriteInt64BigEndian(s[27..], BaseTimestamp);
        BinaryPrimitives.WriteInt64BigEndian(s[35..], _count == 0 ? BaseTimestamp : _maxTimestamp);
        BinaryPrimitives.WriteInt64BigEndian(s[43..], ProducerId);
        BinaryPrimitives.WriteInt16BigEndian(s[51..], ProducerEpoch);
        BinaryPrimitives.WriteInt32BigEndian(s[53..], BaseSequence);
        BinaryPrimitives.WriteInt32BigEndian(s[57..], _count);
        compressed?.Release();
        _records?.Release();
        RecordBatch.WriteCrc(s);
        return batch;
    }

    /// <summary>
    /// A transaction marker: a control batch with one record whose key is (version 0, type: 0 abort,
    /// 1 commit) and whose value is (version 0, coordinator epoch).
    /// </summary>
    public static byte[] BuildControlBatch(bool commit, long producerId, short producerEpoch, int coordinatorEpoch, long timestamp)
    {
        byte[] key = new byte[4];
        BinaryPrimitives.WriteInt16BigEndian(key.AsSpan(2), commit ? (short)1 : (short)0);
        byte[] value = new byte[6];
        BinaryPrimitives.WriteInt32BigEndian(value.AsSpan(2), coordinatorEpoch);
        var builder = new RecordBatchBuilder(timestamp)
        {
            ProducerId = producerId,
            ProducerEpoch = producerEpoch,
            IsTransactional = true,
            IsControl = true,
        };
        return builder.Add(key, value, timestamp).Build();
    }

    private static void WriteByte(ArrayBufferWriter<byte> output, byte value)
    {
        output.GetSpan(1)[0] = value;
        output.Advance(1);
    }

    private static void WriteVarInt(IBufferWriter<byte> output, int value) =>
        output.Advance(Varint.WriteSigned(output.GetSpan(Varint.MaxBytes32), value));

    private static void WriteVarLong(ArrayBufferWriter<byte> output, long value) =>
        output.Advance(Varint.WriteSigned(output.GetSpan(Varint.MaxBytes64), value));

    private static void WriteBytes(IBufferWriter<byte> output, ReadOnlySpan<byte> value, bool isNull)
    {
        WriteVarInt(output, isNull ? -1 : value.Length);
        output.Write(value);
    }
}
