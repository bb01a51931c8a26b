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
        if (schema is Formats.Avro.AvroParsedSchema avro)
        {
            int avroBudget = SchemaLimits.MaxTaggedWalkSteps;
            WalkAvro(avro.Schema, "", tag, paths, new HashSet<string>(StringComparer.Ordinal), 0, ref avroBudget);
            return paths;
        }

        try
        {
            using JsonDocument document = JsonDocument.Parse(schema.Text, new JsonDocumentOptions { MaxDepth = SchemaLimits.MaxDepth });
            int jsonBudget = SchemaLimits.MaxTaggedWalkSteps;
            WalkJson(document.RootElement, "", tag, paths, 0, ref jsonBudget);
        }
        catch (JsonException)
        {
            // Not JSON text (cannot happen for a parsed JSON Schema); no tagged paths.
        }

        return paths;
    }

    /// <summary>Counts one step (a schema node entered) against the walk's budget: past it the tagged fields cannot all be found, so the caller fails closed.</summary>
    private static void Step(ref int budget)
    {
        if (--budget < 0)
        {
            throw SchemaLimits.TaggedWalkTooLarge();
        }
    }

    /// <summary>Whether a JSON Schema property's <c>confluent:tags</c> lists the tag.</summary>
    private static bool HasTag(JsonElement element, string tag) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty("confluent:tags", out JsonElement tags) && ListsTag(tags, tag);

    private static bool ListsTag(JsonElement tags, string tag) =>
        tags.ValueKind == JsonValueKind.Array && tags.EnumerateArray().Any(t => t.ValueKind == JsonValueKind.String && t.GetString() == tag);

    /// <summary>
    /// Walks an Avro type as the Avro library resolved it, so a named type used again by name (a second Address
    /// field) or from a referenced schema is the same record as its definition. A record is not entered again
    /// inside itself (recursive types), since a dotted path cannot name every level of one.
    /// </summary>
    private static void WalkAvro(Avro.Schema type, string prefix, string tag, List<string> paths, HashSet<string> walking, int depth, ref int budget)
    {
        Step(ref budget);
        if (depth > SchemaLimits.MaxDepth)
        {
            return;
        }

        switch (type)
        {
            case Avro.UnionSchema union:
                foreach (Avro.Schema branch in union.Schemas)
                {
                    WalkAvro(branch, prefix, tag, paths, walking, depth + 1, ref budget);
                }

                break;
            case Avro.ArraySchema array:
                WalkAvro(array.ItemSchema, prefix, tag, paths, walking, depth + 1, ref budget);
                break;
            case Avro.RecordSchema record when walking.Add(record.Fullname):
                foreach (Avro.Field field in record.Fields)
                {
                    string path = prefix.Length == 0 ? field.Name : $"{prefix}.{field.Name}";
                    if (AvroFieldHasTag(field, tag))
                    {
                        SchemaLimits.AddTaggedPath(paths, path);
                    }
                    else
                    {
                        WalkAvro(field.Schema, path, tag, paths, walking, depth + 1, ref budget);
                    }
                }

                walking.Remove(record.Fullname);
                break;
        }
    }

    /// <summary>Whether a field's <c>confluent:tags</c> property (kept by the Avro library as JSON text) lists the tag.</summary>
    private static bool AvroFieldHasTag(Avro.Field field, string tag)
    {
        if (field.GetProperty("confluent:tags") is not { } tags)
        {
            return false;
        }

        using JsonDocument document = JsonDocument.Parse(tags);
        return ListsTag(document.RootElement, tag);
    }

    /// <summary>
    /// Walks a JSON Schema: properties, array items, the branches of allOf/anyOf/oneOf (their properties are at the
    /// same level), and local <c>$ref</c>s (<c>#/$defs/...</c>, <c>#/definitions/...</c>), each not entered again
    /// inside itself.
    /// </summary>
    private static void WalkJson(JsonElement schema, string prefix, string tag, List<string> paths, int depth, ref int budget, JsonElement? root = null, HashSet<string>? walking = null)
    {
        Step(ref budget);
        if (depth > SchemaLimits.MaxDepth || schema.ValueKind != JsonValueKind.Object)
        {
            return;
        }

        root ??= schema;
        walking ??= new HashSet<string>(StringComparer.Ordinal);
        if (schema.TryGetProperty("$ref", out JsonElement reference) && reference.ValueKind == JsonValueKind.String
            && reference.GetString() is { } pointer && SchemaFieldPaths.JsonPointer(root.Value, pointer) is { } target && walking.Add(pointer))
        {
            WalkJson(target, prefix, tag, paths, depth + 1, ref budget, root, walking);
            walking.Remove(pointer);
        }

        if (schema.TryGetProperty("properties", out JsonElement properties) && properties.ValueKind == JsonValueKind.Object)
        {
            foreach (JsonProperty property in properties.EnumerateObject())
            {
                string path = prefix.Length == 0 ? property.Name : $"{prefix}.{property.Name}";
                if (IsTagged(property.Value, tag, root.Value, depth + 1, ref budget))
                {
                    SchemaLimits.AddTaggedPath(paths, path);
                }
                else
                {
                    WalkJson(property.Value, path, tag, paths, depth + 1, ref budget, root, walking);
                }
            }
        }

        if (schema.TryGetProperty("items", out JsonElement items))
        {
            WalkJson(items, prefix, tag, paths, depth + 1, ref budget, root, walking);
        }

        foreach (string combinator in (ReadOnlySpan<string>)["allOf", "anyOf", "oneOf"])
        {
            if (schema.TryGetProperty(combinator, out JsonElement branches) && branches.ValueKind == JsonValueKind.Array)
            {
                foreach (JsonElement branch in branches.EnumerateArray())
                {
                    WalkJson(branch, prefix, tag, paths, depth + 1, ref budget, root, walking);
                }
            }
        }
    }

    /// <summary>
    /// Whether a property's schema carries the tag itself, or through what it is made of: a local <c>$ref</c> to a
    /// tagged definition (<c>"email": {"$ref": "#/$defs/Email"}</c>), a tagged <c>allOf</c> branch, a tagged <c>anyOf</c>
    /// or <c>oneOf</c> branch (<c>[{"type": "string", "confluent:tags": ["PII"]}, {"type": "null"}]</c>: the value may be
    /// the tagged kind, so it is masked whichever it is), or tagged array <c>items</c> (every element is).
    /// </summary>
    private static bool IsTagged(JsonElement schema, string tag, JsonElement root, int depth, ref int budget)
    {
        Step(ref budget);
        if (depth > SchemaLimits.MaxDepth || schema.ValueKind != JsonValueKind.Object)
        {
            return false;
        }

        if (HasTag(schema, tag))
        {
            return true;
        }

        if (schema.TryGetProperty("$ref", out JsonElement reference) && reference.ValueKind == JsonValueKind.String
            && reference.GetString() is { } pointer && SchemaFieldPaths.JsonPointer(root, pointer) is { } target && IsTagged(target, tag, root, depth + 1, ref budget))
        {
            return true;
        }

        if (schema.TryGetProperty("items", out JsonElement items) && IsTagged(items, tag, root, depth + 1, ref budget))
        {
            return true;
        }

        foreach (string combinator in (ReadOnlySpan<string>)["allOf", "anyOf", "oneOf"])
        {
            if (schema.TryGetProperty(combinator, out JsonElement branches) && branches.ValueKind == JsonValueKind.Array)
            {
                foreach (JsonElement branch in branches.EnumerateArray())
                {
                    if (IsTagged(branch, tag, root, depth + 1, ref budget))
                    {
                        return true;
                    }
                }
            }
        }

        return false;
    }
}
