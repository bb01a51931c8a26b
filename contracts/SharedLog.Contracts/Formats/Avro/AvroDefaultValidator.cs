using Avro;
using Newtonsoft.Json.Linq;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Formats.Avro;

/// <summary>
/// Checks every field default against its field type, per the Avro specification's JSON encoding of
/// default values; Apache.Avro accepts any JSON there. A union default may match any branch (as
/// Avro 1.12 allows). Default values are finite JSON whose depth is already bounded.
/// </summary>
internal static class AvroDefaultValidator
{
    public static void Validate(Schema root, string what)
    {
        var visited = new HashSet<Schema>(ReferenceEqualityComparer.Instance);
        var pending = new Stack<Schema>();
        pending.Push(root);
        while (pending.Count > 0)
        {
            var schema = AvroSchemaKinds.Unwrap(pending.Pop());
            if (!visited.Add(schema))
            {
                continue;
            }

            switch (schema)
            {
                case RecordSchema record:
                    foreach (var field in record.Fields)
                    {
                        if (field.DefaultValue is not null && !IsValid(field.DefaultValue, field.Schema))
                        {
                            throw new InvalidSchemaException(
                                $"{what}: invalid default for field '{field.Name}' of record '{record.Fullname}': " +
                                $"{field.DefaultValue.ToString(Newtonsoft.Json.Formatting.None)} is not a valid {AvroSchemaKinds.Describe(field.Schema)}");
                        }

                        pending.Push(field.Schema);
                    }

                    break;
                case ArraySchema array:
                    pending.Push(array.ItemSchema);
                    break;
                case MapSchema map:
                    pending.Push(map.ValueSchema);
                    break;
                case UnionSchema union:
                    foreach (var branch in union.Schemas)
                    {
                        pending.Push(branch);
                    }

                    break;
                default:
                    break;
            }
        }
    }

    private static bool IsValid(JToken value, Schema schema)
    {
        schema = AvroSchemaKinds.Unwrap(schema);
        return schema.Tag switch
        {
            Schema.Type.Null => value.Type == JTokenType.Null,
            Schema.Type.Boolean => value.Type == JTokenType.Boolean,
            Schema.Type.Int => value.Type == JTokenType.Integer && IsInRange(value, int.MinValue, int.MaxValue),
            Schema.Type.Long => value.Type == JTokenType.Integer && IsInRange(value, long.MinValue, long.MaxValue),
            Schema.Type.Float or Schema.Type.Double => value.Type is JTokenType.Integer or JTokenType.Float,
            Schema.Type.Bytes or Schema.Type.String or Schema.Type.Fixed => value.Type == JTokenType.String,
            Schema.Type.Enumeration => value.Type == JTokenType.String && ((EnumSchema)schema).Contains(value.Value<string>()!),
            Schema.Type.Array => value is JArray items && items.All(item => IsValid(item, ((ArraySchema)schema).ItemSchema)),
            Schema.Type.Map => value is JObject entries && entries.Properties().All(entry => IsValid(entry.Value, ((MapSchema)schema).ValueSchema)),
            Schema.Type.Record or Schema.Type.Error => value is JObject recordValue && ((RecordSchema)schema).Fields.All(field =>
                recordValue.TryGetValue(field.Name, StringComparison.Ordinal, out var fieldValue)
                    ? IsValid(fieldValue, field.Schema)
                    : field.DefaultValue is not null),
            Schema.Type.Union => ((UnionSchema)schema).Schemas.Any(branch => IsValid(value, branch)),
            _ => false,
        };
    }

    private static bool IsInRange(JToken value, long min, long max)
    {
        var integer = ((JValue)value).Value;
        return integer switch
        {
            long number => number >= min && number <= max,
            int number => number >= min && number <= max,
            _ => false, // BigInteger: beyond long
        };
    }
}
