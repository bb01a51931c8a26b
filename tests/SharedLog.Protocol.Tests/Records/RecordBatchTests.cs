using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using SharedLog.Protocol.Records;
using Record = SharedLog.Protocol.Records.Record;

namespace SharedLog.Protocol.Tests.Records;

public class RecordBatchTests
{
    private static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    private static byte[] Sample(CompressionCodec codec, int records = 50)
    {
        var builder = new RecordBatchBuilder(1_700_000_000_000) { Compression = codec, BaseOffset = 100, ProducerId = 42, ProducerEpoch = 3, BaseSequence = 7 };
        for (int i = 0; i < records; i++)
        {
            builder.Add(
                i % 5 == 0 ? null : Utf8($"key-{i}"),
                i % 7 == 0 ? null : Utf8(new string('v', i * 10)),
                1_700_000_000_000 + i,
                i % 3 == 0 ? [new RecordHeaderValue("h", Utf8($"{i}")), new RecordHeaderValue("n", null)] : null);
        }

        return builder.Build();
    }

    [Theory]
    [InlineData(CompressionCodec.None)]
    [InlineData(CompressionCodec.Lz4)]
    public void BuiltBatchesAreOutsideTheCompactedGenerations(CompressionCodec codec)
    {
        // A stored batch is cached for minutes: in gen0 each collection would copy it. The pinned and large object heaps
        // report generation 2 from the start (an ordinary small array starts in gen0).
        Assert.Equal(2, GC.GetGeneration(Sample(codec)));
        Assert.Equal(2, GC.GetGeneration(RecordBatch.CopyForStorage(Sample(codec))));
        Assert.Equal(2, GC.GetGeneration(RecordBatch.AllocateForStorage(200_000)));
        byte[] exact = RecordBatchBuilder.WithExactRecordBytes(1_700_000_000_000, RecordBatchBuilder.CopiedRecordSize(0, 0, 1, false, 1, false, 0, 0))
            .AddCopy(0, 1_700_000_000_000, "k"u8, false, "v"u8, false, [], 0)
            .Build();
        Assert.Equal(2, GC.GetGeneration(exact));
    }

    [Theory]
    [InlineData(CompressionCodec.None)]
    [InlineData(CompressionCodec.Gzip)]
    [InlineData(CompressionCodec.Snappy)]
    [InlineData(CompressionCodec.Lz4)]
    [InlineData(CompressionCodec.Zstd)]
    public void BuilderOutputReadsBackWithEveryCodec(CompressionCodec codec)
    {
        RecordBatch batch = RecordBatch.Parse(Sample(codec));
        Assert.True(batch.IsCrcValid());
        Assert.Equal(codec, batch.Compression);
        Assert.Equal(100, batch.BaseOffset);
        Assert.Equal(50, batch.RecordCount);
        Assert.Equal(149, batch.LastOffset);
        Assert.Equal(42, batch.ProducerId);
        Assert.Equal(3, batch.ProducerEpoch);
        Assert.Equal(7, batch.BaseSequence);
        Assert.Equal(1_700_000_000_049, batch.MaxTimestamp);
        int i = 0;
        foreach (Record record in batch.Records())
        {
            Assert.Equal(100 + i, record.Offset);
            Assert.Equal(1_700_000_000_000 + i, record.Timestamp);
            Assert.Equal(i % 5 == 0, record.KeyIsNull);
            if (!record.KeyIsNull)
            {
                Assert.Equal($"key-{i}", Encoding.UTF8.GetString(record.Key));
            }

            Assert.Equal(i % 7 == 0, record.ValueIsNull);
            if (!record.ValueIsNull)
            {
                Assert.Equal(i * 10, record.Value.Length);
            }

            int headers = 0;
            foreach (RecordHeader header in record.Headers)
            {
                Assert.Equal(headers == 0 ? "h" : "n", header.KeyString);
                Assert.Equal(headers == 1, header.ValueIsNull);
                headers++;
            }

            Assert.Equal(i % 3 == 0 ? 2 : 0, headers);
            i++;
        }

        Assert.Equal(50, i);
    }

