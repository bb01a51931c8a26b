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

    /// <summary>A compacted topic's check: the keys are read in the same walk (these records have none, so all are named).</summary>
    [Benchmark]
    public int CheckCompressedBatchAndKeys()
    {
        RecordBatch batch = RecordBatch.Parse(_batch);
        var keyless = new List<int>();
        batch.CheckRecords(keyless);
        return keyless.Count;
    }

    /// <summary>The same, as the produce path did it before stop 63: the check, then the whole batch inflated to read its keys.</summary>
    [Benchmark]
    public int CheckCompressedBatchThenInflateForKeys()
    {
        RecordBatch batch = RecordBatch.Parse(_batch);
        batch.CheckRecords();
        int keyless = 0;
        foreach (Record record in batch.Records())
        {
            keyless += record.KeyIsNull ? 1 : 0;
        }

        return keyless;
    }
}
