using System.Buffers;
using System.Diagnostics;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Protocol.Records;

namespace SharedLog.IntegrationTests;

/// <summary>
/// Clients written by others, run as separate processes against the real broker: kcat (librdkafka
/// CLI), kafka-python (pure Python), confluent-kafka-python's AdminClient, kafkajs and
/// @platformatic/kafka (pure JavaScript, the second one on the newest protocol versions) and sarama
/// (pure Go, Debian's 1.22, built from source by tests/compat/sarama.sh). ./test.sh installs them; each script checks content and order itself and exits non-zero
/// on any difference.
/// </summary>
public class CompatClientTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(120);

    private static string CompatDirectory => Path.Combine(RepositoryRoot(), "tests", "compat");

    private static string RepositoryRoot()
    {
        for (DirectoryInfo? dir = new(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SharedLogBroker.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Tests must run from inside the SharedLog repository.");
    }

    internal static Task RunAsync(string program, params string[] args) => RunAsync(Deadline, program, args);

    internal static async Task RunAsync(TimeSpan deadline, string program, params string[] args)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = CompatDirectory };
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using Process process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {program}");
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(deadline);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', args)} did not finish within {deadline}: {await stderr}");
        }

        Assert.True(process.ExitCode == 0, $"{program} {string.Join(' ', args)} exited {process.ExitCode}\nstdout: {await stdout}\nstderr: {await stderr}");
    }

    [Fact]
    public async Task Kcat()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        await RunAsync("bash", Path.Combine(CompatDirectory, "kcat.sh"), broker.BootstrapServers, "kcat-topic");

        // kcat.sh produces with -z snappy. Debian's librdkafka (2.0.2) compresses only for a broker whose Produce
        // versions start at 0, and otherwise sends the records uncompressed without a word: check what was stored.
        // librdkafka also sends a batch uncompressed when compressing would not make it smaller (a first batch of one
        // short record, when its timing splits the input so; seen here for the first 14), so the check is that most
        // records came in snappy batches.
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        var fetch = new FetchRequest
        {
            ReplicaId = -1,
            MaxWaitMs = 0,
            MinBytes = 0,
            MaxBytes = 1 << 20,
            SessionEpoch = -1,
            Topics = [new() { Topic = "kcat-topic", Partitions = [new() { Partition = 0, FetchOffset = 0, PartitionMaxBytes = 1 << 20 }] }],
        };
        await client.SendAsync(fetch, 12, 1);
        (_, byte[] body) = await client.ReceiveAsync(1);
        var reader = new RecordBatchReader(new FetchResponse().ReadFrom(body, 12).Responses.Single().Partitions.Single().Records!.Value, allowPartialTail: true);
        var recordsByCodec = new Dictionary<CompressionCodec, int>();
        while (reader.TryReadNext(out RecordBatch batch))
        {
            recordsByCodec[batch.Compression] = recordsByCodec.GetValueOrDefault(batch.Compression) + batch.RecordCount;
        }

        Assert.True(recordsByCodec.GetValueOrDefault(CompressionCodec.Snappy) >= 150, string.Join(", ", recordsByCodec.Select(c => $"{c.Key}: {c.Value} records")));
    }

    /// <summary>A client script that takes the bootstrap address and a topic, checks everything itself, and exits 0.</summary>
    [Theory]
    [InlineData("/usr/bin/python3", "kafka_python.py", "kafka-python-topic")]
    [InlineData("/usr/bin/python3", "confluent_admin.py", "admin-topic")]
    [InlineData("node", "kafkajs.js", "kafkajs-topic")]
    [InlineData("node", "platformatic.mjs", "platformatic-topic")]
    public async Task ClientScript(string program, string script, string topic)
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        await RunAsync(program, Path.Combine(CompatDirectory, script), broker.BootstrapServers, topic);
    }

    [Fact]
    public async Task Sarama()
    {
        // Sarama 1.22 sends no ApiVersions and speaks the versions of Kafka 2.2: OffsetCommit v1, JoinGroup v0.
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        // Its deadline also covers building it (cgo, a cold build cache on a fresh machine); the program bounds its own waits at 60 s each.
        await RunAsync(TimeSpan.FromMinutes(5), "bash", Path.Combine(CompatDirectory, "sarama.sh"), broker.BootstrapServers, "sarama-topic");
    }

    [Fact]
    public async Task KafkajsWithConfluentSchemaRegistry()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        await RunAsync("node", Path.Combine(CompatDirectory, "kafkajs_registry.js"), broker.BootstrapServers, broker.RegistryUrl, "kafkajs-registry-topic");
    }

    [Fact]
    public async Task ConfluentKafkaPythonProtobufSerdesWithAContract()
    {
        // Its serializer registers schemas as base64 serialized descriptors, not .proto text.
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        await RunAsync("/usr/bin/python3", Path.Combine(CompatDirectory, "confluent_protobuf.py"), broker.BootstrapServers, broker.RegistryUrl, $"http://127.0.0.1:{broker.Host.HttpPort}", "py-protobuf-topic");
    }

    [Fact]
    public async Task KafkaPythonWithAJsonSchemaContract()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        await RunAsync("/usr/bin/python3", Path.Combine(CompatDirectory, "kafka_python_contract.py"), broker.BootstrapServers, broker.RegistryUrl, $"http://127.0.0.1:{broker.Host.HttpPort}", "py-contract-topic");
    }
}
