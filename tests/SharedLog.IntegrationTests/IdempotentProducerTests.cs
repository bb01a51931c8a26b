using System.Buffers;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Microsoft.Extensions.DependencyInjection;
using SharedLog.Protocol.Messages;
using SharedLog.Protocol.Records;

namespace SharedLog.IntegrationTests;

/// <summary>Idempotent produce: librdkafka with enable.idempotence, and hand-made retries and gaps.</summary>
public class IdempotentProducerTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task LibrdkafkaIdempotentProducerWritesEveryRecordOnce()
    {
        // Enough records on three partitions that librdkafka may keep several requests in flight (up to 5
        // for an idempotent producer). It recovers from sequence errors on its own (epoch bump and resend),
        // so this checks the outcome a user sees; the raw-protocol test below pins the broker's verdicts.
        const int Partitions = 3;
        const int PerPartition = 5_000;
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using (IAdminClient admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build())
        {
            await admin.CreateTopicsAsync([new Confluent.Kafka.Admin.TopicSpecification { Name = "idem", NumPartitions = Partitions, ReplicationFactor = 1 }]);
        }

        var config = new ProducerConfig { BootstrapServers = broker.BootstrapServers, EnableIdempotence = true, Acks = Acks.All, LingerMs = 1, BatchNumMessages = 200, CompressionType = CompressionType.Lz4 };
        using (IProducer<string, string> producer = new ProducerBuilder<string, string>(config).Build())
        {
            for (int i = 0; i < PerPartition; i++)
            {
                for (int partition = 0; partition < Partitions; partition++)
                {
                    producer.Produce(new TopicPartition("idem", partition), new Message<string, string> { Key = "k", Value = $"v{i}" });
                }
            }

            Assert.Equal(0, producer.Flush(Timeout));
        }

        using IConsumer<string, string> consumer = new ConsumerBuilder<string, string>(new ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = "idem" }).Build();
        for (int partition = 0; partition < Partitions; partition++)
        {
            consumer.Assign(new TopicPartitionOffset("idem", partition, 0));
            var values = new List<string>();
            DateTime deadline = DateTime.UtcNow + Timeout;
            while (values.Count < PerPartition && DateTime.UtcNow < deadline)
            {
                if (consumer.Consume(TimeSpan.FromMilliseconds(200)) is { Message: { } m })
                {
                    values.Add(m.Value);
                }
            }

            Assert.Equal(Enumerable.Range(0, PerPartition).Select(i => $"v{i}"), values);
            Assert.Equal(PerPartition, consumer.QueryWatermarkOffsets(new TopicPartition("idem", partition), Timeout).High.Value);
        }
    }

    [Fact]
    public async Task ARetryOnALogAppendTimeTopicIsAnsweredWithItsOriginalsAppendTime()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using (IAdminClient admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build())
        {
            await admin.CreateTopicsAsync([new TopicSpecification { Name = "stamped-idem", NumPartitions = 1, ReplicationFactor = 1, Configs = new Dictionary<string, string> { ["message.timestamp.type"] = "LogAppendTime" } }]);
        }

        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.SendAsync(new InitProducerIdRequest { TransactionalId = null, TransactionTimeoutMs = 60000 }, 4, 1);
        (_, byte[] initBody) = await client.ReceiveAsync(1);
        var init = new InitProducerIdResponse().ReadFrom(initBody, 4);
        byte[] batch = Batch(init.ProducerId, init.ProducerEpoch, 0, 3);
        ProduceResponse.PartitionProduceResponse first = await ProduceAsync(client, "stamped-idem", batch, 2);
        Assert.True(first.LogAppendTimeMs > 0);

        // Once the broker's clock has moved on, a time taken anew would differ from the stored one.
        DateTime deadline = DateTime.UtcNow + Timeout;
        while (DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() <= first.LogAppendTimeMs + 5 && DateTime.UtcNow < deadline)
        {
            await Task.Yield();
        }

        ProduceResponse.PartitionProduceResponse retry = await ProduceAsync(client, "stamped-idem", batch, 3);
        Assert.Equal((0, first.BaseOffset, first.LogAppendTimeMs), ((int)retry.ErrorCode, retry.BaseOffset, retry.LogAppendTimeMs));
    }

    private static byte[] Batch(long producerId, short epoch, int sequence, int records)
    {
        var builder = new RecordBatchBuilder(1_700_000_000_000) { ProducerId = producerId, ProducerEpoch = epoch, BaseSequence = sequence };
        for (int i = 0; i < records; i++)
        {
            builder.Add(null, [(byte)i], 1_700_000_000_000);
        }

        return builder.Build();
    }

    private static Task<ProduceResponse.PartitionProduceResponse> ProduceAsync(RawKafkaClient client, byte[] batch, int correlation) =>
        ProduceAsync(client, "seq", batch, correlation);

    private static async Task<ProduceResponse.PartitionProduceResponse> ProduceAsync(RawKafkaClient client, string topic, byte[] batch, int correlation)
    {
        await client.SendAsync(ProduceOf(topic, batch), 9, correlation);
        (_, byte[] body) = await client.ReceiveAsync(1);
        return new ProduceResponse().ReadFrom(body, 9).Responses[0].PartitionResponses[0];
    }

    /// <summary>Creates a one-partition topic and gets a producer id (correlation ids 1 and 2).</summary>
    private static async Task<InitProducerIdResponse> CreateTopicAndInitProducerAsync(RawKafkaClient client, string topic)
    {
        await client.CreateTopicAsync(topic, 1);
        await client.SendAsync(new InitProducerIdRequest { TransactionalId = null, TransactionTimeoutMs = 60000 }, 4, 2);
        (_, byte[] initBody) = await client.ReceiveAsync(1);
        var init = new InitProducerIdResponse().ReadFrom(initBody, 4);
        Assert.Equal(0, init.ErrorCode);
        Assert.True(init.ProducerId >= 0);
        return init;
    }

    /// <summary>
    /// Transactions are not served: a transactional producer's InitTransactions fails at once with an error librdkafka
    /// (and the Java client) treat as fatal, not after its whole timeout of retrying, and nothing is written.
    /// </summary>
    [Fact]
    public async Task ATransactionalProducerIsRefusedWithAFatalErrorNotLeftRetrying()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using IProducer<Null, string> producer = new ProducerBuilder<Null, string>(new ProducerConfig
        {
            BootstrapServers = broker.BootstrapServers,
            TransactionalId = "orders-tx",
        }).Build();

        // The timeout is what librdkafka would spend retrying a refusal it does not take as final.
        KafkaException refused = Assert.ThrowsAny<KafkaException>(() => producer.InitTransactions(TimeSpan.FromSeconds(60)));
        Assert.Equal(ErrorCode.TransactionalIdAuthorizationFailed, refused.Error.Code);
        Assert.True(refused.Error.IsFatal, refused.Error.Reason);
    }

    [Fact]
    public async Task AnInitProducerIdNamingOnlyAnIdOrOnlyAnEpochOrAnEmptyTransactionalIdIsAnInvalidRequest()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        InitProducerIdResponse init = await CreateTopicAndInitProducerAsync(client, "half");
        var answers = new List<short>();
        foreach ((long id, short epoch) in new[] { (init.ProducerId, (short)-1), (-1L, init.ProducerEpoch) })
        {
            await client.SendAsync(new InitProducerIdRequest { TransactionalId = null, TransactionTimeoutMs = 60000, ProducerId = id, ProducerEpoch = epoch }, 4, 3 + answers.Count);
            (_, byte[] body) = await client.ReceiveAsync(1);
            answers.Add(new InitProducerIdResponse().ReadFrom(body, 4).ErrorCode);
        }

        // An empty transactional id is neither a transactional producer nor an idempotent one: Kafka's coordinator refuses it.
        await client.SendAsync(new InitProducerIdRequest { TransactionalId = "", TransactionTimeoutMs = 60000, ProducerId = -1, ProducerEpoch = -1 }, 4, 3 + answers.Count);
        (_, byte[] emptyIdAnswer) = await client.ReceiveAsync(1);
        answers.Add(new InitProducerIdResponse().ReadFrom(emptyIdAnswer, 4).ErrorCode);

        Assert.Equal([(short)ErrorCode.InvalidRequest, (short)ErrorCode.InvalidRequest, (short)ErrorCode.InvalidRequest], answers);
    }

    private static ProduceRequest ProduceOf(string topic, byte[] batch) => new()
    {
        Acks = -1,
        TimeoutMs = 5000,
        TopicData = [new() { Name = topic, PartitionData = [new() { Index = 0, Records = new ReadOnlySequence<byte>(batch) }] }],
    };

    [Fact]
    public async Task PipelinedIdempotentProducesFollowTheirSequenceAndRetriesGetTheOriginalOffset()
    {
        // An idempotent producer pipelines (librdkafka and Java keep up to 5 requests in flight): the broker
        // judges each batch's sequence as it queues it, before the one ahead is durable, so back-to-back
        // batches must all be accepted in order, a retry sent while its original may still be committing gets
        // the original's offset, and a gap is refused without disturbing the batches after it.
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        InitProducerIdResponse init = await CreateTopicAndInitProducerAsync(client, "seqpipe");

        const int Batches = 30;
        var expected = new List<(int Correlation, short Error, long Offset)>();
        int correlation = 100;
        for (int i = 0; i < Batches; i++)
        {
            await client.SendAsync(ProduceOf("seqpipe", Batch(init.ProducerId, init.ProducerEpoch, 2 * i, 2)), 9, correlation);
            expected.Add((correlation++, 0, 2L * i));
            if (i == 9)
            {
                await client.SendAsync(ProduceOf("seqpipe", Batch(init.ProducerId, init.ProducerEpoch, 18, 2)), 9, correlation);
                expected.Add((correlation++, 0, 18));
            }

            if (i == 19)
            {
                await client.SendAsync(ProduceOf("seqpipe", Batch(init.ProducerId, init.ProducerEpoch, 999, 1)), 9, correlation);
                expected.Add((correlation++, (short)SharedLog.Protocol.ErrorCode.OutOfOrderSequenceNumber, -1));
            }
        }

        foreach ((int sent, short error, long offset) in expected)
        {
            (int answered, byte[] body) = await client.ReceiveAsync(1);
            Assert.Equal(sent, answered);
            ProduceResponse.PartitionProduceResponse partition = new ProduceResponse().ReadFrom(body, 9).Responses[0].PartitionResponses[0];
            Assert.Equal(error, partition.ErrorCode);
            Assert.Equal(offset, partition.BaseOffset);
        }

        using IConsumer<Ignore, byte[]> consumer = new ConsumerBuilder<Ignore, byte[]>(new ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = "seqpipe" }).Build();
        Assert.Equal(2 * Batches, consumer.QueryWatermarkOffsets(new TopicPartition("seqpipe", 0), Timeout).High.Value);
        consumer.Assign(new TopicPartitionOffset("seqpipe", 0, 0));
        var read = new List<(long Offset, byte Value)>();
        DateTime deadline = DateTime.UtcNow + Timeout;
        while (read.Count < 2 * Batches && DateTime.UtcNow < deadline)
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(200)) is { Message: { } m } result)
            {
                read.Add((result.Offset.Value, m.Value[0]));
            }
        }

        // Each batch holds records valued 0 and 1, so the log is 0,1 repeated once per accepted batch: no retry written twice.
        Assert.Equal(Enumerable.Range(0, 2 * Batches).Select(o => ((long)o, (byte)(o % 2))), read);
    }

    /// <summary>
    /// A producer's sequence and its recent batches outlive the broker: after a clean stop they come from
    /// the snapshot taken at shutdown; after SIGKILL (no snapshot since the partition's first use) from
    /// replaying the log, recovered from the WAL. A retry of a batch acknowledged before the restart gets
    /// its original offset instead of being written twice, and the next batch continues the sequence.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ProducerSequencesAndRetriesSurviveABrokerRestart(bool killed)
    {
        await InFreshDataDirAsync("sharedlog-pidrestart-", async dataDir =>
        {
            InitProducerIdResponse init;
            if (killed)
            {
                using BrokerProcessTests.BrokerProcess first = await BrokerProcessTests.BrokerProcess.StartAsync(dataDir, "--Broker:ProducerSnapshotIntervalMs", "600000");
                init = await ProduceBeforeRestartAsync(first.Bootstrap);
                first.Kill();
            }
            else
            {
                init = await ProduceAndStopAsync(dataDir);
            }

            await using BrokerFixture second = await BrokerFixture.StartAsync(dataDir, deleteOnDispose: false);
            using RawKafkaClient client = await RawKafkaClient.ConnectAsync(second.BootstrapServers);
            ProduceResponse.PartitionProduceResponse retry = await ProduceAsync(client, "restart", Batch(init.ProducerId, init.ProducerEpoch, 3, 2), 1);
            Assert.Equal(0, retry.ErrorCode);
            Assert.Equal(3, retry.BaseOffset);
            ProduceResponse.PartitionProduceResponse next = await ProduceAsync(client, "restart", Batch(init.ProducerId, init.ProducerEpoch, 5, 1), 2);
            Assert.Equal(0, next.ErrorCode);
            Assert.Equal(5, next.BaseOffset);
            ProduceResponse.PartitionProduceResponse gap = await ProduceAsync(client, "restart", Batch(init.ProducerId, init.ProducerEpoch, 9, 1), 3);
            Assert.Equal((short)SharedLog.Protocol.ErrorCode.OutOfOrderSequenceNumber, gap.ErrorCode);

            using IConsumer<Ignore, byte[]> consumer = new ConsumerBuilder<Ignore, byte[]>(new ConsumerConfig { BootstrapServers = second.BootstrapServers, GroupId = "restart" }).Build();
            Assert.Equal(6, consumer.QueryWatermarkOffsets(new TopicPartition("restart", 0), Timeout).High.Value);

            // An epoch bump (KIP-360) for an id issued before the restart gets a fresh id, as Kafka gives
            // producers without a transactional id, not INVALID_PRODUCER_EPOCH.
            await client.SendAsync(new InitProducerIdRequest { TransactionalId = null, TransactionTimeoutMs = 60000, ProducerId = init.ProducerId, ProducerEpoch = init.ProducerEpoch }, 4, 4);
            (_, byte[] bumpBody) = await client.ReceiveAsync(1);
            var bumped = new InitProducerIdResponse().ReadFrom(bumpBody, 4);
            Assert.Equal(0, bumped.ErrorCode);
            Assert.NotEqual(init.ProducerId, bumped.ProducerId);
            Assert.Equal(0, bumped.ProducerEpoch);
        });
    }

    /// <summary>
    /// librdkafka's idempotent producer keeps going across a broker restart on the same address, and the
    /// restart does not wait for the producer's open connection to go idle-timeout (it used to take 30 s,
    /// Kestrel's shutdown timeout). librdkafka also copes with a broker that forgot it (it re-initializes on
    /// UNKNOWN_PRODUCER_ID), so this checks what a user sees; the raw-protocol restart test pins the state.
    /// </summary>
    [Fact]
    public async Task LibrdkafkaIdempotentProducerContinuesAcrossABrokerRestart()
    {
        string dataDir = Path.Combine(Path.GetTempPath(), "sharedlog-idemrestart-" + Guid.NewGuid().ToString("N"));
        int port = BrokerFixture.FreeLoopbackPort();
        var fatal = new List<string>();
        var config = new ProducerConfig { BootstrapServers = $"127.0.0.1:{port}", EnableIdempotence = true, Acks = Acks.All, LingerMs = 1, MessageTimeoutMs = 30000 };
        using IProducer<string, string> producer = new ProducerBuilder<string, string>(config)
            .SetErrorHandler((_, e) => { if (e.IsFatal) { lock (fatal) { fatal.Add(e.Reason); } } })
            .Build();
        try
        {
            BrokerFixture first = await BrokerFixture.StartAsync(dataDir, false, "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture));
            using (IAdminClient admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = first.BootstrapServers }).Build())
            {
                await admin.CreateTopicsAsync([new Confluent.Kafka.Admin.TopicSpecification { Name = "idem-restart", NumPartitions = 2, ReplicationFactor = 1 }]);
            }

            await ProduceRangeAsync(producer, 0, 200);

            // The producer's connection is open and idle: stopping closes it instead of waiting for it.
            // (The bound is past the broker's own shutdown limits but well under the old 30 s wait for idle connections.)
            await first.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(25));

            await using BrokerFixture second = await BrokerFixture.StartAsync(dataDir, true, "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture));
            await ProduceRangeAsync(producer, 200, 400);
            Assert.Empty(fatal);

            using IConsumer<string, string> consumer = new ConsumerBuilder<string, string>(new ConsumerConfig { BootstrapServers = second.BootstrapServers, GroupId = "idem-restart" }).Build();
            var values = new List<string>();
            for (int partition = 0; partition < 2; partition++)
            {
                consumer.Assign(new TopicPartitionOffset("idem-restart", partition, 0));
                DateTime deadline = DateTime.UtcNow + Timeout;
                int expected = 200;
                int read = 0;
                while (read < expected && DateTime.UtcNow < deadline)
                {
                    if (consumer.Consume(TimeSpan.FromMilliseconds(200)) is { Message: { } m })
                    {
                        values.Add(m.Value);
                        read++;
                    }
                }
            }

            // Every record once: nothing lost across the restart, nothing written twice.
            Assert.Equal(Enumerable.Range(0, 400).Select(i => $"v{i}").Order(), values.Order());
        }
        finally
        {
            if (Directory.Exists(dataDir))
            {
                Directory.Delete(dataDir, recursive: true);
            }
        }

        static async Task ProduceRangeAsync(IProducer<string, string> producer, int from, int to)
        {
            var sends = new List<Task<DeliveryResult<string, string>>>();
            for (int i = from; i < to; i++)
            {
                sends.Add(producer.ProduceAsync(new TopicPartition("idem-restart", i % 2), new Message<string, string> { Key = "k", Value = $"v{i}" }));
            }

            DeliveryResult<string, string>[] results = await Task.WhenAll(sends).WaitAsync(Timeout);
            Assert.All(results, r => Assert.Equal(PersistenceStatus.Persisted, r.Status));
        }
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("[null]")]
    [InlineData("{\"Id\": 1}")]
    public async Task AnUnreadableProducerSnapshotDoesNotBlockThePartition(string garbage)
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        InitProducerIdResponse init = await CreateTopicAndInitProducerAsync(client, "seq");
        var topics = (SharedLog.Broker.Cluster.TopicService)broker.Host.Services.GetService(typeof(SharedLog.Broker.Cluster.TopicService))!;
        var metadata = (SharedLog.Storage.Metadata.IMetadataStore)broker.Host.Services.GetService(typeof(SharedLog.Storage.Metadata.IMetadataStore))!;
        long streamId = topics.Find("seq")!.Partitions[0].StreamId;
        await metadata.SaveProducerSnapshotsAsync([new SharedLog.Storage.Metadata.ProducerSnapshot(streamId, 0, garbage)]);

        // The partition's producer state is loaded from that snapshot on this first produce.
        ProduceResponse.PartitionProduceResponse first = await ProduceAsync(client, Batch(init.ProducerId, init.ProducerEpoch, 0, 2), 3);
        Assert.Equal((0, 0L), (first.ErrorCode, first.BaseOffset));
        ProduceResponse.PartitionProduceResponse next = await ProduceAsync(client, Batch(init.ProducerId, init.ProducerEpoch, 2, 1), 4);
        Assert.Equal((0, 2L), (next.ErrorCode, next.BaseOffset));
    }

    /// <summary>
    /// After a restart, a partition only non-idempotent producers write to still has its producer snapshot kept at its log
    /// end: else the first idempotent produce, maybe days later, would wait for everything written since to be replayed.
    /// </summary>
    [Fact]
    public async Task APartitionOnlyPlainProducersWriteAfterARestartKeepsItsProducerSnapshotAtTheLogEnd()
    {
        await InFreshDataDirAsync("sharedlog-pidplain-", async dataDir =>
        {
            InitProducerIdResponse init = await ProduceAndStopAsync(dataDir);

            await using BrokerFixture second = await BrokerFixture.StartAsync(dataDir, false, "--Broker:ProducerSnapshotIntervalMs", "100");
            using (IProducer<Null, string> plain = new ProducerBuilder<Null, string>(new ProducerConfig { BootstrapServers = second.BootstrapServers, EnableIdempotence = false, Acks = Acks.All }).Build())
            {
                for (int i = 0; i < 3; i++)
                {
                    Assert.Equal(5 + i, (await plain.ProduceAsync(new TopicPartition("restart", 0), new Message<Null, string> { Value = "plain" }).WaitAsync(Timeout)).Offset.Value);
                }
            }

            (var metadata, SharedLog.Storage.Metadata.ProducerSnapshot saved) = await SavedSnapshotAsync(second);
            DateTime deadline = DateTime.UtcNow + Timeout;
            while (saved.Offset != 8)
            {
                Assert.True(DateTime.UtcNow < deadline, $"the producer snapshot stayed at offset {saved.Offset}, behind the log end 8");
                await Task.Delay(50);
                saved = (await metadata.GetProducerSnapshotAsync(saved.StreamId))!;
            }

            // Its producer is still known: a retry of its last batch is answered with the original offsets.
            using RawKafkaClient client = await RawKafkaClient.ConnectAsync(second.BootstrapServers);
            ProduceResponse.PartitionProduceResponse retry = await ProduceAsync(client, "restart", Batch(init.ProducerId, init.ProducerEpoch, 3, 2), 1);
            Assert.Equal((0, 3L), (retry.ErrorCode, retry.BaseOffset));
        });
    }

    /// <summary>
    /// A snapshot that cannot be read after a restart: the producers are rebuilt from the log, as Kafka does when its
    /// snapshots are corrupt, so a retry of a batch written before the restart is answered with its offsets, not written twice.
    /// </summary>
    [Fact]
    public async Task AnUnreadableProducerSnapshotIsRebuiltFromTheLogSoARetryIsNotWrittenTwice()
    {
        await InFreshDataDirAsync("sharedlog-pidgarbage-", async dataDir =>
        {
            InitProducerIdResponse init = await ProduceAndStopAsync(dataDir);
            await EditSavedSnapshotAsync(dataDir, saved => saved with { State = "not json" });

            await using BrokerFixture second = await BrokerFixture.StartAsync(dataDir, deleteOnDispose: false);
            using RawKafkaClient client = await RawKafkaClient.ConnectAsync(second.BootstrapServers);
            ProduceResponse.PartitionProduceResponse retry = await ProduceAsync(client, "restart", Batch(init.ProducerId, init.ProducerEpoch, 3, 2), 1);
            Assert.Equal((0, 3L), (retry.ErrorCode, retry.BaseOffset));
            ProduceResponse.PartitionProduceResponse next = await ProduceAsync(client, "restart", Batch(init.ProducerId, init.ProducerEpoch, 5, 1), 2);
            Assert.Equal((0, 5L), (next.ErrorCode, next.BaseOffset));
        });
    }

    [Fact]
    public async Task ProducersIdleLongerThanTheExpirationAreForgotten()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync(null, true, "--Broker:ProducerIdExpirationMs", "5000", "--Broker:ProducerSnapshotIntervalMs", "100");
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        InitProducerIdResponse init = await CreateTopicAndInitProducerAsync(client, "seq");
        Assert.Equal(0, (await ProduceAsync(client, Batch(init.ProducerId, init.ProducerEpoch, 0, 3), 3)).ErrorCode);
        Assert.Single(await ActiveProducersAsync(client, 4));

        // Expiry runs with the snapshots (every 100 ms here); wait for the producer to go, bounded.
        int correlation = 5;
        DateTime deadline = DateTime.UtcNow + Timeout;
        while ((await ActiveProducersAsync(client, correlation++)).Count > 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the idle producer was not expired");
            await Task.Delay(100);
        }

        // As with Kafka since KIP-360: the forgotten producer's next batch is taken at the sequence it carries,
        // and its state starts again from there: the following batch is checked against it.
        ProduceResponse.PartitionProduceResponse late = await ProduceAsync(client, Batch(init.ProducerId, init.ProducerEpoch, 3, 1), correlation++);
        Assert.Equal((0, 3L), (late.ErrorCode, late.BaseOffset));
        ProduceResponse.PartitionProduceResponse gap = await ProduceAsync(client, Batch(init.ProducerId, init.ProducerEpoch, 6, 1), correlation++);
        Assert.Equal((short)SharedLog.Protocol.ErrorCode.OutOfOrderSequenceNumber, gap.ErrorCode);
        ProduceResponse.PartitionProduceResponse next = await ProduceAsync(client, Batch(init.ProducerId, init.ProducerEpoch, 4, 1), correlation++);
        Assert.Equal((0, 4L), (next.ErrorCode, next.BaseOffset));

        // The broker also forgets that it issued the id, so asking to bump its epoch gets a fresh id, as Kafka
        // answers producers without a transactional id. The snapshot round that expired the partition state
        // forgot the issued id first, so no further wait is needed.
        await client.SendAsync(new InitProducerIdRequest { TransactionalId = null, TransactionTimeoutMs = 60000, ProducerId = init.ProducerId, ProducerEpoch = init.ProducerEpoch }, 4, correlation);
        (_, byte[] body) = await client.ReceiveAsync(1);
        InitProducerIdResponse reinit = new InitProducerIdResponse().ReadFrom(body, 4);
        Assert.Equal(0, reinit.ErrorCode);
        Assert.NotEqual(init.ProducerId, reinit.ProducerId);
        Assert.Equal(0, reinit.ProducerEpoch);
    }

    private static async Task<List<DescribeProducersResponse.ProducerState>> ActiveProducersAsync(RawKafkaClient client, int correlation)
    {
        await client.SendAsync(new DescribeProducersRequest { Topics = [new() { Name = "seq", PartitionIndexes = [0] }] }, 0, correlation);
        (_, byte[] body) = await client.ReceiveAsync(1);
        return new DescribeProducersResponse().ReadFrom(body, 0).Topics[0].Partitions[0].ActiveProducers;
    }

    /// <summary>Writes sequences 0-2 (offsets 0-2) and 3-4 (offsets 3-4) of a new producer to partition 0 of "restart".</summary>
    /// <summary>
    /// A producer snapshot saved past the log's end (offsets reserved by batches a crash then lost; older brokers saved
    /// the next offset, not the durable end) is cut back to the end when loaded, and saved so, as Kafka drops snapshots
    /// beyond the log end: else idempotent batches written at those offsets after the restart would be skipped by the
    /// next load, and a retry after a second restart written twice.
    /// </summary>
    [Fact]
    public async Task AProducerSnapshotPastTheLogEndIsCutBackToTheEndWhenLoaded()
    {
        await InFreshDataDirAsync("sharedlog-pidsnap-", async dataDir =>
        {
            InitProducerIdResponse init = await ProduceAndStopAsync(dataDir);
            await EditSavedSnapshotAsync(dataDir, saved =>
            {
                Assert.Equal(5, saved.Offset);
                return saved with { Offset = 105 };
            });

            await using BrokerFixture second = await BrokerFixture.StartAsync(dataDir, deleteOnDispose: false);
            (var metadata, SharedLog.Storage.Metadata.ProducerSnapshot saved) = await SavedSnapshotAsync(second);
            long streamId = saved.StreamId;
            using RawKafkaClient client = await RawKafkaClient.ConnectAsync(second.BootstrapServers);
            ProduceResponse.PartitionProduceResponse next = await ProduceAsync(client, "restart", Batch(init.ProducerId, init.ProducerEpoch, 5, 1), 1);
            Assert.Equal((0, 5L), (next.ErrorCode, next.BaseOffset));
            Assert.Equal(5, (await metadata.GetProducerSnapshotAsync(streamId))!.Offset);
        });
    }

    /// <summary>
    /// A snapshot older than the log start (DeleteRecords moved the start past batches written after it, then the broker
    /// was killed before the next snapshot) no longer tells what its producers sent: as Kafka drops such snapshots, the
    /// producer starts over and its next batch is taken, where the stale state refused it as out of order.
    /// </summary>
    [Fact]
    public async Task AProducerSnapshotBelowTheLogStartIsDroppedWhenLoaded()
    {
        await InFreshDataDirAsync("sharedlog-pidstale-", async dataDir =>
        {
            InitProducerIdResponse init = await ProduceAndStopAsync(dataDir);

            using (BrokerProcessTests.BrokerProcess second = await BrokerProcessTests.BrokerProcess.StartAsync(dataDir, "--Broker:ProducerSnapshotIntervalMs", "600000"))
            {
                using (RawKafkaClient client = await RawKafkaClient.ConnectAsync(second.Bootstrap))
                {
                    ProduceResponse.PartitionProduceResponse more = await ProduceAsync(client, "restart", Batch(init.ProducerId, init.ProducerEpoch, 5, 2), 1);
                    Assert.Equal((0, 5L), (more.ErrorCode, more.BaseOffset));
                }

                using IAdminClient admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = second.Bootstrap }).Build();
                List<DeleteRecordsResult> deleted = await admin.DeleteRecordsAsync([new TopicPartitionOffset("restart", 0, 7)]).WaitAsync(Timeout);
                Assert.Equal(7, deleted.Single().Offset.Value);

                // No snapshot since the first broker's: the one in the store is at offset 5, below the new log start.
                second.Kill();
            }

            await using BrokerFixture third = await BrokerFixture.StartAsync(dataDir, deleteOnDispose: false);
            var metadata = third.Host.Services.GetRequiredService<SharedLog.Storage.Metadata.IMetadataStore>();
            long streamId = third.Host.Services.GetRequiredService<SharedLog.Broker.Cluster.TopicService>().FindStream("restart", 0)!.StreamId;
            Assert.Equal(5, (await metadata.GetProducerSnapshotAsync(streamId))!.Offset);

            using RawKafkaClient again = await RawKafkaClient.ConnectAsync(third.BootstrapServers);
            ProduceResponse.PartitionProduceResponse next = await ProduceAsync(again, "restart", Batch(init.ProducerId, init.ProducerEpoch, 7, 1), 2);
            Assert.Equal((0, 7L), (next.ErrorCode, next.BaseOffset));
            ProduceResponse.PartitionProduceResponse gap = await ProduceAsync(again, "restart", Batch(init.ProducerId, init.ProducerEpoch, 9, 1), 3);
            Assert.Equal((short)SharedLog.Protocol.ErrorCode.OutOfOrderSequenceNumber, gap.ErrorCode);
        });
    }

    /// <summary>
    /// A partition that idempotent producers have used keeps its snapshot near the log's end while plain producers write
    /// to it: else a restart makes the first idempotent produce replay everything written since the last idempotent batch.
    /// </summary>
    [Fact]
    public async Task PlainBatchesMoveTheProducerSnapshotForward()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        InitProducerIdResponse init = await CreateTopicAndInitProducerAsync(client, "mixed");
        Assert.Equal(0, (await ProduceAsync(client, "mixed", Batch(init.ProducerId, init.ProducerEpoch, 0, 3), 3)).ErrorCode);
        var producers = broker.Host.Services.GetRequiredService<SharedLog.Broker.Coordinators.ProducerStateManager>();
        await producers.SnapshotAsync(CancellationToken.None);

        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(0, (await ProduceAsync(client, "mixed", Batch(-1, -1, -1, 2), 4 + i)).ErrorCode);
        }

        await producers.SnapshotAsync(CancellationToken.None);
        var metadata = broker.Host.Services.GetRequiredService<SharedLog.Storage.Metadata.IMetadataStore>();
        long streamId = broker.Host.Services.GetRequiredService<SharedLog.Broker.Cluster.TopicService>().FindStream("mixed", 0)!.StreamId;
        Assert.Equal(3 + (4 * 2), (await metadata.GetProducerSnapshotAsync(streamId))!.Offset);
    }

    /// <summary>Runs <paramref name="test"/> with a data directory of its own, deleted afterwards whatever happens.</summary>
    /// <summary>Rewrites, while no broker runs on <paramref name="dataDir"/>, the producer snapshot of partition 0 of "restart".</summary>
    private static async Task EditSavedSnapshotAsync(string dataDir, Func<SharedLog.Storage.Metadata.ProducerSnapshot, SharedLog.Storage.Metadata.ProducerSnapshot> edit)
    {
        await using var metadata = new SharedLog.Storage.Metadata.SqliteMetadataStore(new SharedLog.Storage.Metadata.SqliteMetadataStoreOptions { DatabasePath = Path.Combine(dataDir, SharedLog.Broker.BrokerHost.MetadataFileName) });
        await metadata.InitializeAsync();
        long streamId = (await metadata.GetTopicAsync("restart"))!.Partitions[0].StreamId;
        await metadata.SaveProducerSnapshotsAsync([edit((await metadata.GetProducerSnapshotAsync(streamId))!)]);
    }

    /// <summary>The producer snapshot of partition 0 of "restart", as the broker saved it, and the store it is in.</summary>
    private static async Task<(SharedLog.Storage.Metadata.IMetadataStore Metadata, SharedLog.Storage.Metadata.ProducerSnapshot Saved)> SavedSnapshotAsync(BrokerFixture broker)
    {
        var metadata = broker.Host.Services.GetRequiredService<SharedLog.Storage.Metadata.IMetadataStore>();
        long streamId = broker.Host.Services.GetRequiredService<SharedLog.Broker.Cluster.TopicService>().FindStream("restart", 0)!.StreamId;
        return (metadata, (await metadata.GetProducerSnapshotAsync(streamId))!);
    }

    private static async Task InFreshDataDirAsync(string prefix, Func<string, Task> test)
    {
        string dataDir = Path.Combine(Path.GetTempPath(), prefix + Guid.NewGuid().ToString("N"));
        try
        {
            await test(dataDir);
        }
        finally
        {
            if (Directory.Exists(dataDir))
            {
                Directory.Delete(dataDir, recursive: true);
            }
        }
    }

    /// <summary>
    /// <see cref="ProduceBeforeRestartAsync"/> on a broker over <paramref name="dataDir"/>, then a clean stop, which
    /// saves the producer's state as of offset 5.
    /// </summary>
    private static async Task<InitProducerIdResponse> ProduceAndStopAsync(string dataDir)
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync(dataDir, deleteOnDispose: false);
        return await ProduceBeforeRestartAsync(broker.BootstrapServers);
    }

    private static async Task<InitProducerIdResponse> ProduceBeforeRestartAsync(string bootstrap)
    {
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(bootstrap);
        InitProducerIdResponse init = await CreateTopicAndInitProducerAsync(client, "restart");
        ProduceResponse.PartitionProduceResponse first = await ProduceAsync(client, "restart", Batch(init.ProducerId, init.ProducerEpoch, 0, 3), 3);
        Assert.Equal((0, 0L), (first.ErrorCode, first.BaseOffset));
        ProduceResponse.PartitionProduceResponse second = await ProduceAsync(client, "restart", Batch(init.ProducerId, init.ProducerEpoch, 3, 2), 4);
        Assert.Equal((0, 3L), (second.ErrorCode, second.BaseOffset));
        return init;
    }

    [Fact]
    public async Task RetriesAreAnsweredWithTheOriginalOffsetAndGapsAndOldEpochsAreRefused()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        InitProducerIdResponse init = await CreateTopicAndInitProducerAsync(client, "seq");

        ProduceResponse.PartitionProduceResponse first = await ProduceAsync(client, Batch(init.ProducerId, init.ProducerEpoch, 0, 3), 3);
        Assert.Equal(0, first.ErrorCode);
        Assert.Equal(0, first.BaseOffset);

        // The same batch again (a retry after a lost response): same offset, nothing written twice.
        ProduceResponse.PartitionProduceResponse retry = await ProduceAsync(client, Batch(init.ProducerId, init.ProducerEpoch, 0, 3), 4);
        Assert.Equal(0, retry.ErrorCode);
        Assert.Equal(0, retry.BaseOffset);

        ProduceResponse.PartitionProduceResponse gap = await ProduceAsync(client, Batch(init.ProducerId, init.ProducerEpoch, 5, 1), 5);
        Assert.Equal((short)SharedLog.Protocol.ErrorCode.OutOfOrderSequenceNumber, gap.ErrorCode);

        ProduceResponse.PartitionProduceResponse next = await ProduceAsync(client, Batch(init.ProducerId, init.ProducerEpoch, 3, 2), 6);
        Assert.Equal(0, next.ErrorCode);
        Assert.Equal(3, next.BaseOffset);

        // Bumping the epoch fences the old one.
        await client.SendAsync(new InitProducerIdRequest { TransactionalId = null, TransactionTimeoutMs = 60000, ProducerId = init.ProducerId, ProducerEpoch = init.ProducerEpoch }, 4, 7);
        (_, byte[] bumpBody) = await client.ReceiveAsync(1);
        var bumped = new InitProducerIdResponse().ReadFrom(bumpBody, 4);
        Assert.Equal(init.ProducerEpoch + 1, bumped.ProducerEpoch);
        Assert.Equal(0, (await ProduceAsync(client, Batch(init.ProducerId, bumped.ProducerEpoch, 0, 1), 8)).ErrorCode);
        ProduceResponse.PartitionProduceResponse stale = await ProduceAsync(client, Batch(init.ProducerId, init.ProducerEpoch, 5, 1), 9);
        Assert.Equal((short)SharedLog.Protocol.ErrorCode.InvalidProducerEpoch, stale.ErrorCode);

        // InitProducerId from the stale epoch (a retry after a lost answer) gets a fresh id, never an error: Kafka gives
        // every producer without a transactional id a new one.
        await client.SendAsync(new InitProducerIdRequest { TransactionalId = null, TransactionTimeoutMs = 60000, ProducerId = init.ProducerId, ProducerEpoch = init.ProducerEpoch }, 4, 12);
        (_, byte[] staleInitBody) = await client.ReceiveAsync(1);
        var fresh = new InitProducerIdResponse().ReadFrom(staleInitBody, 4);
        Assert.Equal((0, (short)0), (fresh.ErrorCode, fresh.ProducerEpoch));
        Assert.NotEqual(init.ProducerId, fresh.ProducerId);

        // A producer id without a sequence is refused (it would match the last such batch as a duplicate and be
        // acknowledged unwritten), twice over, and nothing is written.
        for (int attempt = 0; attempt < 2; attempt++)
        {
            ProduceResponse.PartitionProduceResponse unnumbered = await ProduceAsync(client, Batch(fresh.ProducerId, 0, -1, 1), 13 + attempt);
            Assert.Equal((short)SharedLog.Protocol.ErrorCode.InvalidRecord, unnumbered.ErrorCode);
        }

        using IConsumer<Ignore, byte[]> consumer = new ConsumerBuilder<Ignore, byte[]>(new ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = "seq" }).Build();
        Assert.Equal(6, consumer.QueryWatermarkOffsets(new TopicPartition("seq", 0), Timeout).High.Value);

        await client.SendAsync(new DescribeProducersRequest { Topics = [new() { Name = "seq", PartitionIndexes = [0] }] }, 0, 10);
        (_, byte[] describedBody) = await client.ReceiveAsync(1);
        DescribeProducersResponse.ProducerState producer = Assert.Single(new DescribeProducersResponse().ReadFrom(describedBody, 0).Topics[0].Partitions[0].ActiveProducers);
        Assert.Equal(init.ProducerId, producer.ProducerId);
        Assert.Equal(bumped.ProducerEpoch, producer.ProducerEpoch);
        Assert.Equal(0, producer.LastSequence);

        // Partitions asked for twice, or that do not exist, are answered once or not at all.
        await client.SendAsync(new DescribeLogDirsRequest { Topics = [new() { Topic = "seq", Partitions = [0, 0, 7, -1] }] }, 4, 11);
        (_, byte[] dirsBody) = await client.ReceiveAsync(1);
        DescribeLogDirsResponse.DescribeLogDirsResult dir = Assert.Single(new DescribeLogDirsResponse().ReadFrom(dirsBody, 4).Results);
        Assert.Equal(0, dir.ErrorCode);
        Assert.True(dir.TotalBytes > 0);
        Assert.Equal("seq", Assert.Single(dir.Topics).Name);
        Assert.Equal(0, Assert.Single(dir.Topics[0].Partitions).PartitionIndex);
    }
}
