using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

namespace SharedLog.IntegrationTests;

/// <summary>One request frame exactly as a client sent it, and what it decoded to.</summary>
public sealed record CapturedRequest(byte[] Frame, DecodedRequest Request);

/// <summary>
/// A minimal scripted Kafka peer on a loopback port, built only from the protocol layer: it records
/// every request frame a real client sends and answers ApiVersions, Metadata, Produce, ListOffsets
/// and Fetch well enough for a producer and an assigned consumer to run. It is a test fixture for the
/// protocol layer, not a broker: it keeps everything in memory and serves one partition per topic.
/// </summary>
public sealed class CaptureServer : IAsyncDisposable
{
    private const int NodeId = 1;
    private const int MaxFrameBytes = 64 * 1024 * 1024;

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<string, Guid> _topicIds = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, List<byte[]>> _batches = new(StringComparer.Ordinal);
    private readonly List<Task> _connections = [];
    private readonly Task _acceptLoop;

    public CaptureServer()
    {
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _acceptLoop = AcceptAsync();
    }

    public int Port { get; }

    public string BootstrapServers => $"127.0.0.1:{Port}";

    public ConcurrentQueue<CapturedRequest> Captured { get; } = new();

    /// <summary>Batches served to fetches of a topic, in addition to what producers wrote.</summary>
    public void AddBatch(string topic, byte[] batch) => _batches.GetOrAdd(topic, _ => []).Add(batch);

    public IReadOnlyList<byte[]> BatchesOf(string topic)
    {
        List<byte[]> list = _batches.GetOrAdd(topic, _ => []);
        lock (list)
        {
            return [.. list];
        }
    }

    /// <summary>Waits (bounded) until a captured request matches.</summary>
    public async Task<CapturedRequest> WaitForAsync(Func<CapturedRequest, bool> match, TimeSpan timeout)
    {
        DateTime deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            foreach (CapturedRequest captured in Captured)
            {
                if (match(captured))
                {
                    return captured;
                }
            }

            await Task.Delay(20);
        }

