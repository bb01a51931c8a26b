using System.Text.Json;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Policy;

/// <summary>
/// Field paths a schema tags with a given tag (Confluent's <c>confluent:tags</c>: an Avro field
/// property, or a JSON Schema keyword on a property), so privacy rules can name a tag such as PII
/// instead of every path. For Protobuf, the tags of <c>(confluent.field_meta).tags</c> field options
/// (<c>import "confluent/meta.proto"</c>), from the record's message.
/// </summary>
public static class SchemaTags
{
    public static IReadOnlyList<string> PathsWithTag(IParsedSchema schema, string tag, string? protobufMessage = null)
    {
        if (schema is Formats.Protobuf.ProtobufParsedSchema protobuf)
        {
            return Formats.Protobuf.ConfluentMeta.PathsWithTag(protobuf, tag, protobufMessage);
        }

        var paths = new List<string>();

        try
        {
            using JsonDocument document = JsonDocument.Parse(schema.Text, new JsonDocumentOptions { MaxDepth = SchemaLimits.MaxDepth });
            if (schema.Type == SchemaType.Avro)
            {
                WalkAvro(document.RootElement, "", tag, paths, 0);
            }
            else
            {
                WalkJson(document.RootElement, "", tag, paths, 0);
            }
        }
        catch (JsonException)
        {
            // Not JSON text (cannot happen for a parsed Avro/JSON schema); no tagged paths.
        }

        return paths;
    }

    private static bool HasTag(JsonElement element, string tag) =>
        element.ValueKind == JsonValueKind.Object
        && element.TryGetProperty("confluent:tags", out JsonElement tags)
        && tags.ValueKind == JsonValueKind.Array
        && tags.EnumerateArray().Any(t => t.ValueKind == JsonValueKind.String && t.GetString() == tag);

    /// <summary>
    /// Walks an Avro type. Named types (records, enums, fixed) are remembered as they are defined, so a later use by
    /// name (a second Address field) is walked like the first; a type is not entered again inside itself (recursive
    /// types), since a dotted path cannot name every level of one.
    /// </summary>
    private static void WalkAvro(JsonElement type, string prefix, string tag, List<string> paths, int depth, AvroNames? names = null, string? space = null)
    {
        names ??= new AvroNames();
        if (depth > SchemaLimits.MaxDepth)
        {
            return;
        }

        switch (type.ValueKind)
        {
            case JsonValueKind.String when names.Find(type.GetString()!, space) is { } named:
                // The definition's own walk refuses to enter a record already being walked.
                WalkAvro(named.Definition, prefix, tag, paths, depth + 1, names, named.Space);
                break;
            case JsonValueKind.Array:
                foreach (JsonElement branch in type.EnumerateArray())
                {
                    WalkAvro(branch, prefix, tag, paths, depth + 1, names, space);
                }

                break;
            case JsonValueKind.Object when type.TryGetProperty("fields", out JsonElement fields) && fields.ValueKind == JsonValueKind.Array:
                string? fullName = names.Define(type, space, out string? recordSpace);
                if (fullName is not null && !names.Enter(fullName))
                {
                    break;
                }

                foreach (JsonElement field in fields.EnumerateArray())
                {
                    if (!field.TryGetProperty("name", out JsonElement name) || name.ValueKind != JsonValueKind.String)
                    {
                        continue;
                    }

                    string path = prefix.Length == 0 ? name.GetString()! : $"{prefix}.{name.GetString()}";
                    if (HasTag(field, tag))
                    {
                        paths.Add(path);
                    }
                    else if (field.TryGetProperty("type", out JsonElement fieldType))
                    {
                        WalkAvro(fieldType, path, tag, paths, depth + 1, names, recordSpace);
                    }
                }

                if (fullName is not null)
                {
                    names.Leave(fullName);
                }

                break;
            case JsonValueKind.Object when type.TryGetProperty("items", out JsonElement items):
                WalkAvro(items, prefix, tag, paths, depth + 1, names, space);
                break;
            case JsonValueKind.Object when type.TryGetProperty("type", out JsonElement inner) && inner.ValueKind != JsonValueKind.String:
                WalkAvro(inner, prefix, tag, paths, depth + 1, names, space);
                break;
            case JsonValueKind.Object:
                names.Define(type, space, out _);
                break;
        }
    }

