using Avro;

namespace SharedLog.Contracts.Formats.Avro;

/// <summary>Small helpers over Apache.Avro's schema model shared by validation, canonical form and compatibility.</summary>
internal static class AvroSchemaKinds
{
    /// <summary>Logical types are read and written as their underlying type.</summary>
    public static Schema Unwrap(Schema schema) => schema is LogicalSchema logical ? logical.BaseSchema : schema;

    /// <summary>A short human name: "int", "record 'a.B'", "array", "union [null, string]".</summary>
    public static string Describe(Schema schema)
    {
        schema = Unwrap(schema);
        return schema switch
        {
            RecordSchema record => $"record '{record.Fullname}'",
            EnumSchema enumSchema => $"enum '{enumSchema.Fullname}'",
            FixedSchema fixedSchema => $"fixed '{fixedSchema.Fullname}' (size {fixedSchema.Size})",
            ArraySchema => "array",
            MapSchema => "map",
            UnionSchema union => "union [" + string.Join(", ", union.Schemas.Select(ShortName)) + "]",
            _ => Schema.GetTypeString(schema.Tag),
        };
    }

    private static string ShortName(Schema schema)
    {
        schema = Unwrap(schema);
        return schema is NamedSchema named ? named.Fullname : Schema.GetTypeString(schema.Tag);
    }
}
