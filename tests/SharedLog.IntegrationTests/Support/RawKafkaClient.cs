using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

namespace SharedLog.IntegrationTests;

/// <summary>A bare socket speaking frames, for hostile-input tests that real clients would never send.</summary>
public sealed class RawKafkaClient : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);
    private readonly TcpClient _client = new();

    public static async Task<RawKafkaClient> ConnectAsync(string bootstrap)
    {
        var raw = new RawKafkaClient();
        string[] parts = bootstrap.Split(':');
        await raw._client.ConnectAsync(parts[0], int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture)).WaitAsync(Timeout);
        return raw;
    }

    public NetworkStream Stream => _client.GetStream();

    public async Task SendAsync(IApiMessage request, short version, int correlationId)
    {
        var frame = new ArrayBufferWriter<byte>();
        RequestFrame.WriteRequest(frame, request, version, correlationId, "raw-client");
        await Stream.WriteAsync(frame.WrittenMemory).AsTask().WaitAsync(Timeout);
    }

    /// <summary>Creates a topic (CreateTopics v4, replication factor 1) and fails unless the broker created it.</summary>
    public async Task CreateTopicAsync(string name, int partitions)
    {
        await SendAsync(new CreateTopicsRequest { Topics = [new() { Name = name, NumPartitions = partitions, ReplicationFactor = 1 }] }, 4, 0);
        (_, byte[] body) = await ReceiveAsync(0);
        short error = new CreateTopicsResponse().ReadFrom(body, 4).Topics[0].ErrorCode;
        if (error != 0)
        {
            throw new InvalidOperationException($"CreateTopics {name} failed with error code {error}.");
        }
    }

    /// <summary>Produces one batch (Produce v9, acks=all) and returns the partition's answer.</summary>
    public async Task<ProduceResponse.PartitionProduceResponse> ProduceAsync(string topic, int partition, byte[] batch, int correlationId)
    {
        await SendAsync(new ProduceRequest { Acks = -1, TimeoutMs = 5000, TopicData = [new() { Name = topic, PartitionData = [new() { Index = partition, Records = new ReadOnlySequence<byte>(batch) }] }] }, 9, correlationId);
        (_, byte[] body) = await ReceiveAsync(1);
        return new ProduceResponse().ReadFrom(body, 9).Responses.Single().PartitionResponses.Single();
    }

    /// <summary>Each named topic's error in a Metadata v12 answer (no auto-creation): None for a topic that exists.</summary>
    public async Task<ErrorCode[]> TopicErrorsAsync(params string[] topics)
    {
        await SendAsync(new MetadataRequest { Topics = [.. topics.Select(t => new MetadataRequest.MetadataRequestTopic { Name = t })], AllowAutoTopicCreation = false }, 12, 0);
        (_, byte[] body) = await ReceiveAsync(1);
        return [.. new MetadataResponse().ReadFrom(body, 12).Topics.Select(t => (ErrorCode)t.ErrorCode)];
    }

    public async Task SendRawAsync(byte[] bytes) => await Stream.WriteAsync(bytes).AsTask().WaitAsync(Timeout);

    /// <summary>Reads one response frame: correlation id and body bytes after a header of the given version.</summary>
    public async Task<(int CorrelationId, byte[] Body)> ReceiveAsync(short headerVersion)
    {
        byte[] size = new byte[4];
        await Stream.ReadExactlyAsync(size).AsTask().WaitAsync(Timeout);
        byte[] frame = new byte[BinaryPrimitives.ReadInt32BigEndian(size)];
        await Stream.ReadExactlyAsync(frame).AsTask().WaitAsync(Timeout);
        var header = new ResponseHeader();
        var reader = new KafkaReader(new ReadOnlySequence<byte>(frame));
        header.Read(ref reader, headerVersion);
        return (header.CorrelationId, frame[(int)reader.Consumed..]);
    }

    /// <summary>True when the server closed the connection (read returns 0) within the timeout.</summary>
    public async Task<bool> IsClosedByServerAsync()
    {
        byte[] buffer = new byte[256];
        try
        {
            using var cts = new CancellationTokenSource(Timeout);
            while (true)
            {
                int read = await Stream.ReadAsync(buffer, cts.Token);
                if (read == 0)
                {
                    return true;
                }
            }
        }
        catch (IOException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public void Dispose() => _client.Dispose();
}
