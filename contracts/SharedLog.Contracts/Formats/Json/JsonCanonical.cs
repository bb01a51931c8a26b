using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Formats.Json;

/// <summary>
/// Canonical JSON text: object keys sorted by ordinal, no whitespace, numbers as written. Two schemas
/// differing only in key order or layout get the same text. Duplicate keys are rejected because
/// their meaning differs between parsers.
/// </summary>
internal static class JsonCanonical
{
    private static readonly JsonWriterOptions WriterOptions = new()
    {
        Indented = false,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        MaxDepth = SchemaLimits.MaxDepth + 8,
    };

    public static string Write(JsonElement element)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            WriteValue(writer, element, string.Empty);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>Canonical text of a data value, with numbers compared by value (1 and 1.0 are equal).</summary>
    public static string ValueKey(JsonElement element) =>
        element.ValueKind == JsonValueKind.Number && JsonNumbers.Read(element) is { } number
            ? JsonNumbers.Format(number / 1.000000000000000000000000000000000m)
            : Write(element);

    private static void WriteValue(Utf8JsonWriter writer, JsonElement element, string pointer)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                var seen = new HashSet<string>(StringComparer.Ordinal);
                var properties = new List<JsonProperty>();
                foreach (var property in element.EnumerateObject())
                {
                    if (!seen.Add(property.Name))
                    {
                        throw new InvalidSchemaException($"Invalid JSON schema at #{pointer}: duplicate key '{property.Name}'");
                    }

                    properties.Add(property);
                }

                properties.Sort(static (a, b) => string.CompareOrdinal(a.Name, b.Name));
                writer.WriteStartObject();
                foreach (var property in properties)
                {
                    writer.WritePropertyName(property.Name);
                    WriteValue(writer, property.Value, pointer + "/" + JsonPointer.Escape(property.Name));
                }

                writer.WriteEndObject();
                break;
            case JsonValueKind.Array:
                writer.WriteStartArray();
                var index = 0;
                foreach (var item in element.EnumerateArray())
                {
                    WriteValue(writer, item, pointer + "/" + index.ToString(System.Globalization.CultureInfo.InvariantCulture));
                    index++;
                }

                writer.WriteEndArray();
                break;
            default:
                element.WriteTo(writer);
                break;
        }
    }
}
