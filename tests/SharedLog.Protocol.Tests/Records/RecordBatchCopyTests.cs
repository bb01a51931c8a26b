using System.Text;
using SharedLog.Protocol.Records;
using Record = SharedLog.Protocol.Records.Record;

namespace SharedLog.Protocol.Tests.Records;

/// <summary>Copying records into a new batch, as the contract gate does: offset gaps, headers, codecs.</summary>
public class RecordBatchCopyTests
{
    [Theory]
    [InlineData(CompressionCodec.None)]
    [InlineData(CompressionCodec.Gzip)]
    [InlineData(CompressionCodec.Zstd)]
    public void CopiedRecordsKeepTheirOffsetsHeadersAndTheBatchSpan(CompressionCodec codec)
    {
        var source = new RecordBatchBuilder(1_000) { Compression = codec, ProducerId = 7, ProducerEpoch = 1, BaseSequence = 40 };
        for (int i = 0; i < 5; i++)
        {
            source.Add(Encoding.UTF8.GetBytes($"k{i}"), i == 3 ? null : Encoding.UTF8.GetBytes($"v{i}"), 1_000 + i, [new RecordHeaderValue("h", [(byte)i])]);
        }

        RecordBatch original = RecordBatch.Parse(source.Build());
        var copy = new RecordBatchBuilder(original.BaseTimestamp, original.Data.Length)
        {
            Compression = original.Compression,
            ProducerId = original.ProducerId,
            ProducerEpoch = original.ProducerEpoch,
            BaseSequence = original.BaseSequence,
            LastOffsetDelta = original.LastOffsetDelta,
        };
        foreach (Record record in original.Records())
        {
            if (record.Offset % 2 == 0)
            {
                copy.AddCopy((int)record.Offset, record.Timestamp, record.Key, record.KeyIsNull, record.Value, record.ValueIsNull, record.RawHeaders, record.HeaderCount, record.Offset == 2 ? [new RecordHeaderValue("why", "bad"u8.ToArray())] : null);
            }
        }

        RecordBatch rebuilt = RecordBatch.Parse(copy.Build());
        Assert.True(rebuilt.IsCrcValid());
        Assert.Equal((4, 3, 7L, (short)1, 40), (rebuilt.LastOffsetDelta, rebuilt.RecordCount, rebuilt.ProducerId, rebuilt.ProducerEpoch, rebuilt.BaseSequence));
        var seen = new List<string>();
        foreach (Record record in rebuilt.Records())
        {
            var headers = new List<string>();
            foreach (RecordHeader header in record.Headers)
            {
                headers.Add($"{header.KeyString}={Encoding.UTF8.GetString(header.Value)}");
            }

            seen.Add($"{record.Offset}:{Encoding.UTF8.GetString(record.Key)}:{record.Timestamp}:{string.Join(',', headers)}");
        }

        Assert.Equal(["0:k0:1000:h=\0", "2:k2:1002:h=\u0002,why=bad", "4:k4:1004:h=\u0004"], seen);
    }

    [Fact]
    public void AnEmptyBatchKeepsItsSpanAndABuilderBuildsOnce()
    {
        var empty = new RecordBatchBuilder(5) { LastOffsetDelta = 9 };
        RecordBatch batch = RecordBatch.Parse(empty.Build());
        Assert.Equal((0, 9), (batch.RecordCount, batch.LastOffsetDelta));
        Assert.Throws<InvalidOperationException>(() => empty.Build());
        Assert.Throws<InvalidOperationException>(() => new RecordBatchBuilder(5).Build());
        var builder = new RecordBatchBuilder(5);
        builder.AddCopy(3, 5, [], true, [], true, [], 0);
        Assert.Throws<ArgumentOutOfRangeException>(() => builder.AddCopy(2, 5, [], true, [], true, [], 0));
    }

