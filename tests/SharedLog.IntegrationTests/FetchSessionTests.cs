using System.Buffers;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Protocol.Records;

namespace SharedLog.IntegrationTests;

/// <summary>Incremental fetch sessions (KIP-227) through the raw protocol.</summary>
public class FetchSessionTests
{
    private const short Version = 12;

    private static async Task ProduceAsync(RawKafkaClient client, int partition, int correlation)
    {
        byte[] batch = new RecordBatchBuilder(1).Add([1], [2], 1).Build();
        await client.ProduceAsync("sessions", partition, batch, correlation);
    }

    private static async Task<FetchResponse> FetchAsync(RawKafkaClient client, int sessionId, int epoch, int correlation, (int Partition, long Offset)[] partitions, int[]? forget = null, int maxBytes = 1 << 20)
    {
        var request = new FetchRequest
        {
            ReplicaId = -1,
            MaxWaitMs = 0,
            MinBytes = 0,
            MaxBytes = maxBytes,
            SessionId = sessionId,
            SessionEpoch = epoch,
            Topics = partitions.Length == 0 ? [] : [new() { Topic = "sessions", Partitions = [.. partitions.Select(p => new FetchRequest.FetchPartition { Partition = p.Partition, FetchOffset = p.Offset, PartitionMaxBytes = 1 << 20 })] }],
            ForgottenTopicsData = forget is null ? [] : [new() { Topic = "sessions", Partitions = [.. forget] }],
        };
        await client.SendAsync(request, Version, correlation);
        (_, byte[] body) = await client.ReceiveAsync(1);
        return new FetchResponse().ReadFrom(body, Version);
    }

    private static int[] PartitionsIn(FetchResponse response) =>
        [.. response.Responses.SelectMany(t => t.Partitions).Select(p => p.PartitionIndex).Order()];

    [Fact]
    public async Task ASessionWhosePartitionsAreAllForgottenIsClosedAndSessionIdZeroHasNoIncrementalFetches()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("sessions", 2);
        FetchResponse full = await FetchAsync(client, 0, 0, 2, [(0, 0), (1, 0)]);
        Assert.NotEqual(0, full.SessionId);

        // As Kafka: forgetting every partition closes the session; the fetch is answered without one.
        FetchResponse emptied = await FetchAsync(client, full.SessionId, 1, 3, [], forget: [0, 1]);
        Assert.Equal((0, 0), ((int)emptied.ErrorCode, emptied.SessionId));
        Assert.Equal((short)ErrorCode.FetchSessionIdNotFound, (await FetchAsync(client, full.SessionId, 2, 4, [])).ErrorCode);

        // An incremental fetch (epoch past 0) without a session id names no session: FETCH_SESSION_ID_NOT_FOUND, as Kafka.
        Assert.Equal((short)ErrorCode.FetchSessionIdNotFound, (await FetchAsync(client, 0, 3, 5, [(0, 0)])).ErrorCode);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public async Task AFetchWithNoRoomForBytesGetsExactlyOneBatch(int maxBytes)
    {
        // As Kafka: max_bytes is a soft limit, so the first batch found is returned whole, and nothing after it.
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("sessions", 2);
        for (int i = 0; i < 3; i++)
        {
            await ProduceAsync(client, 0, 2 + i);
        }

        await ProduceAsync(client, 1, 5);
        int oneBatch = new RecordBatchBuilder(1).Add([1], [2], 1).Build().Length;
        FetchResponse response = await FetchAsync(client, 0, -1, 6, [(0, 0), (1, 0)], maxBytes: maxBytes);
        Assert.Equal(0, response.ErrorCode);
        Assert.Equal(oneBatch, response.Responses.SelectMany(t => t.Partitions).Sum(p => p.Records?.Length ?? 0));
    }

    [Fact]
    public async Task IncrementalFetchesCarryOnlyChangesBothWays()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("sessions", 2);
        await ProduceAsync(client, 0, 2);

        FetchResponse full = await FetchAsync(client, 0, 0, 3, [(0, 0), (1, 0)]);
        Assert.NotEqual(0, full.SessionId);
        Assert.Equal([0, 1], PartitionsIn(full));

        // Nothing new since: an incremental fetch with the advanced offset returns no partitions.
        FetchResponse quiet = await FetchAsync(client, full.SessionId, 1, 4, [(0, 1)]);
        Assert.Equal(0, quiet.ErrorCode);
        Assert.Empty(PartitionsIn(quiet));

