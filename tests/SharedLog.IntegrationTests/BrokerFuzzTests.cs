using System.Buffers.Binary;
using System.Reflection;
using Microsoft.Extensions.Logging;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Tests.Shared;

namespace SharedLog.IntegrationTests;

/// <summary>
/// Requests a client could send but no client would: every API the broker serves, at every version it serves, with
/// random field values (names from a small pool, so requests meet each other's topics and groups; see
/// <see cref="Choose"/>), and the same frames with random byte edits, then pipelined bursts. Each must be answered, or
/// refused by closing the connection, within a deadline (the first request left unanswered ends the run); no handler
/// may fail; and the broker must serve a real client afterwards, in one of the fuzzed groups too. Seeded: a failure
/// names its seed, and the same seed sends the same requests (record timestamps near now aside).
/// </summary>
public class BrokerFuzzTests
{
    private const int RequestsPerVersion = 24;
    private const int MutationsPerVersion = 12;

    private const int PipelinedBursts = 400;

    // SHAREDLOG_FUZZ_SEED explores other inputs (a failure names its seed); the test command uses the fixed one.
    private static readonly int Seed = int.TryParse(Environment.GetEnvironmentVariable("SHAREDLOG_FUZZ_SEED"), out int seed) ? seed : 20261204;
    private static readonly TimeSpan AnswerDeadline = TimeSpan.FromSeconds(20);
    private static readonly string[] ConfigNames =
    [
        "retention.ms", "retention.bytes", "cleanup.policy", "max.message.bytes", "message.timestamp.type",
        "message.timestamp.before.max.ms", "message.timestamp.after.max.ms", "compression.type", "segment.bytes",
        "min.insync.replicas", "delete.retention.ms", "min.compaction.lag.ms", "nonexistent.config",
    ];

    private static readonly string[] ConfigValues =
    [
        "-1", "0", "1", "100", "9223372036854775807", "-9223372036854775808", "abc", "", "compact", "delete", "compact,delete",
        "LogAppendTime", "CreateTime", "zstd", "producer", "WARN",
    ];

    private static readonly string[] Names = ["fuzz", "fuzz-b", "fuzz", "fuzz-b", "s1", "", "fuzz.c"];

