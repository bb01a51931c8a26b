using System.Buffers;
using System.Text;
using System.Text.Json;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Formats.Avro;

/// <summary>
/// Logical types Java's Avro parser ignores but Apache.Avro's C# parser refuses. Java reads an invalid logical type
/// (<c>timestamp-millis</c> on a string, a <c>decimal</c> without precision or with a scale above it) as its base type,
/// and takes <c>uuid</c> on a 16-byte fixed; Confluent's registry, built on it, registers such schemas. The C# parser
/// throws on each, so such a schema is parsed again without those <c>logicalType</c> attributes: its values are read as
/// the base type, but a uuid on a 16-byte fixed keeps a marker (<see cref="UuidFixedMarker"/>) the codec reads it as a
/// uuid by, as Java does. The schema text and its canonical form keep the attribute, not the marker.
/// </summary>
internal static class AvroInvalidLogicalTypes
{
    /// <summary>The property the re-parsed text gives a 16-byte fixed whose logical type was uuid (Java's uuid on a fixed).</summary>
    public const string UuidFixedMarker = "sharedlog.uuidOnFixed";

    /// <summary>Whether this fixed carried Java's uuid logical type: its values are UUIDs, big-endian, as Java reads them.</summary>
    public static bool IsUuidFixed(global::Avro.FixedSchema schema) => schema.Size == 16 && schema.GetProperty(UuidFixedMarker) is not null;

    /// <summary>The schema's JSON without the logical types Java would ignore, or null when it has none.</summary>
    public static string? Without(JsonElement root)
    {
        if (!HasAny(root, 0))
        {
            return null;
        }

        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            Write(writer, root);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static bool HasAny(JsonElement element, int depth) => element.ValueKind switch
    {
        _ when depth > SchemaLimits.MaxDepth => false,
        JsonValueKind.Object => IsIgnoredByJava(element) || element.EnumerateObject().Any(property => HasAny(property.Value, depth + 1)),
        JsonValueKind.Array => element.EnumerateArray().Any(item => HasAny(item, depth + 1)),
        _ => false,
    };

    private static void Write(Utf8JsonWriter writer, JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                bool dropLogicalType = IsIgnoredByJava(element);
                writer.WriteStartObject();
                foreach (JsonProperty property in element.EnumerateObject())
                {
                    if (dropLogicalType && property.NameEquals("logicalType"))
                    {
                        if (IsUuidOnFixed(element))
                        {
                            writer.WriteBoolean(UuidFixedMarker, true);
                        }

                        continue;
                    }

                    writer.WritePropertyName(property.Name);
                    Write(writer, property.Value);
                }

                writer.WriteEndObject();
                break;
            case JsonValueKind.Array:
                writer.WriteStartArray();
                foreach (JsonElement item in element.EnumerateArray())
                {
                    Write(writer, item);
                }

                writer.WriteEndArray();
                break;
            default:
                element.WriteTo(writer);
                break;
        }
    }

    /// <summary>
    /// Whether this schema object carries a logical type the C# parser would refuse where Java's reads it as its base
    /// type (or, for uuid on a 16-byte fixed, as a uuid). Names the C# parser does not know it already keeps as unknown.
    /// </summary>
    private static bool IsIgnoredByJava(JsonElement schema)
    {
        if (!schema.TryGetProperty("logicalType", out JsonElement nameElement) || nameElement.ValueKind != JsonValueKind.String
            || !schema.TryGetProperty("type", out JsonElement typeElement) || typeElement.ValueKind != JsonValueKind.String)
        {
            return false;
        }

        string type = typeElement.GetString()!;
        int? fixedSize = type == "fixed" && schema.TryGetProperty("size", out JsonElement size) && size.TryGetInt32(out int bytes) ? bytes : null;
        return nameElement.GetString() switch
        {
            "decimal" => !ValidDecimal(schema, type, fixedSize),
            "uuid" => type != "string", // on a fixed(16) Java's uuid, which C# cannot parse; anything else Java ignores
            "date" or "time-millis" => type != "int",
            "time-micros" or "timestamp-millis" or "timestamp-micros" or "local-timestamp-millis" or "local-timestamp-micros" => type != "long",
            "duration" => fixedSize != 12,
            _ => false,
        };
    }

    private static bool IsUuidOnFixed(JsonElement schema) =>
        schema.TryGetProperty("logicalType", out JsonElement name) && name.ValueEquals("uuid")
        && schema.TryGetProperty("type", out JsonElement type) && type.ValueEquals("fixed")
        && schema.TryGetProperty("size", out JsonElement size) && size.TryGetInt32(out int bytes) && bytes == 16;

    private static bool ValidDecimal(JsonElement schema, string type, int? fixedSize)
    {
        if (type is not ("bytes" or "fixed")
            || !schema.TryGetProperty("precision", out JsonElement precisionElement) || !precisionElement.TryGetInt32(out int precision) || precision <= 0)
        {
            return false;
        }

        int scale = 0;
        if (schema.TryGetProperty("scale", out JsonElement scaleElement) && (!scaleElement.TryGetInt32(out scale) || scale < 0))
        {
            return false;
        }

        // A fixed holds at most floor(log10(2^(8 * size - 1) - 1)) digits.
        return scale <= precision && (fixedSize is not { } bytes || precision <= Math.Floor(Math.Log10(Math.Pow(2, (8.0 * bytes) - 1) - 1)));
    }
}
