using System.Buffers;
using System.Buffers.Binary;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Protocol.Records;

namespace SharedLog.IntegrationTests;

/// <summary>Fetch response and partition limits (KIP-74) through the raw protocol.</summary>
public class FetchLimitTests
{
    private const short Version = 12;

    private static async Task ProduceAsync(RawKafkaClient client, int partition, int valueBytes, int correlation)
    {
        byte[] batch = new RecordBatchBuilder(1).Add([1], new byte[valueBytes], 1).Build();
        await client.ProduceAsync("limits", partition, batch, correlation);
    }

    private static async Task<int[]> BatchesPerPartitionAsync(RawKafkaClient client, int maxBytes, int partitionMaxBytes, int correlation)
    {
        var request = new FetchRequest
        {
            ReplicaId = -1,
            MaxWaitMs = 0,
            MinBytes = 0,
            MaxBytes = maxBytes,
            SessionId = 0,
            SessionEpoch = -1,
            Topics = [new() { Topic = "limits", Partitions = [.. Enumerable.Range(0, 3).Select(p => new FetchRequest.FetchPartition { Partition = p, FetchOffset = 0, PartitionMaxBytes = partitionMaxBytes })] }],
        };
        await client.SendAsync(request, Version, correlation);
        (_, byte[] body) = await client.ReceiveAsync(1);
        FetchResponse response = new FetchResponse().ReadFrom(body, Version);
        return [.. response.Responses.Single().Partitions.OrderBy(p => p.PartitionIndex).Select(p =>
        {
            Assert.Equal(0, p.ErrorCode);
            Assert.Equal(5, p.HighWatermark);
            return CountBatches(p.Records?.ToArray() ?? []);
        })];
    }

    private static int CountBatches(byte[] records)
    {
        int count = 0;
        for (int at = 0; at < records.Length; count++)
        {
            at += 12 + BinaryPrimitives.ReadInt32BigEndian(records.AsSpan(at + 8, 4)); // base offset, length, then the batch
        }

        return count;
    }

    private static FetchRequest LongPoll(long offset, int minBytes) => new()
    {
        ReplicaId = -1,
        MaxWaitMs = 120_000, // far beyond the client's 15 s receive deadline: the answer must not come from the timeout
        MinBytes = minBytes,
        MaxBytes = 1 << 20,
        SessionId = 0,
        SessionEpoch = -1,
        Topics = [new() { Topic = "limits", Partitions = [new FetchRequest.FetchPartition { Partition = 0, FetchOffset = offset, PartitionMaxBytes = 1 << 20 }] }],
    };

    [Fact]
    public async Task ALongPollAtAnOffsetOutOfRangeIsAnsweredAtOnce()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("limits", 1);
        await ProduceAsync(client, 0, 100, 2);

