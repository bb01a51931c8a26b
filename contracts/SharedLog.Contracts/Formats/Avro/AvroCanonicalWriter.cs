using System.Buffers;
using System.Text;
using System.Text.Json;
using Avro;

namespace SharedLog.Contracts.Formats.Avro;

/// <summary>
/// Writes the registry's canonical form of an Avro schema: the Parsing Canonical Form's layout
/// (full names, no "namespace", fixed key order, no whitespace, each named type defined at its
/// first use) but keeping what changes how data is resolved or documented: defaults, aliases,
/// descending sort order, logical types, docs and custom properties (such as <c>confluent:tags</c>,
/// <c>connect.name</c> or <c>avro.java.string</c>, sorted by name). Plain Parsing Canonical Form drops
/// defaults, so adding a default would look like "the same schema" and never register as a new
/// version; dropping custom properties would do the same to tagging a field PII, as Confluent's
/// registry keeps them in a schema's identity too. Types defined by references are written by full
/// name only, so the result re-parses with the same references.
/// </summary>
internal sealed class AvroCanonicalWriter
{
    private readonly HashSet<string> _referencedNames;
    private readonly IReadOnlyDictionary<string, IReadOnlyList<string>> _aliases;
    private readonly HashSet<string> _written = new(StringComparer.Ordinal);
    private readonly Utf8JsonWriter _json;

    /// <summary>Attributes the Avro specification defines; any other attribute of a schema or field is a custom property.</summary>
    private static readonly HashSet<string> ReservedAttributes = new(StringComparer.Ordinal)
    {
        "type", "name", "namespace", "fields", "items", "values", "symbols", "size", "aliases", "default", "order", "doc",
    };

    /// <summary>Attributes a logical type's schema writes itself.</summary>
    private static readonly HashSet<string> LogicalAttributes = new(StringComparer.Ordinal) { "logicalType", "precision", "scale" };

    private AvroCanonicalWriter(Utf8JsonWriter json, HashSet<string> referencedNames, IReadOnlyDictionary<string, IReadOnlyList<string>> aliases)
    {
        _json = json;
        _referencedNames = referencedNames;
        _aliases = aliases;
    }

