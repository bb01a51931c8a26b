using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Microsoft.Extensions.Logging;
using SharedLog.Protocol.Messages;

namespace SharedLog.IntegrationTests;

[Collection(BrokerMetricsCollection.Name)]
public class MetricsTests
{
    [Fact]
    public async Task PrometheusEndpointReportsRequestsBytesAndStorage()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using (IProducer<string, string> producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = broker.BootstrapServers }).Build())
        {
            await producer.ProduceAsync("metered", new Message<string, string> { Key = "k", Value = new string('x', 1000) }).WaitAsync(TimeSpan.FromSeconds(30));
        }

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{broker.Host.HttpPort}") };
        Assert.Equal("ok\n", await http.GetStringAsync("/health"));
        using (HttpResponseMessage head = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/health")))
        {
            Assert.Equal(System.Net.HttpStatusCode.OK, head.StatusCode); // load balancers check health with HEAD (it was a 405)
        }

        // The exporter caches a scrape briefly; wait (bounded) for one that includes the produce.
        string text = await MetricsScrape.UntilAsync(http, t => t.Contains("api=\"Produce\"", StringComparison.Ordinal) ? t : null) ?? string.Empty;

        Assert.Contains("sharedlog_requests_total{", text, StringComparison.Ordinal);
        Assert.Contains("api=\"Produce\"", text, StringComparison.Ordinal);
        Assert.Contains("sharedlog_request_duration_milliseconds_bucket{", text, StringComparison.Ordinal);
        Assert.Contains("sharedlog_bytes_in_bytes_total{", text, StringComparison.Ordinal);
        Assert.Contains("topic=\"metered\"", text, StringComparison.Ordinal);
        Assert.Contains("sharedlog_wal_commit_duration_milliseconds_bucket", text, StringComparison.Ordinal);
        Assert.Contains("sharedlog_upload_pending_bytes", text, StringComparison.Ordinal);
        // The runtime's own meter: GC pauses and thread pool queueing explain latency the API histograms cannot.
        Assert.Contains("dotnet_gc_pause_time_seconds_total", text, StringComparison.Ordinal);
        Assert.Contains("dotnet_thread_pool_queue_length", text, StringComparison.Ordinal);
        // Scrapers label series by the service (it was "unknown_service:SharedLog.Broker").
        Assert.Contains("service_name=\"sharedlog-broker\"", text.Split('\n').FirstOrDefault(l => l.StartsWith("target_info", StringComparison.Ordinal)) ?? "", StringComparison.Ordinal);
    }

    /// <summary>
    /// Bytes out count what the response carried, once: a long poll reads its partitions again after every wake-up, and
    /// each read was counted (five appends during a wait counted the first records five times over).
    /// </summary>
    [Fact]
    public async Task BytesOutCountWhatAFetchResponseCarriedOnce()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient consumer = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        using RawKafkaClient producer = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await producer.CreateTopicAsync("polled", 1);
        await producer.ProduceAsync("polled", 0, new SharedLog.Protocol.Records.RecordBatchBuilder(1).Add([1], new byte[100], 1).Build(), 2);

        // min_bytes is never reached: the answer comes at max_wait_ms, after the appends below woke the poll.
        await consumer.SendAsync(new FetchRequest
        {
            ReplicaId = -1,
            MaxWaitMs = 2_000,
            MinBytes = 1 << 20,
            MaxBytes = 1 << 20,
            SessionId = 0,
            SessionEpoch = -1,
            Topics = [new() { Topic = "polled", Partitions = [new() { Partition = 0, FetchOffset = 0, PartitionMaxBytes = 1 << 20 }] }],
        }, 12, 3);
        for (int i = 0; i < 4; i++)
        {
            await producer.ProduceAsync("polled", 0, new SharedLog.Protocol.Records.RecordBatchBuilder(1).Add([1], new byte[100], 1).Build(), 4 + i);
        }

        (_, byte[] body) = await consumer.ReceiveAsync(1);
        long carried = new FetchResponse().ReadFrom(body, 12).Responses.Single().Partitions.Single().Records!.Value.Length;
        Assert.True(carried > 0);

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{broker.Host.HttpPort}") };
        string? counted = await MetricsScrape.UntilAsync(http, t => t.Split('\n').FirstOrDefault(l => l.StartsWith("sharedlog_bytes_out_bytes_total{", StringComparison.Ordinal) && l.Contains("topic=\"polled\"", StringComparison.Ordinal))?.Split(' ')[^1]);
        Assert.Equal(carried, long.Parse(counted!, System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>Responses are counted by API and top-level error code (None included), not only Produce's and Fetch's partition errors.</summary>
    [Fact]
    public async Task ResponsesAreCountedByApiAndErrorCode()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.SendAsync(new ApiVersionsRequest { ClientSoftwareName = "raw", ClientSoftwareVersion = "1" }, 3, 1);
        await client.ReceiveAsync(1);
        await client.SendAsync(new HeartbeatRequest { GroupId = "nobody-home", GenerationId = 1, MemberId = "stranger" }, 4, 2);
        (_, byte[] body) = await client.ReceiveAsync(1);
        Assert.Equal((short)SharedLog.Protocol.ErrorCode.UnknownMemberId, new HeartbeatResponse().ReadFrom(body, 4).ErrorCode);

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{broker.Host.HttpPort}") };
        static bool Counted(string text, string api, string error) => text.Split('\n').Any(l =>
            l.StartsWith("sharedlog_response_errors_total{", StringComparison.Ordinal) && l.Contains($"api=\"{api}\"", StringComparison.Ordinal) && l.Contains($"error=\"{error}\"", StringComparison.Ordinal));
        string? text = await MetricsScrape.UntilAsync(http, t => Counted(t, "Heartbeat", "UnknownMemberId") ? t : null);
        Assert.NotNull(text);
        Assert.True(Counted(text, "ApiVersions", "None"), "the ApiVersions answer is counted with error None");

        // An error inside a response (here a partition's, in ListOffsets and in a Fetch) is counted by API and error too;
        // None, which the existing topic's partition answers, is not.
        await client.CreateTopicAsync("listed", 1);
        await client.SendAsync(new ListOffsetsRequest { ReplicaId = -1, Topics = [new() { Name = "no-such-topic", Partitions = [new() { PartitionIndex = 3, Timestamp = -1 }] }, new() { Name = "listed", Partitions = [new() { PartitionIndex = 0, Timestamp = -1 }] }] }, 5, 3);
        (_, byte[] listed) = await client.ReceiveAsync(0);
        Assert.Equal(
            [(short)SharedLog.Protocol.ErrorCode.UnknownTopicOrPartition, (short)SharedLog.Protocol.ErrorCode.None],
            new ListOffsetsResponse().ReadFrom(listed, 5).Topics.Select(t => t.Partitions.Single().ErrorCode));
        await client.SendAsync(new FetchRequest
        {
            ReplicaId = -1,
            MaxWaitMs = 0,
            MaxBytes = 1 << 20,
            SessionId = 0,
            SessionEpoch = -1,
            Topics = [new() { Topic = "no-such-topic", Partitions = [new() { Partition = 0, FetchOffset = 0, PartitionMaxBytes = 1 << 20 }] }],
        }, 12, 4);
        (_, byte[] fetched) = await client.ReceiveAsync(1);
        Assert.Equal((short)SharedLog.Protocol.ErrorCode.UnknownTopicOrPartition, new FetchResponse().ReadFrom(fetched, 12).Responses.Single().Partitions.Single().ErrorCode);
        static string? Nested(string text, string api, string error) => text.Split('\n').FirstOrDefault(l =>
            l.StartsWith("sharedlog_partition_errors_total{", StringComparison.Ordinal) && l.Contains($"api=\"{api}\"", StringComparison.Ordinal) && l.Contains($"error=\"{error}\"", StringComparison.Ordinal));
        string? nested = await MetricsScrape.UntilAsync(http, t => Nested(t, "ListOffsets", "UnknownTopicOrPartition") is not null && Nested(t, "Fetch", "UnknownTopicOrPartition") is not null ? t : null);
        Assert.NotNull(nested);
        Assert.EndsWith(" 1", Nested(nested, "Fetch", "UnknownTopicOrPartition"), StringComparison.Ordinal);
        Assert.Null(Nested(nested, "ListOffsets", "None"));

        // A FindCoordinator error is counted where the version sends it: per key from v4 (two keys, two errors, no
        // top-level one), at the top before.
        await client.SendAsync(new FindCoordinatorRequest { KeyType = 7, CoordinatorKeys = ["g1", "g2"] }, 4, 5);
        (_, byte[] batched) = await client.ReceiveAsync(1);
        Assert.All(new FindCoordinatorResponse().ReadFrom(batched, 4).Coordinators, c => Assert.Equal(((short)SharedLog.Protocol.ErrorCode.InvalidRequest, "Unknown coordinator key type 7."), (c.ErrorCode, c.ErrorMessage)));
        await client.SendAsync(new FindCoordinatorRequest { KeyType = 7, Key = "g3" }, 3, 6);
        (_, byte[] single) = await client.ReceiveAsync(1);
        Assert.Equal((short)SharedLog.Protocol.ErrorCode.InvalidRequest, new FindCoordinatorResponse().ReadFrom(single, 3).ErrorCode);
        string? coordinators = await MetricsScrape.UntilAsync(http, t => Nested(t, "FindCoordinator", "InvalidRequest") is not null && Counted(t, "FindCoordinator", "InvalidRequest") ? t : null);
        Assert.NotNull(coordinators);
        Assert.EndsWith(" 2", Nested(coordinators, "FindCoordinator", "InvalidRequest"), StringComparison.Ordinal);
        Assert.EndsWith(" 1", coordinators.Split('\n').Single(l => l.StartsWith("sharedlog_response_errors_total{", StringComparison.Ordinal) && l.Contains("api=\"FindCoordinator\"", StringComparison.Ordinal) && l.Contains("error=\"InvalidRequest\"", StringComparison.Ordinal)), StringComparison.Ordinal);
        // The v4 response carries no top-level error code (its property keeps the default, 0): it is not counted as None.
        Assert.False(Counted(coordinators, "FindCoordinator", "None"), "a v4 FindCoordinator response was counted with top-level error None");
    }

    [Fact]
    public async Task ConsumerGroupLagKeepsASeriesPerGroupPastOpenTelemetrysDefaultLimit()
    {
        // 2,100 groups with a committed offset on one partition: past OpenTelemetry's default of 2,000 series per metric,
        // after which the lag of the groups seen last would merge into one otel_metric_overflow series.
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.CreateTopicAsync("wide", 1);
        Assert.Equal(0, (await client.ProduceAsync("wide", 0, new SharedLog.Protocol.Records.RecordBatchBuilder(1).Add([1], [2], 1).Build(), 1)).ErrorCode);
        const int Groups = 2_100;
        for (int i = 0; i < Groups; i++)
        {
            await client.SendAsync(new OffsetCommitRequest { GroupId = $"wide-{i}", GenerationIdOrMemberEpoch = -1, MemberId = string.Empty, Topics = [new() { Name = "wide", Partitions = [new() { PartitionIndex = 0, CommittedOffset = 0 }] }] }, 8, i);
            (_, byte[] body) = await client.ReceiveAsync(1);
            Assert.Equal(0, new OffsetCommitResponse().ReadFrom(body, 8).Topics[0].Partitions[0].ErrorCode);
        }

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{broker.Host.HttpPort}") };
        string? text = await MetricsScrape.UntilAsync(http, t => t.Split('\n').Count(l => l.StartsWith("sharedlog_consumer_group_lag{", StringComparison.Ordinal) && l.Contains("topic=\"wide\"", StringComparison.Ordinal)) >= Groups ? t : null);
        Assert.NotNull(text);
        string[] lags = [.. text.Split('\n').Where(l => l.StartsWith("sharedlog_consumer_group_lag{", StringComparison.Ordinal))];
        Assert.DoesNotContain(lags, l => l.Contains("otel_metric_overflow", StringComparison.Ordinal));
        Assert.EndsWith(" 1", Assert.Single(lags, l => l.Contains($"group=\"wide-{Groups - 1}\"", StringComparison.Ordinal)).TrimEnd(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConsumerGroupLagFollowsCommitsAndAppends()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using (IProducer<string, string> producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = broker.BootstrapServers }).Build())
        {
            for (int i = 0; i < 10; i++)
            {
                await producer.ProduceAsync("lagging", new Message<string, string> { Key = "k", Value = $"v{i}" }).WaitAsync(TimeSpan.FromSeconds(30));
            }
        }

        using (IConsumer<string, string> consumer = new ConsumerBuilder<string, string>(new ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = "laggards", EnableAutoCommit = false }).Build())
        {
            consumer.Commit([new TopicPartitionOffset("lagging", 0, 4)]);
        }

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{broker.Host.HttpPort}") };
        string? line = await MetricsScrape.UntilAsync(http, text => text.Split('\n')
            .FirstOrDefault(l => l.StartsWith("sharedlog_consumer_group_lag{", StringComparison.Ordinal) && l.Contains("group=\"laggards\"", StringComparison.Ordinal) && l.Contains("topic=\"lagging\"", StringComparison.Ordinal)));

        Assert.NotNull(line);
        Assert.Equal("6", line.Split(' ')[^1].Trim());

        // Deleting the topic takes its committed offsets along: a topic made again under the name has no lag for the group.
        using IAdminClient admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();
        await admin.DeleteTopicsAsync(["lagging"]);
        await admin.CreateTopicsAsync([new TopicSpecification { Name = "lagging", NumPartitions = 1 }]);
        using (IProducer<string, string> producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = broker.BootstrapServers }).Build())
        {
            await producer.ProduceAsync("lagging", new Message<string, string> { Key = "k", Value = "again" }).WaitAsync(TimeSpan.FromSeconds(30));
        }

        string? gone = await MetricsScrape.UntilAsync(http, text => text.Split('\n')
            .Any(l => l.StartsWith("sharedlog_consumer_group_lag{", StringComparison.Ordinal) && l.Contains("group=\"laggards\"", StringComparison.Ordinal)) ? null : "gone");
        Assert.Equal("gone", gone);
    }

    [Fact]
    public async Task RefusalsAtTheUploadBacklogBoundAreLoggedOncePerIntervalWithTheirCount()
    {
        // Uploads only when 48 KiB wait (no timed rounds); appends past 64 KiB waiting are refused as retriable, and
        // librdkafka retries them until its message timeout: dozens of refusals, which the log sums up in one line.
        var logs = new CollectingLoggerProvider();
        await using BrokerFixture broker = await BrokerFixture.StartAsync(
            logging => logging.AddProvider(logs),
            "--Storage:UploadInterval", "01:00:00",
            "--Storage:UploadBytes", "49152",
            "--Storage:MaxPendingUploadBytes", "65536");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using (IProducer<string, byte[]> producer = new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = broker.BootstrapServers, Acks = Acks.All, MessageTimeoutMs = 3000, RetryBackoffMs = 20, RetryBackoffMaxMs = 50 }).Build())
        {
            await producer.ProduceAsync("backlog", new Message<string, byte[]> { Key = "f", Value = new byte[30_000] });
            ProduceException<string, byte[]> refused = await Assert.ThrowsAsync<ProduceException<string, byte[]>>(() => producer.ProduceAsync("backlog", new Message<string, byte[]> { Key = "g", Value = new byte[40_000] }));
            Assert.Equal(ErrorCode.Local_MsgTimedOut, refused.Error.Code);
        }

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{broker.Host.HttpPort}") };
        async Task<long> RefusalsAsync()
        {
            string? counted = await MetricsScrape.UntilAsync(http, text => text.Split('\n').FirstOrDefault(l => l.StartsWith("sharedlog_partition_errors_total", StringComparison.Ordinal) && l.Contains("error=\"KafkaStorageError\"", StringComparison.Ordinal)));
            Assert.NotNull(counted);
            return long.Parse(counted.Split(' ')[^1], System.Globalization.CultureInfo.InvariantCulture);
        }

        long refusals = await RefusalsAsync();
        Assert.True(refusals > 2, $"only {refusals} refusals: the producer did not retry");

        // The first refusal is logged at once; the rest of its 10 s window as one line with their count when the window ends.
        static long Logged(IEnumerable<string> lines) => lines.Sum(l => l.StartsWith("Produce to ", StringComparison.Ordinal) ? 1
            : long.Parse(l.AsSpan(0, l.IndexOf(' ', StringComparison.Ordinal)), System.Globalization.CultureInfo.InvariantCulture));
        string[] lines = [];
        for (var waited = System.Diagnostics.Stopwatch.StartNew(); waited.Elapsed < TimeSpan.FromSeconds(30) && Logged(lines) != refusals; await Task.Delay(100))
        {
            lines = [.. logs.Entries.Where(e => e.Message.Contains("refused with KAFKA_STORAGE_ERROR", StringComparison.Ordinal)).Select(e => e.Message)];
            refusals = await RefusalsAsync();
        }

        Assert.Equal(refusals, Logged(lines));
        Assert.StartsWith("Produce to backlog-0 refused with KAFKA_STORAGE_ERROR (retriable): ", lines[0], StringComparison.Ordinal);
        Assert.Contains("wait for upload", lines[0], StringComparison.Ordinal);
        Assert.Contains(" more produce(s) refused (retriable) within 10 s (KAFKA_STORAGE_ERROR: ", lines[^1], StringComparison.Ordinal);
        Assert.Contains("; the last to backlog-0 refused with KAFKA_STORAGE_ERROR: ", lines[^1], StringComparison.Ordinal);
        Assert.True(lines.Length <= 2 + (int)(clock.Elapsed.TotalSeconds / 10), $"{lines.Length} lines for {refusals} refusals in {clock.Elapsed}");
    }
}
