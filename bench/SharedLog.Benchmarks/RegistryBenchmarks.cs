using System.Runtime.CompilerServices;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Logging.Abstractions;
using SharedLog.Contracts;
using SharedLog.Contracts.Formats.Avro;
using SharedLog.Contracts.Registry;

namespace SharedLog.Benchmarks;

/// <summary>
/// Schema registry costs: a lookup of a registered id (what every deserializer with a cold client
/// cache asks), a lookup of a schema by content, and a transitive compatibility check of a 200-field
/// Avro record against 50 earlier versions.
/// </summary>
[MemoryDiagnoser]
public class RegistryBenchmarks : IDisposable
{
    private SchemaRegistry _registry = null!;
    private SchemaRequest _candidate = null!;
    private SchemaRequest _registered = null!;
    private int _id;

    /// <summary>A record of <paramref name="fields"/> fields; fields past the first 150 have defaults so each version evolves compatibly.</summary>
    private static string Record(int fields)
    {
        var list = new List<object>();
        for (int i = 0; i < fields; i++)
        {
            list.Add(i < 150
                ? new { name = $"f{i}", type = i % 3 == 0 ? "string" : i % 3 == 1 ? "long" : "double" }
                : new { name = $"f{i}", type = "string", @default = "x" });
        }

        return JsonSerializer.Serialize(new { type = "record", name = "Wide", @namespace = "bench", fields = list });
    }

    [GlobalSetup]
    public void Setup()
    {
        _registry = new SchemaRegistry([new AvroSchemaFormat()], new SharedLog.Contracts.InMemoryJournal(), NullLogger<SchemaRegistry>.Instance);
        _registry.LoadAsync(CancellationToken.None).GetAwaiter().GetResult();
        _registry.SetCompatibilityAsync("wide", CompatibilityLevel.FullTransitive, CancellationToken.None).GetAwaiter().GetResult();
        for (int version = 1; version <= 50; version++)
        {
            _registry.RegisterAsync("wide", new SchemaRequest(Record(150 + version), SchemaType.Avro, []), CancellationToken.None).GetAwaiter().GetResult();
        }

        _registered = new SchemaRequest(Record(200), SchemaType.Avro, []);
        _id = _registry.GetVersion("wide", "latest", includeDeleted: false).Id;
        _candidate = new SchemaRequest(Record(201), SchemaType.Avro, []);
        if (!_registry.CheckCompatibility("wide", null, _candidate).IsCompatible)
        {
            throw new InvalidOperationException("The benchmark's candidate must be compatible.");
        }
    }

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
        }
    }

    [Benchmark]
    public int GetById() => _registry.GetById(_id).Id;

    [Benchmark]
    public async Task<int> LookupByContent200Fields() => (await _registry.LookupAsync("wide", _registered, includeDeleted: false, CancellationToken.None)).Version;

    [Benchmark]
    public bool FullTransitiveCheck200FieldsAgainst50Versions() => _registry.CheckCompatibility("wide", null, _candidate).IsCompatible;
}
