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

    private static void WalkAvro(JsonElement type, string prefix, string tag, List<string> paths, int depth)
    {
        if (depth > SchemaLimits.MaxDepth)
        {
            return;
        }

        switch (type.ValueKind)
        {
            case JsonValueKind.Array:
                foreach (JsonElement branch in type.EnumerateArray())
                {
                    WalkAvro(branch, prefix, tag, paths, depth + 1);
                }

                break;
            case JsonValueKind.Object when type.TryGetProperty("fields", out JsonElement fields) && fields.ValueKind == JsonValueKind.Array:
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
                        WalkAvro(fieldType, path, tag, paths, depth + 1);
                    }
                }

                break;
            case JsonValueKind.Object when type.TryGetProperty("items", out JsonElement items):
                WalkAvro(items, prefix, tag, paths, depth + 1);
                break;
        }
    }

    private static void WalkJson(JsonElement schema, string prefix, string tag, List<string> paths, int depth)
    {
        if (depth > SchemaLimits.MaxDepth || schema.ValueKind != JsonValueKind.Object)
        {
            return;
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
                    WalkJson(property.Value, path, tag, paths, depth + 1);
                }
            }
        }

        if (schema.TryGetProperty("items", out JsonElement items))
        {
            WalkJson(items, prefix, tag, paths, depth + 1);
        }
    }
}