        await client.SendAsync(LongPoll(offset: 50, minBytes: 1), Version, 3);
        (_, byte[] body) = await client.ReceiveAsync(1);
        FetchResponse.PartitionData partition = new FetchResponse().ReadFrom(body, Version).Responses.Single().Partitions.Single();
        Assert.Equal((short)ErrorCode.OffsetOutOfRange, partition.ErrorCode);
        Assert.Equal(1, partition.HighWatermark);
    }

    [Fact]
    public async Task AFetchWithMinBytesZeroOrNothingToWaitOnIsAnsweredAtOnce()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("limits", 1);

        // As Kafka: min_bytes 0 is met by an empty answer, and a fetch with no partitions (the Java consumer closes
        // its fetch session with one) has nothing to wait for; neither may wait out max_wait_ms.
        await client.SendAsync(LongPoll(offset: 0, minBytes: 0), Version, 2);
        (_, byte[] body) = await client.ReceiveAsync(1);
        Assert.Equal(0, new FetchResponse().ReadFrom(body, Version).Responses.Single().Partitions.Single().ErrorCode);

        FetchRequest nothing = LongPoll(offset: 0, minBytes: 1);
        nothing.Topics = [];
        await client.SendAsync(nothing, Version, 3);
        (int correlation, _) = await client.ReceiveAsync(1);
        Assert.Equal(3, correlation);
    }

    [Fact]
    public async Task TheBrokersFetchMaxBytesCapsWhatAFetchAsksFor()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync(null, true, "--Broker:FetchMaxBytes", "20000");
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("limits", 1);
        for (int i = 0; i < 5; i++)
        {
            await ProduceAsync(client, 0, 8_000, 2 + i);
        }

        // The request asks for everything (as a client with fetch.max.bytes at int.MaxValue would); the broker's
        // 20,000 bytes hold two 8 KB batches, as Kafka caps the request's max_bytes by its own fetch.max.bytes.
        FetchRequest all = LongPoll(offset: 0, minBytes: 1);
        all.MaxBytes = int.MaxValue;
        all.Topics[0].Partitions[0].PartitionMaxBytes = int.MaxValue;
        await client.SendAsync(all, Version, 10);
        (_, byte[] body) = await client.ReceiveAsync(1);
        FetchResponse.PartitionData partition = new FetchResponse().ReadFrom(body, Version).Responses.Single().Partitions.Single();
        Assert.Equal((0, 5L), (partition.ErrorCode, partition.HighWatermark));
        Assert.Equal(2, CountBatches(partition.Records?.ToArray() ?? []));
    }

    [Fact]
    public async Task ALongPollWaitsUntilMinBytesHaveArrived()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient consumer = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        using RawKafkaClient producer = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await producer.CreateTopicAsync("limits", 1);
        await ProduceAsync(producer, 0, 100, 2);

        // About 160 bytes are there; the fetch asks for at least 5,000, so it waits for the next batch.
        await consumer.SendAsync(LongPoll(offset: 0, minBytes: 5_000), Version, 3);
        await ProduceAsync(producer, 0, 6_000, 4);
        (_, byte[] body) = await consumer.ReceiveAsync(1);
        FetchResponse.PartitionData partition = new FetchResponse().ReadFrom(body, Version).Responses.Single().Partitions.Single();
        Assert.Equal(0, partition.ErrorCode);
        Assert.Equal(2, CountBatches(partition.Records?.ToArray() ?? []));
    }

    [Fact]
    public async Task ALongPollWhoseReadALimitCutShortIsAnsweredAtOnce()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("limits", 1);
        for (int i = 0; i < 3; i++)
        {
            await ProduceAsync(client, 0, 6_000, 2 + i);
        }

        // About 18 KB are there, but the partition's 10,000 bytes hold one 6 KB batch, under min_bytes. As Kafka's delayed
        // fetch counts what is there up to the partition's limit (10,000 = min_bytes), it answers at once: waiting
        // (120 s, past the client's receive deadline) would not put more into this response.
        FetchRequest capped = LongPoll(offset: 0, minBytes: 10_000);
        capped.Topics[0].Partitions[0].PartitionMaxBytes = 10_000;
        await client.SendAsync(capped, Version, 10);
        (_, byte[] body) = await client.ReceiveAsync(1);
        FetchResponse.PartitionData partition = new FetchResponse().ReadFrom(body, Version).Responses.Single().Partitions.Single();
        Assert.Equal((0, 3L), (partition.ErrorCode, partition.HighWatermark));
        Assert.Equal(1, CountBatches(partition.Records?.ToArray() ?? []));
    }

    [Fact]
    public async Task ResponseAndPartitionLimitsAreSharedOutInRequestOrderAndOnlyTheFirstPartitionWithDataMayGoPastThem()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("limits", 3);

        // Partition 0 starts with a batch larger than any limit below; 1 has 8 KB batches, 2 has 10 KB batches.
        int correlation = 2;
        await ProduceAsync(client, 0, 60_000, correlation++);
        for (int i = 0; i < 4; i++)
        {
            await ProduceAsync(client, 0, 8_000, correlation++);
        }

        for (int i = 0; i < 5; i++)
        {
            await ProduceAsync(client, 1, 8_000, correlation++);
            await ProduceAsync(client, 2, 10_000, correlation++);
        }

        // Partition 0's first batch comes whole (60 KB) although it exceeds 25,000: a consumer must make progress. As
        // Kafka, the partitions after it stay within the limits: partition 1 has 40 KB left, more than its own 25,000
        // (3 batches); partition 2 has about 15 KB left: one batch.
        int[] batches100000 = await BatchesPerPartitionAsync(client, 100_000, 25_000, correlation++);
        Assert.Equal([1, 3, 1], batches100000);

        // About 20 KB left for partition 1 (2 batches) and about 4 KB for partition 2: less than its first batch, so none.
        int[] batches80000 = await BatchesPerPartitionAsync(client, 80_000, 25_000, correlation++);
        Assert.Equal([1, 2, 0], batches80000);

        // About 10 KB left for partition 1 (its first batch) and about 2 KB for partition 2 (none).
        int[] batches70000 = await BatchesPerPartitionAsync(client, 70_000, 25_000, correlation++);
        Assert.Equal([1, 1, 0], batches70000);

        // About 8 KB left, a little less than partition 1's first batch: the response stays within 68,000 bytes.
        int[] batches68000 = await BatchesPerPartitionAsync(client, 68_000, 25_000, correlation++);
        Assert.Equal([1, 0, 0], batches68000);

        // Without a response limit that binds, each partition gets what its own limit allows.
        int[] batches10000000 = await BatchesPerPartitionAsync(client, 10_000_000, 25_000, correlation++);
        Assert.Equal([1, 3, 2], batches10000000);
    }

    [Fact]
    public async Task APartitionLeftWithoutRoomInTheResponseStillGetsItsOffsetOutOfRange()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("limits", 2);
        await ProduceAsync(client, 0, 30_000, 2);
        await ProduceAsync(client, 1, 100, 3);

        // Partition 0's batch fills the response; partition 1 is asked for at an offset past its end, which a consumer
        // only learns from OFFSET_OUT_OF_RANGE (and then resets), however full the response is.
        FetchRequest request = LongPoll(offset: 0, minBytes: 1);
        request.MaxBytes = 20_000;
        request.Topics[0].Partitions = [new() { Partition = 0, FetchOffset = 0, PartitionMaxBytes = 1 << 20 }, new() { Partition = 1, FetchOffset = 7, PartitionMaxBytes = 1 << 20 }];
        await client.SendAsync(request, Version, 4);
        (_, byte[] body) = await client.ReceiveAsync(1);
        List<FetchResponse.PartitionData> partitions = new FetchResponse().ReadFrom(body, Version).Responses.Single().Partitions;
        Assert.Equal([(0, 0, 1), (1, (short)ErrorCode.OffsetOutOfRange, 0)], partitions.Select(p => (p.PartitionIndex, p.ErrorCode, CountBatches(p.Records?.ToArray() ?? []))));
        Assert.Equal(1, partitions[1].HighWatermark);
    }
}
