using System.Buffers;
using BenchmarkDotNet.Attributes;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

namespace SharedLog.Benchmarks;

/// <summary>
/// Request decode and response encode at the sizes the hot paths see. The records payload is opaque
/// here (a slice on decode, a copy into the output on encode), so allocations must not grow with it.
/// </summary>
[MemoryDiagnoser]
public class ProtocolBenchmarks
{
    private byte[] _produceFrame = [];
    private FetchResponse _fetchResponse = new();
    private ArrayBufferWriter<byte> _output = new();

    [Params(1024 * 1024, 64 * 1024)]
    public int PayloadBytes { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        byte[] records = new byte[PayloadBytes];
        new Random(1).NextBytes(records);
        var produce = new ProduceRequest
        {
            Acks = -1,
            TimeoutMs = 30000,
            TopicData =
            [
                new ProduceRequest.TopicProduceData
                {
                    Name = "bench-topic",
                    PartitionData = [new ProduceRequest.PartitionProduceData { Index = 0, Records = new ReadOnlySequence<byte>(records) }],
                },
            ],
        };
        var frame = new ArrayBufferWriter<byte>();
        RequestFrame.WriteRequest(frame, produce, 9, 1, "bench");
        _produceFrame = frame.WrittenSpan[4..].ToArray();

        _fetchResponse = new FetchResponse
        {
            Responses =
            [
                new FetchResponse.FetchableTopicResponse
                {
                    Topic = "bench-topic",
                    Partitions = [new FetchResponse.PartitionData { PartitionIndex = 0, HighWatermark = 1000, Records = new ReadOnlySequence<byte>(records) }],
                },
            ],
        };
        _output = new ArrayBufferWriter<byte>(PayloadBytes + 4096);
    }

    [Benchmark]
    public long DecodeProduceRequest()
    {
        DecodedRequest request = RequestFrame.Decode(new ReadOnlySequence<byte>(_produceFrame));
        return ((ProduceRequest)request.Body).TopicData[0].PartitionData[0].Records!.Value.Length;
    }

    [Benchmark]
    public int EncodeFetchResponse()
    {
        _output.ResetWrittenCount();
        RequestFrame.WriteResponse(_output, 7, _fetchResponse, 12);
        return _output.WrittenCount;
    }
}
