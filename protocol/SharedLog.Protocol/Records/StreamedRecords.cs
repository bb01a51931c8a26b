using System.Buffers;

namespace SharedLog.Protocol.Records;

/// <summary>
/// Walks the records of a compressed batch as they come out of the codec, through a small window, skipping keys,
/// values and headers instead of keeping them: checking a batch costs a few pooled kilobytes whatever it inflates to,
/// as Kafka's log validator iterates compressed batches without their key and value bytes. Inflating into memory
/// instead let a request of 64 KB (64 MiB of zeros, gzipped) hold 128 MiB of the broker's memory, per connection.
/// Every length is checked against the record's own declared length; the decompressed total against a limit.
/// </summary>
internal sealed class StreamedRecords : IDisposable
{
    private const int WindowBytes = 64 * 1024;

    private readonly Stream _source;
    private readonly CompressionCodec _codec;
    private readonly long _maxBytes;
    private byte[] _window = ArrayPool<byte>.Shared.Rent(WindowBytes);
    private int _start;
    private int _end;
    private long _inflated;
    private bool _sourceEnded;

    /// <summary>Bytes of records consumed so far.</summary>
    private long _consumed;

    private StreamedRecords(Stream source, CompressionCodec codec, int maxBytes)
    {
        _source = source;
        _codec = codec;
        _maxBytes = maxBytes;
    }

    /// <summary>A walk over a compressed records section, or null for a codec that does not inflate as a stream (snappy).</summary>
    public static StreamedRecords? Open(CompressionCodec codec, ReadOnlyMemory<byte> compressed, int maxBytes) =>
        RecordCompression.OpenStream(codec, compressed) is { } stream ? new StreamedRecords(stream, codec, maxBytes) : null;

    /// <summary>
    /// Reads the next record's offset and timestamp deltas, checking the whole record; false when the records
    /// have ended. Throws <see cref="KafkaProtocolException"/>: CORRUPT_MESSAGE for data the codec cannot read or a
    /// total past the limit, INVALID_RECORD for records that do not parse.
    /// </summary>
    public bool TryReadNext(out int offsetDelta, out long timestampDelta, out bool keyIsNull)
    {
        offsetDelta = 0;
        timestampDelta = 0;
        keyIsNull = false;
        if (Available(1) == 0)
        {
            return false;
        }

        int length = ReadVarint();
        if (length <= 0)
        {
            throw Invalid($"Record length {length} is not positive.");
        }

        if (length <= _window.Length && Available(length) >= length)
        {
            // The usual record fits the window: parsed where it lies, as an uncompressed batch's records are.
            Record record;
            try
            {
                record = Record.Parse(_window.AsSpan(_start, length), 0, 0);
            }
            catch (KafkaProtocolException e)
            {
                throw Invalid(e.Message);
            }

            (offsetDelta, timestampDelta, keyIsNull) = ((int)record.Offset, record.Timestamp, record.KeyIsNull);
            _start += length;
            _consumed += length;
            return true;
        }

        // A record larger than the window: its fields are read and its bytes skipped as they come.
        long end = _consumed + length;
        Take(1, end); // attributes
        timestampDelta = ReadVarlong(end);
        offsetDelta = ReadVarint(end);
        keyIsNull = SkipField(end, nullable: true, "key");
        SkipField(end, nullable: true, "value");
        int headers = ReadVarint(end);
        if (headers < 0 || headers > end - _consumed)
        {
            throw Invalid($"Record declares {headers} headers in {end - _consumed} bytes.");
        }

        for (int i = 0; i < headers; i++)
        {
            SkipField(end, nullable: false, "header key");
            SkipField(end, nullable: true, "header value");
        }

        if (_consumed != end)
        {
            throw Invalid($"{end - _consumed} bytes follow a record's last header.");
        }

        return true;
    }

    public void Dispose()
    {
        _source.Dispose();
        byte[] window = _window;
        _window = [];
        if (window.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(window);
        }
    }

    private static KafkaProtocolException Invalid(string reason) => new(reason, ErrorCode.InvalidRecord);

    /// <returns>Whether the field is null.</returns>
    private bool SkipField(long end, bool nullable, string name)
    {
        int length = ReadVarint(end);
        if (length < (nullable ? -1 : 0) || length > end - _consumed)
        {
            throw Invalid(length == -1 ? $"Record {name} is null." : $"Record {name} length {length} exceeds the {end - _consumed} bytes that remain.");
        }

        long left = Math.Max(length, 0);
        while (left > 0)
        {
            if (Available(1) == 0)
            {
                throw Invalid("Records end inside a record.");
            }

            int take = (int)Math.Min(left, _end - _start);
            _start += take;
            _consumed += take;
            left -= take;
        }

        return length < 0;
    }

    private int ReadVarint(long end = long.MaxValue)
    {
        ulong raw = ReadUnsignedVarint(Varint.MaxBytes32, end);
        return raw <= uint.MaxValue ? Varint.UnZigZag((uint)raw) : throw Invalid("Varint is longer than 32 bits.");
    }

    private long ReadVarlong(long end) => Varint.UnZigZag(ReadUnsignedVarint(Varint.MaxBytes64, end));

    private ulong ReadUnsignedVarint(int maxBytes, long end)
    {
        int available = Math.Min(Available(maxBytes), maxBytes);
        ulong result = 0;
        for (int i = 0; i < available; i++)
        {
            byte b = _window[_start + i];
            if (i == Varint.MaxBytes64 - 1 && b > 1)
            {
                throw Invalid("Varlong is longer than 64 bits.");
            }

            result |= (ulong)(b & 0x7F) << (7 * i);
            if (b < 0x80)
            {
                Take(i + 1, end);
                return result;
            }
        }

        throw Invalid(available < maxBytes ? "Varint is truncated." : $"Varint is longer than {maxBytes} bytes.");
    }

    private void Take(int count, long end)
    {
        if (Available(count) < count || _consumed + count > end)
        {
            throw Invalid("A record field runs past the record's length.");
        }

        _start += count;
        _consumed += count;
    }

    /// <summary>Makes at least <paramref name="wanted"/> bytes available in the window if the records hold them; returns how many are.</summary>
    private int Available(int wanted)
    {
        while (_end - _start < wanted && !_sourceEnded)
        {
            if (_start > 0)
            {
                _window.AsSpan(_start, _end - _start).CopyTo(_window);
                _end -= _start;
                _start = 0;
            }

            int read = RecordCompression.ReadFrom(_source, _window.AsSpan(_end), _codec);
            if (read == 0)
            {
                _sourceEnded = true;
                break;
            }

            _end += read;
            _inflated += read;
            if (_inflated > _maxBytes)
            {
                throw RecordCompression.Bomb(_codec, (int)_maxBytes);
            }
        }

        return _end - _start;
    }
}