    /// <summary>The named Avro types seen so far (by full name and by short name), and those being walked.</summary>
    private sealed class AvroNames
    {
        private readonly Dictionary<string, (JsonElement Definition, string FullName, string? Space)> _byName = new(StringComparer.Ordinal);
        private readonly HashSet<string> _walking = new(StringComparer.Ordinal);

        /// <summary>Remembers a named type's definition; returns its full name (null if it has none) and its namespace.</summary>
        public string? Define(JsonElement type, string? enclosingSpace, out string? space)
        {
            space = enclosingSpace;
            if (!type.TryGetProperty("name", out JsonElement nameElement) || nameElement.ValueKind != JsonValueKind.String)
            {
                return null;
            }

            string name = nameElement.GetString()!;
            int dot = name.LastIndexOf('.');
            if (dot >= 0)
            {
                space = name[..dot];
            }
            else if (type.TryGetProperty("namespace", out JsonElement ns) && ns.ValueKind == JsonValueKind.String)
            {
                space = ns.GetString();
            }

            string fullName = dot >= 0 || string.IsNullOrEmpty(space) ? name : $"{space}.{name}";
            _byName.TryAdd(fullName, (type, fullName, space));
            _byName.TryAdd(dot >= 0 ? name[(dot + 1)..] : name, (type, fullName, space));
            return fullName;
        }

        public (JsonElement Definition, string FullName, string? Space)? Find(string name, string? space) =>
            (!name.Contains('.') && !string.IsNullOrEmpty(space) && _byName.TryGetValue($"{space}.{name}", out var inSpace)) ? inSpace
            : _byName.TryGetValue(name, out var found) ? found : null;

        public bool Enter(string fullName) => _walking.Add(fullName);

        public void Leave(string fullName) => _walking.Remove(fullName);
    }

    /// <summary>
    /// Walks a JSON Schema: properties, array items, the branches of allOf/anyOf/oneOf (their properties are at the
    /// same level), and local <c>$ref</c>s (<c>#/$defs/...</c>, <c>#/definitions/...</c>), each not entered again
    /// inside itself.
    /// </summary>
    private static void WalkJson(JsonElement schema, string prefix, string tag, List<string> paths, int depth, JsonElement? root = null, HashSet<string>? walking = null)
    {
        if (depth > SchemaLimits.MaxDepth || schema.ValueKind != JsonValueKind.Object)
        {
            return;
        }

        root ??= schema;
        walking ??= new HashSet<string>(StringComparer.Ordinal);
        if (schema.TryGetProperty("$ref", out JsonElement reference) && reference.ValueKind == JsonValueKind.String
            && reference.GetString() is { } pointer && ResolveLocal(root.Value, pointer) is { } target && walking.Add(pointer))
        {
            WalkJson(target, prefix, tag, paths, depth + 1, root, walking);
            walking.Remove(pointer);
        }

        if (schema.TryGetProperty("properties", out JsonElement properties) && properties.ValueKind == JsonValueKind.Object)
        {
            foreach (JsonProperty property in properties.EnumerateObject())
            {
                string path = prefix.Length == 0 ? property.Name : $"{prefix}.{property.Name}";
                if (HasTag(property.Value, tag))
                {
                    paths.Add(path);
                }
                else
                {
                    WalkJson(property.Value, path, tag, paths, depth + 1, root, walking);
                }
            }
        }

        if (schema.TryGetProperty("items", out JsonElement items))
        {
            WalkJson(items, prefix, tag, paths, depth + 1, root, walking);
        }

        foreach (string combinator in (ReadOnlySpan<string>)["allOf", "anyOf", "oneOf"])
        {
            if (schema.TryGetProperty(combinator, out JsonElement branches) && branches.ValueKind == JsonValueKind.Array)
            {
                foreach (JsonElement branch in branches.EnumerateArray())
                {
                    WalkJson(branch, prefix, tag, paths, depth + 1, root, walking);
                }
            }
        }
    }

    /// <summary>The subschema a local JSON pointer (<c>#/a/b</c>) names, or null for any other reference.</summary>
    private static JsonElement? ResolveLocal(JsonElement root, string pointer)
    {
        if (!pointer.StartsWith("#/", StringComparison.Ordinal))
        {
            return null;
        }

        JsonElement current = root;
        foreach (string raw in pointer[2..].Split('/'))
        {
            string token = Uri.UnescapeDataString(raw).Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);
            if (current.ValueKind != JsonValueKind.Object || !current.TryGetProperty(token, out current))
            {
                return null;
            }
        }

        return current;
    }
}
