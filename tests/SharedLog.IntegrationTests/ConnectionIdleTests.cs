using System.Buffers;
using System.Net.Sockets;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Protocol.Records;

namespace SharedLog.IntegrationTests;

/// <summary>
/// connections.max.idle.ms as Kafka applies it: a connection making no progress is closed, and a request being
/// served is progress. Reads the broker's metrics, so it runs in the metrics collection.
/// </summary>
[Collection(BrokerMetricsCollection.Name)]
public class ConnectionIdleTests
{
    private const string IdleMs = "2000";

    private static FetchRequest FetchOf(string topic, int maxWaitMs, int minBytes) => new()
    {
        ReplicaId = -1,
        MaxWaitMs = maxWaitMs,
        MinBytes = minBytes,
        MaxBytes = 64 << 20,
        IsolationLevel = 0,
        Topics = [new() { Topic = topic, Partitions = [new FetchRequest.FetchPartition { Partition = 0, FetchOffset = 0, PartitionMaxBytes = 64 << 20 }] }],
    };

    [Fact]
    public async Task ARequestServedAfterAQuietSpellIsAnsweredNotCutByTheIdleTimeout()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync(null, true, "--Broker:ConnectionsMaxIdleMs", IdleMs);
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("quiet", 1);

        // Quiet for most of the idle time (the scenario, not a wait for anything), then a long poll that outlasts the
        // rest of it: the client is active while its request is served, so the answer comes when the poll ends.
        await Task.Delay(1500);
        await client.SendAsync(FetchOf("quiet", maxWaitMs: 1500, minBytes: 1 << 20), 12, 1);
        (int correlation, byte[] body) = await client.ReceiveAsync(1);
        Assert.Equal(1, correlation);
        FetchResponse.PartitionData partition = new FetchResponse().ReadFrom(body, 12).Responses.Single().Partitions.Single();
        Assert.Equal(0, partition.ErrorCode);
        Assert.Equal(0, partition.HighWatermark);
    }

    [Fact]
    public async Task AClientThatStopsReadingIsDisconnectedAfterTheIdleTimeout()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync(null, true, "--Broker:ConnectionsMaxIdleMs", IdleMs);
        const int Batches = 16;
        using (RawKafkaClient producer = await RawKafkaClient.ConnectAsync(broker.BootstrapServers))
        {
            await producer.CreateTopicAsync("stalled", 1);
            for (int i = 0; i < Batches; i++)
            {
                byte[] batch = new RecordBatchBuilder(1).Add(null, new byte[1_000_000], 1).Build();
                Assert.Equal(0, (await producer.ProduceAsync("stalled", 0, batch, 1 + i)).ErrorCode);
            }
        }

        // A reader with a tiny receive window asks for all 16 MB at once and never reads the answer.
        using var stalled = new TcpClient { ReceiveBufferSize = 4096 };
        string[] address = broker.BootstrapServers.Split(':');
        await stalled.ConnectAsync(address[0], int.Parse(address[1], System.Globalization.CultureInfo.InvariantCulture));
        var frame = new ArrayBufferWriter<byte>();
        RequestFrame.WriteRequest(frame, FetchOf("stalled", maxWaitMs: 0, minBytes: 0), 12, 7, "stalled-reader");
        await stalled.GetStream().WriteAsync(frame.WrittenMemory);

        // The broker closes it once it has made no progress for the idle time, instead of holding the socket and the
        // response for as long as the client keeps the connection.
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{broker.Host.HttpPort}") };
        string? closed = await MetricsScrape.UntilAsync(http, t => t.Split('\n').FirstOrDefault(l => l.StartsWith("sharedlog_connections_closed_total", StringComparison.Ordinal) && l.Contains("reason=\"write_stalled\"", StringComparison.Ordinal)));
        Assert.NotNull(closed);
        Assert.EndsWith(" 1", closed.TrimEnd(), StringComparison.Ordinal); // the one stalled connection, closed once (other idle connections count as "idle")

        // What reaches the client afterwards is at most what the sockets' buffers held, not the whole response.
        long received = 0;
        byte[] buffer = new byte[64 * 1024];
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            int read;
            while ((read = await stalled.GetStream().ReadAsync(buffer, deadline.Token)) > 0)
            {
                received += read;
            }
        }
        catch (IOException)
        {
            // Reset by the broker: closed as well.
        }

        Assert.False(deadline.IsCancellationRequested, "the connection was still open 30 s after the broker closed it");
        Assert.True(received < Batches * 1_000_000L, $"received {received} bytes: the whole response was sent");
    }
}
