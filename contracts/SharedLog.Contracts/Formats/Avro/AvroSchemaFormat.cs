using System.Text;
using System.Text.Json;
using Avro;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Formats.Avro;

/// <summary>
/// Avro schemas for the registry: parsing with Apache.Avro (bounded in size and JSON depth first,
/// since Apache.Avro recurses), named types supplied by references, field-default validation, a
/// canonical form for de-duplication, and the specification's schema resolution rules as the
/// compatibility check.
/// </summary>
public sealed class AvroSchemaFormat : ISchemaFormat
{
    /// <summary>Most references (counted transitively) one schema may pull in.</summary>
    public const int MaxReferences = 1000;

    private const string UndefinedNamePrefix = "Undefined name: ";

    private static readonly HashSet<string> PrimitiveNames = new(StringComparer.Ordinal)
    {
        "null", "boolean", "int", "long", "float", "double", "bytes", "string",
    };

    public SchemaType Type => SchemaType.Avro;

    public IParsedSchema Parse(string schemaText, IReadOnlyList<ResolvedReference> references, bool normalize)
    {
        ArgumentNullException.ThrowIfNull(schemaText);
        ArgumentNullException.ThrowIfNull(references);

        var names = new SchemaNames();
        var aliases = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        var visited = new HashSet<(string Subject, int Version)>();
        foreach (var reference in references)
        {
            LoadReference(reference, names, aliases, visited, depth: 1);
        }

        var referencedNames = names.Names.Keys.Select(name => name.Fullname).ToHashSet(StringComparer.Ordinal);
        using var document = ParseBoundedJson(schemaText, "schema");
        var schema = ParseAvro(schemaText, document.RootElement, names, "schema");
        AvroAliasCollector.Collect(document.RootElement, enclosingNamespace: null, aliases);

        var canonical = AvroCanonicalWriter.Write(schema, document.RootElement, referencedNames, aliases);
        var parsingCanonicalForm = SchemaNormalization.ToParsingForm(schema);
        return new AvroParsedSchema(normalize ? canonical : schemaText, canonical, parsingCanonicalForm, references, schema, aliases);
    }

    public IReadOnlyList<string> CheckCompatibility(IParsedSchema reader, IParsedSchema writer)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(writer);
        if (reader is not AvroParsedSchema avroReader || writer is not AvroParsedSchema avroWriter)
        {
            throw new ArgumentException("both schemas must have been parsed by AvroSchemaFormat");
        }