    [Fact]
    public void FlippedByteFailsTheCrc()
    {
        byte[] bytes = Sample(CompressionCodec.None);
        Assert.True(RecordBatch.Parse(bytes).IsCrcValid());
        bytes[^3] ^= 0x10;
        Assert.False(RecordBatch.Parse(bytes).IsCrcValid());
        Assert.Throws<KafkaProtocolException>(() => RecordBatch.Parse(bytes).VerifyCrc());
    }

    [Theory]
    [InlineData(CompressionCodec.None)]
    [InlineData(CompressionCodec.Zstd)]
    public void LogAppendTimeStampsTheHeaderAndKeepsTheCrcValid(CompressionCodec codec)
    {
        byte[] bytes = Sample(codec);
        RecordBatch.SetLogAppendTime(bytes, 1_800_000_000_000);
        RecordBatch batch = RecordBatch.Parse(bytes);
        Assert.True(batch.IsCrcValid());
        Assert.Equal((TimestampType.LogAppendTime, 1_800_000_000_000L, codec), (batch.TimestampType, batch.MaxTimestamp, batch.Compression));
        Assert.Equal(50, batch.Records().Count);
    }

    [Fact]
    public void TheFirstRecordStampedOutsideABoundIsFound()
    {
        RecordBatch batch = RecordBatch.Parse(Sample(CompressionCodec.Gzip)); // records stamped base + 0 .. base + 49
        const long Base = 1_700_000_000_000;
        Assert.Equal(-1, batch.FirstRecordWithTimestampOutside(Base, Base + 49));
        Assert.Equal(0, batch.FirstRecordWithTimestampOutside(Base + 1, long.MaxValue));
        Assert.Equal(41, batch.FirstRecordWithTimestampOutside(long.MinValue, Base + 40));

        // A record without a timestamp (-1) is not checked, as Kafka's validator does not.
        RecordBatch untimed = RecordBatch.Parse(new RecordBatchBuilder(-1).Add(null, [1], -1).Add(null, [2], Base).Build());
        Assert.Equal(-1, untimed.FirstRecordWithTimestampOutside(Base, Base));
    }