        throw new TimeoutException($"No matching request within {timeout}; captured: {string.Join(", ", Captured.Select(c => $"{c.Request.ApiKey} v{c.Request.Version}"))}");
    }

    private async Task AcceptAsync()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                TcpClient client = await _listener.AcceptTcpClientAsync(_stop.Token);
                lock (_connections)
                {
                    _connections.Add(ServeAsync(client));
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            NetworkStream stream = client.GetStream();
            byte[] sizeBytes = new byte[4];
            try
            {
                while (!_stop.IsCancellationRequested)
                {
                    await stream.ReadExactlyAsync(sizeBytes, _stop.Token);
                    int size = BinaryPrimitives.ReadInt32BigEndian(sizeBytes);
                    if (size < 0 || size > MaxFrameBytes)
                    {
                        return;
                    }

                    byte[] frame = new byte[size];
                    await stream.ReadExactlyAsync(frame, _stop.Token);
                    DecodedRequest request = RequestFrame.Decode(new ReadOnlySequence<byte>(frame));
                    Captured.Enqueue(new CapturedRequest(frame, request));
                    IApiMessage? response = Answer(request);
                    if (response is null)
                    {
                        continue;
                    }

                    var output = new ArrayBufferWriter<byte>();
                    RequestFrame.WriteResponse(output, request.Header.CorrelationId, response, request.Version);
                    await stream.WriteAsync(output.WrittenMemory, _stop.Token);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or EndOfStreamException or ObjectDisposedException)
            {
            }
        }
    }

    private Guid TopicId(string name) => _topicIds.GetOrAdd(name, _ => Guid.NewGuid());

    private string TopicName(Guid id) => _topicIds.FirstOrDefault(kv => kv.Value == id).Key ?? string.Empty;

    private IApiMessage? Answer(DecodedRequest request) => request.Body switch
    {
        ApiVersionsRequest => AnswerApiVersions(),
        MetadataRequest metadata => AnswerMetadata(metadata),
        ProduceRequest produce => AnswerProduce(produce),
        ListOffsetsRequest listOffsets => AnswerListOffsets(listOffsets),
        FetchRequest fetch => AnswerFetch(fetch),
        _ => null,
    };

    private static ApiVersionsResponse AnswerApiVersions()
    {
        var response = new ApiVersionsResponse();
        // FindCoordinator is advertised though never answered: librdkafka takes its presence as the
        // sign that the broker reads LZ4, and would otherwise send LZ4 batches uncompressed.
        foreach (ApiKey api in new[] { ApiKey.ApiVersions, ApiKey.Metadata, ApiKey.Produce, ApiKey.Fetch, ApiKey.ListOffsets, ApiKey.FindCoordinator })
        {
            response.ApiKeys.Add(new ApiVersionsResponse.ApiVersion
            {
                ApiKey = (short)api,
                MinVersion = ApiMessages.LowestVersion(api),
                MaxVersion = ApiMessages.HighestVersion(api),
            });
        }

        return response;
    }

    private MetadataResponse AnswerMetadata(MetadataRequest request)
    {
        var response = new MetadataResponse
        {
            ClusterId = "capture-cluster",
            ControllerId = NodeId,
            Brokers = [new MetadataResponse.MetadataResponseBroker { NodeId = NodeId, Host = "127.0.0.1", Port = Port }],
        };
        foreach (MetadataRequest.MetadataRequestTopic topic in request.Topics ?? [])
        {
            string name = topic.Name ?? TopicName(topic.TopicId);
            response.Topics.Add(new MetadataResponse.MetadataResponseTopic
            {
                Name = name,
                TopicId = TopicId(name),
                Partitions =
                [
                    new MetadataResponse.MetadataResponsePartition
                    {
                        PartitionIndex = 0,
                        LeaderId = NodeId,
                        LeaderEpoch = -1,
                        ReplicaNodes = [NodeId],
                        IsrNodes = [NodeId],
                    },
                ],
            });
        }

        return response;
    }

    private ProduceResponse? AnswerProduce(ProduceRequest request)
    {
        var response = new ProduceResponse();
        foreach (ProduceRequest.TopicProduceData topic in request.TopicData)
        {
            var topicResponse = new ProduceResponse.TopicProduceResponse { Name = topic.Name };
            foreach (ProduceRequest.PartitionProduceData partition in topic.PartitionData)
            {
                List<byte[]> stored = _batches.GetOrAdd(topic.Name, _ => []);
                long baseOffset;
                lock (stored)
                {
                    // Assign offsets as a broker would: the batch's base offset becomes the log end.
                    baseOffset = EndOffset(stored);
                    if (partition.Records is { } records)
                    {
                        byte[] batch = records.ToArray();
                        BinaryPrimitives.WriteInt64BigEndian(batch, baseOffset);
                        stored.Add(batch);
                    }
                }

                topicResponse.PartitionResponses.Add(new ProduceResponse.PartitionProduceResponse { Index = partition.Index, BaseOffset = baseOffset });
            }

            response.Responses.Add(topicResponse);
        }

        return request.Acks == 0 ? null : response;
    }

    private static ListOffsetsResponse AnswerListOffsets(ListOffsetsRequest request)
    {
        var response = new ListOffsetsResponse();
        foreach (ListOffsetsRequest.ListOffsetsTopic topic in request.Topics)
        {
            var topicResponse = new ListOffsetsResponse.ListOffsetsTopicResponse { Name = topic.Name };
            foreach (ListOffsetsRequest.ListOffsetsPartition partition in topic.Partitions)
            {
                topicResponse.Partitions.Add(new ListOffsetsResponse.ListOffsetsPartitionResponse
                {
                    PartitionIndex = partition.PartitionIndex,
                    Offset = 0,
                    Timestamp = -1,
                });
            }

            response.Topics.Add(topicResponse);
        }

        return response;
    }

    private FetchResponse AnswerFetch(FetchRequest request)
    {
        var response = new FetchResponse();
        foreach (FetchRequest.FetchTopic topic in request.Topics)
        {
            string name = string.IsNullOrEmpty(topic.Topic) ? TopicName(topic.TopicId) : topic.Topic;
            var topicResponse = new FetchResponse.FetchableTopicResponse { Topic = name, TopicId = topic.TopicId };
            foreach (FetchRequest.FetchPartition partition in topic.Partitions)
            {
                IReadOnlyList<byte[]> batches = BatchesOf(name);
                byte[] records = partition.FetchOffset == 0 ? [.. batches.SelectMany(b => b)] : [];
                long end = EndOffset(batches);
                topicResponse.Partitions.Add(new FetchResponse.PartitionData
                {
                    PartitionIndex = partition.Partition,
                    HighWatermark = end,
                    LastStableOffset = end,
                    LogStartOffset = 0,
                    Records = new ReadOnlySequence<byte>(records),
                });
            }

            response.Responses.Add(topicResponse);
        }

        return response;
    }

    /// <summary>Offset after the last record, read from the batch headers (base offset + last offset delta + 1).</summary>
    private static long EndOffset(IReadOnlyList<byte[]> batches)
    {
        long end = 0;
        foreach (byte[] batch in batches)
        {
            long baseOffset = BinaryPrimitives.ReadInt64BigEndian(batch);
            int lastOffsetDelta = BinaryPrimitives.ReadInt32BigEndian(batch.AsSpan(23));
            end = Math.Max(end, baseOffset + lastOffsetDelta + 1);
        }

        return end;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _acceptLoop.WaitAsync(TimeSpan.FromSeconds(10));
        Task[] connections;
        lock (_connections)
        {
            connections = [.. _connections];
        }

        await Task.WhenAll(connections).WaitAsync(TimeSpan.FromSeconds(10));
        _stop.Dispose();
    }
}