    [Fact]
    public async Task RandomRequestsOfEveryServedApiAreAnsweredOrRefusedAndNoHandlerFails()
    {
        var logs = new CollectingLoggerProvider();
        await using BrokerFixture broker = await BrokerFixture.StartAsync(logging => logging.AddProvider(logs));
        using (RawKafkaClient setup = await RawKafkaClient.ConnectAsync(broker.BootstrapServers))
        {
            await setup.CreateTopicAsync("fuzz", 3);
            await setup.CreateTopicAsync("fuzz-b", 2);
        }

        // fuzz-b has a contract (JSON schema, a rule, a hashed field, quarantine), so produces to it go through the gate.
        int schemaId = await ContractOnFuzzBAsync(broker);
        List<ApiVersionsResponse.ApiVersion> served = await ServedApisAsync(broker.BootstrapServers);
        var random = new Random(Seed);
        var members = new GroupMemory();
        var requests = new RandomRequests(random, (property, random) => members.Choose(property, random) ?? Choose(property, random, schemaId));
        var problems = new List<string>();
        int answered = 0;
        int refused = 0;
        RawKafkaClient connection = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        int correlation = 1;
        bool hung = false;

        async Task Exchange(List<byte[]> frames, string what)
        {
            switch (await ExchangeAsync(connection, frames, correlation++, members))
            {
                case Outcome.Answered:
                    answered++;
                    break;
                case Outcome.Closed:
                    refused++;
                    connection.Dispose();
                    connection = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
                    break;
                default:
                    // The first request left hanging ends the run: a wedged broker must not cost CI 20 s per request.
                    problems.Add($"{what}: neither answered nor refused within {AnswerDeadline.TotalSeconds} s: {string.Join(" ", frames.Select(f => Convert.ToHexString(f.AsSpan(0, Math.Min(f.Length, 96)))))}");
                    hung = true;
                    break;
            }
        }

        try
        {
            foreach (ApiVersionsResponse.ApiVersion api in served)
            {
                for (short version = api.MinVersion; version <= api.MaxVersion; version++)
                {
                    // Produce and Fetch, the paths every record takes (and the contract gate), get four times as many.
                    int weight = (ApiKey)api.ApiKey is ApiKey.Produce or ApiKey.Fetch ? 4 : 1;
                    for (int i = 0; i < weight * (RequestsPerVersion + MutationsPerVersion) && !hung; i++)
                    {
                        byte[] frame = RandomRequests.Frame(requests.Request((ApiKey)api.ApiKey), version, correlation++);
                        // An edit can turn a Fetch's max wait or a JoinGroup's rebalance timeout into minutes, which the broker
                        // honours as Kafka does (a group then waits for that member): those two are sent unedited here, and
                        // their decoders get edited frames in the protocol tests' fuzzing.
                        if (i % (RequestsPerVersion + MutationsPerVersion) >= RequestsPerVersion && (ApiKey)api.ApiKey is not (ApiKey.Fetch or ApiKey.JoinGroup))
                        {
                            frame = requests.Mutate(frame);
                        }

                        await Exchange([frame], $"{(ApiKey)api.ApiKey} v{version}");
                    }
                }
            }

            // Then requests pipelined, as clients send them: several in flight on one connection (pipelined produces run
            // side by side up to their ordering points), unmutated, of random APIs and versions.
            for (int burst = 0; burst < PipelinedBursts && !hung; burst++)
            {
                var frames = new List<byte[]>();
                for (int i = 0, size = 2 + random.Next(5); i < size; i++)
                {
                    ApiVersionsResponse.ApiVersion api = served[random.Next(served.Count)];
                    frames.Add(RandomRequests.Frame(requests.Request((ApiKey)api.ApiKey), (short)random.Next(api.MinVersion, api.MaxVersion + 1), correlation++));
                }

                await Exchange(frames, $"burst {burst}");
            }
        }
        finally
        {
            connection.Dispose();
        }

        problems.AddRange(logs.Entries.Where(e => e.Level >= LogLevel.Error).Select(e => $"logged {e.Level} in {e.Category}: {e.Message} {e.Exception}"));
        Assert.True(problems.Count == 0, $"seed {Seed}: {problems.Count} problems:\n" + string.Join("\n", problems.Take(20)));

        // Both outcomes must be reached, or the fuzzer is not exploring: valid requests answered, broken frames refused.
        Assert.True(answered > 2000 && refused > 500, $"answered {answered}, refused {refused}");
        await KafkaClients.AssertRoundTripAsync(broker.BootstrapServers, "after-fuzz");

        // The fuzzed group still takes a real member, which reads what was just written.
        Assert.Equal(10, KafkaClients.ConsumeInGroup(broker.BootstrapServers, "fuzz", "after-fuzz", 10).Count);
    }

    private enum Outcome
    {
        Answered,
        Closed,
        Hung,
    }