    [Fact]
    public void RewritingTheBaseOffsetKeepsTheCrcValid()
    {
        byte[] bytes = Sample(CompressionCodec.Lz4);
        RecordBatch.SetBaseOffset(bytes, 9_000);
        RecordBatch.SetPartitionLeaderEpoch(bytes, 5);
        RecordBatch batch = RecordBatch.Parse(bytes);
        Assert.True(batch.IsCrcValid());
        Assert.Equal(9_000, batch.BaseOffset);
        Assert.Equal(5, batch.PartitionLeaderEpoch);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void LegacyMessageSetsAreRefused(byte magic)
    {
        byte[] bytes = Sample(CompressionCodec.None);
        bytes[16] = magic;
        var e = Assert.Throws<KafkaProtocolException>(() => RecordBatch.Parse(bytes));
        Assert.Equal(ErrorCode.InvalidRecord, e.ErrorCode);
        Assert.Contains($"v{magic}", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BadLengthsAndCountsAreRefused()
    {
        byte[] bytes = Sample(CompressionCodec.None);
        Assert.Throws<KafkaProtocolException>(() => RecordBatch.Parse(bytes.AsMemory(0, 40)));

        byte[] longer = (byte[])bytes.Clone();
        BinaryPrimitives.WriteInt32BigEndian(longer.AsSpan(8), bytes.Length);
        Assert.Throws<KafkaProtocolException>(() => RecordBatch.Parse(longer));

        byte[] tooMany = (byte[])bytes.Clone();
        BinaryPrimitives.WriteInt32BigEndian(tooMany.AsSpan(57), int.MaxValue);
        Assert.Throws<KafkaProtocolException>(() => RecordBatch.Parse(tooMany));

        byte[] fewer = (byte[])bytes.Clone();
        BinaryPrimitives.WriteInt32BigEndian(fewer.AsSpan(57), 49);
        Assert.Throws<KafkaProtocolException>(() =>
        {
            foreach (Record record in RecordBatch.Parse(fewer).Records())
            {
                _ = record.Offset;
            }
        });
    }

    /// <summary>Rewrites a batch's record count and last offset delta, with a CRC that matches again: a header only walking the records can catch.</summary>
    private static byte[] WithClaimedCount(byte[] batch, int count)
    {
        byte[] forged = (byte[])batch.Clone();
        BinaryPrimitives.WriteInt32BigEndian(forged.AsSpan(23), count - 1);
        BinaryPrimitives.WriteInt32BigEndian(forged.AsSpan(57), count);
        RecordBatch.WriteCrc(forged);
        return forged;
    }

    /// <summary>A batch of <paramref name="count"/> records whose records section is <paramref name="records"/>, compressed with <paramref name="codec"/>; CRC valid.</summary>
    private static byte[] BatchAround(CompressionCodec codec, byte[] records, int count)
    {
        var compressed = new System.Buffers.ArrayBufferWriter<byte>();
        RecordCompression.Compress(codec, records, compressed);
        byte[] template = new RecordBatchBuilder(1_700_000_000_000) { Compression = codec }.Add(null, Utf8("x"), 1_700_000_000_000).Build();
        byte[] batch = [.. template.AsSpan(0, RecordBatch.HeaderSize), .. compressed.WrittenSpan];
        BinaryPrimitives.WriteInt32BigEndian(batch.AsSpan(8), batch.Length - RecordBatch.LogOverhead);
        return WithClaimedCount(batch, count);
    }

    [Theory]
    [InlineData(CompressionCodec.None)]
    [InlineData(CompressionCodec.Gzip)]
    [InlineData(CompressionCodec.Snappy)]
    [InlineData(CompressionCodec.Lz4)]
    [InlineData(CompressionCodec.Zstd)]
    public void CheckRecordsRefusesABatchWhoseRecordsDisagreeWithItsHeader(CompressionCodec codec)
    {
        byte[] valid = Sample(codec, 20);
        RecordBatch.Parse(valid).CheckRecords();
        RecordSet checkedRecords = RecordBatch.Parse(valid).CheckedRecords(out _);
        int walked = 0;
        foreach (Record record in checkedRecords)
        {
            Assert.Equal(100 + walked++, record.Offset);
        }

        Assert.Equal(20, walked);

        // (An uncompressed batch claiming a million records in 2 KB is refused by Parse already.)
        foreach (int claimed in codec == CompressionCodec.None ? (int[])[21, 19] : [21, 19, 1_000_000])
        {
            RecordBatch forged = RecordBatch.Parse(WithClaimedCount(valid, claimed));
            Assert.True(forged.IsCrcValid());
            var e = Assert.Throws<KafkaProtocolException>(() => forged.CheckRecords());
            Assert.Equal(ErrorCode.InvalidRecord, e.ErrorCode);
            Assert.Equal(ErrorCode.InvalidRecord, Assert.Throws<KafkaProtocolException>(() => forged.CheckedRecords(out _)).ErrorCode);
        }

        // Two records whose offset deltas skip one, under a header that says two records (last delta 1).
        var gap = new RecordBatchBuilder(1_700_000_000_000) { Compression = codec };
        gap.AddCopy(0, 1_700_000_000_000, Utf8("a"), false, Utf8("first"), false, [], 0);
        gap.AddCopy(2, 1_700_000_000_000, Utf8("b"), false, Utf8("second"), false, [], 0);
        RecordBatch skipping = RecordBatch.Parse(WithClaimedCount(gap.Build(), 2));
        Assert.Equal(2, skipping.RecordCount);
        Assert.Equal(1, skipping.LastOffsetDelta);
        Assert.Contains("offset delta 2", Assert.Throws<KafkaProtocolException>(() => skipping.CheckedRecords(out _)).Message, StringComparison.Ordinal);
        var skipped = Assert.Throws<KafkaProtocolException>(() => skipping.CheckRecords());
        Assert.Equal(ErrorCode.InvalidRecord, skipped.ErrorCode);
        Assert.Contains("offset delta 2", skipped.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(CompressionCodec.None)]
    [InlineData(CompressionCodec.Gzip)]
    [InlineData(CompressionCodec.Lz4)]
    [InlineData(CompressionCodec.Zstd)]
    public void CheckRecordsNamesKeylessRecordsInTheSameWalkWithoutInflatingTheBatchWhole(CompressionCodec codec)
    {
        // 40 MiB of zeros compress to well under a produce request's limit: a keyed record that large, a small keyless one,
        // and a keyless one larger than the walk's window (its fields are read as they come).
        byte[] bytes = new RecordBatchBuilder(1_700_000_000_000) { Compression = codec }
            .Add(Utf8("k"), new byte[40 << 20], 1_700_000_000_000)
            .Add(null, Utf8("small"), 1_700_000_000_000)
            .Add(null, new byte[1 << 20], 1_700_000_000_000)
            .Add(Utf8("k"), Utf8("last"), 1_700_000_000_000)
            .Build();
        RecordBatch batch = RecordBatch.Parse(bytes);
        var keyless = new List<int>();
        long before = GC.GetAllocatedBytesForCurrentThread();
        batch.CheckRecords(keyless);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal([1, 2], keyless);

        // Not a timing: the walk holds a window, so the 41 MiB of records are never allocated (a whole inflation is).
        Assert.True(allocated < 4 << 20, $"{allocated} bytes allocated to check the keys of a {bytes.Length}-byte {codec} batch");

        var fromCheckedRecords = new List<int>();
        RecordBatch.Parse(bytes).CheckedRecords(out _, fromCheckedRecords);
        Assert.Equal([1, 2], fromCheckedRecords);
    }

    [Theory]
    [InlineData(CompressionCodec.Gzip)]
    [InlineData(CompressionCodec.Snappy)]
    [InlineData(CompressionCodec.Lz4)]
    [InlineData(CompressionCodec.Zstd)]
    public void CheckRecordsRefusesDataTheCodecCannotReadOrThatInflatesBeyondTheLimit(CompressionCodec codec)
    {
        byte[] valid = Sample(codec, 20);
        RecordBatch batch = RecordBatch.Parse(valid);
        var bomb = Assert.Throws<KafkaProtocolException>(() => batch.CheckRecords(maxDecompressedBytes: 100));
        Assert.Equal(ErrorCode.CorruptMessage, bomb.ErrorCode);
        Assert.Contains("limit", bomb.Message, StringComparison.Ordinal);

        // The compressed section cut short: the codec runs out of input.
        Assert.Throws<KafkaProtocolException>(() => RecordBatch.Parse(CutShort(valid, 24)).CheckRecords());
    }

    [Fact]
    public void AGzipBatchCutShortAnywhereInItsLastBytesIsRefusedAndWholeMembersWithTrailingBytesAreRead()
    {
        // .NET's gzip reader ends quietly when the input stops before a member's CRC-32 and length: such a batch (from a
        // hostile-input review) inflated fully, was stored, and librdkafka consumers then spun on the partition. Every cut
        // from 1 to 24 bytes, through the trailer into the deflate data, must be refused by the decompression or the
        // records check, as a consumer's reader refuses it.
        byte[] valid = Sample(CompressionCodec.Gzip, 20);
        RecordBatch.Parse(valid).CheckRecords();
        for (int cut = 1; cut <= 24; cut++)
        {
            byte[] truncated = CutShort(valid, cut);
            string? refusal = ProtocolErrorOf(() => RecordBatch.Parse(truncated).CheckRecords());
            Assert.True(refusal is not null, $"cut {cut} passed the records check");
            Assert.True(ProtocolErrorOf(() => RecordCompression.Decompress(CompressionCodec.Gzip, truncated.AsSpan(RecordBatch.HeaderSize), 1 << 20)) is not null || cut > 8, $"cut {cut} of the trailer decompressed");
            // .NET's own words for the guard bytes read as a block ("unsupported compression method") blamed the codec.
            Assert.DoesNotContain("unsupported compression", refusal, StringComparison.OrdinalIgnoreCase);
        }

        // A second member, or bytes after the member that are not one (Java's reader ignores them), still read whole.
        byte[] records = RecordCompression.Decompress(CompressionCodec.Gzip, valid.AsSpan(RecordBatch.HeaderSize), 1 << 20);
        byte[] member = GzipOf(records);
        foreach (byte[] tail in new[] { Array.Empty<byte>(), [1, 2, 3, 4, 5, 6, 7, 8, 9] })
        {
            Assert.Equal(records, RecordCompression.Decompress(CompressionCodec.Gzip, [.. member, .. tail], 1 << 20));
        }

        byte[] twoMembers = [.. GzipOf(records[..10]), .. GzipOf(records[10..])];
        Assert.Equal(records, RecordCompression.Decompress(CompressionCodec.Gzip, twoMembers, 1 << 20));
    }

    private static byte[] GzipOf(byte[] data)
    {
        var output = new ArrayBufferWriter<byte>();
        RecordCompression.Compress(CompressionCodec.Gzip, data, output);
        return output.WrittenSpan.ToArray();
    }

    /// <summary>The message of the protocol error the action throws, or null when it throws none.</summary>
    private static string? ProtocolErrorOf(Action action)
    {
        try
        {
            action();
            return null;
        }
        catch (KafkaProtocolException e)
        {
            return e.Message;
        }
    }

    /// <summary>The batch with its last <paramref name="cut"/> bytes gone, its length and CRC written again to match.</summary>
    private static byte[] CutShort(byte[] batch, int cut)
    {
        byte[] truncated = batch[..^cut];
        BinaryPrimitives.WriteInt32BigEndian(truncated.AsSpan(8), truncated.Length - RecordBatch.LogOverhead);
        RecordBatch.WriteCrc(truncated);
        return truncated;
    }

    [Theory]
    [InlineData(CompressionCodec.Gzip)]
    [InlineData(CompressionCodec.Lz4)]
    [InlineData(CompressionCodec.Zstd)]
    public void CheckingACompressedBatchHoldsAWindowNotTheRecords(CompressionCodec codec)
    {
        // 48 MiB of zeros in one record compresses to a few kilobytes; the check must not inflate it into memory (a
        // handful of such requests held gigabytes before). Its timestamp bound is read the same way.
        var builder = new RecordBatchBuilder(1_700_000_000_000) { Compression = codec };
        builder.Add(Utf8("k"), new byte[48 << 20], 1_700_000_000_000).Add(null, Utf8("tail"), 1_700_000_000_005);
        RecordBatch batch = RecordBatch.Parse(builder.Build());
        Assert.True(batch.TotalSize < 1 << 20, $"the batch is {batch.TotalSize} bytes");

        long before = GC.GetAllocatedBytesForCurrentThread();
        batch.CheckRecords();
        Assert.Equal(1, batch.FirstRecordWithTimestampOutside(long.MinValue, 1_700_000_000_004));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 4 << 20, $"checking allocated {allocated} bytes");
    }

    [Theory]
    [InlineData(CompressionCodec.Gzip)]
    [InlineData(CompressionCodec.Lz4)]
    [InlineData(CompressionCodec.Zstd)]
    public void ARecordMalformedInsideACompressedBatchIsAnInvalidRecord(CompressionCodec codec)
    {
        // Records whose own lengths lie, compressed in a batch with a good CRC: a header key that is null, a value longer
        // than its record, a record with a byte to spare. Each is INVALID_RECORD, as for an uncompressed batch.
        byte[][] records =
        [
            [.. Record([0, 0, 0, 2, (byte)'k', 2, (byte)'v', 2, 1, 2, (byte)'x'])], // header key length -1 (zig-zag 1)
            [.. Record([0, 0, 0, 2, (byte)'k', 40, (byte)'v', 0])], // value length 20 in a record of 8 bytes
            [.. Record([0, 0, 0, 2, (byte)'k', 2, (byte)'v', 0, 9])], // a byte after the last header
        ];
        RecordBatch.Parse(BatchAround(codec, Record([0, 0, 0, 2, (byte)'k', 2, (byte)'v', 0]), count: 1)).CheckRecords(); // well formed
        foreach (byte[] record in records)
        {
            var e = Assert.Throws<KafkaProtocolException>(() => RecordBatch.Parse(BatchAround(codec, record, count: 1)).CheckRecords());
            Assert.Equal(ErrorCode.InvalidRecord, e.ErrorCode);
        }

        static byte[] Record(byte[] body) => [(byte)(body.Length * 2), .. body];
    }

    [Fact]
    public void ReaderSplitsBatchesAndHandlesPartialTails()
    {
        byte[] a = Sample(CompressionCodec.None, 3);
        byte[] b = Sample(CompressionCodec.Gzip, 4);
        byte[] both = [.. a, .. b];
        var reader = new RecordBatchReader(new ReadOnlySequence<byte>(both));
        Assert.True(reader.TryReadNext(out RecordBatch first));
        Assert.Equal(3, first.RecordCount);
        Assert.True(reader.TryReadNext(out RecordBatch second));
        Assert.Equal(4, second.RecordCount);
        Assert.False(reader.TryReadNext(out _));

        byte[] cut = both[..(both.Length - 5)];
        var strict = new RecordBatchReader(new ReadOnlySequence<byte>(cut));
        Assert.True(strict.TryReadNext(out _));
        Assert.Throws<KafkaProtocolException>(() => strict.TryReadNext(out _));

        var lenient = new RecordBatchReader(new ReadOnlySequence<byte>(cut), allowPartialTail: true);
        Assert.True(lenient.TryReadNext(out _));
        Assert.False(lenient.TryReadNext(out _));
        Assert.True(lenient.PartialTail);
    }

    [Fact]
    public void BatchSpanningSegmentsIsReadWhole()
    {
        byte[] a = Sample(CompressionCodec.Snappy, 10);
        ReadOnlySequence<byte> twoBatches = MemorySequence.Join([a.AsMemory(0, 30), a.AsMemory(30), a.AsMemory()]);
        var reader = new RecordBatchReader(twoBatches);
        Assert.True(reader.TryReadNext(out RecordBatch batch));
        Assert.True(batch.IsCrcValid());
        Assert.Equal(10, batch.RecordCount);

        // The spanning batch was copied into an array of its own, which a caller may keep; the next one is a view.
        Assert.True(reader.LastBatchIsCopy);
        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(batch.Data, out ArraySegment<byte> copy));
        Assert.NotSame(a, copy.Array);
        Assert.Equal(a, copy.Array);
        Assert.True(reader.TryReadNext(out RecordBatch view));
        Assert.False(reader.LastBatchIsCopy);
        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(view.Data, out ArraySegment<byte> viewed));
        Assert.Same(a, viewed.Array);
    }

    [Fact]
    public void WithACopyPoolABatchSpanningSegmentsIsCopiedIntoARentedArray()
    {
        byte[] a = Sample(CompressionCodec.None, 10);
        ReadOnlySequence<byte> twoBatches = MemorySequence.Join([a.AsMemory(0, 30), a.AsMemory(30), a.AsMemory()]);
        var pool = new CountingPool();
        var reader = new RecordBatchReader(twoBatches, copyPool: pool);

        Assert.True(reader.TryReadNext(out RecordBatch spanning));
        Assert.True(spanning.IsCrcValid());
        Assert.False(reader.LastBatchIsCopy);
        Assert.NotNull(reader.LastBatchRentedCopy);
        Assert.Equal(1, pool.Rented);
        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(spanning.Data, out ArraySegment<byte> copy));
        Assert.Same(reader.LastBatchRentedCopy, copy.Array);
        Assert.Equal(a, copy.AsSpan().ToArray());

        // A batch inside one segment is a view, and nothing is rented for it.
        Assert.True(reader.TryReadNext(out RecordBatch view));
        Assert.Null(reader.LastBatchRentedCopy);
        Assert.Equal(1, pool.Rented);
        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(view.Data, out ArraySegment<byte> viewed));
        Assert.Same(a, viewed.Array);
    }

    private sealed class CountingPool : ArrayPool<byte>
    {
        public int Rented { get; private set; }

        public override byte[] Rent(int minimumLength)
        {
            Rented++;
            return new byte[minimumLength + 100];
        }

        public override void Return(byte[] array, bool clearArray = false)
        {
        }
    }

    [Fact]
    public void ControlBatchCarriesTheMarker()
    {
        RecordBatch marker = RecordBatch.Parse(RecordBatchBuilder.BuildControlBatch(commit: true, producerId: 9, producerEpoch: 2, coordinatorEpoch: 11, timestamp: 5));
        Assert.True(marker.IsControl);
        Assert.True(marker.IsTransactional);
        Assert.True(marker.IsCrcValid());
        foreach (Record record in marker.Records())
        {
            Assert.Equal(1, BinaryPrimitives.ReadInt16BigEndian(record.Key[2..]));
            Assert.Equal(11, BinaryPrimitives.ReadInt32BigEndian(record.Value[2..]));
        }
    }

    [Theory]
    [InlineData(CompressionCodec.Gzip)]
    [InlineData(CompressionCodec.Snappy)]
    [InlineData(CompressionCodec.Lz4)]
    [InlineData(CompressionCodec.Zstd)]
    public void CheckedRecordsLeftInPooledMemoryAreNotCopiedAndReadAsTheCopiedOnes(CompressionCodec codec)
    {
        // The contract gate's records of a compressed batch were copied out of the pooled buffer they inflated into: as
        // many bytes again of large-object garbage per batch (a 63 MiB inflating batch made 63 MiB more).
        var builder = new RecordBatchBuilder(1_700_000_000_000) { Compression = codec };
        for (int i = 0; i < 400; i++)
        {
            builder.Add(null, Encoding.UTF8.GetBytes($"{i:D6}" + new string('x', 10_000)), 1_700_000_000_000 + i);
        }

        RecordBatch batch = RecordBatch.Parse(builder.Build());
        RecordSet copied = batch.CheckedRecords(out long copiedMax);
        var keyless = new List<int>();
        for (int round = 0; round < 2; round++)
        {
            // The first round fills this thread's pool; the second must then allocate next to nothing.
            keyless.Clear();
            long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
            RecordSet pooledRecords = batch.CheckedRecords(out long pooledMax, out PooledBufferWriter? pooled, keyless);
            long allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
            try
            {
                Assert.NotNull(pooled);
                Assert.Equal(copiedMax, pooledMax);
                Assert.Equal(400, keyless.Count);
                Assert.True(copied.Bytes.Span.SequenceEqual(pooledRecords.Bytes.Span));
                Assert.True(round == 0 || allocated < copied.Bytes.Length / 4, $"{allocated} bytes allocated for {copied.Bytes.Length} bytes of records");
            }
            finally
            {
                pooled!.Release();
            }
        }

        // An uncompressed batch is read in place: nothing to give back.
        RecordBatch.Parse(Sample(CompressionCodec.None)).CheckedRecords(out _, out PooledBufferWriter? none);
        Assert.Null(none);
    }

    [Fact]
    public void SnappyDataWithBytesAfterItsDeclaredLengthIsCorrupt()
    {
        // Snappier stopped once the declared length was written: these were stored, and librdkafka and kafka-python
        // consumers (libsnappy) then failed on the batch for good (a hostile-compression review).
        byte[] batch = Sample(CompressionCodec.Snappy, 3);
        byte[] records = RecordCompression.Decompress(CompressionCodec.Snappy, batch.AsSpan(RecordBatch.HeaderSize), 1 << 20);
        byte[] raw = Snappier.Snappy.CompressToArray(records);
        foreach (byte[] trailing in new byte[][] { [0x04, (byte)'A', (byte)'B'], [0], [0, 0, 0, 0] })
        {
            byte[] rawWithTail = [.. raw, .. trailing];
            var refused = Assert.Throws<KafkaProtocolException>(() => RecordCompression.Decompress(CompressionCodec.Snappy, rawWithTail, 1 << 20));
            Assert.Equal(ErrorCode.CorruptMessage, refused.ErrorCode);
            Assert.Contains("after the", refused.Message, StringComparison.Ordinal);

            // The same inside one xerial (Java client) block whose length covers the extra bytes.
            var xerial = new ArrayBufferWriter<byte>();
            RecordCompression.Compress(CompressionCodec.Snappy, records, xerial);
            byte[] header = xerial.WrittenSpan[..16].ToArray();
            byte[] blockLength = new byte[4];
            BinaryPrimitives.WriteInt32BigEndian(blockLength, rawWithTail.Length);
            Assert.Throws<KafkaProtocolException>(() => RecordCompression.Decompress(CompressionCodec.Snappy, [.. header, .. blockLength, .. rawWithTail], 1 << 20));
        }

        // A block cut short, or whose elements make more than it declares, is refused too; the block itself still reads.
        Assert.Throws<KafkaProtocolException>(() => RecordCompression.Decompress(CompressionCodec.Snappy, raw.AsSpan(0, raw.Length - 1), 1 << 20));
        Assert.True(records.Length is > 1 and < 128); // its length is one varint byte
        byte[] overlong = [.. raw];
        overlong[0]--; // declares one byte fewer than its elements make
        Assert.Throws<KafkaProtocolException>(() => RecordCompression.Decompress(CompressionCodec.Snappy, overlong, 1 << 20));
        Assert.Equal(records, RecordCompression.Decompress(CompressionCodec.Snappy, raw, 1 << 20));
    }

    [Fact]
    public void XerialFramedAndRawSnappyBothDecode()
    {
        byte[] payload = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("snappy framing test ", 5000)));
        var framed = new ArrayBufferWriter<byte>();
        RecordCompression.Compress(CompressionCodec.Snappy, payload, framed);
        Assert.Equal(0x82, framed.WrittenSpan[0]);
        Assert.Equal(payload, RecordCompression.Decompress(CompressionCodec.Snappy, framed.WrittenSpan, payload.Length));

        byte[] raw = Snappier.Snappy.CompressToArray(payload);
        Assert.Equal(payload, RecordCompression.Decompress(CompressionCodec.Snappy, raw, payload.Length));
    }

    [Theory]
    [InlineData(CompressionCodec.Gzip)]
    [InlineData(CompressionCodec.Snappy)]
    [InlineData(CompressionCodec.Lz4)]
    [InlineData(CompressionCodec.Zstd)]
    public void DecompressionBombIsRefusedAtTheLimit(CompressionCodec codec)
    {
        // 64 MiB of zeros compresses to a few KiB; the limit is 1 MiB.
        byte[] zeros = new byte[64 * 1024 * 1024];
        var compressed = new ArrayBufferWriter<byte>();
        RecordCompression.Compress(codec, zeros, compressed);
        Assert.True(compressed.WrittenCount < 4 * 1024 * 1024, $"{codec} compressed to {compressed.WrittenCount}");
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<KafkaProtocolException>(() => RecordCompression.Decompress(codec, compressed.WrittenSpan, 1024 * 1024));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Contains("limit", e.Message, StringComparison.Ordinal);
        Assert.True(allocated < 16L * 1024 * 1024, $"refusing the bomb allocated {allocated} bytes");
    }

    [Theory]
    [InlineData(CompressionCodec.Gzip)]
    [InlineData(CompressionCodec.Snappy)]
    [InlineData(CompressionCodec.Lz4)]
    [InlineData(CompressionCodec.Zstd)]
    public void MutatedBatchesOnlyThrowProtocolExceptions(CompressionCodec codec)
    {
        byte[] valid = Sample(codec, 20);
        var random = new Random((int)codec);
        for (int i = 0; i < 1500; i++)
        {
            byte[] mutated = (byte[])valid.Clone();
            for (int k = 0; k < 1 + random.Next(3); k++)
            {
                mutated[RecordBatch.HeaderSize - 4 + random.Next(mutated.Length - RecordBatch.HeaderSize + 4)] = (byte)random.Next(256);
            }

            try
            {
                RecordBatch batch = RecordBatch.Parse(mutated);
                foreach (Record record in batch.Records(1024 * 1024))
                {
                    _ = record.Key.Length + record.Value.Length;
                }

                batch.CheckRecords(maxDecompressedBytes: 1024 * 1024);
            }
            catch (KafkaProtocolException)
            {
            }
        }
    }

    [Fact]
    public void AnLz4FrameAskingForAPredefinedDictionaryIsCorruptData()
    {
        // Frame magic, FLG 0x41 (version 01, dictionary id present), BD 0x40 (64 KiB blocks), a dictionary id, the header
        // checksum (second byte of the xxHash32 of FLG..dictionary id), then the end mark.
        byte[] descriptor = [0x41, 0x40, 1, 2, 3, 4];
        byte checksum = (byte)(K4os.Hash.xxHash.XXH32.DigestOf(descriptor) >> 8);
        byte[] frame = [0x04, 0x22, 0x4D, 0x18, .. descriptor, checksum, 0, 0, 0, 0];

        var e = Assert.Throws<KafkaProtocolException>(() => RecordCompression.Decompress(CompressionCodec.Lz4, frame, 1 << 20));
        Assert.Equal(ErrorCode.CorruptMessage, e.ErrorCode);
    }
}
