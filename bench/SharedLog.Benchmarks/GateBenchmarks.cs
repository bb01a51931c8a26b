using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Logging.Abstractions;
using SharedLog.Contracts;
using SharedLog.Contracts.Evidence;
using SharedLog.Contracts.Formats.Avro;
using SharedLog.Contracts.Formats.Json;
using SharedLog.Contracts.Formats.Protobuf;
using SharedLog.Contracts.Gate;
using SharedLog.Contracts.Model;
using SharedLog.Contracts.Policy;
using SharedLog.Contracts.Registry;
using SharedLog.Protocol.Records;

namespace SharedLog.Benchmarks;

/// <summary>
/// The contract gate on one batch of 100 records of about 1 KiB (Avro and JSON): schema check, decode,
/// 5 rules and 1 hashed field, batch rebuilt; against the baseline of a CRC check alone.
/// </summary>
[MemoryDiagnoser]
public class GateBenchmarks : IDisposable
{
    private const string Rules = """
        rules:
          - name: positive-amount
            expr: value.amount > 0.0
          - name: known-currency
            expr: value.currency in ['EUR', 'USD']
          - name: quantity-range
            expr: value.quantity >= 1 && value.quantity <= 1000
          - name: email-shape
            expr: value.email.matches('^[^@]+@[^@]+$')
          - name: id-prefix
            expr: value.id.startsWith('order-')
        privacy:
          - field: email
            action: hash
        onFailure: reject
        """;

    private SchemaRegistry _registry = null!;
    private ContractStore _store = null!;
    private ContractMetrics _metrics = null!;
    private ContractGate _gate = null!;
    private byte[] _avroBatch = [];
    private byte[] _jsonBatch = [];
    private byte[] _protoBatch = [];
    private byte[] _jsonBatch6 = [];
    private byte[] _nestedJsonBatch = [];
    private IParsedSchema _avroParsed = null!;
    private byte[] _avroPayload = [];
    private readonly AvroPayloadCodec _avroCodec = new();
    private IParsedSchema _jsonParsed = null!;
    private byte[] _jsonPayload = [];
    private readonly JsonPayloadCodec _jsonCodec = new();