    /// <summary>
    /// Sends the frames, then an ApiVersions request; the broker answers a connection's requests in order, so the last
    /// answer arriving means the others were dealt with (a Produce with acks=0 has no answer of its own).
    /// </summary>
    private static async Task<Outcome> ExchangeAsync(RawKafkaClient connection, List<byte[]> frames, int probeCorrelation, GroupMemory members)
    {
        using var deadline = new CancellationTokenSource(AnswerDeadline);
        try
        {
            foreach (byte[] frame in (List<byte[]>)[.. frames, RandomRequests.Frame(new ApiVersionsRequest(), 0, probeCorrelation)])
            {
                byte[] sized = new byte[4 + frame.Length];
                BinaryPrimitives.WriteInt32BigEndian(sized, frame.Length);
                frame.CopyTo(sized, 4);
                await connection.Stream.WriteAsync(sized, deadline.Token);
            }

            byte[] size = new byte[4];
            while (true)
            {
                await connection.Stream.ReadExactlyAsync(size, deadline.Token);
                byte[] response = new byte[BinaryPrimitives.ReadInt32BigEndian(size)];
                await connection.Stream.ReadExactlyAsync(response, deadline.Token);
                if (BinaryPrimitives.ReadInt32BigEndian(response) == probeCorrelation)
                {
                    return Outcome.Answered;
                }

                members.Learn(frames, response);
            }
        }
        catch (OperationCanceledException)
        {
            return Outcome.Hung;
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or System.Net.Sockets.SocketException or ObjectDisposedException or InvalidOperationException)
        {
            return Outcome.Closed;
        }
    }

    /// <summary>
    /// Member ids and generations the broker handed out in JoinGroup answers, offered back to later group requests (half
    /// of the time), so SyncGroup, Heartbeat, OffsetCommit and LeaveGroup also reach members and generations that exist.
    /// </summary>
    private sealed class GroupMemory
    {
        private const int Kept = 16;
        private readonly List<string> _memberIds = [];
        private readonly List<int> _generations = [];

        public object? Choose(PropertyInfo property, Random random)
        {
            Type type = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
            if (random.Next(2) == 0)
            {
                return null;
            }

            return property.Name switch
            {
                "MemberId" or "Leader" when type == typeof(string) && _memberIds.Count > 0 => _memberIds[random.Next(_memberIds.Count)],
                "GenerationId" or "GenerationIdOrMemberEpoch" when type == typeof(int) && _generations.Count > 0 => _generations[random.Next(_generations.Count)],
                "GroupInstanceId" => RandomRequests.Null, // dynamic members mostly; a static one now and then from the name pool
                _ => null,
            };
        }

        /// <summary>Reads a JoinGroup answer to one of <paramref name="frames"/> (matched by correlation id; others are skipped).</summary>
        public void Learn(List<byte[]> frames, byte[] response)
        {
            int correlation = BinaryPrimitives.ReadInt32BigEndian(response);
            byte[]? request = frames.Find(f => f.Length >= 8 && BinaryPrimitives.ReadInt32BigEndian(f.AsSpan(4)) == correlation);
            if (request is null || (ApiKey)BinaryPrimitives.ReadInt16BigEndian(request) != ApiKey.JoinGroup)
            {
                return;
            }

            short version = BinaryPrimitives.ReadInt16BigEndian(request.AsSpan(2));
            try
            {
                var reader = new KafkaReader(new System.Buffers.ReadOnlySequence<byte>(response));
                new ResponseHeader().Read(ref reader, ApiMessages.ResponseHeaderVersion(ApiKey.JoinGroup, version));
                var joined = new JoinGroupResponse().ReadFrom(response.AsMemory((int)reader.Consumed), version);
                Remember(_memberIds, joined.MemberId);
                Remember(_generations, joined.GenerationId);
            }
            catch (KafkaProtocolException)
            {
                // An answer to an edited frame that only looks like this JoinGroup: nothing to learn.
            }
        }

        private static void Remember<T>(List<T> kept, T value)
        {
            if (value is string { Length: 0 } || kept.Contains(value))
            {
                return;
            }

            if (kept.Count == Kept)
            {
                kept.RemoveAt(0);
            }

            kept.Add(value);
        }
    }

