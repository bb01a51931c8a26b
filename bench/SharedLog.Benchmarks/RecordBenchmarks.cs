using System.Buffers;
using BenchmarkDotNet.Attributes;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Protocol.Records;
using Record = SharedLog.Protocol.Records.Record;

namespace SharedLog.Benchmarks;

/// <summary>CRC32C, record iteration and the broker's produce-side validation (decode + batch split + CRC).</summary>
[MemoryDiagnoser]
public class RecordBenchmarks
{
    private byte[] _mebibyte = [];
    private byte[] _thousandRecords = [];
    private byte[] _produceFrame = [];

    [GlobalSetup]
    public void Setup()
    {
        _mebibyte = new byte[1024 * 1024];
        new Random(1).NextBytes(_mebibyte);

        var builder = new RecordBatchBuilder(1_700_000_000_000);
        byte[] value = new byte[100];
        for (int i = 0; i < 1000; i++)
        {
            builder.Add(BitConverter.GetBytes(i), value, 1_700_000_000_000 + i, [new RecordHeaderValue("h", value[..8])]);
        }

        _thousandRecords = builder.Build();

        // ~1 MiB of records as eight 128 KiB batches, the shape a batching producer sends.
        var batches = new List<byte>();
        for (int b = 0; b < 8; b++)
        {
            var batch = new RecordBatchBuilder(1_700_000_000_000);
            for (int i = 0; i < 128; i++)
            {
                batch.Add(null, new byte[1000], 1_700_000_000_000);
            }

            batches.AddRange(batch.Build());
        }

        var produce = new ProduceRequest
        {
            Acks = -1,
            TimeoutMs = 30000,
            TopicData = [new ProduceRequest.TopicProduceData { Name = "bench", PartitionData = [new ProduceRequest.PartitionProduceData { Index = 0, Records = new ReadOnlySequence<byte>([.. batches]) }] }],
        };
        var frame = new ArrayBufferWriter<byte>();
        RequestFrame.WriteRequest(frame, produce, 9, 1, "bench");
        _produceFrame = frame.WrittenSpan[4..].ToArray();
    }

    [Benchmark]
    public uint Crc32COfOneMebibyte() => Crc32C.Compute(_mebibyte);

    [Benchmark]
    public long IterateThousandRecordBatch()
    {
        long sum = 0;
        foreach (Record record in RecordBatch.Parse(_thousandRecords).Records())
        {
            sum += record.Offset + record.Value.Length + record.HeaderCount;
        }

        return sum;
    }

    /// <summary>What the broker does before appending: decode the request, split the batches, check each CRC.</summary>
    [Benchmark]
    public int DecodeAndValidateOneMebibyteProduce()
    {
        var produce = (ProduceRequest)RequestFrame.Decode(new ReadOnlySequence<byte>(_produceFrame)).Body;
        var reader = new RecordBatchReader(produce.TopicData[0].PartitionData[0].Records!.Value);
        int batches = 0;
        while (reader.TryReadNext(out RecordBatch batch))
        {
            batch.VerifyCrc();
            batches++;
        }

        return batches;
    }
}
