using System.Buffers;
using SharedLog.Protocol.Generator;
using SharedLog.Protocol.Messages;

namespace SharedLog.Protocol.Tests;

public class RoundTripTests
{
    private const int SeedsPerVersion = 4;

    /// <summary>
    /// Every message of the spec at every valid version, filled with random values: the exact size is
    /// predicted, decoding reproduces every present field, nothing is left over, and re-encoding gives
    /// the same bytes.
    /// </summary>
    [SharedDataFact]
    public void EveryMessageAtEveryVersionRoundTrips()
    {
        string spec = SharedData.RequireKafkaProtocol();
        var failures = new List<string>();
        int checkedCount = 0;
        foreach (MessageSpec message in MessageSpec.LoadAll(Path.Combine(spec, "message")))
        {
            for (short version = message.ValidVersions.Low; version <= message.ValidVersions.High; version++)
            {
                for (int seed = 0; seed < SeedsPerVersion; seed++)
                {
                    string? failure = RoundTrip(message, version, seed);
                    checkedCount++;
                    if (failure is not null)
                    {
                        failures.Add(failure);
                    }
                }
            }
        }

        Assert.True(checkedCount > 1500, $"only {checkedCount} cases ran");
        Assert.True(failures.Count == 0, $"{failures.Count} of {checkedCount} round trips failed:\n" + string.Join("\n", failures.Take(40)));
    }

    private static string? RoundTrip(MessageSpec message, short version, int seed)
    {
        string name = $"{message.Name} v{version} seed {seed}";
        try
        {
            var filler = new MessageFiller(message, seed * 7919 + version);
            IKafkaMessage original = filler.Create(version);
            int predicted = original.ComputeSize(version);
            var output = new ArrayBufferWriter<byte>();
            long written = original.WriteTo(output, version);
            if (written != predicted || output.WrittenCount != predicted)
            {
                return $"{name}: ComputeSize {predicted} but wrote {written}";
            }

            var tiny = new TinySpanWriter();
            original.WriteTo(tiny, version);
            if (!tiny.Written.AsSpan().SequenceEqual(output.WrittenSpan))
            {
                return $"{name}: output depends on the buffer sizes the writer is handed";
            }

            var decoded = (IKafkaMessage)Activator.CreateInstance(original.GetType())!;
            decoded.ReadFrom(output.WrittenMemory, version);
            List<string> differences = filler.Compare(original, decoded, version);
            if (differences.Count > 0)
            {
                return $"{name}: " + string.Join("; ", differences.Take(5));
            }

            byte[] again = decoded.ToArray(version);
            if (!again.AsSpan().SequenceEqual(output.WrittenSpan))
            {
                return $"{name}: re-encoding differs";
            }

            return null;
        }
        catch (Exception e)
        {
            return $"{name}: {e.GetType().Name}: {e.Message}";
        }
    }

    [Fact]
    public void UnknownTaggedFieldsSurviveARoundTrip()
    {
        var request = new ApiVersionsRequest { ClientSoftwareName = "kcat", ClientSoftwareVersion = "1.7.1" };
        request.UnknownTaggedFields = [new RawTaggedField(42, [1, 2, 3])];
        byte[] bytes = request.ToArray(3);
        var decoded = new ApiVersionsRequest().ReadFrom(bytes, 3);
        Assert.Equal("kcat", decoded.ClientSoftwareName);
        Assert.NotNull(decoded.UnknownTaggedFields);
        RawTaggedField raw = Assert.Single(decoded.UnknownTaggedFields);
        Assert.Equal(42, raw.Tag);
        Assert.Equal(new byte[] { 1, 2, 3 }, raw.Data);
        Assert.Equal(bytes, decoded.ToArray(3));
    }

    [Fact]
    public void TaggedFieldIsSentOnlyWhenNotDefault()
    {
        var request = new FetchRequest { MaxWaitMs = 500 };
        int withoutCluster = request.ComputeSize(12);
        request.ClusterId = "cluster-a";
        int withCluster = request.ComputeSize(12);

        // tag (1) + size (1) + compact string length (1) + 9 bytes
        Assert.Equal(withoutCluster + 12, withCluster);
        var decoded = new FetchRequest().ReadFrom(request.ToArray(12), 12);
        Assert.Equal("cluster-a", decoded.ClusterId);
        Assert.Null(new FetchRequest().ReadFrom(new FetchRequest().ToArray(12), 12).ClusterId);
    }

    [Fact]
    public void RecordsFieldIsASliceOfTheInputNotACopy()
    {
        byte[] records = [9, 8, 7, 6, 5];
        var request = new ProduceRequest
        {
            Acks = -1,
            TimeoutMs = 1000,
            TopicData =
            [
                new ProduceRequest.TopicProduceData
                {
                    Name = "t",
                    PartitionData = [new ProduceRequest.PartitionProduceData { Index = 0, Records = new ReadOnlySequence<byte>(records) }],
                },
            ],
        };
        byte[] frame = request.ToArray(9);
        var decoded = new ProduceRequest().ReadFrom(frame, 9);
        ReadOnlySequence<byte> slice = decoded.TopicData[0].PartitionData[0].Records!.Value;
        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(slice.First, out ArraySegment<byte> segment));
        Assert.Same(frame, segment.Array);
        Assert.Equal(records, slice.ToArray());
    }

    [Fact]
    public void HeaderVersionsFollowTheSpecRules()
    {
        Assert.Equal(1, ApiMessages.RequestHeaderVersion(ApiKey.Produce, 8));
        Assert.Equal(2, ApiMessages.RequestHeaderVersion(ApiKey.Produce, 9));
        Assert.Equal(0, ApiMessages.RequestHeaderVersion(ApiKey.ControlledShutdown, 0));
        Assert.Equal(0, ApiMessages.ResponseHeaderVersion(ApiKey.ApiVersions, 3));
        Assert.Equal(1, ApiMessages.ResponseHeaderVersion(ApiKey.Metadata, 9));
        Assert.Equal(0, ApiMessages.ResponseHeaderVersion(ApiKey.Metadata, 8));
    }

    [Fact]
    public void RequestHeaderClientIdStaysAClassicStringInFlexibleVersions()
    {
        var header = new RequestHeader { RequestApiKey = 18, RequestApiVersion = 3, CorrelationId = 7, ClientId = "ab" };
        byte[] bytes = header.ToArray(2);

        // api key, version, correlation id, int16 length 2, "ab", empty tag section
        Assert.Equal(new byte[] { 0, 18, 0, 3, 0, 0, 0, 7, 0, 2, (byte)'a', (byte)'b', 0 }, bytes);
    }

    [Fact]
    public void UnsupportedVersionIsAProtocolError()
    {
        var e = Assert.Throws<KafkaProtocolException>(() => new MetadataRequest().ReadFrom(new byte[] { 0 }, 99));
        Assert.Equal(ErrorCode.UnsupportedVersion, e.ErrorCode);
    }
}

/// <summary>Hands out spans of exactly the size asked for, so every buffer boundary is exercised.</summary>
internal sealed class TinySpanWriter : IBufferWriter<byte>
{
    private byte[] _current = [];
    private readonly List<byte> _written = [];

    public byte[] Written => [.. _written];

    public void Advance(int count) => _written.AddRange(_current.AsSpan(0, count));

    public Memory<byte> GetMemory(int sizeHint = 0) => _current = new byte[Math.Max(1, sizeHint)];

    public Span<byte> GetSpan(int sizeHint = 0) => _current = new byte[Math.Max(1, sizeHint)];
}