    /// <summary>
    /// Names from a small pool, partitions and offsets near the fuzz topic's, record batches that are well formed (with
    /// random producer ids, sequences, timestamps and codecs), valid acks and new fetch sessions part of the time, and
    /// timeouts short enough for a run of thousands of requests; everything else random.
    /// </summary>
    private static object? Choose(PropertyInfo property, Random random, int schemaId)
    {
        Type type = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
        string name = property.Name;
        bool often = random.Next(3) > 0;
        if (type == typeof(Guid))
        {
            // From the seeded generator (topic ids, directory ids), so a seed repeats its requests.
            byte[] bytes = new byte[16];
            random.NextBytes(bytes);
            return new Guid(bytes);
        }

        if (name == "TransactionalId")
        {
            // Transactions are not served; most producers here are plain or idempotent.
            return often ? RandomRequests.Null : null;
        }

        // Configs by their real names and odd values, so topics change under the fuzz (compaction, timestamps, sizes).
        bool inConfig = property.DeclaringType?.Name.Contains("Config", StringComparison.Ordinal) is true;
        if (type == typeof(string) && inConfig && name is "Name" or "Value")
        {
            string[] pool = name == "Name" ? ConfigNames : ConfigValues;
            return often ? pool[random.Next(pool.Length)] : null;
        }

        if (type == typeof(sbyte) && name == "ResourceType")
        {
            // Topic, broker and broker logger: the resources the broker serves.
            return often ? (sbyte)(random.Next(3) switch { 0 => 2, 1 => 4, _ => 8 }) : null;
        }

        // Group joins that can succeed: the consumer protocol type and assignors real members use.
        if (type == typeof(string) && name == "ProtocolType")
        {
            return often ? "consumer" : null;
        }

        if (type == typeof(string) && name == "Name" && property.DeclaringType?.Name == "JoinGroupRequestProtocol")
        {
            return often ? (random.Next(2) == 0 ? "range" : "cooperative-sticky") : null;
        }

        if (type == typeof(string))
        {
            return often ? Names[random.Next(Names.Length)] : null;
        }

        if (name == "Acks" && type == typeof(short))
        {
            return often ? (short)random.Next(-1, 2) : null;
        }

        if (name is "SessionId" or "SessionEpoch" && type == typeof(int))
        {
            // A new full fetch (0, -1 or 0) or a sessionless one, most of the time.
            return often ? random.Next(-1, 1) : null;
        }

        if (type == typeof(System.Buffers.ReadOnlySequence<byte>) && name == "Records")
        {
            return often ? new System.Buffers.ReadOnlySequence<byte>(RandomBatch(random, schemaId)) : null;
        }

        if (type == typeof(int) && name is "Index" or "Partition" or "PartitionIndex")
        {
            return often ? random.Next(-1, 4) : null;
        }

        if (type == typeof(long) && name.EndsWith("Offset", StringComparison.Ordinal))
        {
            return often ? random.Next(4) switch { 0 => -1L, 1 => -2L, 2 => long.MaxValue, _ => (long)random.Next(0, 50) } : null;
        }

        bool timeout = name.EndsWith("TimeoutMs", StringComparison.Ordinal) || name.EndsWith("WaitMs", StringComparison.Ordinal);
        if (!timeout || (type != typeof(int) && type != typeof(long)))
        {
            return null;
        }

        // Session timeouts the group coordinator takes (group.min.session.timeout.ms, 6 s, and up) most of the time; everything
        // else waits at most 200 ms.
        int milliseconds = name == "SessionTimeoutMs" && random.Next(4) > 0 ? random.Next(6000, 6500) : random.Next(-1, 200);
        return type == typeof(int) ? milliseconds : (object)(long)milliseconds;
    }

