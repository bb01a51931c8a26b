using System.Buffers;
using System.Text;
using System.Text.Json;
using Avro;

namespace SharedLog.Contracts.Formats.Avro;

/// <summary>
/// Writes the registry's canonical form of an Avro schema: the Parsing Canonical Form's layout
/// (full names, no "namespace", fixed key order, no whitespace, each named type defined at its
/// first use) but keeping what changes how data is resolved or documented: defaults, aliases,
/// descending sort order, logical types and docs. Plain Parsing Canonical Form drops defaults, so
/// adding a default would look like "the same schema" and never register as a new version.
/// Types defined by references are written by full name only, so the result re-parses with the
/// same references.
/// </summary>
internal sealed class AvroCanonicalWriter
{
    private readonly HashSet<string> _referencedNames;
    private readonly IReadOnlyDictionary<string, IReadOnlyList<string>> _aliases;
    private readonly HashSet<string> _written = new(StringComparer.Ordinal);
    private readonly Utf8JsonWriter _json;

    private AvroCanonicalWriter(Utf8JsonWriter json, HashSet<string> referencedNames, IReadOnlyDictionary<string, IReadOnlyList<string>> aliases)
    {
        _json = json;
        _referencedNames = referencedNames;
        _aliases = aliases;
    }

    public static string Write(Schema schema, HashSet<string> referencedNames, IReadOnlyDictionary<string, IReadOnlyList<string>> aliases)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = false }))
        {
            new AvroCanonicalWriter(json, referencedNames, aliases).WriteSchema(schema);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private void WriteSchema(Schema schema)
    {
        switch (schema)
        {
            case LogicalSchema logical:
                WriteLogical(logical);
                break;
            case NamedSchema named:
                WriteNamed(named, logical: null);
                break;
            case ArraySchema array:
                _json.WriteStartObject();
                _json.WriteString("type", "array");
                _json.WritePropertyName("items");
                WriteSchema(array.ItemSchema);
                _json.WriteEndObject();
                break;
            case MapSchema map:
                _json.WriteStartObject();
                _json.WriteString("type", "map");
                _json.WritePropertyName("values");
                WriteSchema(map.ValueSchema);
                _json.WriteEndObject();
                break;
            case UnionSchema union:
                _json.WriteStartArray();
                foreach (var branch in union.Schemas)
                {
                    WriteSchema(branch);
                }

                _json.WriteEndArray();
                break;
            default:
                _json.WriteStringValue(Schema.GetTypeString(schema.Tag));
                break;
        }
    }

    private void WriteLogical(LogicalSchema logical)
    {
        if (logical.BaseSchema is NamedSchema named)
        {
            WriteNamed(named, logical);
            return;
        }

        _json.WriteStartObject();
        _json.WriteString("type", Schema.GetTypeString(logical.BaseSchema.Tag));
        WriteLogicalAttributes(logical);
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

    private void WriteNamed(NamedSchema named, LogicalSchema? logical)
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
                foreach (var field in record.Fields)
                {
                    WriteField(field);
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

        _json.WriteEndObject();
    }

    private void WriteField(Field field)
    {
        _json.WriteStartObject();
        _json.WriteString("name", field.Name);
        _json.WritePropertyName("type");
        WriteSchema(field.Schema);
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