        return AvroCompatibilityChecker.Check(avroReader, avroWriter);
    }

    /// <summary>Parses a reference's own references first, so its named types are known when it is parsed.</summary>
    private static void LoadReference(
        ResolvedReference reference,
        SchemaNames names,
        Dictionary<string, IReadOnlyList<string>> aliases,
        HashSet<(string Subject, int Version)> visited,
        int depth)
    {
        if (!visited.Add((reference.Subject, reference.Version)))
        {
            return;
        }

        if (depth > SchemaLimits.MaxDepth || visited.Count > MaxReferences)
        {
            throw new InvalidSchemaException($"too many or too deeply nested schema references (at most {MaxReferences}, nested at most {SchemaLimits.MaxDepth} deep)");
        }

        foreach (var nested in reference.References)
        {
            LoadReference(nested, names, aliases, visited, depth + 1);
        }

        var what = $"reference '{reference.Name}' (subject '{reference.Subject}' version {reference.Version})";
        using var document = ParseBoundedJson(reference.SchemaText, what);
        ParseAvro(reference.SchemaText, document.RootElement, names, what);
        AvroAliasCollector.Collect(document.RootElement, enclosingNamespace: null, aliases);
    }

    /// <summary>Strict JSON with the size and depth bounds enforced before Apache.Avro sees the text.</summary>
    private static JsonDocument ParseBoundedJson(string text, string what)
    {
        if (text.Length > SchemaLimits.MaxSchemaChars)
        {
            throw new InvalidSchemaException($"{what} is {text.Length} characters long; the limit is {SchemaLimits.MaxSchemaChars}");
        }

        var utf8 = Encoding.UTF8.GetBytes(text);
        try
        {
            // Walk tokens first so excessive nesting gets its own message; the reader's own limit is one above ours.
            var reader = new Utf8JsonReader(utf8, new JsonReaderOptions { MaxDepth = SchemaLimits.MaxDepth + 1 });
            while (reader.Read())
            {
                if (reader.CurrentDepth >= SchemaLimits.MaxDepth)
                {
                    throw new InvalidSchemaException($"{what} nests deeper than {SchemaLimits.MaxDepth} levels");
                }
            }

            return JsonDocument.Parse(utf8, new JsonDocumentOptions { MaxDepth = SchemaLimits.MaxDepth });
        }
        catch (JsonException e)
        {
            throw new InvalidSchemaException($"{what} is not valid JSON: {e.Message}", e);
        }
    }

    private static Schema ParseAvro(string text, JsonElement root, SchemaNames names, string what)
    {
        // Apache.Avro only takes a bare name as the whole schema for primitives; look named types up ourselves.
        if (root.ValueKind == JsonValueKind.String && !PrimitiveNames.Contains(root.GetString()!))
        {
            var name = root.GetString()!;
            return names.Names.FirstOrDefault(entry => string.Equals(entry.Key.Fullname, name, StringComparison.Ordinal)).Value
                ?? throw new InvalidSchemaException($"{what}: unknown type '{name}': it is neither a primitive type nor defined by a reference");
        }

        if (root.ValueKind is not (JsonValueKind.String or JsonValueKind.Object or JsonValueKind.Array))
        {
            throw new InvalidSchemaException($"{what}: an Avro schema must be a JSON string, object or array, not {root.ValueKind}");
        }

        Schema schema;
        try
        {
            // Apache.Avro answers null, not an error, for an object whose "type" names nothing it knows.
            schema = ParseWithLogicalTypesJavaIgnores(text, root, names)
                ?? throw new InvalidSchemaException($"{what}: unknown type in {Truncate(text)}");
        }
        catch (SchemaParseException e) when (e.Message.StartsWith(UndefinedNamePrefix, StringComparison.Ordinal))
        {
            throw new InvalidSchemaException($"{what}: unknown type '{UndefinedName(e.Message)}' (not defined in the schema or its references): {e.Message}", e);
        }
        catch (Exception e) when (e is not InvalidSchemaException)
        {
            throw new InvalidSchemaException($"{what} is not a valid Avro schema: {e.Message}", e);
        }

        AvroDefaultValidator.Validate(schema, what);
        return schema;
    }

    /// <summary>Parses the schema; when Apache.Avro refuses it and it has logical types Java ignores, parses it again without them.</summary>
    private static Schema? ParseWithLogicalTypesJavaIgnores(string text, JsonElement root, SchemaNames names)
    {
        var known = names.Names.Keys.ToHashSet();
        try
        {
            return Schema.Parse(text, names, null);
        }
        catch (AvroException) when (AvroInvalidLogicalTypes.Without(root) is { } withoutThem)
        {
            // The failed parse may have named some of the schema's types already; the second one names them again.
            foreach (var added in names.Names.Keys.Where(name => !known.Contains(name)).ToList())
            {
                names.Names.Remove(added);
            }

            return Schema.Parse(withoutThem, names, null);
        }
    }

    private static string Truncate(string text) => text.Length <= 80 ? text : text[..80] + "...";

    /// <summary>Apache.Avro reports "Undefined name: a.B at 'fields[0].type'".</summary>
    private static string UndefinedName(string message)
    {
        var rest = message[UndefinedNamePrefix.Length..];
        var end = rest.IndexOf(' ', StringComparison.Ordinal);
        return end < 0 ? rest : rest[..end];
    }
}