    /// <summary>A batch with a valid CRC whose header and records take random values a producer could send.</summary>
    private static byte[] RandomBatch(Random random, int schemaId)
    {
        long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        long baseTimestamp = random.Next(4) switch { 0 => -1, 1 => 0, 2 => long.MaxValue / 2, _ => now };
        var builder = new SharedLog.Protocol.Records.RecordBatchBuilder(baseTimestamp)
        {
            Compression = (SharedLog.Protocol.Records.CompressionCodec)random.Next(5),
            ProducerId = random.Next(3) == 0 ? random.Next(-1, 5) : -1,
            ProducerEpoch = (short)random.Next(-1, 3),
            BaseSequence = random.Next(-1, 5),
            IsTransactional = random.Next(8) == 0,
            LastOffsetDelta = random.Next(6) == 0 ? random.Next(0, 10) : null,
        };
        int records = random.Next(6);
        for (int i = 0; i < records; i++)
        {
            byte[]? key = random.Next(3) == 0 ? null : new byte[random.Next(8)];
            byte[]? value = random.Next(6) switch
            {
                0 => null,
                1 or 2 => FramedJson(schemaId, random.Next(3) switch { 0 => "{\"id\":\"a\"}", 1 => "{\"id\":\"\"}", _ => "{\"other\":1}" }),
                _ => new byte[random.Next(64)],
            };
            List<SharedLog.Protocol.Records.RecordHeaderValue>? headers = random.Next(3) == 0 ? [new("h" + random.Next(3), random.Next(2) == 0 ? null : [1, 2])] : null;
            builder.Add(key, value, baseTimestamp + random.Next(-5, 5), headers);
        }

        try
        {
            return builder.Build();
        }
        catch (InvalidOperationException)
        {
            // No records and no explicit last offset delta: a builder makes no such batch, so send one record.
            var single = new SharedLog.Protocol.Records.RecordBatchBuilder(now);
            single.Add(null, [1], now);
            return single.Build();
        }
    }

    private static byte[] FramedJson(int schemaId, string json)
    {
        byte[] payload = new byte[SharedLog.Contracts.Registry.SchemaWireFormat.HeaderSize + System.Text.Encoding.UTF8.GetByteCount(json)];
        SharedLog.Contracts.Registry.SchemaWireFormat.WriteHeader(payload, schemaId);
        System.Text.Encoding.UTF8.GetBytes(json, payload.AsSpan(SharedLog.Contracts.Registry.SchemaWireFormat.HeaderSize));
        return payload;
    }

    private static async Task<int> ContractOnFuzzBAsync(BrokerFixture broker)
    {
        using var registry = new HttpClient { BaseAddress = new Uri(broker.RegistryUrl) };
        const string Schema = """{"schemaType":"JSON","schema":"{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"}}}"}""";
        using HttpResponseMessage registered = await registry.PostAsync("/subjects/fuzz-b-value/versions", new StringContent(Schema, System.Text.Encoding.UTF8, "application/vnd.schemaregistry.v1+json"));
        string body = await registered.Content.ReadAsStringAsync();
        Assert.True(registered.IsSuccessStatusCode, body);
        int schemaId = System.Text.Json.JsonDocument.Parse(body).RootElement.GetProperty("id").GetInt32();

        using var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{broker.Host.HttpPort}") };
        const string Contract = """
            topic: fuzz-b
            class: certified
            value:
              strategy: TopicNameStrategy
            rules:
              - name: has-id
                expr: has(value.id) && value.id.size() > 0
            privacy:
              - field: id
                action: hash
            onFailure: quarantine
            """;
        using HttpResponseMessage applied = await admin.PostAsync("/contracts", new StringContent(Contract, System.Text.Encoding.UTF8, "application/yaml"));
        Assert.True(applied.IsSuccessStatusCode, await applied.Content.ReadAsStringAsync());
        return schemaId;
    }

    private static async Task<List<ApiVersionsResponse.ApiVersion>> ServedApisAsync(string bootstrap)
    {
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(bootstrap);
        await client.SendAsync(new ApiVersionsRequest { ClientSoftwareName = "fuzz", ClientSoftwareVersion = "1" }, 3, 1);
        (_, byte[] body) = await client.ReceiveAsync(0);
        return new ApiVersionsResponse().ReadFrom(body, 3).ApiKeys;
    }
}
