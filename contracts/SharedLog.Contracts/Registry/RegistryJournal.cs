using System.Text.Json;
using System.Text.Json.Serialization;
using SharedLog.Contracts;

namespace SharedLog.Contracts.Registry;

/// <summary>Subject metadata as Confluent defines it (owner, topic class and the like live in <see cref="Properties"/>).</summary>
public sealed class SchemaMetadata
{
    public Dictionary<string, List<string>>? Tags { get; set; }

    public Dictionary<string, string>? Properties { get; set; }

    public List<string>? Sensitive { get; set; }

    /// <summary>An order-independent text used in schema identity.</summary>
    internal string IdentityText()
    {
        var parts = new List<string>();
        if (Properties is not null)
        {
            foreach (KeyValuePair<string, string> pair in Properties.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                parts.Add($"p:{pair.Key}={pair.Value}");
            }
        }

        if (Tags is not null)
        {
            foreach (KeyValuePair<string, List<string>> pair in Tags.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                parts.Add($"t:{pair.Key}={string.Join(',', pair.Value.Order(StringComparer.Ordinal))}");
            }
        }

        if (Sensitive is not null)
        {
            parts.Add($"s:{string.Join(',', Sensitive.Order(StringComparer.Ordinal))}");
        }

        return JsonSerializer.Serialize(parts);
    }
}

/// <summary>The value of a SCHEMA record: one version of one subject.</summary>
public sealed class SchemaVersionValue
{
    public string Subject { get; set; } = "";

    public int Version { get; set; }

    public int Id { get; set; }

    /// <summary>Absent for AVRO, as in Confluent's records.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? SchemaType { get; set; }

    public string Schema { get; set; } = "";

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public List<SchemaReference>? References { get; set; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public SchemaMetadata? Metadata { get; set; }

    /// <summary>Confluent's data contract rules (domainRules, migrationRules), kept as given.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public System.Text.Json.Nodes.JsonObject? RuleSet { get; set; }

    public bool Deleted { get; set; }
}

/// <summary>
/// The key and value layouts of the registry's records, close to Confluent's own <c>_schemas</c>
/// records: keys <c>{"keytype":"SCHEMA","subject":..,"version":..,"magic":1}</c>, CONFIG, MODE, and an
/// ID_HIGH_WATER record so ids stay unique after permanent deletes.
/// </summary>
public static class RegistryRecords
{
    public const string SchemaKeyType = "SCHEMA";
    public const string ConfigKeyType = "CONFIG";
    public const string ModeKeyType = "MODE";
    public const string IdHighWaterKeyType = "ID_HIGH_WATER";

    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        MaxDepth = 64,
        // As Confluent's registry writes them: a schema's quotes as \", not \u0022 (which made a record twice the schema's size).
        Encoder = ReadableJson.Encoder,
    };

    public sealed class Key
    {
        [JsonPropertyName("keytype")]
        public string KeyType { get; set; } = "";

        public string? Subject { get; set; }

        [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
        public int Version { get; set; }

        public int Magic { get; set; }
    }

    public sealed class ConfigValue
    {
        public string? CompatibilityLevel { get; set; }
    }

    public sealed class ModeValue
    {
        public string? Mode { get; set; }
    }

    public sealed class IdHighWaterValue
    {
        public int Id { get; set; }
    }

    public static JournalEntry SchemaVersion(SchemaVersionValue value) =>
        new(Encode(new Key { KeyType = SchemaKeyType, Subject = value.Subject, Version = value.Version, Magic = 1 }), Encode(value));

    public static JournalEntry SchemaVersionTombstone(string subject, int version) =>
        new(Encode(new Key { KeyType = SchemaKeyType, Subject = subject, Version = version, Magic = 1 }), null);

    public static JournalEntry Config(string? subject, CompatibilityLevel? level) =>
        new(Encode(new Key { KeyType = ConfigKeyType, Subject = subject }), level is { } set ? Encode(new ConfigValue { CompatibilityLevel = RegistryNames.Name(set) }) : null);

    public static JournalEntry Mode(string? subject, RegistryMode? mode) =>
        new(Encode(new Key { KeyType = ModeKeyType, Subject = subject }), mode is { } set ? Encode(new ModeValue { Mode = RegistryNames.Name(set) }) : null);

    public static JournalEntry IdHighWater(int id) =>
        new(Encode(new Key { KeyType = IdHighWaterKeyType }), Encode(new IdHighWaterValue { Id = id }));

    public static Key DecodeKey(byte[] key) =>
        JsonSerializer.Deserialize<Key>(key, Json) ?? throw new JsonException("Registry record key is null.");

    public static T? DecodeValue<T>(byte[]? value)
        where T : class =>
        value is null ? null : JsonSerializer.Deserialize<T>(value, Json);

    private static byte[] Encode<T>(T value) => JsonSerializer.SerializeToUtf8Bytes(value, Json);
}
