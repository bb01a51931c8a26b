using Avro;
using Avro.Generic;
using Confluent.Kafka;
using Confluent.Kafka.SyncOverAsync;
using Confluent.SchemaRegistry;
using Confluent.SchemaRegistry.Serdes;
using Metadata = Confluent.SchemaRegistry.Metadata;
using Schema = Confluent.SchemaRegistry.Schema;

namespace SharedLog.IntegrationTests;

/// <summary>
/// Confluent's own .NET registry client and Avro/JSON serdes against the broker's registry port:
/// register, look up, evolve, get refused, and produce/consume serialized records through SharedLog.
/// </summary>
public class SchemaRegistryClientTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private const string PaymentV1 = """
        {"type":"record","name":"Payment","namespace":"it.registry","fields":[
          {"name":"id","type":"string"},
          {"name":"amount","type":"double"}]}
        """;

    // Compatible with v1 under BACKWARD: the new field has a default.
    private const string PaymentV2 = """
        {"type":"record","name":"Payment","namespace":"it.registry","fields":[
          {"name":"id","type":"string"},
          {"name":"amount","type":"double"},
          {"name":"currency","type":"string","default":"EUR"}]}
        """;

    // Incompatible with v2 under BACKWARD: a new field without a default cannot be read from old data.
    private const string PaymentBroken = """
        {"type":"record","name":"Payment","namespace":"it.registry","fields":[
          {"name":"id","type":"string"},
          {"name":"amount","type":"double"},
          {"name":"currency","type":"string","default":"EUR"},
          {"name":"merchant","type":"string"}]}
        """;

    private static CachedSchemaRegistryClient Client(BrokerFixture broker) =>
        new(new SchemaRegistryConfig { Url = broker.RegistryUrl });

    [Fact]
    public async Task RegisterLookUpEvolveAndRefuse()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using CachedSchemaRegistryClient client = Client(broker);

        int v1 = await client.RegisterSchemaAsync("payments-value", new Schema(PaymentV1, SchemaType.Avro));
        int again = await client.RegisterSchemaAsync("payments-value", new Schema(PaymentV1.Replace("\n", " "), SchemaType.Avro));
        Assert.Equal(v1, again);

        int v2 = await client.RegisterSchemaAsync("payments-value", new Schema(PaymentV2, SchemaType.Avro));
        Assert.NotEqual(v1, v2);
        Assert.Equal([1, 2], await client.GetSubjectVersionsAsync("payments-value"));

        RegisteredSchema latest = await client.GetLatestSchemaAsync("payments-value");
        Assert.Equal(2, latest.Version);
        Assert.Equal(v2, latest.Id);

        Schema byId = await client.GetSchemaAsync(v1);
        Assert.Contains("\"amount\"", byId.SchemaString, StringComparison.Ordinal);
        Assert.Equal(SchemaType.Avro, byId.SchemaType);

        RegisteredSchema found = await client.LookupSchemaAsync("payments-value", new Schema(PaymentV1, SchemaType.Avro), ignoreDeletedSchemas: true);
        Assert.Equal(1, found.Version);

        Assert.False(await client.IsCompatibleAsync("payments-value", new Schema(PaymentBroken, SchemaType.Avro)));
        SchemaRegistryException refused = await Assert.ThrowsAsync<SchemaRegistryException>(
            () => client.RegisterSchemaAsync("payments-value", new Schema(PaymentBroken, SchemaType.Avro)));
        Assert.Equal(409, refused.ErrorCode);
        Assert.Contains("merchant", refused.Message, StringComparison.Ordinal);

        // With NONE the same schema is accepted as version 3.
        await client.UpdateCompatibilityAsync(Compatibility.None, "payments-value");
        Assert.Equal(Compatibility.None, await client.GetCompatibilityAsync("payments-value"));
        await client.RegisterSchemaAsync("payments-value", new Schema(PaymentBroken, SchemaType.Avro));
        Assert.Equal([1, 2, 3], await client.GetSubjectVersionsAsync("payments-value"));
        Assert.Contains("payments-value", await client.GetAllSubjectsAsync());
    }

    [Fact]
    public async Task MetadataIsKeptByLaterVersionsAndFindsTheLatestVersionCarryingIt()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using CachedSchemaRegistryClient client = Client(broker);
        var owned = new Metadata(null, new Dictionary<string, string> { ["owner"] = "payments", ["tier"] = "gold" }, null);
        int v1 = await client.RegisterSchemaAsync("owned-value", new Schema(PaymentV1, null, SchemaType.Avro, owned, null));

        // Registered again without metadata (as a serializer does), the schema is still version 1, not a copy without it.
        Assert.Equal(v1, await client.RegisterSchemaAsync("owned-value", new Schema(PaymentV1, SchemaType.Avro)));
        Assert.Equal([1], await client.GetSubjectVersionsAsync("owned-value"));

        // A new version without metadata keeps the latest version's.
        await client.RegisterSchemaAsync("owned-value", new Schema(PaymentV2, SchemaType.Avro));
        RegisteredSchema latest = await client.GetLatestSchemaAsync("owned-value");
        Assert.Equal(2, latest.Version);
        Assert.Equal("payments", latest.Metadata?.Properties?["owner"]);

        // A third with its own metadata; then look versions up by metadata, as use.latest.with.metadata does.
        var moved = new Metadata(null, new Dictionary<string, string> { ["owner"] = "billing", ["tier"] = "gold" }, null);
        await client.RegisterSchemaAsync("owned-value", new Schema(PaymentV2.Replace("\"EUR\"", "\"USD\"", StringComparison.Ordinal), null, SchemaType.Avro, moved, null));
        Assert.Equal(2, (await client.GetLatestWithMetadataAsync("owned-value", new Dictionary<string, string> { ["owner"] = "payments" }, ignoreDeletedSchemas: true)).Version);
        Assert.Equal(3, (await client.GetLatestWithMetadataAsync("owned-value", new Dictionary<string, string> { ["tier"] = "gold" }, ignoreDeletedSchemas: true)).Version);
        var none = await Assert.ThrowsAsync<SchemaRegistryException>(() => client.GetLatestWithMetadataAsync("owned-value", new Dictionary<string, string> { ["owner"] = "nobody" }, ignoreDeletedSchemas: true));
        Assert.Equal(40403, none.ErrorCode);
        var unknown = await Assert.ThrowsAsync<SchemaRegistryException>(() => client.GetLatestWithMetadataAsync("no-such-value", new Dictionary<string, string> { ["owner"] = "payments" }, ignoreDeletedSchemas: true));
        Assert.Equal(40401, unknown.ErrorCode);
    }

    [Fact]
    public async Task AvroSerdeRecordsRoundTripThroughTheBroker()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using CachedSchemaRegistryClient client = Client(broker);
        var schema = (RecordSchema)Avro.Schema.Parse(PaymentV1);

        using (IProducer<string, GenericRecord> producer = new ProducerBuilder<string, GenericRecord>(new ProducerConfig { BootstrapServers = broker.BootstrapServers })
            .SetValueSerializer(new AvroSerializer<GenericRecord>(client))
            .Build())
        {
            for (int i = 0; i < 10; i++)
            {
                var record = new GenericRecord(schema);
                record.Add("id", $"p-{i}");
                record.Add("amount", i * 2.5);
                await producer.ProduceAsync("avro-payments", new Message<string, GenericRecord> { Key = $"p-{i}", Value = record });
            }
        }

        // The serializer registered the schema under the topic's value subject.
        Assert.Contains("avro-payments-value", await client.GetAllSubjectsAsync());

        using IConsumer<string, GenericRecord> consumer = new ConsumerBuilder<string, GenericRecord>(
                new ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = "avro-readers", AutoOffsetReset = AutoOffsetReset.Earliest })
            .SetValueDeserializer(new AvroDeserializer<GenericRecord>(client).AsSyncOverAsync())
            .Build();
        consumer.Subscribe("avro-payments");
        var received = new List<(string Id, double Amount)>();
        DateTime deadline = DateTime.UtcNow + Timeout;
        while (received.Count < 10 && DateTime.UtcNow < deadline)
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(200))?.Message?.Value is { } value)
            {
                received.Add(((string)value["id"], (double)value["amount"]));
            }
        }

        Assert.Equal(Enumerable.Range(0, 10).Select(i => ($"p-{i}", i * 2.5)), received);
    }

    public sealed class Order
    {
        public string OrderId { get; set; } = "";

        public int Quantity { get; set; }
    }

    [Fact]
    public async Task JsonSerdeRecordsRoundTripThroughTheBroker()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using CachedSchemaRegistryClient client = Client(broker);

        using (IProducer<string, Order> producer = new ProducerBuilder<string, Order>(new ProducerConfig { BootstrapServers = broker.BootstrapServers })
            .SetValueSerializer(new JsonSerializer<Order>(client))
            .Build())
        {
            for (int i = 0; i < 5; i++)
            {
                await producer.ProduceAsync("json-orders", new Message<string, Order> { Key = $"o-{i}", Value = new Order { OrderId = $"o-{i}", Quantity = i } });
            }
        }

        RegisteredSchema registered = await client.GetLatestSchemaAsync("json-orders-value");
        Assert.Equal(SchemaType.Json, registered.SchemaType);

        using IConsumer<string, Order> consumer = new ConsumerBuilder<string, Order>(
                new ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = "json-readers", AutoOffsetReset = AutoOffsetReset.Earliest })
            .SetValueDeserializer(new JsonDeserializer<Order>(schemaRegistryClient: client).AsSyncOverAsync())
            .Build();
        consumer.Subscribe("json-orders");
        var received = new List<string>();
        DateTime deadline = DateTime.UtcNow + Timeout;
        while (received.Count < 5 && DateTime.UtcNow < deadline)
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(200))?.Message?.Value is { } order)
            {
                received.Add($"{order.OrderId}:{order.Quantity}");
            }
        }

        Assert.Equal(Enumerable.Range(0, 5).Select(i => $"o-{i}:{i}"), received);
    }

    [Fact]
    public async Task SchemasSurviveABrokerRestart()
    {
        string dataDir = Path.Combine(Path.GetTempPath(), "sharedlog-it-" + Guid.NewGuid().ToString("N"));
        int id;
        await using (BrokerFixture first = await BrokerFixture.StartAsync(dataDir, deleteOnDispose: false))
        {
            using CachedSchemaRegistryClient client = Client(first);
            id = await client.RegisterSchemaAsync("kept-value", new Schema(PaymentV1, SchemaType.Avro));
            await client.RegisterSchemaAsync("kept-value", new Schema(PaymentV2, SchemaType.Avro));
            await client.UpdateCompatibilityAsync(Compatibility.Full, "kept-value");
        }

        await using BrokerFixture second = await BrokerFixture.StartAsync(dataDir);
        using CachedSchemaRegistryClient again = Client(second);
        Assert.Contains("\"amount\"", (await again.GetSchemaAsync(id)).SchemaString, StringComparison.Ordinal);
        Assert.Equal([1, 2], await again.GetSubjectVersionsAsync("kept-value"));
        Assert.Equal(Compatibility.Full, await again.GetCompatibilityAsync("kept-value"));

        // Stored schemas are indexed by content after the start, in the background: a lookup and a registration of the
        // same schema elsewhere wait for that and find the stored id.
        Assert.Equal(id, await again.GetSchemaIdAsync("kept-value", new Schema(PaymentV1, SchemaType.Avro), normalize: false));
        Assert.Equal(id, await again.RegisterSchemaAsync("copy-value", new Schema(PaymentV1, SchemaType.Avro)));

        // Ids keep counting from where they were: a new schema never takes an old id.
        int next = await again.RegisterSchemaAsync("other-value", new Schema("""{"type":"string"}""", SchemaType.Avro));
        Assert.True(next > id + 1, $"new id {next} must follow the ids {id} and {id + 1} already given");
    }
}