    [GlobalSetup]
    public void Setup()
    {
        var avroSchema = """
            {"type":"record","name":"Order","namespace":"bench.gate","fields":[
              {"name":"id","type":"string"},{"name":"customer","type":"string"},{"name":"email","type":"string"},
              {"name":"amount","type":"double"},{"name":"currency","type":"string"},{"name":"quantity","type":"long"},
              {"name":"country","type":"string"},{"name":"notes","type":"string"}]}
            """;
        var jsonSchema = """
            {"type":"object","required":["id","customer","email","amount","currency","quantity","country"],"properties":{
              "id":{"type":"string"},"customer":{"type":"string"},"email":{"type":"string"},"amount":{"type":"number","minimum":0},
              "currency":{"type":"string","enum":["EUR","USD"]},"quantity":{"type":"integer"},"country":{"type":"string"},"notes":{"type":"string"}}}
            """;
        // The same record as proto3, as bench/contracts/prepare.js registers it.
        var protoSchema = "syntax = \"proto3\";\npackage bench.gate;\n\nmessage Order {\n  string id = 1;\n  string customer = 2;\n  string email = 3;\n  double amount = 4;\n  string currency = 5;\n  int64 quantity = 6;\n  string country = 7;\n  string notes = 8;\n}\n";
        _registry = new SchemaRegistry([new AvroSchemaFormat(), new JsonSchemaFormat(), new ProtobufSchemaFormat()], new InMemoryJournal(), NullLogger<SchemaRegistry>.Instance);
        _registry.LoadAsync(CancellationToken.None).GetAwaiter().GetResult();
        int avroId = _registry.RegisterAsync("gate-avro-value", new SchemaRequest(avroSchema, SchemaType.Avro, []), CancellationToken.None).GetAwaiter().GetResult().Id;
        int jsonId = _registry.RegisterAsync("gate-json-value", new SchemaRequest(jsonSchema, SchemaType.Json, []), CancellationToken.None).GetAwaiter().GetResult().Id;
        int protoId = _registry.RegisterAsync("gate-proto-value", new SchemaRequest(protoSchema, SchemaType.Protobuf, []), CancellationToken.None).GetAwaiter().GetResult().Id;
        _store = new ContractStore(new InMemoryJournal(), new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        foreach (string topic in new[] { "gate-avro", "gate-json", "gate-proto" })
        {
            _store.ApplyAsync($"topic: {topic}\nclass: certified\nvalue:\n  strategy: TopicNameStrategy\n{Rules}", "bench", false, ContractGate.CompileProblems, CancellationToken.None).GetAwaiter().GetResult();
        }

        // A subject is bound by one contract, so each variant's topic has its own subject holding the same schema (same id).
        int rulesEnd = Rules.IndexOf("privacy:", StringComparison.Ordinal);
        (string Topic, string Schema, SchemaType Type, string Body)[] variants =
        [
            ("gate-avro-schema", avroSchema, SchemaType.Avro, ""),
            ("gate-avro-rules", avroSchema, SchemaType.Avro, Rules[..rulesEnd]),
            ("gate-json-schema", jsonSchema, SchemaType.Json, ""),
            ("gate-json-rules", jsonSchema, SchemaType.Json, Rules[..rulesEnd]),
            ("gate-avro-redact", avroSchema, SchemaType.Avro, Rules.Replace("action: hash", "action: redact", StringComparison.Ordinal)),
            ("gate-proto-rules", protoSchema, SchemaType.Protobuf, Rules[..rulesEnd]),
        ];
        foreach ((string topic, string schema, SchemaType type, string body) in variants)
        {
            _registry.RegisterAsync($"{topic}-value", new SchemaRequest(schema, type, []), CancellationToken.None).GetAwaiter().GetResult();
            _store.ApplyAsync($"topic: {topic}\nclass: certified\nvalue:\n  strategy: TopicNameStrategy\n{body}", "bench", false, ContractGate.CompileProblems, CancellationToken.None).GetAwaiter().GetResult();
        }

        _metrics = new ContractMetrics();
        var codecs = new IPayloadCodec[] { new AvroPayloadCodec(), new JsonPayloadCodec(), new ProtobufPayloadCodec() };
        _gate = new ContractGate(_store, _registry, codecs, new JsonPayloadValidatorCache(), _metrics, new PrivacyRewriter("k"u8.ToArray()), NullLogger<ContractGate>.Instance);

        var record = new Dictionary<string, object?>
        {
            ["id"] = "order-000001",
            ["customer"] = "customer-42",
            ["email"] = "someone@example.com",
            ["amount"] = 123.45,
            ["currency"] = "EUR",
            ["quantity"] = 3L,
            ["country"] = "DE",
            ["notes"] = new string('x', 860),
        };
        byte[] avroPayload = new AvroPayloadCodec().Encode(_registry.ParsedById(avroId)!, new DecodedPayload(record));
        byte[] jsonPayload = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(record));
        _avroBatch = Batch(avroId, avroPayload);
        _avroParsed = _registry.ParsedById(avroId)!;
        _avroPayload = avroPayload;
        _jsonBatch = Batch(jsonId, jsonPayload);
        _jsonBatch6 = Batch(jsonId, jsonPayload, records: 6);
        // Message index 0 (one zero byte), then the message.
        byte[] protoPayload = new ProtobufPayloadCodec().Encode(_registry.ParsedById(protoId)!, new DecodedPayload(record, "bench.gate.Order"));
        _protoBatch = Batch(protoId, protoPayload);

        // An order with ten line items (nested objects in an array), about 1 KiB, schema and one rule.
        var nestedSchema = """
            {"type":"object","required":["id","lines"],"properties":{"id":{"type":"string"},"customer":{"type":"object","properties":{
              "name":{"type":"string"},"country":{"type":"string","maxLength":2}}},"lines":{"type":"array","items":{"type":"object",
              "required":["sku","quantity"],"properties":{"sku":{"type":"string"},"quantity":{"type":"integer","minimum":1},"price":{"type":"number"}}}}}}
            """;
        int nestedId = _registry.RegisterAsync("gate-json-nested-value", new SchemaRequest(nestedSchema, SchemaType.Json, []), CancellationToken.None).GetAwaiter().GetResult().Id;
        _store.ApplyAsync("topic: gate-json-nested\nclass: certified\nvalue:\n  strategy: TopicNameStrategy\nrules:\n  - name: id-prefix\n    expr: value.id.startsWith('order-')\nonFailure: reject\n", "bench", false, ContractGate.CompileProblems, CancellationToken.None).GetAwaiter().GetResult();
        var nested = new Dictionary<string, object?>
        {
            ["id"] = "order-000001",
            ["customer"] = new Dictionary<string, object?> { ["name"] = "customer-42", ["country"] = "DE" },
            ["lines"] = Enumerable.Range(0, 10).Select(i => new Dictionary<string, object?> { ["sku"] = $"sku-{i:D6}-{new string('x', 40)}", ["quantity"] = 1 + i, ["price"] = 9.5 + i }).ToList(),
        };
        _nestedJsonBatch = Batch(nestedId, Encoding.UTF8.GetBytes(JsonSerializer.Serialize(nested)));
        _jsonParsed = _registry.ParsedById(jsonId)!;
        _jsonPayload = jsonPayload;

        // A benchmark whose batch the gate refused would time the refusal: every variant must pass or be rewritten.
        foreach ((string topic, byte[] batch, GateOutcome expected) in new[]
        {
            ("gate-avro", _avroBatch, GateOutcome.Rewrite), ("gate-avro-schema", _avroBatch, GateOutcome.Pass), ("gate-avro-rules", _avroBatch, GateOutcome.Pass),
            ("gate-avro-redact", _avroBatch, GateOutcome.Rewrite), ("gate-json", _jsonBatch, GateOutcome.Rewrite), ("gate-json-rules", _jsonBatch, GateOutcome.Pass), ("gate-json-schema", _jsonBatch, GateOutcome.Pass),
            ("gate-json-nested", _nestedJsonBatch, GateOutcome.Pass), ("gate-proto", _protoBatch, GateOutcome.Rewrite), ("gate-proto-rules", _protoBatch, GateOutcome.Pass),
        })
        {
            GateOutcome outcome = Inspect(topic, batch);
            if (outcome != expected)
            {
                throw new InvalidOperationException($"{topic}: the gate answered {outcome}, not {expected}");
            }
        }
    }

