using BenchmarkDotNet.Attributes;
using SharedLog.Protocol.Records;

namespace SharedLog.Benchmarks;

/// <summary>
/// The produce path's record check of a compressed batch (every record walked against the header, as Kafka's log
/// validator does): about 1 MiB of 1 KiB records, half random and half repeated bytes, the way a batching producer
/// sends them with compression on.
/// </summary>
[MemoryDiagnoser]
public class CompressedCheckBenchmarks
{
    private byte[] _batch = [];

    [Params(CompressionCodec.Lz4, CompressionCodec.Zstd, CompressionCodec.Gzip)]
    public CompressionCodec Codec { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(1);
        var builder = new RecordBatchBuilder(1_700_000_000_000) { Compression = Codec };
        for (int i = 0; i < 1000; i++)
        {
            byte[] value = new byte[1024];
            random.NextBytes(value.AsSpan(0, 512));
            builder.Add(null, value, 1_700_000_000_000 + i);
        }

        _batch = builder.Build();
    }

    [Benchmark]
    public int CheckCompressedBatch()
    {
        RecordBatch batch = RecordBatch.Parse(_batch);
        batch.CheckRecords();
        return batch.RecordCount;
    }
}