        // New data on partition 1 only: only partition 1 comes back, without being named in the request.
        await ProduceAsync(client, 1, 5);
        FetchResponse news = await FetchAsync(client, full.SessionId, 2, 6, []);
        Assert.Equal([1], PartitionsIn(news));
        Assert.True(news.Responses[0].Partitions[0].Records!.Value.Length > 0);

        // A forgotten partition is no longer reported.
        await FetchAsync(client, full.SessionId, 3, 7, [], forget: [1]);
        await ProduceAsync(client, 1, 8);
        FetchResponse after = await FetchAsync(client, full.SessionId, 4, 9, []);
        Assert.DoesNotContain(1, PartitionsIn(after));

        Assert.Equal((short)ErrorCode.InvalidFetchSessionEpoch, (await FetchAsync(client, full.SessionId, 9, 10, [])).ErrorCode);
        Assert.Equal((short)ErrorCode.FetchSessionIdNotFound, (await FetchAsync(client, full.SessionId + 1, 1, 11, [])).ErrorCode);

        // Epoch -1 closes the session and fetches without one.
        FetchResponse closed = await FetchAsync(client, full.SessionId, -1, 12, [(0, 0)]);
        Assert.Equal(0, closed.SessionId);
        Assert.Equal((short)ErrorCode.FetchSessionIdNotFound, (await FetchAsync(client, full.SessionId, 5, 13, [])).ErrorCode);
    }

    /// <summary>As Kafka: a partition answered with an error is sent again once the error is gone, even when its high watermark is the same.</summary>
    [Fact]
    public async Task APartitionThatHadAnErrorIsSentAgainWhenTheErrorIsGone()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("sessions", 1);
        await ProduceAsync(client, 0, 2);

        FetchResponse outOfRange = await FetchAsync(client, 0, 0, 3, [(0, 5)]);
        FetchResponse.PartitionData refused = outOfRange.Responses.Single().Partitions.Single();
        Assert.Equal(((short)ErrorCode.OffsetOutOfRange, 1L), (refused.ErrorCode, refused.HighWatermark));

        // The consumer resets to the end (offset 1) and nothing new arrives: the partition still comes back, error-free.
        FetchResponse reset = await FetchAsync(client, outOfRange.SessionId, 1, 4, [(0, 1)]);
        FetchResponse.PartitionData back = reset.Responses.Single().Partitions.Single();
        Assert.Equal((0, 1L), ((int)back.ErrorCode, back.HighWatermark));
        Assert.Empty(PartitionsIn(await FetchAsync(client, outOfRange.SessionId, 2, 5, [])));
    }

    [Fact]
    public async Task PartitionsThatReturnedRecordsGoLastSoAFullResponseDoesNotStarveTheOthers()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("sessions", 2);
        int correlation = 2;
        for (int i = 0; i < 3; i++)
        {
            await ProduceAsync(client, 0, correlation++);
            await ProduceAsync(client, 1, correlation++);
        }

        // max_bytes 1: each response carries the first batch it finds and nothing after it.
        FetchResponse first = await FetchAsync(client, 0, 0, correlation++, [(0, 0), (1, 0)], maxBytes: 1);
        Assert.Equal([0], WithRecords(first));

        // Partition 0 was served, so the next fetch reads partition 1 first, though partition 0 has more.
        FetchResponse second = await FetchAsync(client, first.SessionId, 1, correlation++, [(0, 1)], maxBytes: 1);
        Assert.Equal([1], WithRecords(second));

        FetchResponse third = await FetchAsync(client, first.SessionId, 2, correlation++, [(1, 1)], maxBytes: 1);
        Assert.Equal([0], WithRecords(third));
        FetchResponse.PartitionData resumed = third.Responses.SelectMany(t => t.Partitions).Single(p => p.PartitionIndex == 0);
        Assert.Equal(1, RecordBatch.Parse(resumed.Records!.Value.ToArray()).BaseOffset); // where partition 0's consumer left off
    }

    private static int[] WithRecords(FetchResponse response) =>
        [.. response.Responses.SelectMany(t => t.Partitions).Where(p => p.Records is { Length: > 0 }).Select(p => p.PartitionIndex)];
}
