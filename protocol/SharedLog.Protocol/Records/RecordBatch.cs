using System.Buffers;
using System.Buffers.Binary;

namespace SharedLog.Protocol.Records;

public enum TimestampType : byte
{
    CreateTime = 0,
    LogAppendTime = 1,
}

/// <summary>
/// A zero-copy view of one v2 record batch. Layout (big-endian): base offset int64 @0, batch length
/// int32 @8 (bytes after this field), partition leader epoch int32 @12, magic int8 @16, CRC32C uint32
/// @17 (covers everything from @21), attributes int16 @21, last offset delta int32 @23, base timestamp
/// int64 @27, max timestamp int64 @35, producer id int64 @43, producer epoch int16 @51, base sequence
/// int32 @53, record count int32 @57, records @61.
/// </summary>
public readonly struct RecordBatch
{
    public const int HeaderSize = 61;
    public const int LogOverhead = 12;
    public const byte CurrentMagic = 2;

    /// <summary>The most a compressed batch may inflate to when it is read (a decompression bomb costs at most this).</summary>
    public const int MaxDecompressedBytes = 64 * 1024 * 1024;
    private const int MagicOffset = 16;
    private const int CrcOffset = 17;
    private const int AttributesOffset = 21;

    private RecordBatch(ReadOnlyMemory<byte> data) => Data = data;

    /// <summary>
    /// The batch length and record count of a v2 batch header (its first <see cref="HeaderSize"/> bytes, not checked
    /// further); false for another magic. For walking stored batches without taking them apart.
    /// </summary>
    public static bool TryReadSizes(ReadOnlySpan<byte> header, out int batchLength, out int recordCount)
    {
        batchLength = 0;
        recordCount = 0;
        if (header.Length < HeaderSize || header[MagicOffset] != CurrentMagic)
        {
            return false;
        }

        batchLength = BinaryPrimitives.ReadInt32BigEndian(header[8..]);
        recordCount = BinaryPrimitives.ReadInt32BigEndian(header[57..]);
        return true;
    }

    /// <summary>The batch's bytes, exactly <see cref="TotalSize"/> long.</summary>
    public ReadOnlyMemory<byte> Data { get; }

    private ReadOnlySpan<byte> Span => Data.Span;

    public long BaseOffset => BinaryPrimitives.ReadInt64BigEndian(Span);

    public int BatchLength => BinaryPrimitives.ReadInt32BigEndian(Span[8..]);

    public int TotalSize => LogOverhead + BatchLength;

    public int PartitionLeaderEpoch => BinaryPrimitives.ReadInt32BigEndian(Span[12..]);

    public byte Magic => Span[MagicOffset];

    public uint Crc => BinaryPrimitives.ReadUInt32BigEndian(Span[CrcOffset..]);

    public short Attributes => BinaryPrimitives.ReadInt16BigEndian(Span[AttributesOffset..]);

    public CompressionCodec Compression => (CompressionCodec)(Attributes & 0x07);

    public TimestampType TimestampType => (Attributes & 0x08) != 0 ? TimestampType.LogAppendTime : TimestampType.CreateTime;

    public bool IsTransactional => (Attributes & 0x10) != 0;

    public bool IsControl => (Attributes & 0x20) != 0;

    public bool HasDeleteHorizon => (Attributes & 0x40) != 0;

    public int LastOffsetDelta => BinaryPrimitives.ReadInt32BigEndian(Span[23..]);

    public long BaseTimestamp => BinaryPrimitives.ReadInt64BigEndian(Span[27..]);

    public long MaxTimestamp => BinaryPrimitives.ReadInt64BigEndian(Span[35..]);

    public long ProducerId => BinaryPrimitives.ReadInt64BigEndian(Span[43..]);

    public short ProducerEpoch => BinaryPrimitives.ReadInt16BigEndian(Span[51..]);

    public int BaseSequence => BinaryPrimitives.ReadInt32BigEndian(Span[53..]);

    public int RecordCount => BinaryPrimitives.ReadInt32BigEndian(Span[57..]);

    /// <summary>Sequence of the batch's last record (sequences wrap after int.MaxValue); -1 without a producer sequence.</summary>
    public int LastSequence => BaseSequence < 0 ? -1 : (int)((BaseSequence + (long)LastOffsetDelta) % ((long)int.MaxValue + 1));

    public long LastOffset => BaseOffset + LastOffsetDelta;

    public long NextOffset => LastOffset + 1;

    /// <summary>The records section: compressed bytes when <see cref="Compression"/> is not None.</summary>
    public ReadOnlyMemory<byte> RecordsSection => Data[HeaderSize..];

    /// <summary>
    /// An array for a batch a partition keeps, to be filled whole by the caller. A stored batch stays in memory for
    /// seconds to minutes (cached until uploaded, then for tailing readers), so in the young generations every
    /// collection would find it alive and copy it: with hundreds of MB cached, gen0 pauses grew to 25-50 ms. Arrays from
    /// the large object threshold up go to the large object heap as before; smaller ones to the pinned object heap.
    /// Neither is compacted, so collections leave these arrays where they are.
    /// </summary>
    public static byte[] AllocateForStorage(int length) =>
        GC.AllocateUninitializedArray<byte>(length, pinned: length < LargeObjectThreshold);

    /// <summary>The runtime's large object threshold: GCLOHThreshold, which the GC never takes below 85,000 bytes.</summary>
    private static readonly long LargeObjectThreshold = Math.Max(
        GC.GetConfigurationVariables().TryGetValue("LOHThreshold", out object? threshold) && threshold is IConvertible value ? value.ToInt64(System.Globalization.CultureInfo.InvariantCulture) : 0,
        85_000);

    /// <summary>A copy of <paramref name="batch"/> in an array from <see cref="AllocateForStorage"/>.</summary>
    public static byte[] CopyForStorage(ReadOnlySpan<byte> batch)
    {
        byte[] copy = AllocateForStorage(batch.Length);
        batch.CopyTo(copy);
        return copy;
    }

    /// <summary>A copy of <paramref name="batch"/>, held in more than one piece, in an array from <see cref="AllocateForStorage"/>.</summary>
    public static byte[] CopyForStorage(in ReadOnlySequence<byte> batch)
    {
        byte[] copy = AllocateForStorage(checked((int)batch.Length));
        batch.CopyTo(copy);
        return copy;
    }

    /// <summary>
    /// Views the batch at the start of <paramref name="data"/>, which must hold it whole. Legacy message
    /// sets (magic 0 and 1) and malformed headers are refused.
    /// </summary>
    public static RecordBatch Parse(ReadOnlyMemory<byte> data)
    {
        ReadOnlySpan<byte> span = data.Span;
        if (span.Length < LogOverhead + 5)
        {
            throw new KafkaProtocolException($"Record batch of {span.Length} bytes is truncated.");
        }

        // Magic sits at byte 16 in v0/v1 message sets too, so old formats are told apart here.
        byte magic = span[MagicOffset];
        if (magic is 0 or 1)
        {
            // INVALID_RECORD, as Kafka answers Produce v3+ carrying an old message set (every Produce version served here).
            throw new KafkaProtocolException($"Message format v{magic} (magic {magic}) is not supported; only record batch v2 is (Kafka 0.11+ clients).", ErrorCode.InvalidRecord);
        }

        if (magic != CurrentMagic)
        {
            throw new KafkaProtocolException($"Unknown record batch magic {magic}.");
        }

        int batchLength = BinaryPrimitives.ReadInt32BigEndian(span[8..]);
        if (batchLength < HeaderSize - LogOverhead || batchLength > span.Length - LogOverhead)
        {
            throw new KafkaProtocolException($"Record batch length {batchLength} is invalid for {span.Length} bytes of input.");
        }

        var batch = new RecordBatch(data[..(LogOverhead + batchLength)]);
        int count = batch.RecordCount;
        if (count < 0 || batch.LastOffsetDelta < 0)
        {
            // INVALID_RECORD, as Kafka's batch validation answers a negative record count.
            throw new KafkaProtocolException($"Inconsistent batch offset range: last offset delta {batch.LastOffsetDelta} with {count} records.", ErrorCode.InvalidRecord);
        }

        if (batch.Compression == CompressionCodec.None && count > batch.RecordsSection.Length / 7)
        {
            // An uncompressed record takes at least 7 bytes (length, attributes, 5 varints), so the count is checkable.
            throw new KafkaProtocolException($"Record batch claims {count} records (last offset delta {batch.LastOffsetDelta}) in {batch.RecordsSection.Length} bytes.");
        }

        if ((int)batch.Compression > (int)CompressionCodec.Zstd)
        {
            throw new KafkaProtocolException($"Unknown compression codec {(int)batch.Compression}.", ErrorCode.UnsupportedCompressionType);
        }

        return batch;
    }

    public bool IsCrcValid() => Crc32C.Compute(Span[AttributesOffset..]) == Crc;

    public void VerifyCrc()
    {
        if (!IsCrcValid())
        {
            throw new KafkaProtocolException($"Record batch at offset {BaseOffset} fails its CRC32C check.");
        }
    }

    /// <summary>Sets the base offset in place; the CRC does not cover it, so the batch stays valid.</summary>
    public static void SetBaseOffset(Span<byte> batch, long baseOffset) => BinaryPrimitives.WriteInt64BigEndian(batch, baseOffset);

    /// <summary>Computes the batch's CRC-32C (attributes to the end) and writes it into its header.</summary>
    public static void WriteCrc(Span<byte> batch) => BinaryPrimitives.WriteUInt32BigEndian(batch[CrcOffset..], Crc32C.Compute(batch[AttributesOffset..]));

    /// <summary>
    /// Stamps the batch with the broker's time, as Kafka does on topics with <c>message.timestamp.type=LogAppendTime</c>:
    /// the timestamp type attribute is set and the max timestamp becomes <paramref name="nowMs"/>, which consumers then
    /// read as every record's timestamp. The CRC is written again.
    /// </summary>
    public static void SetLogAppendTime(Span<byte> batch, long nowMs)
    {
        short attributes = BinaryPrimitives.ReadInt16BigEndian(batch[AttributesOffset..]);
        BinaryPrimitives.WriteInt16BigEndian(batch[AttributesOffset..], (short)(attributes | 0x08));
        BinaryPrimitives.WriteInt64BigEndian(batch[35..], nowMs);
        WriteCrc(batch);
    }

    /// <summary>
    /// Index in the batch of the first record whose timestamp lies outside [<paramref name="minTimestamp"/>,
    /// <paramref name="maxTimestamp"/>], or -1 when all are inside; records without a timestamp (-1) are not checked,
    /// as Kafka's log validator does not. Reads the records (decompressing a compressed batch).
    /// </summary>
    public int FirstRecordWithTimestampOutside(long minTimestamp, long maxTimestamp)
    {
        int index = 0;
        if (StreamedRecords.Open(Compression, RecordsSection, MaxDecompressedBytes) is { } streamed)
        {
            using (streamed)
            {
                while (streamed.TryReadNext(out _, out long timestampDelta, out _))
                {
                    long timestamp = BaseTimestamp + timestampDelta;
                    if (timestamp != -1 && (timestamp < minTimestamp || timestamp > maxTimestamp))
                    {
                        return index;
                    }

                    index++;
                }
            }

            return -1;
        }

        foreach (Record record in Records())
        {
            if (record.Timestamp != -1 && (record.Timestamp < minTimestamp || record.Timestamp > maxTimestamp))
            {
                return index;
            }

            index++;
        }

        return -1;
    }

    /// <summary>Sets the partition leader epoch in place (not covered by the CRC either).</summary>
    public static void SetPartitionLeaderEpoch(Span<byte> batch, int epoch) => BinaryPrimitives.WriteInt32BigEndian(batch[12..], epoch);

    /// <summary>
    /// The records, decompressed if needed (at most <paramref name="maxDecompressedBytes"/>). Iterate with
    /// foreach; uncompressed batches are read in place.
    /// </summary>
    public RecordSet Records(int maxDecompressedBytes = MaxDecompressedBytes)
    {
        if (Compression == CompressionCodec.None)
        {
            return new RecordSet(RecordsSection, RecordCount, BaseOffset, BaseTimestamp);
        }

        // Read in place into pooled memory, then one exact copy the caller may keep.
        PooledBufferWriter decompressed = Decompress(maxDecompressedBytes);
        try
        {
            return new RecordSet(decompressed.WrittenSpan.ToArray(), RecordCount, BaseOffset, BaseTimestamp);
        }
        finally
        {
            decompressed.Release();
        }
    }

    /// <summary>
    /// Checks the records against the header as Kafka's log validator does before a batch is stored: every
    /// record parses within its length, their offset deltas run 0, 1, 2, ..., and their number is the
    /// header's count with no bytes left over. The CRC only proves the client meant these bytes, not that
    /// they hold what the header claims; a stored lie would move the partition's offsets by its claim or
    /// stop every consumer at the batch. A compressed batch is walked as it inflates (at most
    /// <paramref name="maxDecompressedBytes"/>), holding a small window rather than the records (snappy, whose ratio
    /// is bounded, into pooled memory). Throws
    /// <see cref="KafkaProtocolException"/>: INVALID_RECORD for records that disagree with the header,
    /// CORRUPT_MESSAGE for data the codec cannot read. Returns the largest record timestamp, which Kafka stores as the
    /// batch's max timestamp whatever the producer's header says (ListOffsets by time and retention go by it).
    /// </summary>
    /// <param name="keylessRecords">When given, receives the index of each record whose key is null (a compacted topic
    /// refuses them), found in the same walk, so that check inflates nothing more.</param>
    public long CheckRecords(List<int>? keylessRecords = null, int maxDecompressedBytes = MaxDecompressedBytes)
    {
        if (Compression == CompressionCodec.None)
        {
            return CheckRecords(RecordsSection.Span, keylessRecords);
        }

        if (StreamedRecords.Open(Compression, RecordsSection, maxDecompressedBytes) is { } streamed)
        {
            using (streamed)
            {
                int expectedDelta = 0;
                long maxDelta = long.MinValue;
                while (expectedDelta < RecordCount && streamed.TryReadNext(out int offsetDelta, out long timestampDelta, out bool keyIsNull))
                {
                    if (keyIsNull)
                    {
                        keylessRecords?.Add(expectedDelta);
                    }

                    CheckOffsetDelta(offsetDelta, expectedDelta++);
                    maxDelta = Math.Max(maxDelta, timestampDelta);
                }

                if (expectedDelta < RecordCount)
                {
                    throw MismatchedHeader($"the records end after {expectedDelta}.");
                }

                if (streamed.TryReadNext(out _, out _, out _))
                {
                    throw MismatchedHeader("more records follow the last one it declares.");
                }

                return MaxOfRecords(maxDelta);
            }
        }

        PooledBufferWriter decompressed = Decompress(maxDecompressedBytes);
        try
        {
            return CheckRecords(decompressed.WrittenSpan, keylessRecords);
        }
        finally
        {
            decompressed.Release();
        }
    }

    private static void CheckOffsetDelta(int offsetDelta, int expectedDelta)
    {
        if (offsetDelta != expectedDelta)
        {
            throw new KafkaProtocolException($"Record {expectedDelta} of the batch has offset delta {offsetDelta}; deltas must run from 0 in steps of 1.", ErrorCode.InvalidRecord);
        }
    }

    private KafkaProtocolException MismatchedHeader(string reason) =>
        new($"The batch's records do not match its header of {RecordCount} records: {reason}", ErrorCode.InvalidRecord);

    /// <summary>
    /// <see cref="Records"/> after <see cref="CheckRecords(List{int}?, int)"/>'s check, decompressing a compressed batch once for
    /// both: for a caller that reads every record anyway (the contract gate).
    /// </summary>
    /// <param name="keylessRecords">As <see cref="CheckRecords(List{int}?, int)"/>'s.</param>
    public RecordSet CheckedRecords(out long maxTimestamp, List<int>? keylessRecords = null, int maxDecompressedBytes = MaxDecompressedBytes)
    {
        RecordSet records = Records(maxDecompressedBytes);
        maxTimestamp = CheckRecords(records.Bytes.Span, keylessRecords);
        return records;
    }

    /// <summary>
    /// <see cref="CheckedRecords(out long, List{int}?, int)"/> with a compressed batch's records left in the pooled memory
    /// they inflated into, not copied out: valid until the caller releases <paramref name="pooled"/> (null for an
    /// uncompressed batch, read in place). For a caller done with the records when it is done with the batch (the contract
    /// gate keeps copies of what it stores): a copy per batch was as many bytes of large-object garbage again.
    /// </summary>
    public RecordSet CheckedRecords(out long maxTimestamp, out PooledBufferWriter? pooled, List<int>? keylessRecords = null, int maxDecompressedBytes = MaxDecompressedBytes)
    {
        pooled = null;
        if (Compression == CompressionCodec.None)
        {
            return CheckedRecords(out maxTimestamp, keylessRecords, maxDecompressedBytes);
        }

        PooledBufferWriter decompressed = Decompress(maxDecompressedBytes);
        try
        {
            var records = new RecordSet(decompressed.WrittenMemory, RecordCount, BaseOffset, BaseTimestamp);
            maxTimestamp = CheckRecords(records.Bytes.Span, keylessRecords);
            pooled = decompressed;
            return records;
        }
        catch
        {
            decompressed.Release();
            throw;
        }
    }

    /// <summary>The largest record timestamp from the largest timestamp delta (the header's own value for a batch of no records).</summary>
    private long MaxOfRecords(long maxDelta) => maxDelta == long.MinValue ? MaxTimestamp : BaseTimestamp + maxDelta;

    /// <summary>Writes the batch's max timestamp (Kafka sets it to its records' largest) and the CRC that covers it.</summary>
    public static void SetMaxTimestamp(Span<byte> batch, long maxTimestamp)
    {
        BinaryPrimitives.WriteInt64BigEndian(batch[35..], maxTimestamp);
        WriteCrc(batch);
    }

    /// <summary>The compressed records section, decompressed into pooled memory (release it); the input is read in place.</summary>
    private PooledBufferWriter Decompress(int maxDecompressedBytes)
    {
        var decompressed = new PooledBufferWriter(RecordCompression.InitialOutputBytes(RecordsSection.Length, maxDecompressedBytes));
        try
        {
            RecordCompression.DecompressInto(Compression, RecordsSection, decompressed, maxDecompressedBytes);
            return decompressed;
        }
        catch
        {
            decompressed.Release();
            throw;
        }
    }

    private long CheckRecords(ReadOnlySpan<byte> records, List<int>? keylessRecords)
    {
        try
        {
            int expectedDelta = 0;
            long maxDelta = long.MinValue;
            var walk = new RecordEnumerator(records, RecordCount, 0, 0);
            while (walk.MoveNext())
            {
                if (walk.Current.KeyIsNull)
                {
                    keylessRecords?.Add(expectedDelta);
                }

                CheckOffsetDelta((int)walk.Current.Offset, expectedDelta++);
                maxDelta = Math.Max(maxDelta, walk.Current.Timestamp);
            }

            return MaxOfRecords(maxDelta);
        }
        catch (KafkaProtocolException e) when (e.ErrorCode != ErrorCode.InvalidRecord)
        {
            throw new KafkaProtocolException(MismatchedHeader(e.Message).Message, e, ErrorCode.InvalidRecord);
        }
    }
}
