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

    private static async Task<int> WalEntriesAsync(WalOptions options)
    {
        await using var wal = new FasterWriteAheadLog(options);
        return wal.ReadDurableEntries().Count();
    }
}
