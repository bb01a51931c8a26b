using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Storage.Metadata;

namespace SharedLog.IntegrationTests;

/// <summary>The broker's Kafka listener: framing, ApiVersions negotiation and hostile input.</summary>
public class BrokerNetworkTests
{
    [Fact]
    public async Task ApiVersionsListsTheServedApis()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.SendAsync(new ApiVersionsRequest { ClientSoftwareName = "raw", ClientSoftwareVersion = "1" }, 3, 11);
        (int correlation, byte[] body) = await client.ReceiveAsync(0);
        Assert.Equal(11, correlation);
        var response = new ApiVersionsResponse().ReadFrom(body, 3);
        Assert.Equal((short)ErrorCode.None, response.ErrorCode);
        ApiVersionsResponse.ApiVersion apiVersions = Assert.Single(response.ApiKeys, k => k.ApiKey == (short)ApiKey.ApiVersions);
        Assert.Equal(4, apiVersions.MaxVersion);
    }

    [Fact]
    public async Task ApiVersionsRefusesClientSoftwareNamesKafkaRefuses()
    {
        // KIP-511's pattern, as Kafka checks it: INVALID_REQUEST with no API list; the connection keeps serving.
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        (string Name, string Version, ErrorCode Expected)[] cases =
        [
            ("", "1.0", ErrorCode.InvalidRequest),
            ("bad name!", "1.0", ErrorCode.InvalidRequest),
            ("-x", "1.0", ErrorCode.InvalidRequest),
            ("librdkafka", "2.16.0.", ErrorCode.InvalidRequest),
            ("librdkafka", "2.16.0\n", ErrorCode.InvalidRequest),
            ("confluent-kafka-dotnet", "2.16.0", ErrorCode.None),
            ("a", "b", ErrorCode.None),
        ];
        int correlation = 20;
        foreach ((string name, string version, ErrorCode expected) in cases)
        {
            await client.SendAsync(new ApiVersionsRequest { ClientSoftwareName = name, ClientSoftwareVersion = version }, 3, correlation++);
            var response = new ApiVersionsResponse().ReadFrom((await client.ReceiveAsync(0)).Body, 3);
            Assert.Equal((expected, expected == ErrorCode.None), ((ErrorCode)response.ErrorCode, response.ApiKeys.Count > 0));
        }
    }

    [Fact]
    public async Task UnknownApiVersionsVersionIsAnsweredAtV0WithTheList()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);

        // A future client asks with ApiVersions v99: header v1 layout, empty body.
        byte[] frame = [0, 0, 0, 10, 0, 18, 0, 99, 0, 0, 0, 5, 0, 0];
        await client.SendRawAsync(frame);
        (int correlation, byte[] body) = await client.ReceiveAsync(0);
        Assert.Equal(5, correlation);
        var response = new ApiVersionsResponse().ReadFrom(body, 0);
        Assert.Equal((short)ErrorCode.UnsupportedVersion, response.ErrorCode);
        Assert.Contains(response.ApiKeys, k => k.ApiKey == (short)ApiKey.ApiVersions);
    }

    [Fact]
    public async Task PipelinedRequestsAreAnsweredInOrder()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        for (int i = 0; i < 20; i++)
        {
            await client.SendAsync(new ApiVersionsRequest(), 2, 100 + i);
        }

        for (int i = 0; i < 20; i++)
        {
            (int correlation, _) = await client.ReceiveAsync(0);
            Assert.Equal(100 + i, correlation);
        }
    }

    [Fact]
    public async Task ProducersThatLeaveWhileTheirBatchIsCommittedDoNotCloseThePartition()
    {
        // Each client sends a produce and goes away at once, so its connection closes while the batch may
        // be waiting for the WAL commit. That used to abandon the batch and close the partition for everyone
        // (NOT_LEADER_OR_FOLLOWER until a restart); a real producer must still be served afterwards.
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using (RawKafkaClient setup = await RawKafkaClient.ConnectAsync(broker.BootstrapServers))
        {
            await setup.CreateTopicAsync("leavers", 1);
        }

        for (int i = 0; i < 50; i++)
        {
            using RawKafkaClient leaver = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
            var builder = new SharedLog.Protocol.Records.RecordBatchBuilder(1_700_000_000_000);
            builder.Add(null, System.Text.Encoding.UTF8.GetBytes($"left-{i}"), 1_700_000_000_000);
            await leaver.SendAsync(new ProduceRequest { Acks = -1, TimeoutMs = 5000, TopicData = [new() { Name = "leavers", PartitionData = [new() { Index = 0, Records = new System.Buffers.ReadOnlySequence<byte>(builder.Build()) }] }] }, 9, 2);
        }

        using Confluent.Kafka.IProducer<Confluent.Kafka.Null, string> producer = new Confluent.Kafka.ProducerBuilder<Confluent.Kafka.Null, string>(new Confluent.Kafka.ProducerConfig { BootstrapServers = broker.BootstrapServers, Acks = Confluent.Kafka.Acks.All, MessageTimeoutMs = 15000 }).Build();
        Confluent.Kafka.DeliveryResult<Confluent.Kafka.Null, string> stayed = await producer.ProduceAsync("leavers", new Confluent.Kafka.Message<Confluent.Kafka.Null, string> { Value = "stayed" });
        Assert.Equal(Confluent.Kafka.PersistenceStatus.Persisted, stayed.Status);

        using Confluent.Kafka.IConsumer<Confluent.Kafka.Ignore, string> consumer = new Confluent.Kafka.ConsumerBuilder<Confluent.Kafka.Ignore, string>(new Confluent.Kafka.ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = "leavers-check" }).Build();
        consumer.Assign(new Confluent.Kafka.TopicPartitionOffset("leavers", 0, stayed.Offset));
        Confluent.Kafka.ConsumeResult<Confluent.Kafka.Ignore, string>? read = null;
        DateTime deadline = DateTime.UtcNow.AddSeconds(30);
        while (read is null && DateTime.UtcNow < deadline)
        {
            read = consumer.Consume(TimeSpan.FromSeconds(1));
        }

        Assert.Equal("stayed", read?.Message.Value);
    }

    [Fact]
    public async Task PipelinedProducesKeepRequestOrderAndLaterRequestsSeeThem()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("pipelined", 2);

        // 40 produces sent back to back, 3 records per partition each, with a ListOffsets sent after the
        // 20th: the produces overlap in the broker, but offsets follow request order and the ListOffsets
        // sees exactly the 20 produces sent before it.
        const int Requests = 40;
        const int AskAfter = 20;
        for (int i = 0; i < Requests; i++)
        {
            if (i == AskAfter)
            {
                await client.SendAsync(new ListOffsetsRequest { ReplicaId = -1, Topics = [new() { Name = "pipelined", Partitions = [new() { PartitionIndex = 0, Timestamp = -1 }, new() { PartitionIndex = 1, Timestamp = -1 }] }] }, 5, 1000);
            }

            var builders = new[] { new SharedLog.Protocol.Records.RecordBatchBuilder(1), new SharedLog.Protocol.Records.RecordBatchBuilder(1) };
            for (int r = 0; r < 3; r++)
            {
                foreach (var builder in builders)
                {
                    builder.Add(null, System.Text.Encoding.UTF8.GetBytes($"{i}-{r}"), 1_700_000_000_000);
                }
            }

            await client.SendAsync(
                new ProduceRequest
                {
                    Acks = -1,
                    TimeoutMs = 5000,
                    TopicData = [new() { Name = "pipelined", PartitionData = [new() { Index = 0, Records = new System.Buffers.ReadOnlySequence<byte>(builders[0].Build()) }, new() { Index = 1, Records = new System.Buffers.ReadOnlySequence<byte>(builders[1].Build()) }] }],
                },
                9,
                10 + i);
        }

        for (int i = 0; i < Requests; i++)
        {
            if (i == AskAfter)
            {
                (int listCorrelation, byte[] listBody) = await client.ReceiveAsync(0);
                Assert.Equal(1000, listCorrelation);
                var offsets = new ListOffsetsResponse().ReadFrom(listBody, 5);
                Assert.All(offsets.Topics.Single().Partitions, p => Assert.Equal(AskAfter * 3, p.Offset));
            }

            (int correlation, byte[] body) = await client.ReceiveAsync(1);
            Assert.Equal(10 + i, correlation);
            var response = new ProduceResponse().ReadFrom(body, 9);
            Assert.All(response.Responses.Single().PartitionResponses, p =>
            {
                Assert.Equal(0, p.ErrorCode);
                Assert.Equal(i * 3L, p.BaseOffset);
            });
        }

        var config = new Confluent.Kafka.ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = "pipelined-check", AutoOffsetReset = Confluent.Kafka.AutoOffsetReset.Earliest };
        using Confluent.Kafka.IConsumer<Confluent.Kafka.Ignore, string> consumer = new Confluent.Kafka.ConsumerBuilder<Confluent.Kafka.Ignore, string>(config).Build();
        consumer.Assign(new Confluent.Kafka.TopicPartitionOffset("pipelined", 1, 0));
        var values = new List<string>();
        DateTime deadline = DateTime.UtcNow.AddSeconds(30);
        while (values.Count < Requests * 3 && DateTime.UtcNow < deadline)
        {
            if (consumer.Consume(TimeSpan.FromSeconds(1)) is { } result)
            {
                values.Add(result.Message.Value);
            }
        }

        Assert.Equal(Enumerable.Range(0, Requests).SelectMany(i => Enumerable.Range(0, 3).Select(r => $"{i}-{r}")), values);
    }

    [Theory]
    [InlineData(new byte[] { 0x7F, 0xFF, 0xFF, 0xFF })]                       // declares 2 GiB
    [InlineData(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF })]                       // negative size
    [InlineData(new byte[] { 0, 0, 0, 2, 0, 3 })]                             // shorter than a header
    [InlineData(new byte[] { 0, 0, 0, 8, 0x7F, 0x00, 0, 0, 0, 0, 0, 1 })]     // unknown API key
    [InlineData(new byte[] { 0, 0, 0, 10, 0, 3, 0, 1, 0, 0, 0, 1, 0x7F, 0xFF })] // Metadata v1, client id claims 32 KiB
    public async Task HostileFramesCloseTheConnectionAndTheBrokerKeepsServing(byte[] frame)
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using (RawKafkaClient hostile = await RawKafkaClient.ConnectAsync(broker.BootstrapServers))
        {
            await hostile.SendRawAsync(frame);
            Assert.True(await hostile.IsClosedByServerAsync(), "the broker should close a connection that sends this frame");
        }

        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.SendAsync(new ApiVersionsRequest(), 3, 1);
        (int correlation, _) = await client.ReceiveAsync(0);
        Assert.Equal(1, correlation);
    }

    [Fact]
    public async Task AFailedProduceWithAcksZeroClosesTheConnectionAndAGoodOneDoesNot()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("acks-zero", 1);

        static ProduceRequest Produce(byte[] batch) => new()
        {
            Acks = 0,
            TimeoutMs = 5000,
            TopicData = [new() { Name = "acks-zero", PartitionData = [new() { Index = 0, Records = new System.Buffers.ReadOnlySequence<byte>(batch) }] }],
        };

        // A good acks=0 produce gets no response, and the connection still answers the next request.
        byte[] good = new SharedLog.Protocol.Records.RecordBatchBuilder(1).Add([1], [2], 1).Build();
        await client.SendAsync(Produce(good), 9, 2);
        await client.SendAsync(new ApiVersionsRequest(), 3, 3);
        (int correlation, _) = await client.ReceiveAsync(0);
        Assert.Equal(3, correlation);

        // A corrupt one cannot be answered with an error, so the broker closes the connection.
        byte[] corrupt = new SharedLog.Protocol.Records.RecordBatchBuilder(1).Add([1], [2], 1).Build();
        corrupt[^1] ^= 0xFF;
        await client.SendAsync(Produce(corrupt), 9, 4);
        Assert.True(await client.IsClosedByServerAsync(), "an acks=0 produce that failed must close the connection");

        using RawKafkaClient next = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await next.SendAsync(new ApiVersionsRequest(), 3, 5);
        (correlation, _) = await next.ReceiveAsync(0);
        Assert.Equal(5, correlation);
    }

    [Fact]
    public async Task RandomBytesNeverCrashTheBroker()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        var random = new Random(7);
        for (int i = 0; i < 50; i++)
        {
            using RawKafkaClient hostile = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
            byte[] junk = new byte[4 + random.Next(200)];
            random.NextBytes(junk);
            junk[0] = 0; // keep declared sizes small so the broker reads the junk rather than waiting for more
            junk[1] = 0;
            await hostile.SendRawAsync(junk);
        }

        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.SendAsync(new ApiVersionsRequest(), 3, 9);
        (int correlation, _) = await client.ReceiveAsync(0);
        Assert.Equal(9, correlation);
    }

    [Fact]
    public async Task AThousandConnectionsOpenedAndDroppedLeaveTheBrokerServing()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        string[] parts = broker.BootstrapServers.Split(':');
        int port = int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture);
        for (int round = 0; round < 10; round++)
        {
            var clients = new List<System.Net.Sockets.TcpClient>();
            for (int i = 0; i < 100; i++)
            {
                var client = new System.Net.Sockets.TcpClient();
                await client.ConnectAsync(System.Net.IPAddress.Loopback, port).WaitAsync(TimeSpan.FromSeconds(10));
                if (i % 2 == 0)
                {
                    // Half of them leave a partial frame behind before vanishing.
                    await client.GetStream().WriteAsync(new byte[] { 0, 0, 0, 20, 0, 18 });
                }

                clients.Add(client);
            }

            clients.ForEach(c => c.Dispose());
        }

        using RawKafkaClient healthy = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await healthy.SendAsync(new ApiVersionsRequest(), 3, 77);
        (int correlation, _) = await healthy.ReceiveAsync(0);
        Assert.Equal(77, correlation);
    }

    [Fact]
    public async Task CreateTopicsRefusesANameAskedForTwiceAndANullConfigValueAsKafkaDoes()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        CreateTopicsRequest.CreatableTopic Topic(string name, string? retention = "60000") => new()
        {
            Name = name,
            NumPartitions = 1,
            ReplicationFactor = 1,
            Configs = [new CreateTopicsRequest.CreatableTopicConfig { Name = "retention.ms", Value = retention }],
        };
        await client.SendAsync(new CreateTopicsRequest { TimeoutMs = 5000, Topics = [Topic("twice"), Topic("fine"), Topic("twice"), Topic("null-config", null)] }, 4, 1);
        (_, byte[] body) = await client.ReceiveAsync(0);
        CreateTopicsResponse response = new CreateTopicsResponse().ReadFrom(body, 4);
        Assert.Equal(
            [("twice", ErrorCode.InvalidRequest), ("fine", ErrorCode.None), ("null-config", ErrorCode.InvalidConfig)],
            response.Topics.Select(t => (t.Name, (ErrorCode)t.ErrorCode)));

        Assert.Equal([ErrorCode.UnknownTopicOrPartition, ErrorCode.UnknownTopicOrPartition, ErrorCode.None], await client.TopicErrorsAsync("twice", "null-config", "fine"));
    }

    [Fact]
    public async Task ConfigValuesAreEchoedStoredAndDescribedInKafkasCanonicalForm()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        (string Name, string Sent, string Canonical)[] values =
        [
            ("cleanup.policy", " compact, delete ", "compact,delete"),
            ("preallocate", "True", "true"),
            ("retention.ms", "+0060000", "60000"),
            ("max.message.bytes", "0001000000", "1000000"),
        ];
        foreach (bool validateOnly in new[] { true, false })
        {
            await client.SendAsync(new CreateTopicsRequest
            {
                TimeoutMs = 5000,
                ValidateOnly = validateOnly,
                Topics = [new() { Name = "canonical", NumPartitions = 1, ReplicationFactor = 1, Configs = [.. values.Select(v => new CreateTopicsRequest.CreatableTopicConfig { Name = v.Name, Value = v.Sent })] }],
            }, 5, validateOnly ? 1 : 2);
            (_, byte[] body) = await client.ReceiveAsync(1);
            CreateTopicsResponse.CreatableTopicResult created = new CreateTopicsResponse().ReadFrom(body, 5).Topics.Single();
            Assert.Equal(0, created.ErrorCode);
            Assert.All(values, v => Assert.Equal((v.Name, v.Canonical), (v.Name, created.Configs!.Single(c => c.Name == v.Name).Value)));
        }

        await client.SendAsync(new DescribeConfigsRequest { Resources = [new() { ResourceType = 2, ResourceName = "canonical", ConfigurationKeys = [.. values.Select(v => v.Name)] }] }, 4, 3);
        (_, byte[] describeBody) = await client.ReceiveAsync(1);
        List<DescribeConfigsResponse.DescribeConfigsResourceResult> described = new DescribeConfigsResponse().ReadFrom(describeBody, 4).Results.Single().Configs;
        Assert.All(values, v => Assert.Equal((v.Name, v.Canonical), (v.Name, described.Single(c => c.Name == v.Name).Value)));
    }

    [Fact]
    public async Task CreateTopicsChecksNamesConfigsAndAssignmentsInKafkasOrder()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("orders.eu", 1);
        CreateTopicsRequest.CreatableTopic Topic(string name, int partitions = 1, short replication = 1, string retention = "60000", params (int Index, int[] Brokers)[] assignments) => new()
        {
            Name = name,
            NumPartitions = partitions,
            ReplicationFactor = replication,
            Configs = [new CreateTopicsRequest.CreatableTopicConfig { Name = "retention.ms", Value = retention }],
            Assignments = [.. assignments.Select(a => new CreateTopicsRequest.CreatableReplicaAssignment { PartitionIndex = a.Index, BrokerIds = [.. a.Brokers] })],
        };
        await client.SendAsync(new CreateTopicsRequest
        {
            TimeoutMs = 5000,
            Topics =
            [
                Topic("orders.eu", replication: 0), // exists: that comes before the replication factor
                Topic("orders_eu"), // differs from an existing topic only by '.' against '_'
                Topic("__cluster_metadata"),
                Topic("bad-config", partitions: 0, retention: "soon"), // configs before counts
                Topic("assigned-with-count", partitions: 2, replication: -1, assignments: (0, [1])),
                Topic("assigned-with-factor", partitions: -1, replication: 1, assignments: (0, [1])),
                Topic("assigned-twice", -1, -1, "60000", (0, [1]), (0, [1])),
                Topic("assigned-gap", -1, -1, "60000", (0, [1]), (2, [1])),
                Topic("assigned-elsewhere", -1, -1, "60000", (0, [2])),
                Topic("assigned-empty", -1, -1, "60000", (0, [])),
                Topic("assigned", -1, -1, "60000", (1, [1]), (0, [1])),
            ],
        }, 5, 1);
        (_, byte[] body) = await client.ReceiveAsync(1);
        CreateTopicsResponse response = new CreateTopicsResponse().ReadFrom(body, 5);
        Assert.Equal(
            [
                ("orders.eu", ErrorCode.TopicAlreadyExists), ("orders_eu", ErrorCode.InvalidTopicException), ("__cluster_metadata", ErrorCode.InvalidRequest),
                ("bad-config", ErrorCode.InvalidConfig), ("assigned-with-count", ErrorCode.InvalidRequest), ("assigned-with-factor", ErrorCode.InvalidRequest),
                ("assigned-twice", ErrorCode.InvalidReplicaAssignment), ("assigned-gap", ErrorCode.InvalidReplicaAssignment),
                ("assigned-elsewhere", ErrorCode.InvalidReplicaAssignment), ("assigned-empty", ErrorCode.InvalidReplicaAssignment), ("assigned", ErrorCode.None),
            ],
            response.Topics.Select(t => (t.Name, (ErrorCode)t.ErrorCode)));
        Assert.Contains("collides with existing topic: orders.eu", response.Topics[1].ErrorMessage);
        Assert.Contains("broker 2, but no such broker", response.Topics[8].ErrorMessage);
        Assert.Equal((2, (short)1), (response.Topics[10].NumPartitions, response.Topics[10].ReplicationFactor));
        Assert.Equal(
            [ErrorCode.UnknownTopicOrPartition, ErrorCode.UnknownTopicOrPartition, ErrorCode.UnknownTopicOrPartition, ErrorCode.None],
            await client.TopicErrorsAsync("orders_eu", "assigned-with-count", "assigned-gap", "assigned"));

        // CreatePartitions: a topic named twice is answered once and not grown; manual assignments must cover each new partition.
        await client.SendAsync(new CreatePartitionsRequest
        {
            TimeoutMs = 5000,
            Topics =
            [
                new() { Name = "assigned", Count = 3, Assignments = null },
                new() { Name = "assigned", Count = 4, Assignments = null },
                new() { Name = "orders.eu", Count = 3, Assignments = [new() { BrokerIds = [1] }] },
                new() { Name = "orders.eu", Count = 2, Assignments = [new() { BrokerIds = [1, 1] }] },
            ],
        }, 2, 2);
        (_, byte[] grownBody) = await client.ReceiveAsync(1);
        CreatePartitionsResponse grown = new CreatePartitionsResponse().ReadFrom(grownBody, 2);
        Assert.Equal([("assigned", ErrorCode.InvalidRequest)], grown.Results.Where(r => r.Name == "assigned").Select(r => (r.Name, (ErrorCode)r.ErrorCode)));
        Assert.Equal([ErrorCode.InvalidRequest], grown.Results.Where(r => r.Name == "orders.eu").Select(r => (ErrorCode)r.ErrorCode));

        await client.SendAsync(new CreatePartitionsRequest
        {
            TimeoutMs = 5000,
            Topics =
            [
                new() { Name = "orders.eu", Count = 3, Assignments = [new() { BrokerIds = [1] }] },
                new() { Name = "assigned", Count = 3, Assignments = [new() { BrokerIds = [1, 1] }] },
            ],
        }, 2, 3);
        (_, byte[] checkedBody) = await client.ReceiveAsync(1);
        CreatePartitionsResponse checkedAssignments = new CreatePartitionsResponse().ReadFrom(checkedBody, 2);
        Assert.Equal([ErrorCode.InvalidReplicaAssignment, ErrorCode.InvalidReplicaAssignment], checkedAssignments.Results.Select(r => (ErrorCode)r.ErrorCode));
        Assert.Contains("only 1 assignment(s)", checkedAssignments.Results[0].ErrorMessage);
        Assert.Contains("more than once", checkedAssignments.Results[1].ErrorMessage);
    }

    [Fact]
    public async Task DescribeConfigsOfABrokerAnswersForThisBrokerOnlyAndFiltersByName()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.SendAsync(new DescribeConfigsRequest
        {
            Resources =
            [
                new() { ResourceType = 4, ResourceName = "1", ConfigurationKeys = ["log.message.format.version", "log.retention.hours", "num.partitions", "no.such.config", "producer.id.expiration.ms"] },
                new() { ResourceType = 4, ResourceName = "2", ConfigurationKeys = null },
                new() { ResourceType = 4, ResourceName = "one", ConfigurationKeys = null },
                new() { ResourceType = 4, ResourceName = "", ConfigurationKeys = null },
            ],
        }, 4, 1);
        (_, byte[] body) = await client.ReceiveAsync(1);
        List<DescribeConfigsResponse.DescribeConfigsResult> results = new DescribeConfigsResponse().ReadFrom(body, 4).Results;

        Assert.Equal([ErrorCode.None, ErrorCode.InvalidRequest, ErrorCode.InvalidRequest, ErrorCode.None], results.Select(r => (ErrorCode)r.ErrorCode));
        // Kafka's types: STRING (2) for the version, INT (3) for the others.
        Assert.Equal(
            [("log.message.format.version", "3.0-IV1", (sbyte)2), ("log.retention.hours", "168", (sbyte)3), ("num.partitions", "1", (sbyte)3), ("producer.id.expiration.ms", "86400000", (sbyte)3)],
            results[0].Configs.Select(c => (c.Name, c.Value, c.ConfigType)));
        Assert.Contains("expected 1", results[1].ErrorMessage);
        Assert.Empty(results[1].Configs);
        Assert.Empty(results[3].Configs); // cluster-wide dynamic defaults: none are set
    }

    [Fact]
    public async Task BrokerLoggersReportAndChangeLogLevelsAtRuntimeAsKafkas()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        ILoggerFactory loggers = broker.Host.Services.GetRequiredService<ILoggerFactory>();
        const string Connections = "SharedLog.Broker.Network.KafkaConnectionHandler";
        int correlation = 1;
        async Task<(ErrorCode Error, Dictionary<string, string?> Levels)> DescribeAsync(string brokerId, params string[] keys)
        {
            await client.SendAsync(new DescribeConfigsRequest { Resources = [new() { ResourceType = 8, ResourceName = brokerId, ConfigurationKeys = keys.Length == 0 ? null : [.. keys] }] }, 4, correlation++);
            (_, byte[] body) = await client.ReceiveAsync(1);
            DescribeConfigsResponse.DescribeConfigsResult result = new DescribeConfigsResponse().ReadFrom(body, 4).Results.Single();
            Assert.All(result.Configs, c => Assert.Equal((false, (sbyte)6), (c.ReadOnly, c.ConfigSource))); // DYNAMIC_BROKER_LOGGER_CONFIG
            return ((ErrorCode)result.ErrorCode, result.Configs.ToDictionary(c => c.Name, c => c.Value));
        }

        async Task<ErrorCode> AlterAsync(string brokerId, bool validateOnly, params (string Logger, sbyte Operation, string? Level)[] changes)
        {
            await client.SendAsync(new IncrementalAlterConfigsRequest
            {
                ValidateOnly = validateOnly,
                Resources = [new() { ResourceType = 8, ResourceName = brokerId, Configs = [.. changes.Select(c => new IncrementalAlterConfigsRequest.AlterableConfig { Name = c.Logger, ConfigOperation = c.Operation, Value = c.Level })] }],
            }, 1, correlation++);
            (_, byte[] body) = await client.ReceiveAsync(1);
            return (ErrorCode)new IncrementalAlterConfigsResponse().ReadFrom(body, 1).Responses.Single().ErrorCode;
        }

        // Every logger the broker has, with the level it logs at (Information by default, Kafka's INFO).
        (ErrorCode error, Dictionary<string, string?> levels) = await DescribeAsync("1");
        Assert.Equal(ErrorCode.None, error);
        Assert.Equal("INFO", levels["root"]);
        Assert.Equal("INFO", levels[Connections]);
        Assert.Equal("WARN", levels["Microsoft.AspNetCore.Server.Kestrel"]); // configured by the broker
        Assert.Equal(ErrorCode.InvalidRequest, (await DescribeAsync("7")).Error); // another broker's loggers

        // A namespace takes a level for every logger under it, at once; validateOnly changes nothing.
        Assert.Equal(ErrorCode.None, await AlterAsync("1", validateOnly: true, ("SharedLog.Broker.Network", 0, "DEBUG")));
        Assert.False(loggers.CreateLogger(Connections).IsEnabled(LogLevel.Debug));
        Assert.Equal(ErrorCode.None, await AlterAsync("1", validateOnly: false, ("SharedLog.Broker.Network", 0, "DEBUG")));
        Assert.True(loggers.CreateLogger(Connections).IsEnabled(LogLevel.Debug));
        Assert.Equal(new Dictionary<string, string?> { [Connections] = "DEBUG", ["root"] = "INFO" }, (await DescribeAsync("1", Connections, "root")).Levels);

        // Refused as Kafka, and nothing of a refused resource is applied.
        Assert.Equal(ErrorCode.InvalidConfig, await AlterAsync("1", false, ("root", 0, "WARN"), ("SharedLog.Broker.Network", 0, "debug"))); // level names are upper case
        Assert.Equal(ErrorCode.InvalidConfig, await AlterAsync("1", false, ("no.such.logger", 0, "DEBUG")));
        Assert.Equal(ErrorCode.InvalidConfig, await AlterAsync("1", false, ("root", 0, "OFF"))); // not one of Kafka's levels to set
        Assert.Equal(ErrorCode.InvalidConfig, await AlterAsync("1", false, ("SharedLog.Broker.Net", 0, "DEBUG"))); // not a namespace: it ends inside a name
        Assert.Equal(ErrorCode.InvalidRequest, await AlterAsync("1", false, ("root", 1, null)));
        Assert.Equal(ErrorCode.InvalidRequest, await AlterAsync("1", false, ("SharedLog.Broker.Network", 2, "DEBUG")));
        Assert.Equal(ErrorCode.InvalidRequest, await AlterAsync("2", false, ("root", 0, "WARN")));
        Assert.Equal("INFO", (await DescribeAsync("1", "root")).Levels["root"]);

        // root sets the default of every logger without a level of its own; DELETE removes a logger's own level.
        Assert.Equal(ErrorCode.None, await AlterAsync("1", false, ("root", 0, "ERROR"), ("SharedLog.Broker.Network", 1, null)));
        Assert.False(loggers.CreateLogger(Connections).IsEnabled(LogLevel.Warning));
        Assert.True(loggers.CreateLogger(Connections).IsEnabled(LogLevel.Error));
        Assert.Equal("ERROR", (await DescribeAsync("1", Connections)).Levels[Connections]);
    }

    [Fact]
    public async Task AlterConfigsRefusesRepeatedResourcesRepeatedKeysAndNullValuesAsKafka()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        foreach (string topic in new[] { "cfg", "twice", "lists" })
        {
            await client.CreateTopicAsync(topic, 1);
        }

        int correlation = 1;
        async Task<(string Name, ErrorCode Error)[]> AlterAsync(params (string Topic, (string Name, sbyte Operation, string? Value)[] Configs)[] resources)
        {
            await client.SendAsync(new IncrementalAlterConfigsRequest
            {
                Resources = [.. resources.Select(r => new IncrementalAlterConfigsRequest.AlterConfigsResource
                {
                    ResourceType = 2,
                    ResourceName = r.Topic,
                    Configs = [.. r.Configs.Select(c => new IncrementalAlterConfigsRequest.AlterableConfig { Name = c.Name, ConfigOperation = c.Operation, Value = c.Value })],
                })],
            }, 1, correlation++);
            (_, byte[] body) = await client.ReceiveAsync(1);
            return [.. new IncrementalAlterConfigsResponse().ReadFrom(body, 1).Responses.Select(r => (r.ResourceName, (ErrorCode)r.ErrorCode))];
        }

        Assert.Equal([("cfg", ErrorCode.None)], await AlterAsync(("cfg", [("retention.ms", 0, "1000")])));
        Assert.Equal(
            [("cfg", ErrorCode.InvalidRequest), ("twice", ErrorCode.InvalidRequest), ("twice", ErrorCode.InvalidRequest), ("lists", ErrorCode.None)],
            await AlterAsync(
                ("cfg", [("retention.ms", 0, null)]), // a null value is only for DELETE: it must not remove the override
                ("twice", [("retention.ms", 0, "5")]),
                ("twice", [("retention.ms", 0, "6")]),
                ("lists", [("no.such.config", 1, null), ("leader.replication.throttled.replicas", 2, "0:1")]))); // deleting what cannot be set is no error; a list takes APPEND
        Assert.Equal([("cfg", ErrorCode.InvalidRequest)], await AlterAsync(("cfg", [("retention.ms", 0, "1"), ("retention.ms", 1, null)])));

        await client.SendAsync(new AlterConfigsRequest { Resources = [new() { ResourceType = 2, ResourceName = "cfg", Configs = [new() { Name = "retention.ms", Value = null }] }] }, 0, correlation++);
        (_, byte[] legacyBody) = await client.ReceiveAsync(0);
        AlterConfigsResponse.AlterConfigsResourceResponse legacy = new AlterConfigsResponse().ReadFrom(legacyBody, 0).Responses.Single();
        Assert.Equal((ErrorCode.InvalidRequest, "Null value not supported for : retention.ms"), ((ErrorCode)legacy.ErrorCode, legacy.ErrorMessage));

        // Nothing refused changed anything.
        using Confluent.Kafka.IAdminClient admin = new Confluent.Kafka.AdminClientBuilder(new Confluent.Kafka.AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();
        var described = (await admin.DescribeConfigsAsync([
            new Confluent.Kafka.Admin.ConfigResource { Type = Confluent.Kafka.Admin.ResourceType.Topic, Name = "cfg" },
            new Confluent.Kafka.Admin.ConfigResource { Type = Confluent.Kafka.Admin.ResourceType.Topic, Name = "twice" },
            new Confluent.Kafka.Admin.ConfigResource { Type = Confluent.Kafka.Admin.ResourceType.Topic, Name = "lists" }])).ToDictionary(r => r.ConfigResource.Name, r => r.Entries);
        Assert.Equal("1000", described["cfg"]["retention.ms"].Value);
        Assert.True(described["twice"]["retention.ms"].IsDefault);
        Assert.Equal("0:1", described["lists"]["leader.replication.throttled.replicas"].Value);

        // APPEND adds what is not there yet, once; SUBTRACT takes one occurrence per value named, the first.
        Assert.Equal([("lists", ErrorCode.None)], await AlterAsync(("lists", [("leader.replication.throttled.replicas", 0, "0:1,1:1,0:1")])));
        Assert.Equal([("lists", ErrorCode.None)], await AlterAsync(("lists", [("leader.replication.throttled.replicas", 3, "0:1,2:1")])));
        Assert.Equal([("lists", ErrorCode.None)], await AlterAsync(("lists", [("follower.replication.throttled.replicas", 2, "3:1,0:1,3:1")])));
        var lists = (await admin.DescribeConfigsAsync([new Confluent.Kafka.Admin.ConfigResource { Type = Confluent.Kafka.Admin.ResourceType.Topic, Name = "lists" }])).Single().Entries;
        Assert.Equal("1:1,0:1", lists["leader.replication.throttled.replicas"].Value);
        Assert.Equal("3:1,0:1", lists["follower.replication.throttled.replicas"].Value);
    }

    /// <summary>
    /// Config values as Kafka's ConfigDef parses them: trimmed, booleans in any case (Python's str(True) sends "True"),
    /// and stored and described so; and DescribeConfigs with an empty key list describes every config, as a null one does.
    /// </summary>
    [Fact]
    public async Task ConfigValuesAreTakenAsKafkaParsesThemAndNoKeysMeansEveryConfig()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.SendAsync(new CreateTopicsRequest
        {
            TimeoutMs = 5000,
            Topics = [new() { Name = "parsed", NumPartitions = 1, ReplicationFactor = 1, Configs = [new() { Name = "preallocate", Value = "True" }, new() { Name = "compression.type", Value = " gzip" }] }],
        }, 4, 1);
        (_, byte[] created) = await client.ReceiveAsync(0);
        Assert.Equal(0, new CreateTopicsResponse().ReadFrom(created, 4).Topics.Single().ErrorCode);
        await client.SendAsync(new IncrementalAlterConfigsRequest { Resources = [new() { ResourceType = 2, ResourceName = "parsed", Configs = [new() { Name = "message.timestamp.type", ConfigOperation = 0, Value = "LogAppendTime " }] }] }, 1, 2);
        (_, byte[] altered) = await client.ReceiveAsync(1);
        Assert.Equal(0, new IncrementalAlterConfigsResponse().ReadFrom(altered, 1).Responses.Single().ErrorCode);

        await client.SendAsync(new DescribeConfigsRequest { Resources = [new() { ResourceType = 2, ResourceName = "parsed", ConfigurationKeys = [] }] }, 4, 3);
        (_, byte[] body) = await client.ReceiveAsync(1);
        Dictionary<string, string?> configs = new DescribeConfigsResponse().ReadFrom(body, 4).Results.Single().Configs.ToDictionary(c => c.Name, c => c.Value);
        Assert.Equal(TopicConfigsCount(), configs.Count);
        Assert.Equal(("true", "gzip", "LogAppendTime"), (configs["preallocate"], configs["compression.type"], configs["message.timestamp.type"]));
    }

    /// <summary>As Kafka's brokers: DescribeCluster v1 describes brokers; asked for controllers (2) or an unknown endpoint type, it refuses.</summary>
    [Fact]
    public async Task DescribeClusterRefusesEndpointTypesOtherThanBrokers()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        var answers = new List<(ErrorCode, int)>();
        int correlation = 1;
        foreach (sbyte endpointType in new sbyte[] { 1, 2, 7 })
        {
            await client.SendAsync(new DescribeClusterRequest { EndpointType = endpointType }, 1, correlation++);
            (_, byte[] body) = await client.ReceiveAsync(1);
            DescribeClusterResponse response = new DescribeClusterResponse().ReadFrom(body, 1);
            answers.Add(((ErrorCode)response.ErrorCode, response.Brokers.Count));
        }

        Assert.Equal([(ErrorCode.None, 1), (ErrorCode.MismatchedEndpointType, 0), (ErrorCode.UnsupportedEndpointType, 0)], answers);
    }

    private static int TopicConfigsCount() => SharedLog.Broker.Cluster.TopicConfigs.Defaults.Count;

    [Fact]
    public async Task DescribeConfigsReportsEachTopicConfigsKafkaType()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("typed", 1);
        await client.SendAsync(new DescribeConfigsRequest { Resources = [new() { ResourceType = 2, ResourceName = "typed", ConfigurationKeys = null }] }, 4, 1);
        (_, byte[] body) = await client.ReceiveAsync(1);
        Dictionary<string, sbyte> types = new DescribeConfigsResponse().ReadFrom(body, 4).Results.Single().Configs.ToDictionary(c => c.Name, c => c.ConfigType);

        // Kafka's ConfigEntry types, which the Java AdminClient and UIs show: 1 boolean, 2 string, 3 int, 5 long, 6 double, 7 list.
        (string Name, sbyte Type)[] expected =
        [
            ("retention.ms", 5), ("segment.ms", 5), ("cleanup.policy", 7), ("max.message.bytes", 3), ("message.timestamp.type", 2), ("compression.type", 2),
            ("preallocate", 1), ("min.cleanable.dirty.ratio", 6), ("segment.index.bytes", 3), ("leader.replication.throttled.replicas", 7),
        ];
        Assert.Equal(expected, expected.Select(e => (e.Name, types[e.Name])));
        Assert.DoesNotContain(types, t => t.Value == 0);
    }

    [Fact]
    public async Task OffsetForLeaderEpochAnswersAsKafkasLeaderEpochCache()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("epochs", 1);
        byte[] batch = new SharedLog.Protocol.Records.RecordBatchBuilder(1).Add(null, [1], 1).Add(null, [2], 2).Build();
        await client.ProduceAsync("epochs", 0, batch, 1);
        int epoch = broker.Host.Services.GetRequiredService<SharedLog.Broker.Cluster.TopicService>().FindStream("epochs", 0)!.LeaderEpoch;

        // (current leader epoch known to the client, epoch asked for) → (error, epoch, end offset).
        (int Current, int Asked, ErrorCode Error, int Epoch, long EndOffset)[] cases =
        [
            (epoch, epoch, ErrorCode.None, epoch, 2),
            (-1, epoch, ErrorCode.None, epoch, 2),
            (epoch + 1, epoch, ErrorCode.UnknownLeaderEpoch, -1, -1), // the client knows a newer leader than this broker
            (epoch, epoch + 3, ErrorCode.None, -1, -1), // no such epoch here: the consumer resets instead of retrying for good
            (epoch, -1, ErrorCode.None, -1, -1), // the undefined epoch has no end offset in Kafka's cache either
        ];
        await client.SendAsync(new OffsetForLeaderEpochRequest
        {
            ReplicaId = -1,
            Topics =
            [
                new() { Topic = "epochs", Partitions = [.. cases.Select(c => new OffsetForLeaderEpochRequest.OffsetForLeaderPartition { Partition = 0, CurrentLeaderEpoch = c.Current, LeaderEpoch = c.Asked })] },
                new() { Topic = "no-such-topic", Partitions = [new() { Partition = 0, CurrentLeaderEpoch = -1, LeaderEpoch = 0 }] },
            ],
        }, 4, 2);
        (_, byte[] body) = await client.ReceiveAsync(1);
        OffsetForLeaderEpochResponse response = new OffsetForLeaderEpochResponse().ReadFrom(body, 4);
        Assert.Equal(cases.Select(c => (c.Error, c.Epoch, c.EndOffset)), response.Topics[0].Partitions.Select(p => ((ErrorCode)p.ErrorCode, p.LeaderEpoch, p.EndOffset)));
        Assert.Equal(ErrorCode.UnknownTopicOrPartition, (ErrorCode)response.Topics[1].Partitions.Single().ErrorCode);
    }

    [Fact]
    public async Task FetchAndListOffsetsCheckTheLeaderEpochTheClientBelievesCurrent()
    {
        // KIP-320, as Kafka's partition checks it for Fetch and ListOffsets too: an older epoch is fenced (the client's
        // metadata is stale), a newer one unknown; -1 is not checked.
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("fenced", 1);
        await client.ProduceAsync("fenced", 0, new SharedLog.Protocol.Records.RecordBatchBuilder(1).Add(null, [1], 1).Build(), 1);
        int epoch = broker.Host.Services.GetRequiredService<SharedLog.Broker.Cluster.TopicService>().FindStream("fenced", 0)!.LeaderEpoch;
        Assert.True(epoch >= 1, $"a partition's first leader epoch is {epoch}");

        (int Current, ErrorCode Error)[] cases = [(epoch, ErrorCode.None), (-1, ErrorCode.None), (epoch - 1, ErrorCode.FencedLeaderEpoch), (epoch + 1, ErrorCode.UnknownLeaderEpoch)];
        int correlation = 2;
        foreach ((int current, ErrorCode expected) in cases)
        {
            await client.SendAsync(new FetchRequest { ReplicaId = -1, MaxWaitMs = 0, MinBytes = 0, MaxBytes = 1 << 20, Topics = [new() { Topic = "fenced", Partitions = [new() { Partition = 0, FetchOffset = 0, CurrentLeaderEpoch = current, PartitionMaxBytes = 1 << 20 }] }] }, 12, correlation++);
            FetchResponse.PartitionData fetched = new FetchResponse().ReadFrom((await client.ReceiveAsync(1)).Body, 12).Responses.Single().Partitions.Single();
            Assert.Equal((expected, expected == ErrorCode.None), ((ErrorCode)fetched.ErrorCode, fetched.Records is { Length: > 0 }));

            await client.SendAsync(new ListOffsetsRequest { ReplicaId = -1, Topics = [new() { Name = "fenced", Partitions = [new() { PartitionIndex = 0, Timestamp = -1, CurrentLeaderEpoch = current }] }] }, 5, correlation++);
            ListOffsetsResponse.ListOffsetsPartitionResponse listed = new ListOffsetsResponse().ReadFrom((await client.ReceiveAsync(0)).Body, 5).Topics.Single().Partitions.Single();
            Assert.Equal((expected, expected == ErrorCode.None ? 1L : -1L), ((ErrorCode)listed.ErrorCode, listed.Offset));

            // The same through a fetch session, as consumers fetch: the request that opens it, then an incremental one
            // that names no partition (the session remembers the epoch the client gave, as Kafka's cached partition).
            await client.SendAsync(new FetchRequest { ReplicaId = -1, MaxWaitMs = 0, MinBytes = 0, MaxBytes = 1 << 20, SessionId = 0, SessionEpoch = 0, Topics = [new() { Topic = "fenced", Partitions = [new() { Partition = 0, FetchOffset = 0, CurrentLeaderEpoch = current, PartitionMaxBytes = 1 << 20 }] }] }, 12, correlation++);
            FetchResponse opened = new FetchResponse().ReadFrom((await client.ReceiveAsync(1)).Body, 12);
            Assert.Equal(expected, (ErrorCode)opened.Responses.Single().Partitions.Single().ErrorCode);
            await client.SendAsync(new FetchRequest { ReplicaId = -1, MaxWaitMs = 0, MinBytes = 0, MaxBytes = 1 << 20, SessionId = opened.SessionId, SessionEpoch = 1 }, 12, correlation++);
            FetchResponse incremental = new FetchResponse().ReadFrom((await client.ReceiveAsync(1)).Body, 12);
            Assert.Equal([expected], incremental.Responses.SelectMany(t => t.Partitions).Select(p => (ErrorCode)p.ErrorCode)); // records again, or the error
        }
    }

    [Fact]
    public async Task ListOffsetsAnswersAPartitionNamedTwiceWithInvalidRequest()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("twice", 2);
        await client.SendAsync(new ListOffsetsRequest { ReplicaId = -1, Topics = [new() { Name = "twice", Partitions = [new() { PartitionIndex = 0, Timestamp = -1 }, new() { PartitionIndex = 1, Timestamp = -1 }] }, new() { Name = "twice", Partitions = [new() { PartitionIndex = 0, Timestamp = -2 }] }] }, 5, 2);
        ListOffsetsResponse listed = new ListOffsetsResponse().ReadFrom((await client.ReceiveAsync(0)).Body, 5);
        Assert.Equal(
            [(0, ErrorCode.InvalidRequest), (1, ErrorCode.None), (0, ErrorCode.InvalidRequest)],
            listed.Topics.SelectMany(t => t.Partitions).Select(p => (p.PartitionIndex, (ErrorCode)p.ErrorCode)));

        // The broker goes on serving: the same partition named once is answered.
        await client.SendAsync(new ListOffsetsRequest { ReplicaId = -1, Topics = [new() { Name = "twice", Partitions = [new() { PartitionIndex = 0, Timestamp = -1 }] }] }, 5, 3);
        Assert.Equal(ErrorCode.None, (ErrorCode)new ListOffsetsResponse().ReadFrom((await client.ReceiveAsync(0)).Body, 5).Topics.Single().Partitions.Single().ErrorCode);
    }

    [Fact]
    public async Task ALongPollEndsWhenATopicItWaitsOnIsDeleted()
    {
        // As Kafka's delayed fetch: a partition the broker no longer knows completes the wait (it would otherwise wake at
        // once again and again until max_wait_ms).
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("doomed", 1);
        await client.CreateTopicAsync("kept", 1);
        await client.SendAsync(new FetchRequest
        {
            ReplicaId = -1,
            MaxWaitMs = 12_000,
            MinBytes = 1 << 20,
            MaxBytes = 1 << 20,
            Topics = [new() { Topic = "doomed", Partitions = [new() { Partition = 0, FetchOffset = 0, PartitionMaxBytes = 1 << 20 }] }, new() { Topic = "kept", Partitions = [new() { Partition = 0, FetchOffset = 0, PartitionMaxBytes = 1 << 20 }] }],
        }, 12, 1);
        Task<(int CorrelationId, byte[] Body)> answer = client.ReceiveAsync(1);

        // The delete lands while the poll waits: the fetch, already sent, reaches its wait in well under a millisecond,
        // while the admin client first connects and reads metadata.
        using (Confluent.Kafka.IAdminClient admin = new Confluent.Kafka.AdminClientBuilder(new Confluent.Kafka.AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build())
        {
            await admin.DeleteTopicsAsync(["doomed"]);
        }

        var answered = System.Diagnostics.Stopwatch.StartNew();
        FetchResponse response = new FetchResponse().ReadFrom((await answer.WaitAsync(TimeSpan.FromSeconds(30))).Body, 12);
        Assert.True(answered.Elapsed < TimeSpan.FromSeconds(8), $"answered {answered.Elapsed} after the delete: the poll ran to its 12 s max wait");
        Assert.Equal(
            [("doomed", ErrorCode.UnknownTopicOrPartition), ("kept", ErrorCode.None)],
            response.Responses.Select(t => (t.Topic, (ErrorCode)t.Partitions.Single().ErrorCode)));
    }

    [Fact]
    public async Task ALongPollNamingAnUnknownPartitionStillWaitsForTheOthersData()
    {
        // As Kafka: unknown topics and partitions are answered beside the others when the wait ends, not at once (a
        // consumer still naming a deleted topic would otherwise poll in a busy loop).
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        using RawKafkaClient producer = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("polled", 1);
        await client.SendAsync(new FetchRequest
        {
            ReplicaId = -1,
            MaxWaitMs = 20_000,
            MinBytes = 1,
            MaxBytes = 1 << 20,
            Topics =
            [
                new() { Topic = "polled", Partitions = [new() { Partition = 0, FetchOffset = 0, PartitionMaxBytes = 1 << 20 }, new() { Partition = 7, FetchOffset = 0, PartitionMaxBytes = 1 << 20 }] },
                new() { Topic = "never-created", Partitions = [new() { Partition = 0, FetchOffset = 0, PartitionMaxBytes = 1 << 20 }] },
            ],
        }, 12, 1);
        Task<(int CorrelationId, byte[] Body)> answer = client.ReceiveAsync(1);

        // As the min_bytes long-poll test does: the record produced after the fetch went out is what ends the wait (a
        // broker that ends the poll on the unknown partitions answers at once, before this produce, without it).
        await producer.ProduceAsync("polled", 0, new SharedLog.Protocol.Records.RecordBatchBuilder(1).Add(null, [1], 1).Build(), 1);
        FetchResponse response = new FetchResponse().ReadFrom((await answer).Body, 12);
        Assert.Equal(
            [(0, ErrorCode.None, true), (7, ErrorCode.UnknownTopicOrPartition, false), (0, ErrorCode.UnknownTopicOrPartition, false)],
            response.Responses.SelectMany(t => t.Partitions).Select(p => (p.PartitionIndex, (ErrorCode)p.ErrorCode, p.Records is { Length: > 0 })));
    }

    [Fact]
    public async Task ABatchNoWalEntryHoldsIsRefusedAsTooLargeAndLogged()
    {
        // From a hostile-input review: a batch grown past a WAL entry (there, by masking) was refused with MESSAGE_TOO_LARGE
        // and nothing in the log. WAL pages of 64 KiB: one entry holds at most 32 KiB.
        var logs = new CollectingLoggerProvider();
        await using BrokerFixture broker = await BrokerFixture.StartAsync(logging => logging.AddProvider(logs), "--Wal:PageSizeBits", "16");
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("roomy", 1);

        byte[] batch = new SharedLog.Protocol.Records.RecordBatchBuilder(1).Add(null, new byte[40_000], 1).Build();
        ProduceResponse.PartitionProduceResponse refused = await client.ProduceAsync("roomy", 0, batch, 1);

        Assert.Equal((short)ErrorCode.MessageTooLarge, refused.ErrorCode);
        Assert.Contains(logs.Entries, e => e.Level == LogLevel.Warning && e.Message.StartsWith("Produce to roomy-0 refused with MESSAGE_TOO_LARGE (not retriable): ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AProducerThatKeepsSendingCorruptBatchesGetsALogLinePerWindowNotPerBatch()
    {
        // Each refused batch used to be one warning: a producer could write the broker's log as fast as it could send.
        const int Refusals = 40;
        var logs = new CollectingLoggerProvider();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await using (BrokerFixture broker = await BrokerFixture.StartAsync(logging => logging.AddProvider(logs)))
        {
            using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
            await client.CreateTopicAsync("noisy", 1);
            byte[] batch = new SharedLog.Protocol.Records.RecordBatchBuilder(1).Add([1], [2], 1).Build();
            batch[^1] ^= 0xFF;
            for (int i = 0; i < Refusals; i++)
            {
                Assert.Equal((short)ErrorCode.CorruptMessage, (await client.ProduceAsync("noisy", 0, batch, 1)).ErrorCode);
            }
        }

        // The broker's stop logs what its window still held, so every refusal is in the log, counted.
        string[] lines = [.. logs.Entries.Where(e => e.Message.Contains("refused", StringComparison.Ordinal) && e.Message.Contains("CORRUPT_MESSAGE", StringComparison.Ordinal)).Select(e => e.Message)];
        Assert.StartsWith("Produce to noisy-0 refused with CORRUPT_MESSAGE (not retriable): ", lines[0], StringComparison.Ordinal);
        Assert.Equal(Refusals, lines.Sum(l => l.StartsWith("Produce to ", StringComparison.Ordinal) ? 1
            : long.Parse(l.AsSpan(0, l.IndexOf(' ', StringComparison.Ordinal)), System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Contains(" more produce(s) refused (not retriable) within 10 s (CORRUPT_MESSAGE: ", lines[^1], StringComparison.Ordinal);
        Assert.True(lines.Length <= 2 + (2 * (int)(clock.Elapsed.TotalSeconds / 10)), $"{lines.Length} lines for {Refusals} refusals in {clock.Elapsed}");
    }

    [Fact]
    public async Task DescribeLogDirsCountsWhatIsOnlyInTheWalAndWhatIsInObjects()
    {
        // Nothing is uploaded until the test asks.
        await using BrokerFixture broker = await BrokerFixture.StartAsync(null, true, "--Storage:UploadInterval", "01:00:00");
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("sized", 1);
        long produced = 0;
        for (int i = 0; i < 2; i++)
        {
            byte[] batch = new SharedLog.Protocol.Records.RecordBatchBuilder(1).Add(null, new byte[10_000], 1).Build();
            produced += batch.Length;
            await client.ProduceAsync("sized", 0, batch, 1 + i);
        }

        int correlation = 10;
        async Task<long> SizeAsync()
        {
            await client.SendAsync(new DescribeLogDirsRequest { Topics = [new() { Topic = "sized", Partitions = [0] }] }, 4, correlation++);
            (_, byte[] body) = await client.ReceiveAsync(1);
            return new DescribeLogDirsResponse().ReadFrom(body, 4).Results.Single().Topics.Single().Partitions.Single().PartitionSize;
        }

        // Acknowledged and only in the WAL: as Kafka counts a partition's log, the data counts at once.
        Assert.Equal(produced, await SizeAsync());
        await broker.Host.Services.GetRequiredService<SharedLog.Storage.Streams.StreamStore>().UploadAsync(CancellationToken.None);
        Assert.Equal(produced, await SizeAsync());
    }

    [Fact]
    public async Task ListOffsetsByTimeFindsRecordsOfACachedBatchThatDeleteRecordsCutInto()
    {
        // Nothing is uploaded during the test, so the batch stays in the WAL's cache only.
        await using BrokerFixture broker = await BrokerFixture.StartAsync(null, true, "--Storage:UploadInterval", "01:00:00");
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("cut", 1);
        var builder = new SharedLog.Protocol.Records.RecordBatchBuilder(1);
        for (int i = 0; i < 10; i++)
        {
            builder.Add(null, [(byte)i], 1000 + i);
        }

        await client.ProduceAsync("cut", 0, builder.Build(), 1);
        await client.SendAsync(new DeleteRecordsRequest { TimeoutMs = 5000, Topics = [new() { Name = "cut", Partitions = [new() { PartitionIndex = 0, Offset = 5 }] }] }, 2, 2);
        (_, byte[] deleteBody) = await client.ReceiveAsync(1);
        Assert.Equal(5L, new DeleteRecordsResponse().ReadFrom(deleteBody, 2).Topics.Single().Partitions.Single().LowWatermark);

        // Kafka: the first record at or after the time from the log start on; the largest timestamp's record.
        int correlation = 3;
        foreach ((long spec, long offset, long timestamp) in new[] { (1006L, 6L, 1006L), (1002L, 5L, 1005L), (-3L, 9L, 1009L), (2000L, -1L, -1L) })
        {
            await client.SendAsync(new ListOffsetsRequest { ReplicaId = -1, Topics = [new() { Name = "cut", Partitions = [new() { PartitionIndex = 0, Timestamp = spec }] }] }, 9, correlation++);
            (_, byte[] body) = await client.ReceiveAsync(1);
            ListOffsetsResponse.ListOffsetsPartitionResponse partition = new ListOffsetsResponse().ReadFrom(body, 9).Topics.Single().Partitions.Single();
            Assert.Equal((spec, 0, offset, timestamp), (spec, (int)partition.ErrorCode, partition.Offset, partition.Timestamp));
        }

        // Earliest local (-4, KIP-405) is the log start; latest tiered (-5, KIP-1005) is offset, timestamp and epoch -1, as
        // Kafka answers without remote storage.
        int current = broker.Host.Services.GetRequiredService<SharedLog.Broker.Cluster.TopicService>().FindStream("cut", 0)!.LeaderEpoch;
        foreach ((long spec, long offset, int epoch) in new[] { (-4L, 5L, current), (-5L, -1L, -1) })
        {
            await client.SendAsync(new ListOffsetsRequest { ReplicaId = -1, Topics = [new() { Name = "cut", Partitions = [new() { PartitionIndex = 0, Timestamp = spec }] }] }, 9, correlation++);
            (_, byte[] body) = await client.ReceiveAsync(1);
            ListOffsetsResponse.ListOffsetsPartitionResponse partition = new ListOffsetsResponse().ReadFrom(body, 9).Topics.Single().Partitions.Single();
            Assert.Equal((spec, 0, offset, -1L, epoch), (spec, (int)partition.ErrorCode, partition.Offset, partition.Timestamp, partition.LeaderEpoch));
        }
    }

    /// <summary>
    /// A producer's batch whose header understates its max timestamp (a client writing the first or last record's, or a
    /// hostile one writing 0, which retention would take for old data): as Kafka's log validator, the stored max
    /// timestamp is the records' largest, so ListOffsets by time finds the later record.
    /// </summary>
    [Fact]
    public async Task TheStoredMaxTimestampIsTheRecordsLargestNotTheProducersHeader()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("stamps", 1);
        foreach (SharedLog.Protocol.Records.CompressionCodec codec in new[] { SharedLog.Protocol.Records.CompressionCodec.None, SharedLog.Protocol.Records.CompressionCodec.Lz4 })
        {
            var builder = new SharedLog.Protocol.Records.RecordBatchBuilder(1000) { Compression = codec };
            byte[] batch = builder.Add([1], [1], 1000).Add([2], [2], 2000).Build();
            System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(batch.AsSpan(35), 1000);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(batch.AsSpan(17), SharedLog.Protocol.Records.Crc32C.Compute(batch.AsSpan(21)));
            Assert.Equal(0, (await client.ProduceAsync("stamps", 0, batch, 2)).ErrorCode);
        }

        // Records at offsets 0 (1000), 1 (2000), 2 (1000), 3 (2000).
        var answers = new List<(long Offset, long Timestamp)>();
        int correlation = 3;
        foreach (long spec in new[] { 1500L, -3L })
        {
            await client.SendAsync(new ListOffsetsRequest { ReplicaId = -1, Topics = [new() { Name = "stamps", Partitions = [new() { PartitionIndex = 0, Timestamp = spec }] }] }, 9, correlation++);
            (_, byte[] body) = await client.ReceiveAsync(1);
            ListOffsetsResponse.ListOffsetsPartitionResponse partition = new ListOffsetsResponse().ReadFrom(body, 9).Topics.Single().Partitions.Single();
            answers.Add((partition.Offset, partition.Timestamp));
        }

        Assert.Equal([(1L, 2000L), (1L, 2000L)], answers);
    }

    /// <summary>
    /// As Kafka's time index: ListOffsets by time reports the leader epoch of the batch the record was found in, which a
    /// restart (a new leader epoch) leaves behind the partition's current one, and -1 when no record is found.
    /// </summary>
    [Fact]
    public async Task ListOffsetsByTimeReportsTheEpochTheFoundRecordWasWrittenIn()
    {
        string dataDir = Path.Combine(Path.GetTempPath(), "sharedlog-it-" + Guid.NewGuid().ToString("N"));
        long stamp = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(); // recent, so retention does not take the records meanwhile
        int writtenIn;
        await using (BrokerFixture first = await BrokerFixture.StartAsync(dataDir, deleteOnDispose: false))
        {
            using RawKafkaClient client = await RawKafkaClient.ConnectAsync(first.BootstrapServers);
            await client.CreateTopicAsync("epoch-stamps", 1);
            Assert.Equal(0, (await client.ProduceAsync("epoch-stamps", 0, new SharedLog.Protocol.Records.RecordBatchBuilder(stamp).Add([1], [1], stamp).Add([2], [2], stamp + 1000).Build(), 1)).ErrorCode);
            writtenIn = first.Host.Services.GetRequiredService<SharedLog.Broker.Cluster.TopicService>().FindStream("epoch-stamps", 0)!.LeaderEpoch;
        }

        await using BrokerFixture second = await BrokerFixture.StartAsync(dataDir);
        int current = second.Host.Services.GetRequiredService<SharedLog.Broker.Cluster.TopicService>().FindStream("epoch-stamps", 0)!.LeaderEpoch;
        Assert.True(current > writtenIn, $"the restarted broker leads epoch {current}, written in {writtenIn}");
        using RawKafkaClient restarted = await RawKafkaClient.ConnectAsync(second.BootstrapServers);
        var answers = new List<(long Offset, long Timestamp, int Epoch)>();
        int correlation = 1;
        foreach (long spec in new[] { stamp + 500, -3L, stamp + 5000, -1L })
        {
            await restarted.SendAsync(new ListOffsetsRequest { ReplicaId = -1, Topics = [new() { Name = "epoch-stamps", Partitions = [new() { PartitionIndex = 0, Timestamp = spec }] }] }, 9, correlation++);
            (_, byte[] body) = await restarted.ReceiveAsync(1);
            ListOffsetsResponse.ListOffsetsPartitionResponse partition = new ListOffsetsResponse().ReadFrom(body, 9).Topics.Single().Partitions.Single();
            answers.Add((partition.Offset, partition.Timestamp, partition.LeaderEpoch));
        }

        // By time and by largest time: the batch's epoch; nothing 5 s later: -1 throughout; the latest offset: the current epoch.
        Assert.Equal([(1L, stamp + 1000, writtenIn), (1L, stamp + 1000, writtenIn), (-1L, -1L, -1), (2L, -1L, current)], answers);
    }

    [Fact]
    public async Task ObjectsMissingFromTheStoreAreAPartitionStorageErrorAndTheConnectionKeepsServing()
    {
        // The log cache keeps no uploaded batch, so partition 0's records are read from objects, which the test removes.
        await using BrokerFixture broker = await BrokerFixture.StartAsync(null, true, "--Storage:LogCacheBytes", "1");
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("damaged", 2);
        int correlation = 1;
        byte[] batch = new SharedLog.Protocol.Records.RecordBatchBuilder(1).Add([1], [1, 2, 3], 1_000).Build();
        Assert.Equal(0, (await client.ProduceAsync("damaged", 0, batch, correlation++)).ErrorCode);
        await broker.Host.Services.GetRequiredService<SharedLog.Storage.Streams.StreamStore>().UploadAsync(CancellationToken.None);
        string[] objects = Directory.GetFiles(Path.Combine(broker.DataDir, "objects"), "*", SearchOption.AllDirectories);
        Assert.NotEmpty(objects);
        foreach (string file in objects)
        {
            File.Delete(file);
        }

        Assert.Equal(0, (await client.ProduceAsync("damaged", 1, batch, correlation++)).ErrorCode); // stays in the WAL's cache

        async Task<FetchResponse.PartitionData[]> FetchAsync(short version)
        {
            var request = new FetchRequest
            {
                ReplicaId = -1,
                MaxWaitMs = 0,
                MaxBytes = 1 << 20,
                SessionEpoch = -1,
                Topics = [new() { Topic = "damaged", Partitions = [new() { Partition = 0, PartitionMaxBytes = 1 << 20 }, new() { Partition = 1, PartitionMaxBytes = 1 << 20 }] }],
            };
            await client.SendAsync(request, version, correlation++);
            (_, byte[] body) = await client.ReceiveAsync(version >= 12 ? (short)1 : (short)0);
            return [.. new FetchResponse().ReadFrom(body, version).Responses.Single().Partitions.OrderBy(p => p.PartitionIndex)];
        }

        // As Kafka: KAFKA_STORAGE_ERROR from Fetch v6 on; older fetchers get the retriable NOT_LEADER_OR_FOLLOWER.
        // The partition whose data is readable is answered in the same response.
        foreach ((short version, ErrorCode expected) in new[] { ((short)4, ErrorCode.NotLeaderOrFollower), ((short)12, ErrorCode.KafkaStorageError) })
        {
            FetchResponse.PartitionData[] partitions = await FetchAsync(version);
            Assert.Equal((short)expected, partitions[0].ErrorCode);
            Assert.Equal(0, partitions[1].ErrorCode);
            Assert.True(partitions[1].Records!.Value.Length > 0);
        }

        await client.SendAsync(new ListOffsetsRequest { ReplicaId = -1, Topics = [new() { Name = "damaged", Partitions = [new() { PartitionIndex = 0, Timestamp = 500 }] }] }, 9, correlation++);
        (_, byte[] listBody) = await client.ReceiveAsync(1);
        Assert.Equal((short)ErrorCode.KafkaStorageError, new ListOffsetsResponse().ReadFrom(listBody, 9).Topics.Single().Partitions.Single().ErrorCode);

        // The connection is still open and answers the next request.
        Assert.Equal(0, (await client.ProduceAsync("damaged", 1, batch, correlation++)).ErrorCode);
    }

    [Fact]
    public async Task ListOffsetsFindsTheLargestTimestampInObjectsAndCacheAndAnswersTheTieredSpecsAsKafka()
    {
        // The log cache keeps no uploaded batch, so a search by time reads uploaded records from objects only.
        await using BrokerFixture broker = await BrokerFixture.StartAsync(null, true, "--Storage:LogCacheBytes", "1");
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("stamps", 1);
        int correlation = 1;
        async Task ProduceAtAsync(long timestamp, string topic = "stamps", params long[] more)
        {
            var builder = new SharedLog.Protocol.Records.RecordBatchBuilder(1).Add(null, [1], timestamp);
            foreach (long next in more)
            {
                builder.Add(null, [2], next);
            }

            await client.ProduceAsync(topic, 0, builder.Build(), correlation++);
        }

        async Task<(long Offset, long Timestamp)> ListAsync(long spec, string topic = "stamps")
        {
            await client.SendAsync(new ListOffsetsRequest { ReplicaId = -1, Topics = [new() { Name = topic, Partitions = [new() { PartitionIndex = 0, Timestamp = spec }] }] }, 9, correlation++);
            (_, byte[] body) = await client.ReceiveAsync(1);
            ListOffsetsResponse.ListOffsetsPartitionResponse partition = new ListOffsetsResponse().ReadFrom(body, 9).Topics.Single().Partitions.Single();
            Assert.Equal(0, partition.ErrorCode);
            return (partition.Offset, partition.Timestamp);
        }

        // Offsets 0-2 go to objects, 3-4 stay in the WAL's cache; the largest timestamp, 500, is first at offset 1.
        foreach (long timestamp in new long[] { 100, 500, 300 })
        {
            await ProduceAtAsync(timestamp);
        }

        await broker.Host.Services.GetRequiredService<SharedLog.Storage.Streams.StreamStore>().UploadAsync(CancellationToken.None);
        await ProduceAtAsync(500);
        await ProduceAtAsync(200);
        Assert.Equal((1L, 500L), await ListAsync(-3));
        await ProduceAtAsync(900);
        Assert.Equal((5L, 900L), await ListAsync(-3));

        // Earliest local (KIP-405) is the log start; latest tiered (KIP-1005) is -1, as Kafka answers without remote storage.
        Assert.Equal((0L, -1L), await ListAsync(-4));
        Assert.Equal((-1L, -1L), await ListAsync(-5));
        Assert.Equal((1L, 500L), await ListAsync(400));

        // DeleteRecords takes -1 (the high watermark) and no other negative offset, as Kafka.
        await client.SendAsync(new DeleteRecordsRequest { TimeoutMs = 5000, Topics = [new() { Name = "stamps", Partitions = [new() { PartitionIndex = 0, Offset = -2 }] }] }, 2, correlation++);
        (_, byte[] deleteBody) = await client.ReceiveAsync(1);
        DeleteRecordsResponse.DeleteRecordsPartitionResult deleted = new DeleteRecordsResponse().ReadFrom(deleteBody, 2).Topics.Single().Partitions.Single();
        Assert.Equal((short)ErrorCode.OffsetOutOfRange, deleted.ErrorCode);
        Assert.Equal(0L, (await ListAsync(-2)).Offset);

        // A producer's timestamp may equal a query spec: -3 as the largest timestamp is searched as a time (this
        // recursed until the stack overflowed, taking the broker down).
        // (Our builder never writes a max below -1, so the header is forged, with a CRC to match.)
        await client.CreateTopicAsync("odd-stamps", 1);
        byte[] odd = new SharedLog.Protocol.Records.RecordBatchBuilder(1).Add(null, [1], -3).Build();
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(odd.AsSpan(35), -3);
        SharedLog.Protocol.Records.RecordBatch.WriteCrc(odd);
        Assert.Equal(0, (await client.ProduceAsync("odd-stamps", 0, odd, correlation++)).ErrorCode);
        Assert.Equal((0L, -3L), await ListAsync(-3, "odd-stamps"));

        // Records deleted inside a batch: the batch holding the first match by its max timestamp has it below the log
        // start, and the search goes on to the next object instead of answering -1.
        var store = broker.Host.Services.GetRequiredService<SharedLog.Storage.Streams.StreamStore>();
        await client.CreateTopicAsync("cut-stamps", 1);
        await ProduceAtAsync(100, "cut-stamps", 500, 200);
        await store.UploadAsync(CancellationToken.None);
        await ProduceAtAsync(600, "cut-stamps");
        await store.UploadAsync(CancellationToken.None);
        await client.SendAsync(new DeleteRecordsRequest { TimeoutMs = 5000, Topics = [new() { Name = "cut-stamps", Partitions = [new() { PartitionIndex = 0, Offset = 2 }] }] }, 2, correlation++);
        (_, byte[] cutBody) = await client.ReceiveAsync(1);
        Assert.Equal((0, 2L), new DeleteRecordsResponse().ReadFrom(cutBody, 2).Topics.Single().Partitions.Single() is var cut ? (cut.ErrorCode, cut.LowWatermark) : default);
        Assert.Equal((3L, 600L), await ListAsync(400, "cut-stamps"));
        Assert.Equal((3L, 600L), await ListAsync(-3, "cut-stamps"));
    }

    [Fact]
    public async Task DeleteTopicsRefusesMalformedEntriesAndDeletesNothingForThem()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("kept-a", 1);
        await client.CreateTopicAsync("kept-b", 1);
        await client.CreateTopicAsync("gone", 1);
        await client.SendAsync(new MetadataRequest { Topics = [new() { Name = "kept-b" }], AllowAutoTopicCreation = false }, 12, 1);
        (_, byte[] metadataBody) = await client.ReceiveAsync(1);
        Guid keptB = new MetadataResponse().ReadFrom(metadataBody, 12).Topics.Single().TopicId;

        // Metadata v10-11 carry the topic id field but, as Kafka, look topics up by name only: an id there is INVALID_REQUEST.
        await client.SendAsync(new MetadataRequest { Topics = [new() { Name = null, TopicId = keptB }, new() { Name = "kept-a" }], AllowAutoTopicCreation = false }, 11, 9);
        (_, byte[] byIdBody) = await client.ReceiveAsync(1);
        Assert.Equal([ErrorCode.InvalidRequest, ErrorCode.None], new MetadataResponse().ReadFrom(byIdBody, 11).Topics.Select(t => (ErrorCode)t.ErrorCode));

        // As Kafka: a name and an id together, neither, or a name twice are INVALID_REQUEST (a name twice answered once),
        // and those entries delete nothing.
        await client.SendAsync(new DeleteTopicsRequest
        {
            TimeoutMs = 5000,
            Topics = [new() { Name = "kept-a", TopicId = keptB }, new() { Name = null, TopicId = Guid.Empty }, new() { Name = "kept-a" }, new() { Name = "kept-a" }, new() { Name = "gone" }],
        }, 6, 2);
        (_, byte[] body) = await client.ReceiveAsync(1);
        Assert.Equal(
            [("kept-a", ErrorCode.InvalidRequest), (null, ErrorCode.InvalidRequest), ("kept-a", ErrorCode.InvalidRequest), ("gone", ErrorCode.None)],
            new DeleteTopicsResponse().ReadFrom(body, 6).Responses.Select(r => (r.Name, (ErrorCode)r.ErrorCode)));

        Assert.Equal([ErrorCode.None, ErrorCode.None, ErrorCode.UnknownTopicOrPartition], await client.TopicErrorsAsync("kept-a", "kept-b", "gone"));

        // The same topic by name and by id: as Kafka's controller, the name entry is refused and the id entry dropped
        // without an answer, so the topic stays.
        await client.SendAsync(new DeleteTopicsRequest { TimeoutMs = 5000, Topics = [new() { Name = "kept-b" }, new() { TopicId = keptB }] }, 6, 3);
        (_, byte[] bothBody) = await client.ReceiveAsync(1);
        DeleteTopicsResponse.DeletableTopicResult refused = new DeleteTopicsResponse().ReadFrom(bothBody, 6).Responses.Single();
        Assert.Equal(("kept-b", ErrorCode.InvalidRequest), (refused.Name, (ErrorCode)refused.ErrorCode));
        Assert.Contains("maps to an ID", refused.ErrorMessage, StringComparison.Ordinal);
        Assert.Equal([ErrorCode.None], await client.TopicErrorsAsync("kept-b"));
    }

    /// <summary>
    /// A delete by topic id acts on that topic only: once the name was deleted and created again (while the delete waited
    /// for the broker's change lock, say), it answers UNKNOWN_TOPIC_ID and the new topic stays, as in Kafka.
    /// </summary>
    [Fact]
    public async Task ADeleteByIdDoesNotTakeANewTopicOfTheSameName()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("renewed", 1);
        var topics = broker.Host.Services.GetRequiredService<SharedLog.Broker.Cluster.TopicService>();
        Guid old = topics.Find("renewed")!.TopicId;
        Assert.Equal(ErrorCode.None, await topics.DeleteAsync("renewed", old, CancellationToken.None));
        await client.CreateTopicAsync("renewed", 1);
        Guid renewed = topics.Find("renewed")!.TopicId;
        Assert.NotEqual(old, renewed);

        Assert.Equal(ErrorCode.UnknownTopicId, await topics.DeleteAsync("renewed", old, CancellationToken.None));
        Assert.Equal(renewed, topics.Find("renewed")!.TopicId);
        Assert.Equal([ErrorCode.None], await client.TopicErrorsAsync("renewed"));
    }

    [Fact]
    public async Task AProduceV2WithAnOldMessageSetGetsInvalidRecordAndTheConnectionGoesOn()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("legacy", 1);

        // Produce v0-2 are advertised (older librdkafka compresses only then), but their message sets (magic 0/1,
        // here one message of format v1) are not stored: the partition gets INVALID_RECORD, as Kafka answers v3+.
        byte[] messageSet = new byte[8 + 4 + 4 + 1 + 1 + 8 + 4 + 4 + 1];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(messageSet.AsSpan(8), messageSet.Length - 12);
        messageSet[16] = 1; // magic
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(messageSet.AsSpan(26), -1); // no key
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(messageSet.AsSpan(30), 1); // a one-byte value
        await client.SendAsync(new ProduceRequest { Acks = -1, TimeoutMs = 5000, TopicData = [new() { Name = "legacy", PartitionData = [new() { Index = 0, Records = new System.Buffers.ReadOnlySequence<byte>(messageSet) }] }] }, 2, 1);
        (_, byte[] body) = await client.ReceiveAsync(0);
        Assert.Equal((short)ErrorCode.InvalidRecord, new ProduceResponse().ReadFrom(body, 2).Responses.Single().PartitionResponses.Single().ErrorCode);

        // Nothing was stored, and the connection goes on.
        byte[] batch = new SharedLog.Protocol.Records.RecordBatchBuilder(1).Add(null, [1], 1).Build();
        ProduceResponse.PartitionProduceResponse stored = await client.ProduceAsync("legacy", 0, batch, 2);
        Assert.Equal((0, 0L), ((int)stored.ErrorCode, stored.BaseOffset));
    }

    [Fact]
    public async Task ListGroupsGivesEachGroupItsOwnProtocolType()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("listed", 1);
        int correlation = 1;
        foreach ((string group, string protocolType) in new[] { ("connect-workers", "connect"), ("consumers", "consumer") })
        {
            var join = new JoinGroupRequest
            {
                GroupId = group,
                MemberId = string.Empty,
                SessionTimeoutMs = 10_000,
                RebalanceTimeoutMs = 10_000,
                ProtocolType = protocolType,
                Protocols = [new JoinGroupRequest.JoinGroupRequestProtocol { Name = "default", Metadata = [0, 1] }],
            };
            await client.SendAsync(join, 3, correlation++);
            (_, byte[] joinBody) = await client.ReceiveAsync(0);
            Assert.Equal(0, new JoinGroupResponse().ReadFrom(joinBody, 3).ErrorCode);
        }

        // A group that only holds offsets (committed from outside any group, as an admin client or a consumer with
        // assign() does) has no protocol type: admin clients list it as a simple consumer group.
        await client.SendAsync(new OffsetCommitRequest { GroupId = "offsets-only", Topics = [new() { Name = "listed", Partitions = [new() { PartitionIndex = 0, CommittedOffset = 0 }] }] }, 8, correlation++);
        (_, byte[] commitBody) = await client.ReceiveAsync(1);
        Assert.Equal(0, new OffsetCommitResponse().ReadFrom(commitBody, 8).Topics.Single().Partitions.Single().ErrorCode);

        await client.SendAsync(new ListGroupsRequest(), 4, correlation++);
        (_, byte[] listBody) = await client.ReceiveAsync(1);
        Dictionary<string, string> types = new ListGroupsResponse().ReadFrom(listBody, 4).Groups.ToDictionary(g => g.GroupId, g => g.ProtocolType);
        Assert.Equal(("connect", "consumer", string.Empty), (types["connect-workers"], types["consumers"], types["offsets-only"]));

        using Confluent.Kafka.IAdminClient admin = new Confluent.Kafka.AdminClientBuilder(new Confluent.Kafka.AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();
        Dictionary<string, bool> simple = (await admin.ListConsumerGroupsAsync()).Valid.ToDictionary(g => g.GroupId, g => g.IsSimpleConsumerGroup);
        Assert.True(simple["offsets-only"]);
        Assert.False(simple["consumers"]);
    }

    /// <summary>A consumer's JoinGroup (protocol "range", metadata [0, 1], 10 s timeouts).</summary>
    private static JoinGroupRequest RangeJoin(string group, string memberId = "") => new()
    {
        GroupId = group,
        MemberId = memberId,
        SessionTimeoutMs = 10_000,
        RebalanceTimeoutMs = 10_000,
        ProtocolType = "consumer",
        Protocols = [new JoinGroupRequest.JoinGroupRequestProtocol { Name = "range", Metadata = [0, 1] }],
    };

    [Fact]
    public async Task GroupRequestsWithUnknownMembersGetKafkaErrors()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        JoinGroupRequest join = RangeJoin("g", "no-such-member");
        await client.SendAsync(join, 5, 1);
        (_, byte[] joinBody) = await client.ReceiveAsync(0);
        Assert.Equal((short)ErrorCode.UnknownMemberId, new JoinGroupResponse().ReadFrom(joinBody, 5).ErrorCode);

        await client.SendAsync(new HeartbeatRequest { GroupId = "g", GenerationId = 1, MemberId = "nobody" }, 3, 2);
        (_, byte[] heartbeatBody) = await client.ReceiveAsync(0);
        Assert.Equal((short)ErrorCode.UnknownMemberId, new HeartbeatResponse().ReadFrom(heartbeatBody, 3).ErrorCode);

        await client.SendAsync(new SyncGroupRequest { GroupId = "g", GenerationId = 1, MemberId = "nobody" }, 3, 3);
        (_, byte[] syncBody) = await client.ReceiveAsync(0);
        Assert.Equal((short)ErrorCode.UnknownMemberId, new SyncGroupResponse().ReadFrom(syncBody, 3).ErrorCode);

        // Outside group.min.session.timeout.ms (6 s) and group.max.session.timeout.ms (30 min), Kafka's defaults.
        join.MemberId = string.Empty;
        foreach (int outOfRange in new[] { 10, 5999, 1_800_001 })
        {
            join.SessionTimeoutMs = outOfRange;
            await client.SendAsync(join, 5, 4);
            (_, byte[] badTimeout) = await client.ReceiveAsync(0);
            Assert.Equal((short)ErrorCode.InvalidSessionTimeout, new JoinGroupResponse().ReadFrom(badTimeout, 5).ErrorCode);
        }

        await client.SendAsync(new DescribeGroupsRequest { Groups = [string.Empty, "g"] }, 5, 5);
        (_, byte[] describeBody) = await client.ReceiveAsync(1);
        DescribeGroupsResponse described = new DescribeGroupsResponse().ReadFrom(describeBody, 5);
        // As Kafka, the empty group id is a group that can be described (it has no members: Dead); and the refused joins
        // did not create "g" (Kafka's getOrMaybeCreateGroup creates a group only for a join without a member id).
        Assert.Equal([((short)ErrorCode.None, "Dead"), ((short)ErrorCode.None, "Dead")], described.Groups.Select(g => (g.ErrorCode, g.GroupState)));
        Assert.All(described.Groups, g => Assert.Equal(int.MinValue, g.AuthorizedOperations));

        // Asked for, a group's authorized operations are what Kafka without an authorizer grants: read, describe, delete.
        await client.SendAsync(new DescribeGroupsRequest { Groups = ["g"], IncludeAuthorizedOperations = true }, 5, 6);
        (_, byte[] withOperations) = await client.ReceiveAsync(1);
        Assert.Equal((1 << 3) | (1 << 8) | (1 << 6), Assert.Single(new DescribeGroupsResponse().ReadFrom(withOperations, 5).Groups).AuthorizedOperations);
    }

    [Fact]
    public async Task EntriesNamedTwiceInOneRequestAreServedOnce()
    {
        // Kafka takes Metadata's topics and DescribeLogDirs' partitions as sets; a group deleted once is gone for a repeat.
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("twice", 2);
        int correlation = 1;

        await client.SendAsync(new MetadataRequest { Topics = [new() { Name = "twice" }, new() { Name = "absent" }, new() { Name = "twice" }], AllowAutoTopicCreation = false }, 12, correlation++);
        (_, byte[] metadataBody) = await client.ReceiveAsync(1);
        MetadataResponse metadata = new MetadataResponse().ReadFrom(metadataBody, 12);
        Assert.Equal(
            [("twice", ErrorCode.None), ("absent", ErrorCode.UnknownTopicOrPartition)],
            metadata.Topics.Select(t => (t.Name, (ErrorCode)t.ErrorCode)));
        Guid twiceId = metadata.Topics[0].TopicId;
        await client.SendAsync(new MetadataRequest { Topics = [new() { Name = null, TopicId = twiceId }, new() { Name = "twice" }], AllowAutoTopicCreation = false }, 12, correlation++);
        (_, byte[] byIdBody) = await client.ReceiveAsync(1);
        Assert.Equal([twiceId], new MetadataResponse().ReadFrom(byIdBody, 12).Topics.Select(t => t.TopicId)); // by id and by name: once

        await client.SendAsync(new DescribeLogDirsRequest { Topics = [new() { Topic = "twice", Partitions = [1] }, new() { Topic = "twice", Partitions = [0, 1] }] }, 4, correlation++);
        (_, byte[] dirsBody) = await client.ReceiveAsync(1);
        DescribeLogDirsResponse.DescribeLogDirsTopic described = Assert.Single(new DescribeLogDirsResponse().ReadFrom(dirsBody, 4).Results.Single().Topics);
        Assert.Equal([0, 1], described.Partitions.Select(p => p.PartitionIndex));

        await client.SendAsync(new OffsetCommitRequest { GroupId = "gone-twice", GenerationIdOrMemberEpoch = -1, MemberId = string.Empty, Topics = [new() { Name = "twice", Partitions = [new() { PartitionIndex = 0, CommittedOffset = 0 }] }] }, 8, correlation++);
        (_, byte[] commitBody) = await client.ReceiveAsync(1);
        Assert.Equal(0, new OffsetCommitResponse().ReadFrom(commitBody, 8).Topics.Single().Partitions.Single().ErrorCode);
        await client.SendAsync(new DeleteGroupsRequest { GroupsNames = ["gone-twice", "gone-twice"] }, 2, correlation++);
        (_, byte[] deleteBody) = await client.ReceiveAsync(1);
        Assert.Equal(
            [ErrorCode.None, ErrorCode.GroupIdNotFound],
            new DeleteGroupsResponse().ReadFrom(deleteBody, 2).Results.Select(r => (ErrorCode)r.ErrorCode));
    }

    [Fact]
    public async Task DeprecatedOffsetCommitAndFetchVersionsWorkOnTheSameOffsetsAsNewerOnes()
    {
        // Older clients (sarama before 1.27 by default) commit with OffsetCommit v1 and read with OffsetFetch v0-1.
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("old", 2);
        int correlation = 1;
        async Task<ErrorCode> CommitAsync(short version, int partition, long offset, long commitTimestamp = -1)
        {
            await client.SendAsync(new OffsetCommitRequest
            {
                GroupId = "legacy",
                GenerationIdOrMemberEpoch = -1,
                MemberId = string.Empty,
                Topics = [new() { Name = "old", Partitions = [new() { PartitionIndex = partition, CommittedOffset = offset, CommitTimestamp = commitTimestamp, CommittedMetadata = "v" + version }] }],
            }, version, correlation++);
            (_, byte[] body) = await client.ReceiveAsync(version >= 8 ? (short)1 : (short)0); // flexible from v8
            return (ErrorCode)new OffsetCommitResponse().ReadFrom(body, version).Topics.Single().Partitions.Single().ErrorCode;
        }

        async Task<(long Offset, string? Metadata)[]> FetchAsync(short version)
        {
            await client.SendAsync(new OffsetFetchRequest { GroupId = "legacy", Topics = [new() { Name = "old", PartitionIndexes = [0, 1] }] }, version, correlation++);
            (_, byte[] body) = await client.ReceiveAsync(version >= 6 ? (short)1 : (short)0); // flexible from v6
            return [.. new OffsetFetchResponse().ReadFrom(body, version).Topics.Single().Partitions.OrderBy(p => p.PartitionIndex).Select(p => (p.CommittedOffset, p.Metadata))];
        }

        Assert.Equal(ErrorCode.None, await CommitAsync(0, 0, 7));
        DateTimeOffset named = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000);
        Assert.Equal(ErrorCode.None, await CommitAsync(1, 1, 9, named.ToUnixTimeMilliseconds()));
        (long, string?)[] expected = [(7, "v0"), (9, "v1")];
        Assert.Equal(expected, await FetchAsync(0));
        Assert.Equal(expected, await FetchAsync(1));
        Assert.Equal(expected, await FetchAsync(7));

        // A v1 commit's own commit time is kept, as Kafka keeps it (it counts for the offset's retention); v0 is committed now.
        IMetadataStore metadata = broker.Host.Services.GetRequiredService<IMetadataStore>();
        IReadOnlyList<GroupOffset> stored = await metadata.FetchGroupOffsetsAsync("legacy", CancellationToken.None);
        Assert.Equal(named, stored.Single(o => o.Partition == 1).CommitTime);
        Assert.True(stored.Single(o => o.Partition == 0).CommitTime > named.AddYears(1));

        // A commit time in the future is taken as now: it would keep the offset from ever expiring.
        DateTimeOffset before = DateTimeOffset.UtcNow;
        Assert.Equal(ErrorCode.None, await CommitAsync(1, 1, 10, DateTimeOffset.UtcNow.AddYears(50).ToUnixTimeMilliseconds()));
        DateTimeOffset kept = (await metadata.FetchGroupOffsetsAsync("legacy", CancellationToken.None)).Single(o => o.Partition == 1).CommitTime;
        Assert.InRange(kept, before.AddSeconds(-1), DateTimeOffset.UtcNow);
    }

    [Fact]
    public async Task OffsetRequestsTakeTheEmptyGroupIdAndAnswerUnknownPartitionsFirstAsKafka()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("t", 1);
        int correlation = 1;
        async Task<ErrorCode[]> CommitAsync(string group, int generation, string member, params (string Topic, int Partition)[] partitions) =>
            await CommitWithVersionAsync(8, group, generation, member, partitions);
        async Task<ErrorCode[]> CommitWithVersionAsync(short version, string group, int generation, string member, params (string Topic, int Partition)[] partitions)
        {
            await client.SendAsync(new OffsetCommitRequest
            {
                GroupId = group,
                GenerationIdOrMemberEpoch = generation,
                MemberId = member,
                Topics = [.. partitions.GroupBy(p => p.Topic).Select(t => new OffsetCommitRequest.OffsetCommitRequestTopic { Name = t.Key, Partitions = [.. t.Select(p => new OffsetCommitRequest.OffsetCommitRequestPartition { PartitionIndex = p.Partition, CommittedOffset = 5 })] })],
            }, version, correlation++);
            (_, byte[] body) = await client.ReceiveAsync(1);
            return [.. new OffsetCommitResponse().ReadFrom(body, version).Topics.SelectMany(t => t.Partitions).Select(p => (ErrorCode)p.ErrorCode)];
        }

        // The empty group id keeps offsets (commits from clients without a group), as Kafka; an unknown partition is
        // answered before the group is asked.
        Assert.Equal([ErrorCode.None, ErrorCode.UnknownTopicOrPartition], await CommitAsync(string.Empty, -1, string.Empty, ("t", 0), ("t", 9)));
        Assert.Equal([ErrorCode.UnknownTopicOrPartition], await CommitAsync("simple", 5, "m", ("gone", 0)));
        // A generation for a group that does not exist: ILLEGAL_GENERATION up to v8, GROUP_ID_NOT_FOUND from v9, as Kafka.
        Assert.Equal([ErrorCode.IllegalGeneration], await CommitAsync("simple", 5, "m", ("t", 0)));
        Assert.Equal([ErrorCode.GroupIdNotFound], await CommitWithVersionAsync(9, "simple", 5, "m", ("t", 0)));
        // Generation -1 to a group without members is taken whatever member id it carries.
        Assert.Equal([ErrorCode.None], await CommitAsync("simple", -1, "some-admin-tool", ("t", 0)));
        // Now the group exists (it has offsets; Kafka would reload it, empty, after a restart): a member's commit with a
        // generation is from a member it does not know, at every version.
        Assert.Equal([ErrorCode.UnknownMemberId], await CommitAsync("simple", 5, "m", ("t", 0)));
        Assert.Equal([ErrorCode.UnknownMemberId], await CommitWithVersionAsync(9, "simple", 5, "m", ("t", 0)));

        await client.SendAsync(new OffsetFetchRequest { Groups = [new() { GroupId = string.Empty, Topics = null }, new() { GroupId = "never", Topics = [new() { Name = "t", PartitionIndexes = [0] }] }] }, 8, correlation++);
        (_, byte[] fetchBody) = await client.ReceiveAsync(1);
        OffsetFetchResponse fetched = new OffsetFetchResponse().ReadFrom(fetchBody, 8);
        Assert.Equal(
            [(string.Empty, 5L), ("never", -1L)],
            fetched.Groups.Select(g => (g.GroupId, g.Topics.Single().Partitions.Single().CommittedOffset)));

        async Task<(ErrorCode Group, ErrorCode[] Partitions)> DeleteAsync(string group, params (string Topic, int Partition)[] partitions)
        {
            await client.SendAsync(new OffsetDeleteRequest
            {
                GroupId = group,
                Topics = [.. partitions.GroupBy(p => p.Topic).Select(t => new OffsetDeleteRequest.OffsetDeleteRequestTopic { Name = t.Key, Partitions = [.. t.Select(p => new OffsetDeleteRequest.OffsetDeleteRequestPartition { PartitionIndex = p.Partition })] })],
            }, 0, correlation++);
            (_, byte[] body) = await client.ReceiveAsync(0);
            OffsetDeleteResponse response = new OffsetDeleteResponse().ReadFrom(body, 0);
            return ((ErrorCode)response.ErrorCode, [.. response.Topics.SelectMany(t => t.Partitions).Select(p => (ErrorCode)p.ErrorCode)]);
        }

        // Deleting offsets needs a named group; partitions that do not exist are named as such.
        Assert.Equal(ErrorCode.InvalidGroupId, (await DeleteAsync(string.Empty, ("t", 0))).Group);
        (ErrorCode groupError, ErrorCode[] partitionErrors) = await DeleteAsync("simple", ("t", 0), ("t", 3), ("gone", 0));
        Assert.Equal(ErrorCode.None, groupError);
        Assert.Equal([ErrorCode.None, ErrorCode.UnknownTopicOrPartition, ErrorCode.UnknownTopicOrPartition], partitionErrors);
    }

    [Fact]
    public async Task DescribeGroupsSendsTheProtocolAndMemberDataOnlyForAStableGroup()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        JoinGroupRequest join = RangeJoin("describe-me");
        // v4+: the first join is answered MEMBER_ID_REQUIRED with the id to join with.
        await client.SendAsync(join, 5, 1);
        (_, byte[] firstBody) = await client.ReceiveAsync(0);
        join.MemberId = new JoinGroupResponse().ReadFrom(firstBody, 5).MemberId;
        await client.SendAsync(join, 5, 2);
        (_, byte[] joinBody) = await client.ReceiveAsync(0);
        JoinGroupResponse joined = new JoinGroupResponse().ReadFrom(joinBody, 5);
        Assert.Equal(0, joined.ErrorCode);

        async Task<DescribeGroupsResponse.DescribedGroup> DescribeAsync(int correlation)
        {
            await client.SendAsync(new DescribeGroupsRequest { Groups = ["describe-me"] }, 5, correlation);
            (_, byte[] body) = await client.ReceiveAsync(1);
            return new DescribeGroupsResponse().ReadFrom(body, 5).Groups.Single();
        }

        // Joined, not yet synced: CompletingRebalance, so no protocol and no member data yet.
        DescribeGroupsResponse.DescribedGroup completing = await DescribeAsync(3);
        Assert.Equal(("CompletingRebalance", "consumer", string.Empty), (completing.GroupState, completing.ProtocolType, completing.ProtocolData));
        DescribeGroupsResponse.DescribedGroupMember waiting = Assert.Single(completing.Members);
        Assert.Equal((joined.MemberId, 0, 0), (waiting.MemberId, waiting.MemberMetadata.Length, waiting.MemberAssignment.Length));

        await client.SendAsync(new SyncGroupRequest { GroupId = "describe-me", GenerationId = joined.GenerationId, MemberId = joined.MemberId, Assignments = [new() { MemberId = joined.MemberId, Assignment = [7, 7] }] }, 3, 4);
        (_, byte[] syncBody) = await client.ReceiveAsync(0);
        Assert.Equal(0, new SyncGroupResponse().ReadFrom(syncBody, 3).ErrorCode);
        DescribeGroupsResponse.DescribedGroup stable = await DescribeAsync(5);
        Assert.Equal(("Stable", "range"), (stable.GroupState, stable.ProtocolData));
        Assert.Equal([0, 1], stable.Members.Single().MemberMetadata);
        Assert.Equal([7, 7], stable.Members.Single().MemberAssignment);
    }
}
