using Confluent.Kafka;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Protocol.Records;
using Record = SharedLog.Protocol.Records.Record;

namespace SharedLog.IntegrationTests;

/// <summary>
/// Golden requests from a real client: Confluent.Kafka (librdkafka) talks to <see cref="CaptureServer"/>
/// on loopback, and the frames it sends are decoded by the protocol layer and checked field by field
/// against the client's configuration.
/// </summary>
public class ClientCaptureTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public void BundledLibrdkafkaIsTheOneLoaded()
    {
        Assert.StartsWith(Librdkafka.ExpectedVersionPrefix, Librdkafka.Version, StringComparison.Ordinal);
        Assert.Equal(Librdkafka.Version, Library.VersionString);
    }

    [Fact]
    public async Task ProducerRequestsDecodeFieldByField()
    {
        await using var server = new CaptureServer();
        var config = new ProducerConfig
        {
            BootstrapServers = server.BootstrapServers,
            ClientId = "golden-producer",
            Acks = Acks.All,
            RequestTimeoutMs = 7000,
            LingerMs = 0,
            AllowAutoCreateTopics = true,
        };
        using (IProducer<string, string> producer = new ProducerBuilder<string, string>(config).Build())
        {
            DeliveryResult<string, string> result = await producer.ProduceAsync("golden-topic", new Message<string, string> { Key = "k1", Value = "v1" })
                .WaitAsync(Timeout);
            Assert.Equal(PersistenceStatus.Persisted, result.Status);
            Assert.Equal(0, result.Offset.Value);
        }

        CapturedRequest apiVersions = await server.WaitForAsync(c => c.Request.ApiKey == ApiKey.ApiVersions, Timeout);
        Assert.Equal("golden-producer", apiVersions.Request.Header.ClientId);
        var apiVersionsBody = (ApiVersionsRequest)apiVersions.Request.Body;
        Assert.True(apiVersions.Request.Version >= 3, $"librdkafka sent ApiVersions v{apiVersions.Request.Version}");
        Assert.Equal("confluent-kafka-dotnet", apiVersionsBody.ClientSoftwareName);
        Assert.False(string.IsNullOrEmpty(apiVersionsBody.ClientSoftwareVersion));

        CapturedRequest metadata = await server.WaitForAsync(
            c => c.Request.Body is MetadataRequest m && m.Topics is { Count: > 0 }, Timeout);
        var metadataBody = (MetadataRequest)metadata.Request.Body;
        Assert.Contains(metadataBody.Topics!, t => t.Name == "golden-topic");
        Assert.True(metadataBody.AllowAutoTopicCreation);
        Assert.Equal("golden-producer", metadata.Request.Header.ClientId);

        CapturedRequest produce = await server.WaitForAsync(c => c.Request.ApiKey == ApiKey.Produce, Timeout);
        var produceBody = (ProduceRequest)produce.Request.Body;
        Assert.Equal(-1, produceBody.Acks);
        Assert.Equal(7000, produceBody.TimeoutMs);
        Assert.Null(produceBody.TransactionalId);
        ProduceRequest.TopicProduceData topic = Assert.Single(produceBody.TopicData);
        Assert.Equal("golden-topic", topic.Name);
        ProduceRequest.PartitionProduceData partition = Assert.Single(topic.PartitionData);
        Assert.Equal(0, partition.Index);
        Assert.NotNull(partition.Records);
        Assert.True(partition.Records.Value.Length > 61, "a v2 record batch has a 61-byte header");

        // Golden bytes re-encode identically: our encoder writes exactly what librdkafka wrote.
        var reencoded = new System.Buffers.ArrayBufferWriter<byte>();
        RequestFrame.WriteRequest(reencoded, produceBody, produce.Request.Version, produce.Request.Header.CorrelationId, produce.Request.Header.ClientId);
        Assert.Equal(produce.Frame, reencoded.WrittenSpan[4..].ToArray());
    }

    [Fact]
    public async Task ConsumerFetchRequestDecodesAndOurFetchResponseIsConsumed()
    {
        await using var server = new CaptureServer();
        const string topic = "golden-fetch";
        using (IProducer<string, string> producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = server.BootstrapServers, LingerMs = 0 }).Build())
        {
            for (int i = 0; i < 3; i++)
            {
                await producer.ProduceAsync(topic, new Message<string, string> { Key = $"k{i}", Value = $"v{i}" }).WaitAsync(Timeout);
            }
        }

        var config = new ConsumerConfig
        {
            BootstrapServers = server.BootstrapServers,
            ClientId = "golden-consumer",
            GroupId = "unused-group",
            EnableAutoCommit = false,
            FetchWaitMaxMs = 123,
            FetchMinBytes = 1,
            FetchMaxBytes = 5_000_000,
            MaxPartitionFetchBytes = 777_777,
            IsolationLevel = IsolationLevel.ReadCommitted,
        };
        var values = new List<string>();
        using (IConsumer<string, string> consumer = new ConsumerBuilder<string, string>(config).Build())
        {
            consumer.Assign(new TopicPartitionOffset(topic, 0, 0));
            DateTime deadline = DateTime.UtcNow + Timeout;
            while (values.Count < 3 && DateTime.UtcNow < deadline)
            {
                ConsumeResult<string, string>? result = consumer.Consume(TimeSpan.FromMilliseconds(200));
                if (result?.Message is { } message)
                {
                    values.Add($"{message.Key}={message.Value}@{result.Offset.Value}");
                }
            }
        }

        Assert.Equal(["k0=v0@0", "k1=v1@1", "k2=v2@2"], values);

        CapturedRequest fetch = await server.WaitForAsync(c => c.Request.Body is FetchRequest f && f.Topics.Count > 0, Timeout);
        var body = (FetchRequest)fetch.Request.Body;
        Assert.Equal("golden-consumer", fetch.Request.Header.ClientId);
        Assert.Equal(123, body.MaxWaitMs);
        Assert.Equal(1, body.MinBytes);
        Assert.Equal(5_000_000, body.MaxBytes);
        Assert.Equal(1, body.IsolationLevel);
        Assert.Equal(-1, body.ReplicaId);
        FetchRequest.FetchTopic fetchTopic = Assert.Single(body.Topics);
        FetchRequest.FetchPartition partition = Assert.Single(fetchTopic.Partitions);
        Assert.Equal(0, partition.Partition);
        Assert.Equal(0, partition.FetchOffset);
        Assert.Equal(777_777, partition.PartitionMaxBytes);
        if (fetch.Request.Version >= 13)
        {
            Assert.NotEqual(Guid.Empty, fetchTopic.TopicId);
        }
        else
        {
            Assert.Equal(topic, fetchTopic.Topic);
        }
    }

    [Theory]
    [InlineData(CompressionType.None, CompressionCodec.None)]
    [InlineData(CompressionType.Gzip, CompressionCodec.Gzip)]
    [InlineData(CompressionType.Snappy, CompressionCodec.Snappy)]
    [InlineData(CompressionType.Lz4, CompressionCodec.Lz4)]
    [InlineData(CompressionType.Zstd, CompressionCodec.Zstd)]
    public async Task LibrdkafkaBatchesDecodeWithEveryCodec(CompressionType clientCodec, CompressionCodec expected)
    {
        await using var server = new CaptureServer();
        string topic = "codec-" + expected.ToString().ToLowerInvariant();
        var config = new ProducerConfig { BootstrapServers = server.BootstrapServers, CompressionType = clientCodec, LingerMs = 50, BatchNumMessages = 1000 };
        using (IProducer<string, string> producer = new ProducerBuilder<string, string>(config).Build())
        {
            for (int i = 0; i < 100; i++)
            {
                var headers = new Headers { { "n", System.Text.Encoding.UTF8.GetBytes(i.ToString(System.Globalization.CultureInfo.InvariantCulture)) } };
                producer.Produce(topic, new Message<string, string> { Key = $"key-{i}", Value = new string('x', 500) + i, Headers = headers });
            }

            Assert.Equal(0, producer.Flush(Timeout));
        }

        var seen = new List<string>();
        foreach (CapturedRequest produce in server.Captured.Where(c => c.Request.ApiKey == ApiKey.Produce))
        {
            foreach (ProduceRequest.PartitionProduceData partition in ((ProduceRequest)produce.Request.Body).TopicData.Single().PartitionData)
            {
                var reader = new RecordBatchReader(partition.Records!.Value);
                while (reader.TryReadNext(out RecordBatch batch))
                {
                    Assert.True(batch.IsCrcValid(), "librdkafka's batch must pass our CRC32C check");
                    Assert.Equal(expected, batch.Compression);
                    foreach (Record record in batch.Records())
                    {
                        string headerValue = string.Empty;
                        foreach (RecordHeader header in record.Headers)
                        {
                            headerValue = System.Text.Encoding.UTF8.GetString(header.Value);
                        }

                        seen.Add($"{System.Text.Encoding.UTF8.GetString(record.Key)}|{System.Text.Encoding.UTF8.GetString(record.Value)}|{headerValue}");
                    }
                }
            }
        }

        Assert.Equal(Enumerable.Range(0, 100).Select(i => $"key-{i}|{new string('x', 500)}{i}|{i}"), seen);
    }

    [Theory]
    [InlineData(CompressionCodec.None)]
    [InlineData(CompressionCodec.Gzip)]
    [InlineData(CompressionCodec.Snappy)]
    [InlineData(CompressionCodec.Lz4)]
    [InlineData(CompressionCodec.Zstd)]
    public async Task BatchesFromOurBuilderAreReadByLibrdkafka(CompressionCodec codec)
    {
        await using var server = new CaptureServer();
        string topic = "built-" + codec.ToString().ToLowerInvariant();
        var builder = new RecordBatchBuilder(1_700_000_000_000) { Compression = codec };
        for (int i = 0; i < 20; i++)
        {
            builder.Add(
                System.Text.Encoding.UTF8.GetBytes($"k{i}"),
                i == 3 ? null : System.Text.Encoding.UTF8.GetBytes($"value {i}"),
                1_700_000_000_000 + i,
                [new RecordHeaderValue("origin", System.Text.Encoding.UTF8.GetBytes("builder"))]);
        }

        server.AddBatch(topic, builder.Build());
        var config = new ConsumerConfig { BootstrapServers = server.BootstrapServers, GroupId = "unused", EnableAutoCommit = false };
        var consumed = new List<string>();
        using (IConsumer<string, string?> consumer = new ConsumerBuilder<string, string?>(config).Build())
        {
            consumer.Assign(new TopicPartitionOffset(topic, 0, 0));
            DateTime deadline = DateTime.UtcNow + Timeout;
            while (consumed.Count < 20 && DateTime.UtcNow < deadline)
            {
                ConsumeResult<string, string?>? result = consumer.Consume(TimeSpan.FromMilliseconds(200));
                if (result?.Message is { } m)
                {
                    string origin = System.Text.Encoding.UTF8.GetString(m.Headers.GetLastBytes("origin"));
                    consumed.Add($"{result.Offset.Value}:{m.Key}={m.Value ?? "<null>"}@{m.Timestamp.UnixTimestampMs}/{origin}");
                }
            }
        }

        Assert.Equal(Enumerable.Range(0, 20).Select(i => $"{i}:k{i}={(i == 3 ? "<null>" : $"value {i}")}@{1_700_000_000_000 + i}/builder"), consumed);
    }
}
