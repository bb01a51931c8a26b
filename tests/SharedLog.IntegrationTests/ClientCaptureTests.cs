using Confluent.Kafka;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

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
}