    private static byte[] Batch(int schemaId, byte[] payload, int records = 100)
    {
        byte[] framed = new byte[SchemaWireFormat.HeaderSize + payload.Length];
        SchemaWireFormat.WriteHeader(framed, schemaId);
        payload.CopyTo(framed, SchemaWireFormat.HeaderSize);
        var builder = new RecordBatchBuilder(1_700_000_000_000);
        for (int i = 0; i < records; i++)
        {
            builder.Add(null, framed, 1_700_000_000_000 + i);
        }

        return builder.Build();
    }

    [Benchmark(Baseline = true)]
    public bool CrcOnly100Records() => RecordBatch.Parse(_avroBatch).IsCrcValid();

    [Benchmark]
    public GateOutcome Avro100Records() => Inspect("gate-avro", _avroBatch);

    [Benchmark]
    public GateOutcome AvroSchemaOnly100Records() => Inspect("gate-avro-schema", _avroBatch);

    [Benchmark]
    public GateOutcome AvroSchemaAndRules100Records() => Inspect("gate-avro-rules", _avroBatch);

    [Benchmark]
    public int AvroDecodeEncode100Records() => DecodeEncode100(_avroCodec, _avroParsed, _avroPayload);

    [Benchmark]
    public GateOutcome AvroRedact100Records() => Inspect("gate-avro-redact", _avroBatch);

    [Benchmark]
    public GateOutcome Json100Records() => Inspect("gate-json", _jsonBatch);

    [Benchmark]
    public GateOutcome Protobuf100Records() => Inspect("gate-proto", _protoBatch);

    [Benchmark]
    public GateOutcome ProtobufSchemaAndRules100Records() => Inspect("gate-proto-rules", _protoBatch);

    /// <summary>A batch the size a partition gets at 5,000 records/s over 4 partitions with linger 1 ms: shows what each batch costs beyond its records.</summary>
    [Benchmark]
    public GateOutcome Json6Records() => Inspect("gate-json", _jsonBatch6);

    [Benchmark]
    public GateOutcome JsonSchemaOnly100Records() => Inspect("gate-json-schema", _jsonBatch);

    [Benchmark]
    public GateOutcome JsonSchemaAndRules100Records() => Inspect("gate-json-rules", _jsonBatch);

    /// <summary>Nested records: an order with a customer object and ten line items, schema and one rule.</summary>
    [Benchmark]
    public GateOutcome JsonNestedSchemaAndRules100Records() => Inspect("gate-json-nested", _nestedJsonBatch);

    [Benchmark]
    public int JsonDecodeEncode100Records() => DecodeEncode100(_jsonCodec, _jsonParsed, _jsonPayload);

    /// <summary>The codec alone: 100 decodes and re-encodes of one payload, no contract.</summary>
    private static int DecodeEncode100(IPayloadCodec codec, IParsedSchema parsed, byte[] payload)
    {
        int total = 0;
        for (int i = 0; i < 100; i++)
        {
            DecodedPayload decoded = codec.Decode(parsed, payload);
            total += codec.Encode(parsed, decoded).Length;
        }

        return total;
    }

    private GateOutcome Inspect(string topic, byte[] batch) => InspectWhole(topic, batch).Outcome;

    private GateResult InspectWhole(string topic, byte[] batch)
    {
        RecordBatch parsed = RecordBatch.Parse(batch);
        parsed.VerifyCrc();
        return _gate.Inspect(_gate.ContractFor(topic)!, topic, 0, parsed);
    }

    /// <summary>For the gate loop: one gate benchmark's verdict with the batch the gate rebuilt (null when it kept the original).</summary>
    public GateResult InspectForLoop(string which) => which switch
    {
        "avro" => InspectWhole("gate-avro", _avroBatch),
        "json6" => InspectWhole("gate-json", _jsonBatch6),
        "json-rules" => InspectWhole("gate-json-rules", _jsonBatch),
        "json-schema" => InspectWhole("gate-json-schema", _jsonBatch),
        "proto" => InspectWhole("gate-proto", _protoBatch),
        "proto-rules" => InspectWhole("gate-proto-rules", _protoBatch),
        _ => InspectWhole("gate-json", _jsonBatch),
    };

    [GlobalCleanup]
    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
        if (disposing)
        {
            _registry?.Dispose();
            _store?.Dispose();
            _metrics?.Dispose();
        }
    }
}