    [Theory]
    [InlineData(CompressionCodec.Gzip)]
    [InlineData(CompressionCodec.Snappy)]
    [InlineData(CompressionCodec.Lz4)]
    [InlineData(CompressionCodec.Zstd)]
    public void AnEmptyBatchCarriesNoCodecAsKafkaWritesOne(CompressionCodec codec)
    {
        // All a compressed batch's records quarantined: an empty frame of the producer's codec made librdkafka consumers
        // spin (gzip), fail (snappy) or abort (lz4, zstd) at that offset.
        var empty = new RecordBatchBuilder(5) { LastOffsetDelta = 49, Compression = codec, ProducerId = 7, BaseSequence = 3 };
        byte[] bytes = empty.Build();
        RecordBatch batch = RecordBatch.Parse(bytes);
        Assert.Equal((CompressionCodec.None, 0, 49, RecordBatch.HeaderSize), (batch.Compression, batch.RecordCount, batch.LastOffsetDelta, bytes.Length));
        Assert.Equal((7L, 3), (batch.ProducerId, batch.BaseSequence));

        // A batch with records keeps its codec.
        var one = new RecordBatchBuilder(5) { Compression = codec };
        one.Add(null, "v"u8.ToArray(), 5);
        Assert.Equal(codec, RecordBatch.Parse(one.Build()).Compression);
    }

    [Fact]
    public void ABatchBuiltAtItsExactSizeIsTheSameBatchAndAWrongSizeIsRefused()
    {
        var source = new RecordBatchBuilder(1_000) { ProducerId = 3, ProducerEpoch = 2, BaseSequence = 9 };
        for (int i = 0; i < 4; i++)
        {
            source.Add(i == 1 ? null : Encoding.UTF8.GetBytes($"key-{i}"), Encoding.UTF8.GetBytes(new string('v', 100 * i)), 1_000 + (i * 7), [new RecordHeaderValue("h", [(byte)i])]);
        }

        RecordBatch original = RecordBatch.Parse(source.Build());
        RecordHeaderValue[] flag = [new RecordHeaderValue("why", "bad"u8.ToArray())];
        int exactBytes = 0;
        foreach (Record record in original.Records())
        {
            exactBytes += RecordBatchBuilder.CopiedRecordSize(record.Timestamp - original.BaseTimestamp, (int)record.Offset, record.Key.Length, record.KeyIsNull, record.Value.Length, record.ValueIsNull, record.RawHeaders.Length, record.HeaderCount, record.Offset == 2 ? flag : null);
        }

        byte[] Copy(RecordBatchBuilder builder)
        {
            builder.ProducerId = original.ProducerId;
            builder.ProducerEpoch = original.ProducerEpoch;
            builder.BaseSequence = original.BaseSequence;
            foreach (Record record in original.Records())
            {
                builder.AddCopy((int)record.Offset, record.Timestamp, record.Key, record.KeyIsNull, record.Value, record.ValueIsNull, record.RawHeaders, record.HeaderCount, record.Offset == 2 ? flag : null);
            }

            return builder.Build();
        }

        byte[] pooled = Copy(new RecordBatchBuilder(original.BaseTimestamp));
        byte[] exact = Copy(RecordBatchBuilder.WithExactRecordBytes(original.BaseTimestamp, exactBytes));
        Assert.Equal(pooled, exact);
        Assert.True(RecordBatch.Parse(exact).IsCrcValid());

        // One byte too many leaves an unwritten byte; one too few cannot hold the last record.
        Assert.Throws<InvalidOperationException>(() => Copy(RecordBatchBuilder.WithExactRecordBytes(original.BaseTimestamp, exactBytes + 1)));
        Assert.Throws<InvalidOperationException>(() => Copy(RecordBatchBuilder.WithExactRecordBytes(original.BaseTimestamp, exactBytes - 1)));
        Assert.Throws<InvalidOperationException>(() => RecordBatchBuilder.WithExactRecordBytes(1, 10).Add([1], [2], 1));
    }
}
