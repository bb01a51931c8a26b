using Microsoft.Extensions.DependencyInjection;
using SharedLog.Broker;
using SharedLog.Protocol.Records;
using SharedLog.Storage;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.ObjectStore;
using SharedLog.Storage.Streams;
using SharedLog.Storage.Wal;

namespace SharedLog.IntegrationTests;

/// <summary>A broker whose start fails leaves its data as it found it, for the next start.</summary>
public sealed class FailedStartTests
{
    /// <summary>
    /// A second broker started on a running broker's data directory (a double start, a supervisor restarting it before
    /// the old one exited) stops before it opens anything: it used to open the WAL and metadata, raise every partition's
    /// leader epoch (fencing the running broker's uploads for good) and, on its way out, trim the shared WAL. Once the
    /// first broker is gone, the directory can be used again.
    /// </summary>
    [Fact]
    public async Task ASecondBrokerOnTheSameDataDirectoryIsRefusedAndTheFirstKeepsServing()
    {
        string dataDir = Path.Combine(Path.GetTempPath(), "sharedlog-locked-" + Guid.NewGuid().ToString("N"));
        try
        {
            await using (BrokerFixture first = await BrokerFixture.StartAsync(dataDir, deleteOnDispose: false))
            {
                using var producer = new Confluent.Kafka.ProducerBuilder<string, string>(new Confluent.Kafka.ProducerConfig { BootstrapServers = first.BootstrapServers }).Build();
                Assert.Equal(0, (await producer.ProduceAsync("kept", new Confluent.Kafka.Message<string, string> { Key = "k", Value = "before" })).Offset.Value);
                int epoch = first.Host.Services.GetRequiredService<SharedLog.Broker.Cluster.TopicService>().FindStream("kept", 0)!.LeaderEpoch;

                var refused = await Assert.ThrowsAsync<DataDirectoryInUseException>(() => BrokerFixture.StartAsync(dataDir, deleteOnDispose: false));
                Assert.Contains(Path.GetFullPath(dataDir), refused.Message, StringComparison.Ordinal);

                // The first broker's partitions keep their epoch, and it keeps taking records.
                Assert.Equal(epoch, first.Host.Services.GetRequiredService<SharedLog.Broker.Cluster.TopicService>().FindStream("kept", 0)!.LeaderEpoch);
                Assert.Equal(1, (await producer.ProduceAsync("kept", new Confluent.Kafka.Message<string, string> { Key = "k", Value = "after" })).Offset.Value);
            }

            await using BrokerFixture again = await BrokerFixture.StartAsync(dataDir, deleteOnDispose: false);
            using var consumer = new Confluent.Kafka.ConsumerBuilder<string, string>(new Confluent.Kafka.ConsumerConfig { BootstrapServers = again.BootstrapServers, GroupId = "locked", AutoOffsetReset = Confluent.Kafka.AutoOffsetReset.Earliest }).Build();
            Assert.Equal(2, consumer.QueryWatermarkOffsets(new Confluent.Kafka.TopicPartition("kept", 0), TimeSpan.FromSeconds(30)).High.Value);
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
    /// Acknowledged batches only in the WAL (a crash before their upload), then a start that fails before the WAL is
    /// replayed (here the object store cannot be reached): the shutdown that follows must not upload and trim, which
    /// counted the entries no stream had replayed as uploaded and deleted them.
    /// </summary>
    [Fact]
    public async Task AFailedStartDoesNotTrimAcknowledgedDataOutOfTheWal()
    {
        string dataDir = Path.Combine(Path.GetTempPath(), "sharedlog-failstart-" + Guid.NewGuid().ToString("N"));
        var walOptions = new WalOptions { Directory = Path.Combine(dataDir, "wal") };
        try
        {
            await using (var wal = new FasterWriteAheadLog(walOptions))
            {
                await using var metadata = new SqliteMetadataStore(new SqliteMetadataStoreOptions { DatabasePath = Path.Combine(dataDir, BrokerHost.MetadataFileName) });
                await metadata.InitializeAsync();
                var objects = new LocalDirectoryObjectStore(new LocalObjectStoreOptions { RootDirectory = Path.Combine(dataDir, "objects") });
                await using var streams = new StreamStore(new StorageOptions { UploadInterval = TimeSpan.FromHours(1) }, wal, objects, metadata);
                await streams.StartAsync();
                TopicMetadata topic = await metadata.CreateTopicAsync("t", 1, new Dictionary<string, string>());
                long stream = topic.Partitions[0].StreamId;
                streams.Open(await metadata.ClaimLeadershipAsync(stream, 1));
                for (int i = 0; i < 5; i++)
                {
                    await streams.AppendAsync(stream, new RecordBatchBuilder(1000 + i).Add(BitConverter.GetBytes(i), new byte[100], 1000 + i).Build());
                }
            }

            Assert.Equal(5, await WalEntriesAsync(walOptions));

            BrokerHost host = BrokerHost.Create([
                "--port", "0", "--http-port", "0", "--registry-port", "0", "--data-dir", dataDir, "--host", "127.0.0.1",
                "--ObjectStore:Kind", "s3", "--S3:ServiceUrl", "http://127.0.0.1:1", "--S3:Bucket", "b", "--S3:AccessKey", "a", "--S3:SecretKey", "s", "--S3:MaxRetries", "0"]);
            await Assert.ThrowsAnyAsync<Exception>(() => host.StartAsync());
            await host.DisposeAsync();

            Assert.Equal(5, await WalEntriesAsync(walOptions));
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
    /// The listener's address is checked with a message naming the setting: a host name is no address to bind (it was an
    /// unhandled FormatException), and 0.0.0.0 without an advertised host would be handed to clients, who cannot use it.
    /// localhost binds the loopback address.
    /// </summary>
    [Fact]
    public async Task TheListenerAddressIsCheckedAtStart()
    {
        string dataDir = Path.Combine(Path.GetTempPath(), "sharedlog-host-" + Guid.NewGuid().ToString("N"));
        string[] Args(params string[] host) => ["--port", "0", "--http-port", "-1", "--registry-port", "-1", "--data-dir", dataDir, .. host];
        try
        {
            var name = Assert.Throws<ArgumentException>(() => BrokerHost.Create(Args("--host", "broker.example")));
            Assert.Contains("Broker:Host", name.Message, StringComparison.Ordinal);
            var wildcard = Assert.Throws<ArgumentException>(() => BrokerHost.Create(Args("--host", "0.0.0.0")));
            Assert.Contains("AdvertisedHost", wildcard.Message, StringComparison.Ordinal);

            await using BrokerHost local = BrokerHost.Create(Args("--host", "localhost"));
            await local.StartAsync();
            using RawKafkaClient client = await RawKafkaClient.ConnectAsync($"127.0.0.1:{local.KafkaPort}");
            await client.CreateTopicAsync("reachable", 1);
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
    /// An interval past what .NET's timers take (about 49.7 days) is refused at start, naming the setting: it used to start
    /// a broker whose loop had already failed (no enforcement summary ever written) and whose shutdown then threw.
    /// </summary>
    [Theory]
    [InlineData("--Broker:ContractSummaryIntervalSeconds", "5000000", "ContractSummaryIntervalSeconds")]
    [InlineData("--Broker:OffsetsRetentionCheckIntervalMs", "5000000000", "offsets.retention.check.interval.ms")]
    [InlineData("--Storage:CleanupInterval", "60.00:00:00", "CleanupInterval")]
    [InlineData("--Storage:UploadInterval", "50.00:00:00", "UploadInterval")]
    public void AnIntervalLongerThanATimerTakesIsRefusedAtStart(string setting, string value, string named)
    {
        string dataDir = Path.Combine(Path.GetTempPath(), "sharedlog-host-" + Guid.NewGuid().ToString("N"));
        try
        {
            var refused = Assert.Throws<ArgumentException>(() => BrokerHost.Create(["--port", "0", "--http-port", "-1", "--registry-port", "-1", "--data-dir", dataDir, setting, value]));
            Assert.Contains(named, refused.Message, StringComparison.Ordinal);
            Assert.Contains("49 days", refused.Message, StringComparison.Ordinal);
        }
        finally
        {
            if (Directory.Exists(dataDir))
            {
                Directory.Delete(dataDir, recursive: true);
            }
        }
    }

    private static async Task<int> WalEntriesAsync(WalOptions options)
    {
        await using var wal = new FasterWriteAheadLog(options);
        return wal.ReadDurableEntries().Count();
    }

    [Theory]
    [InlineData("--prot", "9093")]
    [InlineData("--help", "x")]
    [InlineData("-h", "x")]
    [InlineData("9093", "x")]
    public void AnArgumentTheBrokerDoesNotKnowIsAUsageErrorNotIgnored(string argument, string value)
    {
        // From a review: "--help" and a misspelt "--prot 9093" started a broker on every default (port 9092, ./data).
        var refused = Assert.Throws<ArgumentException>(() => BrokerHost.Create(["--port", "0", "--http-port", "-1", "--registry-port", "-1", "--data-dir", Path.Combine(Path.GetTempPath(), Guid.NewGuid().ToString("N")), argument, value]));
        Assert.Contains($"unknown argument '{argument}'", refused.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--Broker:ContractSumaryIntervalSeconds", "Broker")]
    [InlineData("--Storage:Bucket", "Storage")]
    [InlineData("--Wal:PageSizeBit", "Wal")]
    [InlineData("--Contracts:Hashkey2", "Contracts")]
    [InlineData("--ObjectStore:Knd", "ObjectStore")]
    public void AMisspeltSettingIsAUsageErrorNotIgnored(string setting, string section)
    {
        // From a docs review: the flag check let any --Section:Key through, and the binder ignored keys it did not know.
        var refused = Assert.Throws<ArgumentException>(() => BrokerHost.Create(["--port", "0", "--http-port", "-1", "--registry-port", "-1", "--data-dir", Path.Combine(Path.GetTempPath(), Guid.NewGuid().ToString("N")), setting, "5"]));
        Assert.Contains(section, refused.Message, StringComparison.Ordinal);
        Assert.Contains(setting[(setting.IndexOf(':') + 1)..], refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FlagsAndSettingsByKeyAreTakenInEitherForm() =>
        BrokerHost.CheckArguments(["--port", "0", "--data-dir=/tmp/x", "--Broker:GroupInitialRebalanceDelayMs", "200", "--Wal:SegmentBytes=1048576", "--Port", "0", "/Broker:NodeId", "1", "Broker:Host=127.0.0.1", "--http-port", "-1"]);
}
