using Confluent.Kafka;
using Confluent.Kafka.Admin;
using SharedLog.Protocol.Messages;

namespace SharedLog.IntegrationTests;

/// <summary>Confluent.Kafka (librdkafka) against the real broker, in-process on free loopback ports.</summary>
public class BrokerClientTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData(CompressionType.None)]
    [InlineData(CompressionType.Gzip)]
    [InlineData(CompressionType.Snappy)]
    [InlineData(CompressionType.Lz4)]
    [InlineData(CompressionType.Zstd)]
    public async Task ProduceAndConsumeWithEveryCodec(CompressionType codec)
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        string topic = "codec-" + codec.ToString().ToLowerInvariant();
        var config = new ProducerConfig { BootstrapServers = broker.BootstrapServers, CompressionType = codec, Acks = Acks.All, LingerMs = 5 };
        using (IProducer<string, string> producer = new ProducerBuilder<string, string>(config).Build())
        {
            for (int i = 0; i < 50; i++)
            {
                producer.Produce(topic, new Message<string, string> { Key = $"k{i}", Value = $"value-{i}" });
            }

            Assert.Equal(0, producer.Flush(Timeout));
        }

        List<string> consumed = KafkaClients.ConsumeFrom(broker.BootstrapServers, topic, 0, 0, 50);
        Assert.Equal(Enumerable.Range(0, 50).Select(i => $"{i}:k{i}=value-{i}"), consumed);
    }

    [Fact]
    public async Task AdminCreatesTopicsAndErrorsAreReported()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using IAdminClient admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();
        await admin.CreateTopicsAsync([new TopicSpecification { Name = "admin-made", NumPartitions = 4, ReplicationFactor = 3 }]);
        Metadata metadata = admin.GetMetadata("admin-made", Timeout);
        TopicMetadata topic = Assert.Single(metadata.Topics);
        Assert.Equal(4, topic.Partitions.Count);
        Assert.All(topic.Partitions, p => Assert.Equal(metadata.Brokers[0].BrokerId, p.Leader));

        var duplicate = await Assert.ThrowsAsync<CreateTopicsException>(() => admin.CreateTopicsAsync([new TopicSpecification { Name = "admin-made", NumPartitions = 1 }]));
        Assert.Equal(ErrorCode.TopicAlreadyExists, duplicate.Results[0].Error.Code);
        var invalid = await Assert.ThrowsAsync<CreateTopicsException>(() => admin.CreateTopicsAsync([new TopicSpecification { Name = "bad name!", NumPartitions = 1 }]));
        Assert.Equal(ErrorCode.TopicException, invalid.Results[0].Error.Code);
        var badConfig = await Assert.ThrowsAsync<CreateTopicsException>(() => admin.CreateTopicsAsync([new TopicSpecification { Name = "cfg", NumPartitions = 1, Configs = new Dictionary<string, string> { ["retention.ms"] = "soon" } }]));
        Assert.Equal(ErrorCode.InvalidConfig, badConfig.Results[0].Error.Code);

        // An existing topic is reported as existing before anything else is checked, as Kafka does.
        var existing = await Assert.ThrowsAsync<CreateTopicsException>(() => admin.CreateTopicsAsync([new TopicSpecification { Name = "admin-made", NumPartitions = 1, Configs = new Dictionary<string, string> { ["retention.ms"] = "soon" } }]));
        Assert.Equal(ErrorCode.TopicAlreadyExists, existing.Results[0].Error.Code);

        // Manual replica assignments (librdkafka sends the counts as -1 next to them) on this broker's id are taken; another broker id is not.
        int node = metadata.Brokers[0].BrokerId;
        await admin.CreateTopicsAsync([new TopicSpecification { Name = "placed", NumPartitions = 2, ReplicationFactor = -1, ReplicasAssignments = new Dictionary<int, List<int>> { [0] = [node], [1] = [node] } }]);
        Assert.Equal(2, Assert.Single(admin.GetMetadata("placed", Timeout).Topics).Partitions.Count);
        var elsewhere = await Assert.ThrowsAsync<CreateTopicsException>(() => admin.CreateTopicsAsync([new TopicSpecification { Name = "placed-elsewhere", NumPartitions = 1, ReplicationFactor = -1, ReplicasAssignments = new Dictionary<int, List<int>> { [0] = [node + 1] } }]));
        Assert.Equal(ErrorCode.InvalidReplicaAssignment, elsewhere.Results[0].Error.Code);

        // cleanup.policy is a list, spaces allowed, as Kafka parses it.
        await admin.CreateTopicsAsync([new TopicSpecification { Name = "compacted", NumPartitions = 1, Configs = new Dictionary<string, string> { ["cleanup.policy"] = "compact, delete" } }]);

        // Configs Kafka Streams and Connect set (a versioned store's changelog, say) are taken and reported,
        // though they change nothing here; values out of Kafka's range and unknown names are still refused.
        var streamsConfigs = new Dictionary<string, string> { ["cleanup.policy"] = "compact", ["min.compaction.lag.ms"] = "86400000", ["segment.ms"] = "3600000", ["min.cleanable.dirty.ratio"] = "0.1", ["unclean.leader.election.enable"] = "false" };
        await admin.CreateTopicsAsync([new TopicSpecification { Name = "changelog", NumPartitions = 1, Configs = streamsConfigs }]);
        Dictionary<string, ConfigEntryResult> described = (await admin.DescribeConfigsAsync([new ConfigResource { Type = ResourceType.Topic, Name = "changelog" }])).Single().Entries;
        Assert.Equal("86400000", described["min.compaction.lag.ms"].Value);
        Assert.Equal("0.1", described["min.cleanable.dirty.ratio"].Value);
        Assert.Equal("86400000", described["delete.retention.ms"].Value);
        Assert.True(described["delete.retention.ms"].IsDefault);

        // Kafka's ranges, not stricter ones: any retention.bytes, a max.message.bytes of 0; and 3.x configs that
        // MirrorMaker 2 copies from a source cluster's topics.
        var kafkaRanges = new Dictionary<string, string>
        {
            ["retention.bytes"] = "-2",
            ["max.message.bytes"] = "0",
            ["message.downconversion.enable"] = "false",
            ["message.format.version"] = "2.8",
            ["remote.log.copy.disable"] = "false",
            ["remote.log.delete.on.disable"] = "false",
        };
        await admin.CreateTopicsAsync([new TopicSpecification { Name = "mirrored", NumPartitions = 1, Configs = kafkaRanges }]);
        Dictionary<string, ConfigEntryResult> mirrored = (await admin.DescribeConfigsAsync([new ConfigResource { Type = ResourceType.Topic, Name = "mirrored" }])).Single().Entries;
        Assert.All(kafkaRanges, c => Assert.Equal(c.Value, mirrored[c.Key].Value));

        // As Kafka: a name no topic may have is INVALID_TOPIC_EXCEPTION, an absent one UNKNOWN_TOPIC_OR_PARTITION.
        var illegal = await Assert.ThrowsAsync<DescribeConfigsException>(() => admin.DescribeConfigsAsync([new ConfigResource { Type = ResourceType.Topic, Name = "bad name!" }]));
        Assert.Equal(ErrorCode.TopicException, illegal.Results.Single().Error.Code);
        var absent = await Assert.ThrowsAsync<DescribeConfigsException>(() => admin.DescribeConfigsAsync([new ConfigResource { Type = ResourceType.Topic, Name = "no-such-topic" }]));
        Assert.Equal(ErrorCode.UnknownTopicOrPart, absent.Results.Single().Error.Code);
        foreach ((string altered, ErrorCode expected) in new[] { ("bad name!", ErrorCode.TopicException), ("no-such-topic", ErrorCode.UnknownTopicOrPart) })
        {
            var alter = await Assert.ThrowsAsync<IncrementalAlterConfigsException>(() => admin.IncrementalAlterConfigsAsync(new Dictionary<ConfigResource, List<ConfigEntry>>
            {
                [new ConfigResource { Type = ResourceType.Topic, Name = altered }] = [new ConfigEntry { Name = "retention.ms", Value = "1000", IncrementalOperation = AlterConfigOpType.Set }],
            }));
            Assert.Equal((altered, expected), (altered, alter.Results.Single().Error.Code));
        }
        foreach ((string key, string value) in new[] { ("segment.ms", "0"), ("min.cleanable.dirty.ratio", "1.5"), ("preallocate", "yes"), ("no.such.config", "1"), ("retention.ms", "-2"), ("max.message.bytes", "-1"), ("message.downconversion.enable", "maybe"), ("compression.gzip.level", "0"), ("message.format.version", "garbage"), ("max.compaction.lag.ms", "1000") })
        {
            // The last: min.compaction.lag.ms (0 by default here) is fine alone, but not with a smaller max.compaction.lag.ms.
            Dictionary<string, string> configs = key == "max.compaction.lag.ms" ? new() { ["min.compaction.lag.ms"] = "2000", [key] = value } : new() { [key] = value };
            var refused = await Assert.ThrowsAsync<CreateTopicsException>(() => admin.CreateTopicsAsync([new TopicSpecification { Name = "refused-" + key, NumPartitions = 1, Configs = configs }]));
            Assert.Equal((key, ErrorCode.InvalidConfig), (key, refused.Results[0].Error.Code));
        }

        // As Kafka's controller, an alter is checked against the topic's other configs: the changelog's min.compaction.lag.ms
        // (one day) refuses a smaller max, and the topic keeps what it had.
        var changelog = new ConfigResource { Type = ResourceType.Topic, Name = "changelog" };
        var conflict = await Assert.ThrowsAsync<IncrementalAlterConfigsException>(() => admin.IncrementalAlterConfigsAsync(new Dictionary<ConfigResource, List<ConfigEntry>>
        {
            [changelog] = [new ConfigEntry { Name = "max.compaction.lag.ms", Value = "3600000", IncrementalOperation = AlterConfigOpType.Set }],
        }));
        Assert.Equal(ErrorCode.InvalidConfig, conflict.Results[0].Error.Code);
        Assert.Contains("min.compaction.lag.ms (86400000) > max.compaction.lag.ms (3600000)", conflict.Results[0].Error.Reason, StringComparison.Ordinal);
        Assert.True((await admin.DescribeConfigsAsync([changelog])).Single().Entries["max.compaction.lag.ms"].IsDefault);
    }

    [Fact]
    public async Task PartitionsPastTheBrokersLimitAreRefusedWhateverAsksForThem()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync(null, true, "--Broker:MaxPartitions", "10");
        using IAdminClient admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();
        await admin.CreateTopicsAsync([new TopicSpecification { Name = "eight", NumPartitions = 8, ReplicationFactor = 1 }]);

        // One request asking for many topics cannot pass the limit either: those that fit are created, the rest refused.
        var refused = await Assert.ThrowsAsync<CreateTopicsException>(() => admin.CreateTopicsAsync(
            [new TopicSpecification { Name = "two", NumPartitions = 2, ReplicationFactor = 1 }, new TopicSpecification { Name = "one", NumPartitions = 1, ReplicationFactor = 1 }]));
        Assert.Equal(ErrorCode.NoError, refused.Results.Single(r => r.Topic == "two").Error.Code);
        Assert.Equal(ErrorCode.InvalidPartitions, refused.Results.Single(r => r.Topic == "one").Error.Code);
        Assert.Contains("MaxPartitions", refused.Results.Single(r => r.Topic == "one").Error.Reason);
        var grow = await Assert.ThrowsAsync<CreatePartitionsException>(() => admin.CreatePartitionsAsync([new PartitionsSpecification { Topic = "eight", IncreaseTo = 9 }]));
        Assert.Equal(ErrorCode.InvalidPartitions, grow.Results[0].Error.Code);

        // Auto-creation by a producer is refused the same way, and the broker keeps serving what it has.
        using IProducer<string, string> producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = broker.BootstrapServers, MessageTimeoutMs = 3000 }).Build();
        await Assert.ThrowsAsync<ProduceException<string, string>>(() => producer.ProduceAsync("auto-created", new Message<string, string> { Key = "k", Value = "v" }));
        Assert.Equal(0, (await producer.ProduceAsync(new TopicPartition("eight", 7), new Message<string, string> { Key = "k", Value = "v" }).WaitAsync(Timeout)).Offset.Value);
        Assert.Equal(10, admin.GetMetadata(Timeout).Topics.Where(t => t.Error.Code == ErrorCode.NoError).Sum(t => t.Partitions.Count));
    }

    [Fact]
    public async Task RestartOnTheSameDataDirectoryKeepsTopicsAndRecords()
    {
        string dataDir = Path.Combine(Path.GetTempPath(), "sharedlog-restart-" + Guid.NewGuid().ToString("N"));
        BrokerFixture first = await BrokerFixture.StartAsync(dataDir, deleteOnDispose: false);
        try
        {
            using (IProducer<string, string> producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = first.BootstrapServers }).Build())
            {
                for (int i = 0; i < 20; i++)
                {
                    await producer.ProduceAsync("durable", new Message<string, string> { Key = "k", Value = $"v{i}" }).WaitAsync(Timeout);
                }
            }
        }
        finally
        {
            await first.DisposeAsync();
        }

        await using BrokerFixture second = await BrokerFixture.StartAsync(dataDir);
        List<string> consumed = KafkaClients.ConsumeFrom(second.BootstrapServers, "durable", 0, 0, 20);
        Assert.Equal(Enumerable.Range(0, 20).Select(i => $"{i}:k=v{i}"), consumed);

        using IProducer<string, string> again = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = second.BootstrapServers }).Build();
        DeliveryResult<string, string> next = await again.ProduceAsync("durable", new Message<string, string> { Key = "k", Value = "after" }).WaitAsync(Timeout);
        Assert.Equal(20, next.Offset.Value);
    }

    [Fact]
    public async Task ConsumerWaitingInLongPollGetsNewRecords()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using IProducer<string, string> producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = broker.BootstrapServers }).Build();
        await producer.ProduceAsync("tail", new Message<string, string> { Key = "a", Value = "first" }).WaitAsync(Timeout);

        var config = new ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = "tail", EnableAutoCommit = false, FetchWaitMaxMs = 5000 };
        using IConsumer<string, string> consumer = new ConsumerBuilder<string, string>(config).Build();
        consumer.Assign(new TopicPartitionOffset("tail", 0, 1));
        Task<DeliveryResult<string, string>> later = Task.Run(async () =>
        {
            await Task.Delay(300);
            return await producer.ProduceAsync("tail", new Message<string, string> { Key = "b", Value = "second" });
        });
        ConsumeResult<string, string>? result = null;
        DateTime deadline = DateTime.UtcNow + Timeout;
        while (result?.Message is null && DateTime.UtcNow < deadline)
        {
            result = consumer.Consume(TimeSpan.FromMilliseconds(200));
        }

        Assert.Equal("second", result?.Message?.Value);
        Assert.Equal(1, (await later).Offset.Value);
    }

    [Fact]
    public async Task OffsetsForTimesFindsTheFirstRecordAtOrAfterTheTimestamp()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using (IProducer<string, string> producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = broker.BootstrapServers }).Build())
        {
            for (int i = 0; i < 10; i++)
            {
                await producer.ProduceAsync("times", new Message<string, string> { Key = "k", Value = $"v{i}", Timestamp = new Timestamp(1_700_000_000_000 + i * 1000, TimestampType.CreateTime) }).WaitAsync(Timeout);
            }
        }

        using IConsumer<string, string> consumer = new ConsumerBuilder<string, string>(new ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = "times" }).Build();
        List<TopicPartitionOffset> found = consumer.OffsetsForTimes([new TopicPartitionTimestamp("times", 0, new Timestamp(1_700_000_004_500, TimestampType.CreateTime))], Timeout);
        Assert.Equal(5, found[0].Offset.Value);
        WatermarkOffsets marks = consumer.QueryWatermarkOffsets(new TopicPartition("times", 0), Timeout);
        Assert.Equal(0, marks.Low.Value);
        Assert.Equal(10, marks.High.Value);
    }

    [Fact]
    public async Task CorruptBatchGetsCorruptMessageAndTheBrokerKeepsServing()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.SendAsync(new SharedLog.Protocol.Messages.CreateTopicsRequest { Topics = [new() { Name = "crc", NumPartitions = 1, ReplicationFactor = 1 }] }, 4, 1);
        await client.ReceiveAsync(0);

        byte[] batch = new SharedLog.Protocol.Records.RecordBatchBuilder(1).Add([1], [2], 1).Build();
        batch[^1] ^= 0xFF;
        var response = await ProduceV9Async(client, -1, 2, ("crc", 0, batch), ("missing-topic", 0, batch));
        Assert.Equal((short)SharedLog.Protocol.ErrorCode.CorruptMessage, response.Responses[0].PartitionResponses[0].ErrorCode);
        Assert.Equal((short)SharedLog.Protocol.ErrorCode.UnknownTopicOrPartition, response.Responses[1].PartitionResponses[0].ErrorCode);

        batch[^1] ^= 0xFF;
        response = await ProduceV9Async(client, -1, 3, ("crc", 0, batch));
        Assert.Equal(0, response.Responses[0].PartitionResponses[0].ErrorCode);
        Assert.Equal(0, response.Responses[0].PartitionResponses[0].BaseOffset);

        // A gzip batch without its 8-byte trailer, CRC and length made right (a hostile-input review): .NET's reader inflated
        // it whole, so it was stored, and librdkafka consumers spun on the partition. Refused, the partition stays readable.
        byte[] gzip = new SharedLog.Protocol.Records.RecordBatchBuilder(1) { Compression = SharedLog.Protocol.Records.CompressionCodec.Gzip }.Add([1], [3], 1).Build()[..^8];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(gzip.AsSpan(8), gzip.Length - SharedLog.Protocol.Records.RecordBatch.LogOverhead);
        SharedLog.Protocol.Records.RecordBatch.WriteCrc(gzip);
        response = await ProduceV9Async(client, -1, 4, ("crc", 0, gzip));
        Assert.Equal((short)SharedLog.Protocol.ErrorCode.CorruptMessage, response.Responses[0].PartitionResponses[0].ErrorCode);

        using IConsumer<byte[], byte[]> consumer = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = "crc", EnableAutoCommit = false }).Build();
        consumer.Assign(new TopicPartitionOffset("crc", 0, 0));
        ConsumeResult<byte[], byte[]>? first = null;
        for (DateTime deadline = DateTime.UtcNow + Timeout; first?.Message is null && DateTime.UtcNow < deadline;)
        {
            first = consumer.Consume(TimeSpan.FromMilliseconds(200));
        }

        Assert.Equal(new byte[] { 2 }, first?.Message?.Value);
        Assert.Equal(1, consumer.QueryWatermarkOffsets(new TopicPartition("crc", 0), Timeout).High.Value);
    }

    [Fact]
    public async Task AMultiMebibyteRecordRoundTripsByteForByte()
    {
        // Its produce request and fetch response span many of the transport's 64 KiB blocks, and more than the 1 MiB
        // the transport buffers for a connection before it waits for the broker to take the bytes.
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using IAdminClient admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();
        await admin.CreateTopicsAsync([new TopicSpecification { Name = "big-records", NumPartitions = 1, ReplicationFactor = 1, Configs = new Dictionary<string, string> { ["max.message.bytes"] = "8388608" } }]);
        byte[] value = new byte[5 * 1024 * 1024 + 7];
        new Random(5).NextBytes(value);

        using (IProducer<Null, byte[]> producer = new ProducerBuilder<Null, byte[]>(new ProducerConfig { BootstrapServers = broker.BootstrapServers, Acks = Acks.All, MessageMaxBytes = 8_388_608 }).Build())
        {
            DeliveryResult<Null, byte[]> stored = await producer.ProduceAsync("big-records", new Message<Null, byte[]> { Value = value }).WaitAsync(Timeout);
            Assert.Equal(0, stored.Offset.Value);
        }

        var config = new ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = "big-records", EnableAutoCommit = false, FetchMaxBytes = 16_777_216, MaxPartitionFetchBytes = 16_777_216 };
        using IConsumer<Null, byte[]> consumer = new ConsumerBuilder<Null, byte[]>(config).Build();
        consumer.Assign(new TopicPartitionOffset("big-records", 0, 0));
        ConsumeResult<Null, byte[]>? result = null;
        DateTime deadline = DateTime.UtcNow + Timeout;
        while (result?.Message is null && DateTime.UtcNow < deadline)
        {
            result = consumer.Consume(TimeSpan.FromMilliseconds(200));
        }

        Assert.NotNull(result?.Message);
        Assert.True(value.AsSpan().SequenceEqual(result.Message.Value), "the consumed value differs from the produced one");
    }

    [Fact]
    public async Task ABatchBeyondWhatTheWalTakesIsRefusedAsTooLargeAndThePartitionKeepsServing()
    {
        // max.message.bytes may be raised past the largest batch one WAL entry carries (half a WAL page, 8 MiB by
        // default). Such a batch must be refused before it gets offsets: a failed WAL append closes the partition.
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using IAdminClient admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();
        await admin.CreateTopicsAsync([new TopicSpecification { Name = "huge-batches", NumPartitions = 1, ReplicationFactor = 1, Configs = new Dictionary<string, string> { ["max.message.bytes"] = "20971520" } }]);

        var config = new ProducerConfig { BootstrapServers = broker.BootstrapServers, Acks = Acks.All, MessageMaxBytes = 20_971_520, MessageTimeoutMs = 20_000 };
        using IProducer<Null, byte[]> producer = new ProducerBuilder<Null, byte[]>(config).Build();
        var refused = await Assert.ThrowsAsync<ProduceException<Null, byte[]>>(() => producer.ProduceAsync("huge-batches", new Message<Null, byte[]> { Value = new byte[9 * 1024 * 1024] }).WaitAsync(Timeout));
        Assert.Equal(ErrorCode.MsgSizeTooLarge, refused.Error.Code);

        DeliveryResult<Null, byte[]> next = await producer.ProduceAsync("huge-batches", new Message<Null, byte[]> { Value = "small"u8.ToArray() }).WaitAsync(Timeout);
        Assert.Equal(PersistenceStatus.Persisted, next.Status);
        Assert.Equal(0, next.Offset.Value);
        Assert.Equal(["0:=small"], KafkaClients.ConsumeFrom(broker.BootstrapServers, "huge-batches", 0, 0, 1));
    }

    [Theory]
    [InlineData(int.MaxValue, 1)]
    [InlineData(int.MaxValue - 1, 1)]
    [InlineData(5, 1)]
    [InlineData(0, 0)]
    [InlineData(-1, -1)]
    [InlineData(0, -1)]
    [InlineData(-1, 1)]
    public async Task ABatchWhoseOffsetRangeDisagreesWithItsRecordCountIsInvalidAndTakesNoOffsets(int lastOffsetDelta, int recordCount)
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();

        // A one-record batch whose header claims another offset range or record count, with a valid CRC.
        var answer = await ProduceForgedBatchAsync(broker, "offset-range", SharedLog.Protocol.Records.CompressionCodec.None, [2], lastOffsetDelta, recordCount);
        Assert.Equal((short)SharedLog.Protocol.ErrorCode.InvalidRecord, answer.ErrorCode);
        Assert.Contains("Inconsistent batch offset range", answer.ErrorMessage);

        // A real producer then gets the partition's first offsets, and a consumer reads exactly its records.
        using (IProducer<string, string> producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = broker.BootstrapServers, Acks = Acks.All }).Build())
        {
            Assert.Equal(0, (await producer.ProduceAsync("offset-range", new Message<string, string> { Key = "a", Value = "first" }).WaitAsync(Timeout)).Offset.Value);
            Assert.Equal(1, (await producer.ProduceAsync("offset-range", new Message<string, string> { Key = "b", Value = "second" }).WaitAsync(Timeout)).Offset.Value);
        }

        Assert.Equal(["0:a=first", "1:b=second"], KafkaClients.ConsumeFrom(broker.BootstrapServers, "offset-range", 0, 0, 2));
    }

    [Fact]
    public async Task AcksOtherThanZeroOneOrAllAreRefusedForKnownPartitionsAndUnknownOnesAreNamedAsSuch()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("acks-two", 1);
        byte[] batch = new SharedLog.Protocol.Records.RecordBatchBuilder(1).Add([1], [2], 1).Build();
        var topics = (await ProduceV9Async(client, 2, 2, ("acks-two", 0, batch), ("acks-two", 1, batch), ("no-such-topic", 0, batch))).Responses;
        var known = topics.Single(t => t.Name == "acks-two").PartitionResponses;
        Assert.Equal((short)SharedLog.Protocol.ErrorCode.InvalidRequiredAcks, known.Single(p => p.Index == 0).ErrorCode);
        Assert.Equal((short)SharedLog.Protocol.ErrorCode.UnknownTopicOrPartition, known.Single(p => p.Index == 1).ErrorCode);
        Assert.Equal((short)SharedLog.Protocol.ErrorCode.UnknownTopicOrPartition, topics.Single(t => t.Name == "no-such-topic").PartitionResponses[0].ErrorCode);

        // Nothing was stored: a real producer's first record takes offset 0.
        using IProducer<string, string> producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = broker.BootstrapServers, Acks = Acks.All }).Build();
        Assert.Equal(0, (await producer.ProduceAsync("acks-two", new Message<string, string> { Key = "a", Value = "first" }).WaitAsync(Timeout)).Offset.Value);
    }

    [Theory]
    [InlineData("compact", true, SharedLog.Protocol.Records.CompressionCodec.None)]
    [InlineData("compact", true, SharedLog.Protocol.Records.CompressionCodec.Lz4)]
    [InlineData("compact,delete", true, SharedLog.Protocol.Records.CompressionCodec.Gzip)]
    [InlineData("delete", false, SharedLog.Protocol.Records.CompressionCodec.Zstd)]
    public async Task ACompactedTopicRefusesRecordsWithoutAKeyNamingEachOne(string cleanupPolicy, bool compacted, SharedLog.Protocol.Records.CompressionCodec codec)
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using (IAdminClient admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build())
        {
            await admin.CreateTopicsAsync([new TopicSpecification { Name = "keys", NumPartitions = 1, Configs = new Dictionary<string, string> { ["cleanup.policy"] = cleanupPolicy } }]);
        }

        // As Kafka's log validator: a keyless record in a batch for a compacted topic refuses the batch, naming it.
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        // A compressed batch's keys are read as it inflates (an ungated topic never holds it whole): one keyless record is
        // larger than the window that walk holds.
        byte[] batch = new SharedLog.Protocol.Records.RecordBatchBuilder(1) { Compression = codec }.Add([1], [2], 1).Add(null, [3], 1).Add(null, new byte[200_000], 1).Build();
        var answer = (await ProduceV9Async(client, -1, 1, ("keys", 0, batch))).Responses[0].PartitionResponses[0];
        Assert.Equal(compacted ? (short)SharedLog.Protocol.ErrorCode.InvalidRecord : (short)0, answer.ErrorCode);
        Assert.Equal(compacted ? [1, 2] : [], answer.RecordErrors.Select(e => e.BatchIndex));

        // A real producer: a keyless record is refused on a compacted topic, a keyed one stored after what was stored before.
        using IProducer<string?, string> producer = new ProducerBuilder<string?, string>(new ProducerConfig { BootstrapServers = broker.BootstrapServers, Acks = Acks.All }).Build();
        if (compacted)
        {
            var refused = await Assert.ThrowsAsync<ProduceException<string?, string>>(() => producer.ProduceAsync("keys", new Message<string?, string> { Key = null, Value = "v" }).WaitAsync(Timeout));
            Assert.Equal(ErrorCode.InvalidRecord, refused.Error.Code);
        }

        Assert.Equal(compacted ? 0 : 3, (await producer.ProduceAsync("keys", new Message<string?, string> { Key = "k", Value = "v" }).WaitAsync(Timeout)).Offset.Value);
    }

    /// <summary>
    /// Creates a one-partition topic and sends it, with Produce v9, one record under a header forged to claim
    /// <paramref name="lastOffsetDelta"/> and <paramref name="recordCount"/> with a CRC that matches; returns the partition's answer.
    /// </summary>
    private static async Task<SharedLog.Protocol.Messages.ProduceResponse.PartitionProduceResponse> ProduceForgedBatchAsync(BrokerFixture broker, string topic, SharedLog.Protocol.Records.CompressionCodec codec, byte[] value, int lastOffsetDelta, int recordCount)
    {
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync(topic, 1);
        byte[] forged = new SharedLog.Protocol.Records.RecordBatchBuilder(1) { Compression = codec }.Add([1], value, 1).Build();
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(forged.AsSpan(23), lastOffsetDelta);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(forged.AsSpan(57), recordCount);
        SharedLog.Protocol.Records.RecordBatch.WriteCrc(forged);
        return (await ProduceV9Async(client, 1, 2, (topic, 0, forged))).Responses[0].PartitionResponses[0];
    }

    /// <summary>Sends one Produce v9 carrying <paramref name="parts"/> (topic, partition, record bytes), topics in order of first mention, and reads its answer.</summary>
    private static async Task<SharedLog.Protocol.Messages.ProduceResponse> ProduceV9Async(RawKafkaClient client, short acks, int correlationId, params (string Topic, int Partition, byte[] Records)[] parts)
    {
        var produce = new SharedLog.Protocol.Messages.ProduceRequest { Acks = acks, TimeoutMs = 5000 };
        foreach ((string topic, int partition, byte[] records) in parts)
        {
            var topicData = produce.TopicData.Find(t => t.Name == topic);
            if (topicData is null)
            {
                topicData = new() { Name = topic };
                produce.TopicData.Add(topicData);
            }

            topicData.PartitionData.Add(new() { Index = partition, Records = new System.Buffers.ReadOnlySequence<byte>(records) });
        }

        await client.SendAsync(produce, 9, correlationId);
        (_, byte[] body) = await client.ReceiveAsync(1);
        return new SharedLog.Protocol.Messages.ProduceResponse().ReadFrom(body, 9);
    }

    [Theory]
    [InlineData(SharedLog.Protocol.Records.CompressionCodec.None)]
    [InlineData(SharedLog.Protocol.Records.CompressionCodec.Zstd)]
    public async Task ABatchWhoseRecordsDoNotMatchItsHeaderIsInvalidAndTakesNoOffsets(SharedLog.Protocol.Records.CompressionCodec codec)
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();

        // One record under a header that claims two (self-consistent, with a valid CRC): only walking the records, after
        // decompressing them, shows it. Stored, it would take two offsets and leave consumers one record short.
        var answer = await ProduceForgedBatchAsync(broker, "record-walk", codec, new byte[64], lastOffsetDelta: 1, recordCount: 2);
        Assert.Equal((short)SharedLog.Protocol.ErrorCode.InvalidRecord, answer.ErrorCode);
        Assert.Contains("do not match its header", answer.ErrorMessage);

        using IProducer<string, string> producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = broker.BootstrapServers, CompressionType = CompressionType.Zstd }).Build();
        Assert.Equal(0, (await producer.ProduceAsync("record-walk", new Message<string, string> { Key = "a", Value = "first" }).WaitAsync(Timeout)).Offset.Value);
        Assert.Equal(["0:a=first"], KafkaClients.ConsumeFrom(broker.BootstrapServers, "record-walk", 0, 0, 1));
    }

    [Fact]
    public async Task ClientsCannotProduceToTheBrokersInternalJournals()
    {
        // The registry and contract journals are replayed at start: a client's record there would change or stop the broker.
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        string[] journals = [SharedLog.Contracts.InternalTopics.Contracts, SharedLog.Contracts.InternalTopics.Schemas, SharedLog.Contracts.InternalTopics.ContractAudit];
        using IProducer<string, string> producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = broker.BootstrapServers, MessageTimeoutMs = 10000 }).Build();
        using IAdminClient admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();

        // Before the broker writes them, the journals do not exist, and a producer's metadata request (which asks for
        // auto-creation) is refused with INVALID_TOPIC_EXCEPTION. librdkafka reports that as TopicException when the message
        // was queued before the answer came, and as Local_UnknownTopic when the answer to the lookup it starts on a new topic
        // came first: a race inside the client, so either code is the refusal.
        foreach (string journal in journals)
        {
            var refused = await Assert.ThrowsAsync<ProduceException<string, string>>(() => producer.ProduceAsync(journal, new Message<string, string> { Key = "x", Value = "{\"action\":\"delete\"}" }).WaitAsync(Timeout));
            Assert.Contains(refused.Error.Code, (ErrorCode[])[ErrorCode.TopicException, ErrorCode.Local_UnknownTopic]);
        }

        Assert.DoesNotContain(admin.GetMetadata(TimeSpan.FromSeconds(10)).Topics, t => journals.Contains(t.Topic)); // none was auto-created

        // Once they exist (a schema writes _schemas; a contract writes _contracts and _contract_audit), Produce itself refuses.
        using (var registry = new Confluent.SchemaRegistry.CachedSchemaRegistryClient(new Confluent.SchemaRegistry.SchemaRegistryConfig { Url = broker.RegistryUrl }))
        {
            await registry.RegisterSchemaAsync("ordinary-value", new Confluent.SchemaRegistry.Schema("""{"type":"object"}""", Confluent.SchemaRegistry.SchemaType.Json)).WaitAsync(Timeout);
        }

        using (var http = new System.Net.Http.HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{broker.Host.HttpPort}") })
        {
            using var applied = await http.PostAsync("/contracts", new System.Net.Http.StringContent("topic: ordinary\n", System.Text.Encoding.UTF8, "application/yaml")).WaitAsync(Timeout);
            Assert.Equal(System.Net.HttpStatusCode.OK, applied.StatusCode);
        }

        // A new producer: the first one keeps the journals as missing topics and would fail locally without asking.
        using IProducer<string, string> laterProducer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = broker.BootstrapServers, MessageTimeoutMs = 10000 }).Build();
        using IConsumer<byte[], byte[]> watermarks = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = "journal-watermarks" }).Build();
        foreach (string journal in journals)
        {
            long before = watermarks.QueryWatermarkOffsets(new TopicPartition(journal, 0), Timeout).High.Value;
            Assert.True(before > 0, $"{journal} was not written by the broker");
            var refused = await Assert.ThrowsAsync<ProduceException<string, string>>(() => laterProducer.ProduceAsync(new TopicPartition(journal, 0), new Message<string, string> { Key = "x", Value = "{\"action\":\"delete\"}" }).WaitAsync(Timeout));
            Assert.Equal(ErrorCode.TopicException, refused.Error.Code);
            Assert.Equal(before, watermarks.QueryWatermarkOffsets(new TopicPartition(journal, 0), Timeout).High.Value);
        }

        Assert.Equal(0, (await laterProducer.ProduceAsync("ordinary", new Message<string, string> { Key = "k", Value = "v" }).WaitAsync(Timeout)).Offset.Value);
    }

    [Fact]
    public async Task AdminClientsCannotDeleteTheBrokersInternalJournalsNorTheirRecordsNorShortenTheirRetention()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using IAdminClient admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();
        string[] journals = [SharedLog.Contracts.InternalTopics.Contracts, SharedLog.Contracts.InternalTopics.Schemas, SharedLog.Contracts.InternalTopics.ContractAudit];
        await admin.CreateTopicsAsync([new TopicSpecification { Name = "deletable", NumPartitions = 1 }, new TopicSpecification { Name = "deletable-kept", NumPartitions = 1 }]).WaitAsync(Timeout);

        // No client may create a journal first (with a compacted or short-lived audit, say), nor a name colliding with one.
        var reserved = await Assert.ThrowsAsync<CreateTopicsException>(() => admin.CreateTopicsAsync([
            new TopicSpecification { Name = SharedLog.Contracts.InternalTopics.ContractAudit, NumPartitions = 1, Configs = new() { ["retention.ms"] = "1000" } },
            new TopicSpecification { Name = ".contract.audit", NumPartitions = 1 }]).WaitAsync(Timeout));
        Assert.Equal([ErrorCode.InvalidRequest, ErrorCode.TopicException], reserved.Results.Select(r => r.Error.Code));

        // The journals exist once written: a schema (_schemas), a contract (_contracts and _contract_audit).
        using (var registry = new Confluent.SchemaRegistry.CachedSchemaRegistryClient(new Confluent.SchemaRegistry.SchemaRegistryConfig { Url = broker.RegistryUrl }))
        {
            await registry.RegisterSchemaAsync("deletable-value", new Confluent.SchemaRegistry.Schema("""{"type":"object"}""", Confluent.SchemaRegistry.SchemaType.Json)).WaitAsync(Timeout);
        }

        using (var http = new System.Net.Http.HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{broker.Host.HttpPort}") })
        {
            using var applied = await http.PostAsync("/contracts", new System.Net.Http.StringContent("topic: deletable\n", System.Text.Encoding.UTF8, "application/yaml")).WaitAsync(Timeout);
            Assert.Equal(System.Net.HttpStatusCode.OK, applied.StatusCode);
        }

        var refused = await Assert.ThrowsAsync<DeleteTopicsException>(() => admin.DeleteTopicsAsync([.. journals, "deletable"]).WaitAsync(Timeout));
        foreach (DeleteTopicReport report in refused.Results)
        {
            Assert.Equal(report.Topic == "deletable" ? ErrorCode.NoError : ErrorCode.PolicyViolation, report.Error.Code);
        }

        var kept = await Assert.ThrowsAsync<DeleteRecordsException>(() => admin.DeleteRecordsAsync([.. journals.Select(j => new TopicPartitionOffset(j, 0, Offset.End))]).WaitAsync(Timeout));
        Assert.All(kept.Results, r => Assert.Equal(ErrorCode.PolicyViolation, r.Error.Code));
        // Nor can their retention be changed; a config that keeps records is still fine.
        var shortened = await Assert.ThrowsAsync<IncrementalAlterConfigsException>(() => admin.IncrementalAlterConfigsAsync(new[] { new ConfigResource { Type = ResourceType.Topic, Name = SharedLog.Contracts.InternalTopics.Schemas }, new ConfigResource { Type = ResourceType.Topic, Name = "deletable-kept" } }
            .ToDictionary(r => r, _ => new List<ConfigEntry> { new() { Name = "retention.ms", Value = "60000", IncrementalOperation = AlterConfigOpType.Set } })).WaitAsync(Timeout));
        Assert.Equal(ErrorCode.PolicyViolation, shortened.Results.Single(r => r.ConfigResource.Name == SharedLog.Contracts.InternalTopics.Schemas).Error.Code);
        Assert.Equal(ErrorCode.NoError, shortened.Results.Single(r => r.ConfigResource.Name == "deletable-kept").Error.Code);
        await admin.IncrementalAlterConfigsAsync(new Dictionary<ConfigResource, List<ConfigEntry>>
        {
            [new ConfigResource { Type = ResourceType.Topic, Name = SharedLog.Contracts.InternalTopics.Schemas }] = [new() { Name = "max.message.bytes", Value = "2000000", IncrementalOperation = AlterConfigOpType.Set }],
        }).WaitAsync(Timeout);

        Metadata metadata = admin.GetMetadata(TimeSpan.FromSeconds(10));
        Assert.All(journals, j => Assert.Contains(metadata.Topics, t => t.Topic == j && t.Error.Code == ErrorCode.NoError));
        Assert.DoesNotContain(metadata.Topics, t => t.Topic == "deletable");
    }

    [Fact]
    public async Task TwoBatchesForOnePartitionAreInvalidAndNeitherIsStored()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("one-batch", 1);

        byte[] first = new SharedLog.Protocol.Records.RecordBatchBuilder(1).Add([1], [1], 1).Build();
        byte[] second = new SharedLog.Protocol.Records.RecordBatchBuilder(1).Add([2], [2], 1).Build();
        var response = await ProduceV9Async(client, -1, 2, ("one-batch", 0, [.. first, .. second]));
        Assert.Equal((short)SharedLog.Protocol.ErrorCode.InvalidRecord, response.Responses[0].PartitionResponses[0].ErrorCode);

        using (IProducer<string, string> producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = broker.BootstrapServers, Acks = Acks.All }).Build())
        {
            Assert.Equal(0, (await producer.ProduceAsync("one-batch", new Message<string, string> { Key = "k", Value = "only" }).WaitAsync(Timeout)).Offset.Value);
        }

        Assert.Equal(["0:k=only"], KafkaClients.ConsumeFrom(broker.BootstrapServers, "one-batch", 0, 0, 1));
    }

    [Theory]
    [InlineData(CompressionType.None)]
    [InlineData(CompressionType.Lz4)]
    public async Task ALogAppendTimeTopicStampsRecordsWithTheBrokersTime(CompressionType codec)
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using IAdminClient admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();
        await admin.CreateTopicsAsync([new TopicSpecification { Name = "appended", NumPartitions = 1, ReplicationFactor = 1, Configs = new Dictionary<string, string> { ["message.timestamp.type"] = "LogAppendTime" } }]);

        using IProducer<string, string> producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = broker.BootstrapServers, CompressionType = codec, LingerMs = 50 }).Build();
        long before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        DeliveryResult<string, string>[] delivered = await Task.WhenAll(Enumerable.Range(0, 3).Select(i =>
            producer.ProduceAsync("appended", new Message<string, string> { Key = "k", Value = $"v{i}", Timestamp = new Timestamp(1_000 + i, TimestampType.CreateTime) })));
        long after = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

        // The producer learns the broker's time from the response (log_append_time_ms), as from Kafka.
        Assert.All(delivered, d => Assert.Equal(TimestampType.LogAppendTime, d.Timestamp.Type));
        Assert.All(delivered, d => Assert.InRange(d.Timestamp.UnixTimestampMs, before, after));

        var config = new ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = "appended-reader", EnableAutoCommit = false };
        using IConsumer<string, string> consumer = new ConsumerBuilder<string, string>(config).Build();
        consumer.Assign(new TopicPartitionOffset("appended", 0, 0));
        var read = new List<Timestamp>();
        DateTime deadline = DateTime.UtcNow + Timeout;
        while (read.Count < 3 && DateTime.UtcNow < deadline)
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(200)) is { Message: { } m })
            {
                read.Add(m.Timestamp);
            }
        }

        Assert.Equal(3, read.Count);
        Assert.All(read, t => Assert.Equal(TimestampType.LogAppendTime, t.Type));
        Assert.All(read, t => Assert.InRange(t.UnixTimestampMs, before, after));
    }

    [Fact]
    public async Task RecordsStampedOutsideTheTopicsTimestampBoundsGetInvalidTimestamp()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using IAdminClient admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();
        await admin.CreateTopicsAsync(
        [
            new TopicSpecification { Name = "bounded", NumPartitions = 1, ReplicationFactor = 1, Configs = new Dictionary<string, string> { ["message.timestamp.before.max.ms"] = "3600000", ["message.timestamp.after.max.ms"] = "60000" } },
            new TopicSpecification { Name = "bounded-old-style", NumPartitions = 1, ReplicationFactor = 1, Configs = new Dictionary<string, string> { ["message.timestamp.difference.max.ms"] = "3600000" } },
        ]);
        using IProducer<string, string> producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = broker.BootstrapServers, MessageSendMaxRetries = 0 }).Build();
        DateTime now = DateTime.UtcNow;

        async Task<ErrorCode> ProduceAt(string topic, DateTime at)
        {
            try
            {
                await producer.ProduceAsync(topic, new Message<string, string> { Key = "k", Value = "v", Timestamp = new Timestamp(at) });
                return ErrorCode.NoError;
            }
            catch (ProduceException<string, string> e)
            {
                return e.Error.Code;
            }
        }

        Assert.Equal(ErrorCode.NoError, await ProduceAt("bounded", now));
        Assert.Equal(ErrorCode.NoError, await ProduceAt("bounded", now.AddMinutes(-30)));
        Assert.Equal(ErrorCode.InvalidTimestamp, await ProduceAt("bounded", now.AddHours(-2)));
        Assert.Equal(ErrorCode.InvalidTimestamp, await ProduceAt("bounded", now.AddMinutes(10)));

        // The deprecated difference config bounds both sides while before/after are unset, as Kafka.
        Assert.Equal(ErrorCode.NoError, await ProduceAt("bounded-old-style", now.AddMinutes(30)));
        Assert.Equal(ErrorCode.InvalidTimestamp, await ProduceAt("bounded-old-style", now.AddHours(2)));
        Assert.Equal(ErrorCode.InvalidTimestamp, await ProduceAt("bounded-old-style", now.AddHours(-2)));
        Assert.Equal(["0:k=v", "1:k=v"], KafkaClients.ConsumeFrom(broker.BootstrapServers, "bounded", 0, 0, 2));
    }

    [Fact]
    public async Task AdminDescribesTheBrokersConfigsReadOnlyWithTheirSources()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync(null, true, "--Broker:NumPartitions", "3", "--Broker:AutoCreateTopicsEnable", "false");
        using IAdminClient admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();
        Dictionary<string, ConfigEntryResult> entries = (await admin.DescribeConfigsAsync(
            [new ConfigResource { Type = ResourceType.Broker, Name = "1" }])).Single().Entries;

        // Settings this broker was started with are static broker configs; the rest are defaults, under Kafka's names.
        Assert.Equal(("3", ConfigSource.StaticBrokerConfig), (entries["num.partitions"].Value, entries["num.partitions"].Source));
        Assert.Equal(("false", ConfigSource.StaticBrokerConfig), (entries["auto.create.topics.enable"].Value, entries["auto.create.topics.enable"].Source));
        Assert.Equal(["StaticBrokerConfig:num.partitions=3", "DefaultConfig:num.partitions=1"], entries["num.partitions"].Synonyms.Select(s => $"{s.Source}:{s.Name}={s.Value}"));
        Assert.Equal(broker.DataDir, entries["log.dirs"].Value);
        Assert.Equal(("168", ConfigSource.DefaultConfig), (entries["log.retention.hours"].Value, entries["log.retention.hours"].Source));
        Assert.True(entries["log.retention.hours"].IsDefault);
        Assert.Equal("104857600", entries["socket.request.max.bytes"].Value);
        Assert.All(entries.Values, e => Assert.True(e.IsReadOnly, e.Name));

        // Started on port 0: the listener is reported with the port it bound, as clients reach it.
        Assert.Equal("PLAINTEXT://" + broker.BootstrapServers, entries["listeners"].Value);
        Assert.Equal("PLAINTEXT://" + broker.BootstrapServers, entries["advertised.listeners"].Value);
    }

    [Fact]
    public async Task AdminDeletesTopicsAddsPartitionsAndDescribesConfigs()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using IAdminClient admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();
        await admin.CreateTopicsAsync([new TopicSpecification { Name = "cfg-topic", NumPartitions = 1, ReplicationFactor = 1, Configs = new Dictionary<string, string> { ["retention.ms"] = "3600000" } }]);

        List<DescribeConfigsResult> described = await admin.DescribeConfigsAsync([new ConfigResource { Type = ResourceType.Topic, Name = "cfg-topic" }]);
        Dictionary<string, ConfigEntryResult> entries = described.Single().Entries;
        Assert.Equal("3600000", entries["retention.ms"].Value);
        Assert.Equal(ConfigSource.DynamicTopicConfig, entries["retention.ms"].Source);
        Assert.Equal("delete", entries["cleanup.policy"].Value);
        Assert.True(entries["cleanup.policy"].IsDefault);

        // Synonyms as Kafka names them: the topic's own value, then the broker config the default comes from; none for the
        // default of a config whose first broker synonym has no default (log.retention.ms, log.roll.ms), as Kafka lists
        // synonyms from that name on.
        Assert.Equal(["DynamicTopicConfig:retention.ms=3600000"], entries["retention.ms"].Synonyms.Select(s => $"{s.Source}:{s.Name}={s.Value}"));
        Assert.Equal(("604800000", ConfigSource.DefaultConfig), (entries["segment.ms"].Value, entries["segment.ms"].Source));
        Assert.Empty(entries["segment.ms"].Synonyms);
        Assert.Equal(["DefaultConfig:log.retention.bytes=-1"], entries["retention.bytes"].Synonyms.Select(s => $"{s.Source}:{s.Name}={s.Value}"));
        Assert.Equal(["DefaultConfig:log.cleanup.policy=delete"], entries["cleanup.policy"].Synonyms.Select(s => $"{s.Source}:{s.Name}={s.Value}"));
        Assert.Equal(["DefaultConfig:message.max.bytes=1048588"], entries["max.message.bytes"].Synonyms.Select(s => $"{s.Source}:{s.Name}={s.Value}"));

        // A broker config change is refused rather than answered with a success that changes nothing.
        string brokerId = admin.GetMetadata(Timeout).Brokers[0].BrokerId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var brokerChange = await Assert.ThrowsAsync<IncrementalAlterConfigsException>(() => admin.IncrementalAlterConfigsAsync(new Dictionary<ConfigResource, List<ConfigEntry>>
        {
            [new ConfigResource { Type = ResourceType.Broker, Name = brokerId }] = [new ConfigEntry { Name = "log.retention.ms", Value = "1000", IncrementalOperation = AlterConfigOpType.Set }],
        }));
        Assert.Equal(ErrorCode.InvalidRequest, brokerChange.Results[0].Error.Code);

        await admin.CreatePartitionsAsync([new PartitionsSpecification { Topic = "cfg-topic", IncreaseTo = 3 }]);
        Assert.Equal(3, admin.GetMetadata("cfg-topic", Timeout).Topics.Single().Partitions.Count);
        var shrink = await Assert.ThrowsAsync<CreatePartitionsException>(() => admin.CreatePartitionsAsync([new PartitionsSpecification { Topic = "cfg-topic", IncreaseTo = 2 }]));
        Assert.Equal(ErrorCode.InvalidPartitions, shrink.Results[0].Error.Code);

        using (IProducer<string, string> producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = broker.BootstrapServers }).Build())
        {
            DeliveryResult<string, string> onNew = await producer.ProduceAsync(new TopicPartition("cfg-topic", 2), new Message<string, string> { Key = "k", Value = "v" }).WaitAsync(Timeout);
            Assert.Equal(0, onNew.Offset.Value);
        }

        await admin.DeleteTopicsAsync(["cfg-topic"]);
        var again = await Assert.ThrowsAsync<DeleteTopicsException>(() => admin.DeleteTopicsAsync(["cfg-topic"]));
        Assert.Equal(ErrorCode.UnknownTopicOrPart, again.Results[0].Error.Code);
    }

    [Fact]
    public async Task DeleteRecordsRaisesTheLowWatermark()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using (IProducer<string, string> producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = broker.BootstrapServers }).Build())
        {
            for (int i = 0; i < 10; i++)
            {
                await producer.ProduceAsync("trimmed", new Message<string, string> { Key = "k", Value = $"v{i}" }).WaitAsync(Timeout);
            }
        }

        using IAdminClient admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();
        List<DeleteRecordsResult> deleted = await admin.DeleteRecordsAsync([new TopicPartitionOffset("trimmed", 0, 6)]);
        Assert.Equal(6, deleted.Single().Offset.Value);
        var beyond = await Assert.ThrowsAsync<DeleteRecordsException>(() => admin.DeleteRecordsAsync([new TopicPartitionOffset("trimmed", 0, 50)]));
        Assert.Equal(ErrorCode.OffsetOutOfRange, beyond.Results[0].Error.Code);

        using IConsumer<string, string> consumer = new ConsumerBuilder<string, string>(new ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = "trim" }).Build();
        WatermarkOffsets marks = consumer.QueryWatermarkOffsets(new TopicPartition("trimmed", 0), Timeout);
        Assert.Equal(6, marks.Low.Value);
        Assert.Equal(["6:k=v6", "7:k=v7", "8:k=v8", "9:k=v9"], KafkaClients.ConsumeFrom(broker.BootstrapServers, "trimmed", 0, 6, 4));

        // As Kafka: a compact-only topic keeps its records (POLICY_VIOLATION); with delete in its policy too, it trims.
        await admin.CreateTopicsAsync([
            new TopicSpecification { Name = "compacted", NumPartitions = 1, ReplicationFactor = 1, Configs = new() { ["cleanup.policy"] = "compact" } },
            new TopicSpecification { Name = "compact-delete", NumPartitions = 1, ReplicationFactor = 1, Configs = new() { ["cleanup.policy"] = "compact, delete" } }]);
        using (IProducer<string, string> producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = broker.BootstrapServers }).Build())
        {
            foreach (string topic in new[] { "compacted", "compact-delete" })
            {
                for (int i = 0; i < 3; i++)
                {
                    await producer.ProduceAsync(topic, new Message<string, string> { Key = "k", Value = $"v{i}" }).WaitAsync(Timeout);
                }
            }
        }

        var refused = await Assert.ThrowsAsync<DeleteRecordsException>(() => admin.DeleteRecordsAsync([new TopicPartitionOffset("compacted", 0, 2)]));
        Assert.Equal(ErrorCode.PolicyViolation, refused.Results[0].Error.Code);
        Assert.Equal(0, consumer.QueryWatermarkOffsets(new TopicPartition("compacted", 0), Timeout).Low.Value);
        Assert.Equal(2, (await admin.DeleteRecordsAsync([new TopicPartitionOffset("compact-delete", 0, 2)])).Single().Offset.Value);
    }

    [Fact]
    public async Task AdminAltersConfigsDescribesTheClusterAndManagesGroups()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using IAdminClient admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();
        await admin.CreateTopicsAsync([new TopicSpecification { Name = "altered", NumPartitions = 1, ReplicationFactor = 1 }]);
        var resource = new ConfigResource { Type = ResourceType.Topic, Name = "altered" };

        await admin.IncrementalAlterConfigsAsync(new Dictionary<ConfigResource, List<ConfigEntry>> { [resource] = [new ConfigEntry { Name = "retention.ms", Value = "1234", IncrementalOperation = AlterConfigOpType.Set }] });
        Assert.Equal("1234", (await admin.DescribeConfigsAsync([resource])).Single().Entries["retention.ms"].Value);
        var bad = await Assert.ThrowsAsync<IncrementalAlterConfigsException>(() => admin.IncrementalAlterConfigsAsync(new Dictionary<ConfigResource, List<ConfigEntry>> { [resource] = [new ConfigEntry { Name = "no.such.config", Value = "1", IncrementalOperation = AlterConfigOpType.Set }] }));
        Assert.Equal(ErrorCode.InvalidConfig, bad.Results[0].Error.Code);
        await admin.IncrementalAlterConfigsAsync(new Dictionary<ConfigResource, List<ConfigEntry>> { [resource] = [new ConfigEntry { Name = "retention.ms", IncrementalOperation = AlterConfigOpType.Delete }] });
        Assert.True((await admin.DescribeConfigsAsync([resource])).Single().Entries["retention.ms"].IsDefault);

        DescribeClusterResult cluster = await admin.DescribeClusterAsync();
        Assert.Single(cluster.Nodes);
        Assert.Equal("sharedlog-embedded", cluster.ClusterId);

        // Asked for, the authorized operations are what Kafka without an authorizer grants: all the resource supports.
        DescribeClusterResult withOperations = await admin.DescribeClusterAsync(new DescribeClusterOptions { IncludeAuthorizedOperations = true });
        Assert.Equal(
            [AclOperation.Create, AclOperation.Alter, AclOperation.Describe, AclOperation.ClusterAction, AclOperation.DescribeConfigs, AclOperation.AlterConfigs, AclOperation.IdempotentWrite],
            withOperations.AuthorizedOperations.Order());
        TopicDescription described = (await admin.DescribeTopicsAsync(TopicCollection.OfTopicNames(["altered"]), new DescribeTopicsOptions { IncludeAuthorizedOperations = true })).TopicDescriptions.Single();
        Assert.Equal(
            [AclOperation.Read, AclOperation.Write, AclOperation.Create, AclOperation.Delete, AclOperation.Alter, AclOperation.Describe, AclOperation.DescribeConfigs, AclOperation.AlterConfigs],
            described.AuthorizedOperations.Order());

        using (IConsumer<string, string> consumer = new ConsumerBuilder<string, string>(new ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = "described" }).Build())
        {
            consumer.Commit([new TopicPartitionOffset("altered", 0, 0)]);
            consumer.Close();
        }

        await admin.DeleteConsumerGroupOffsetsAsync("described", [new TopicPartition("altered", 0)]);
        using (IConsumer<string, string> check = new ConsumerBuilder<string, string>(new ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = "described" }).Build())
        {
            Assert.Equal(Offset.Unset, check.Committed([new TopicPartition("altered", 0)], Timeout).Single().Offset);
            check.Commit([new TopicPartitionOffset("altered", 0, 0)]);
            check.Close();
        }

        // Only committed offsets, no member ever joined: an Empty group, as Kafka reports it (not Dead).
        DescribeConsumerGroupsResult groups = await admin.DescribeConsumerGroupsAsync(["described"]);
        Assert.Equal(("described", ConsumerGroupState.Empty), (groups.ConsumerGroupDescriptions.Single().GroupId, groups.ConsumerGroupDescriptions.Single().State));
        DescribeConsumerGroupsResult unknown = await admin.DescribeConsumerGroupsAsync(["never-used"]);
        Assert.Equal(ConsumerGroupState.Dead, unknown.ConsumerGroupDescriptions.Single().State);
        await admin.DeleteGroupsAsync(["described"]);
        var missing = await Assert.ThrowsAsync<DeleteGroupsException>(() => admin.DeleteGroupsAsync(["described"]));
        Assert.Equal(ErrorCode.GroupIdNotFound, missing.Results[0].Error.Code);
    }
}