    /// <param name="schema">The parsed schema.</param>
    /// <param name="source">The JSON it was parsed from, walked alongside for the custom properties Apache.Avro does not list.</param>
    /// <param name="referencedNames">Named types defined by references.</param>
    /// <param name="aliases">Aliases of named types, by full name.</param>
    public static string Write(Schema schema, JsonElement source, HashSet<string> referencedNames, IReadOnlyDictionary<string, IReadOnlyList<string>> aliases)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = false }))
        {
            new AvroCanonicalWriter(json, referencedNames, aliases).WriteSchema(schema, source);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>Writes <paramref name="schema"/>; <paramref name="source"/> is the JSON it came from (default when unknown).</summary>
    private void WriteSchema(Schema schema, JsonElement source)
    {
        // {"type": {...}} and {"type": [...]} wrap a schema without saying more about it: Apache.Avro parses the inner one.
        while (source.ValueKind == JsonValueKind.Object && source.TryGetProperty("type", out JsonElement inner)
            && inner.ValueKind is JsonValueKind.Object or JsonValueKind.Array)
        {
            source = inner;
        }

        switch (schema)
        {
            case LogicalSchema logical:
                WriteLogical(logical, source);
                break;
            case NamedSchema named:
                WriteNamed(named, logical: null, source);
                break;
            case ArraySchema array:
                _json.WriteStartObject();
                _json.WriteString("type", "array");
                _json.WritePropertyName("items");
                WriteSchema(array.ItemSchema, Member(source, "items"));
                WriteCustomProperties(source, ReservedAttributes);
                _json.WriteEndObject();
                break;
            case MapSchema map:
                _json.WriteStartObject();
                _json.WriteString("type", "map");
                _json.WritePropertyName("values");
                WriteSchema(map.ValueSchema, Member(source, "values"));
                WriteCustomProperties(source, ReservedAttributes);
                _json.WriteEndObject();
                break;
            case UnionSchema union:
                _json.WriteStartArray();
                bool branchesKnown = source.ValueKind == JsonValueKind.Array && source.GetArrayLength() == union.Count;
                for (int i = 0; i < union.Count; i++)
                {
                    WriteSchema(union.Schemas[i], branchesKnown ? source[i] : default);
                }

                _json.WriteEndArray();
                break;
            default:
                if (CustomProperties(source, ReservedAttributes) is { } custom)
                {
                    // As Confluent: {"type": "string", "avro.java.string": "String"} keeps its property.
                    _json.WriteStartObject();
                    _json.WriteString("type", Schema.GetTypeString(schema.Tag));
                    WriteProperties(custom);
                    _json.WriteEndObject();
                }
                else
                {
                    _json.WriteStringValue(Schema.GetTypeString(schema.Tag));
                }

                break;
        }
    }

    private static JsonElement Member(JsonElement source, string name) =>
        source.ValueKind == JsonValueKind.Object && source.TryGetProperty(name, out JsonElement member) ? member : default;

    /// <summary>The attributes of <paramref name="source"/> the specification does not define, sorted by name, values as written; null when there are none.</summary>
    private static SortedDictionary<string, JsonElement>? CustomProperties(JsonElement source, HashSet<string> reserved, HashSet<string>? alsoReserved = null)
    {
        if (source.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        SortedDictionary<string, JsonElement>? custom = null;
        foreach (JsonProperty property in source.EnumerateObject())
        {
            if (!reserved.Contains(property.Name) && alsoReserved?.Contains(property.Name) != true)
            {
                // A repeated name: the last one, as a JSON parser reads it.
                (custom ??= new SortedDictionary<string, JsonElement>(StringComparer.Ordinal))[property.Name] = property.Value;
            }
        }

        return custom;
    }

    private void WriteCustomProperties(JsonElement source, HashSet<string> reserved, HashSet<string>? alsoReserved = null) =>
        WriteProperties(CustomProperties(source, reserved, alsoReserved));

    private void WriteProperties(SortedDictionary<string, JsonElement>? properties)
    {
        foreach ((string name, JsonElement value) in properties ?? [])
        {
            _json.WritePropertyName(name);
            value.WriteTo(_json);
        }
    }

    private void WriteLogical(LogicalSchema logical, JsonElement source)
    {
        if (logical.BaseSchema is NamedSchema named)
        {
            WriteNamed(named, logical, source);
            return;
        }

        _json.WriteStartObject();
        _json.WriteString("type", Schema.GetTypeString(logical.BaseSchema.Tag));
        WriteLogicalAttributes(logical);
        WriteCustomProperties(source, ReservedAttributes, LogicalAttributes);
        _json.WriteEndObject();
    }

    private void WriteLogicalAttributes(LogicalSchema logical)
    {
        _json.WriteString("logicalType", logical.LogicalTypeName);
        foreach (var attribute in new[] { "precision", "scale" })
        {
            var value = logical.GetProperty(attribute);
            if (value is not null)
            {
                _json.WritePropertyName(attribute);
                _json.WriteRawValue(value);
            }
        }
    }

    private void WriteNamed(NamedSchema named, LogicalSchema? logical, JsonElement source)
    {
        if (_referencedNames.Contains(named.Fullname) || !_written.Add(named.Fullname))
        {
            _json.WriteStringValue(named.Fullname);
            return;
        }

        _json.WriteStartObject();
        _json.WriteString("name", named.Fullname);
        _json.WriteString("type", Schema.GetTypeString(named.Tag));
        switch (named)
        {
            case RecordSchema record:
                _json.WritePropertyName("fields");
                _json.WriteStartArray();
                JsonElement fieldSources = Member(source, "fields");
                bool fieldsKnown = fieldSources.ValueKind == JsonValueKind.Array && fieldSources.GetArrayLength() == record.Fields.Count;
                for (int i = 0; i < record.Fields.Count; i++)
                {
                    WriteField(record.Fields[i], fieldsKnown ? fieldSources[i] : default);
                }

                _json.WriteEndArray();
                break;
            case EnumSchema enumSchema:
                _json.WritePropertyName("symbols");
                _json.WriteStartArray();
                foreach (var symbol in enumSchema.Symbols)
                {
                    _json.WriteStringValue(symbol);
                }

                _json.WriteEndArray();
                break;
            case FixedSchema fixedSchema:
                _json.WriteNumber("size", fixedSchema.Size);
                break;
            default:
                break;
        }

        if (logical is not null)
        {
            WriteLogicalAttributes(logical);
        }

        if (_aliases.TryGetValue(named.Fullname, out var aliases) && aliases.Count > 0)
        {
            WriteStringArray("aliases", aliases);
        }

        if (named is EnumSchema { Default: not null } withDefault)
        {
            _json.WriteString("default", withDefault.Default);
        }

        if (!string.IsNullOrEmpty(named.Documentation))
        {
            _json.WriteString("doc", named.Documentation);
        }

        WriteCustomProperties(source, ReservedAttributes, logical is null ? null : LogicalAttributes);
        _json.WriteEndObject();
    }

    private void WriteField(Field field, JsonElement source)
    {
        _json.WriteStartObject();
        _json.WriteString("name", field.Name);
        _json.WritePropertyName("type");
        WriteSchema(field.Schema, Member(source, "type"));
        if (field.Aliases is { Count: > 0 })
        {
            WriteStringArray("aliases", field.Aliases);
        }

        if (field.DefaultValue is not null)
        {
            _json.WritePropertyName("default");
            _json.WriteRawValue(field.DefaultValue.ToString(Newtonsoft.Json.Formatting.None));
        }

        // Apache.Avro reports a missing "order" as "ignore", so only "descending" is distinguishable.
        if (field.Ordering is Field.SortOrder.descending)
        {
            _json.WriteString("order", "descending");
        }

        if (!string.IsNullOrEmpty(field.Documentation))
        {
            _json.WriteString("doc", field.Documentation);
        }

        WriteCustomProperties(source, ReservedAttributes);
        _json.WriteEndObject();
    }

    private void WriteStringArray(string property, IEnumerable<string> values)
    {
        _json.WritePropertyName(property);
        _json.WriteStartArray();
        foreach (var value in values)
        {
            _json.WriteStringValue(value);
        }

        _json.WriteEndArray();
    }
}
