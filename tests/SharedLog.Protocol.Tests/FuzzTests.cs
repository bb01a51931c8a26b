using System.Buffers;
using SharedLog.Protocol.Messages;
using SharedLog.Tests.Shared;

namespace SharedLog.Protocol.Tests;

/// <summary>
/// Random and mutated frames into every request decoder at every version. The only exception allowed
/// out is <see cref="KafkaProtocolException"/>; anything else (IndexOutOfRange, OutOfMemory, overflow)
/// is a bug. Seeds are fixed so a failure reproduces.
/// </summary>
public class FuzzTests
{
    private const int RandomFramesPerVersion = 40;
    private const int MutationsPerVersion = 200;
    private const int CorrelationId = 42;

    [Fact]
    public void EveryRequestDecoderAtEveryVersionOnlyThrowsProtocolExceptions()
    {
        var failures = new List<string>();
        long decoded = 0;
        long rejected = 0;
        foreach (ApiKey api in ApiMessages.All)
        {
            for (short version = ApiMessages.LowestVersion(api); version <= ApiMessages.HighestVersion(api); version++)
            {
                var random = new Random(((int)api * 1000) + version);
                var requests = new RandomRequests(random);
                var valid = new List<byte[]> { RandomRequests.Frame(ApiMessages.CreateRequest(api), version, CorrelationId), RandomRequests.Frame(requests.Request(api), version, CorrelationId) };

                // The unmutated frames must decode.
                foreach (byte[] frame in valid)
                {
                    if (Attempt(frame, api, version, failures) is { } error)
                    {
                        failures.Add($"{api} v{version}: valid frame rejected: {error.Message}");
                    }
                }

                for (int i = 0; i < RandomFramesPerVersion; i++)
                {
                    byte[] frame = new byte[4 + random.Next(160)];
                    random.NextBytes(frame);
                    frame[0] = (byte)((short)api >> 8);
                    frame[1] = (byte)api;
                    frame[2] = (byte)(version >> 8);
                    frame[3] = (byte)version;
                    Count(Attempt(frame, api, version, failures), ref decoded, ref rejected);
                }

                for (int i = 0; i < MutationsPerVersion; i++)
                {
                    byte[] frame = requests.Mutate(valid[random.Next(valid.Count)]);
                    Count(Attempt(frame, api, version, failures), ref decoded, ref rejected);
                }
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} failures:\n" + string.Join("\n", failures.Take(30)));

        // The fuzzer must reach both outcomes, or it is not exploring anything.
        Assert.True(decoded > 100 && rejected > 10_000, $"decoded {decoded}, rejected {rejected}");
    }

    [Theory]
    [InlineData(new byte[] { })]
    [InlineData(new byte[] { 0, 3 })]
    [InlineData(new byte[] { 0x7F, 0x7F, 0, 0 })]
    [InlineData(new byte[] { 0, 3, 0x7F, 0 })]
    [InlineData(new byte[] { 0, 3, 0, 1, 0, 0, 0, 1, 0x7F, 0xFF })]
    public void MalformedHeadersAreProtocolErrors(byte[] frame)
    {
        Assert.Throws<KafkaProtocolException>(() => RequestFrame.Decode(new ReadOnlySequence<byte>(frame)));
    }

    [Fact]
    public void BytesAfterARequestBodyAreIgnoredAsKafkaDoes()
    {
        // Metadata v12 for all topics as librdkafka 2.x's AdminClient.GetMetadata sent it (captured from a test run):
        // header (client id "rdkafka"), topics null, two false booleans, no tagged fields, then 01 00 00 more.
        byte[] frame = Convert.FromHexString("0003000C00000005000772646B61666B610000000000010000");
        DecodedRequest decoded = RequestFrame.Decode(new ReadOnlySequence<byte>(frame));
        Assert.Equal(5, decoded.Header.CorrelationId);
        var metadata = Assert.IsType<MetadataRequest>(decoded.Body);
        Assert.Null(metadata.Topics);
        Assert.False(metadata.AllowAutoTopicCreation);
    }

    [Fact]
    public void HugeArrayCountIsRejectedBeforeAllocating()
    {
        // Metadata v1: header, then a topic array claiming int.MaxValue entries.
        var frame = new ArrayBufferWriter<byte>();
        RequestFrame.WriteRequest(frame, new MetadataRequest { Topics = [] }, 1, 1, "c");
        byte[] bytes = frame.WrittenSpan[4..].ToArray();
        bytes[^4] = 0x7F;
        bytes[^3] = 0xFF;
        bytes[^2] = 0xFF;
        bytes[^1] = 0xFF;
        var e = Assert.Throws<KafkaProtocolException>(() => RequestFrame.Decode(new ReadOnlySequence<byte>(bytes)));
        Assert.Contains("cannot fit", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OverlongVarintIsRejected()
    {
        byte[] tooLong = [0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
        Assert.Throws<KafkaProtocolException>(() =>
        {
            var reader = new KafkaReader(new ReadOnlySequence<byte>(tooLong));
            reader.ReadUnsignedVarInt();
        });
    }

    private static void Count(Exception? error, ref long decoded, ref long rejected)
    {
        if (error is null)
        {
            decoded++;
        }
        else
        {
            rejected++;
        }
    }

    private static Exception? Attempt(byte[] frame, ApiKey api, short version, List<string> failures)
    {
        try
        {
            RequestFrame.Decode(new ReadOnlySequence<byte>(frame));
            return null;
        }
        catch (KafkaProtocolException e)
        {
            return e;
        }
        catch (Exception e)
        {
            failures.Add($"{api} v{version}: {e.GetType().Name}: {e.Message} input {Convert.ToHexString(frame.AsSpan(0, Math.Min(frame.Length, 64)))}");
            return e;
        }
    }
}
