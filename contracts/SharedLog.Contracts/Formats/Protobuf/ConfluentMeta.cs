using Google.Protobuf.Reflection;
using ProtoBuf;

namespace SharedLog.Contracts.Formats.Protobuf;

/// <summary>
/// Confluent's field, message and file annotations for Protobuf (<c>import "confluent/meta.proto"</c>,
/// e.g. <c>string ssn = 1 [(confluent.field_meta).tags = "PII"];</c>). Confluent's registry resolves
/// that import without a registered reference, so this registry does too; the extension number 1088
/// and the <c>Meta</c> message layout (doc = 1, params = 2, tags = 3) are Confluent's.
/// </summary>
internal static class ConfluentMeta
{
    public const string ImportName = "confluent/meta.proto";

    private const int ExtensionField = 1088;

    public const string ProtoText = """
        syntax = "proto3";
        package confluent;

        import "google/protobuf/descriptor.proto";

        message Meta {
          string doc = 1;
          map<string, string> params = 2;
          repeated string tags = 3;
        }

        extend google.protobuf.FileOptions { Meta file_meta = 1088; }
        extend google.protobuf.MessageOptions { Meta message_meta = 1088; }
        extend google.protobuf.FieldOptions { Meta field_meta = 1088; }
        extend google.protobuf.EnumOptions { Meta enum_meta = 1088; }
        extend google.protobuf.EnumValueOptions { Meta enum_value_meta = 1088; }
        """;

    private const int DocField = 1;
    private const int TagsField = 3;

    /// <summary>The tags a field's <c>(confluent.field_meta).tags</c> option gives it; empty when none.</summary>
    public static IReadOnlyList<string> FieldTags(FieldDescriptorProto field) => MetaStrings(field, TagsField);

    /// <summary>
    /// The first field of <paramref name="hidden"/> (in <paramref name="hiddenSchema"/>) whose value the message read in its
    /// place (<paramref name="read"/>, in <paramref name="readSchema"/>) might store unmasked, as "name = number", or null: a
    /// field tagged <paramref name="tag"/> whose counterparts (the field of its number, the field of its name) are not both
    /// tagged, or a message field whose type holds the tag while the counterpart of its number has another type.
    /// </summary>
    public static string? FirstTagMissing(ProtobufParsedSchema hiddenSchema, DescriptorProto hidden, ProtobufParsedSchema readSchema, DescriptorProto read, string tag)
    {
        int visited = 0;
        foreach (FieldDescriptorProto field in hidden.Fields)
        {
            FieldDescriptorProto? byNumber = read.Fields.Find(f => f.Number == field.Number);
            FieldDescriptorProto? byName = read.Fields.Find(f => string.Equals(f.Name, field.Name, StringComparison.Ordinal));
            if (FieldTags(field).Contains(tag, StringComparer.Ordinal))
            {
                if ((byNumber is null && byName is null) || (byNumber is not null && !FieldTags(byNumber).Contains(tag, StringComparer.Ordinal)) || (byName is not null && !FieldTags(byName).Contains(tag, StringComparer.Ordinal)))
                {
                    return $"{field.Name} = {field.Number}";
                }
            }
            else if (field.type == FieldDescriptorProto.Type.TypeMessage && hiddenSchema.Types.Find(field.TypeName) is { Message: { } held } heldType
                && (byNumber is null || byNumber.type != FieldDescriptorProto.Type.TypeMessage || !string.Equals(readSchema.Types.Find(byNumber.TypeName)?.FullName, heldType.FullName, StringComparison.Ordinal))
                && ContainsTag(hiddenSchema, held, tag, new HashSet<DescriptorProto>(ReferenceEqualityComparer.Instance), 0, ref visited))
            {
                // A message of the same name is compared on its own; one of another name is not what the read field decodes.
                return $"{field.Name} = {field.Number}";
            }
        }

        return null;
    }

    /// <summary>A field's <c>(confluent.field_meta).doc</c>, the last one given; null when none.</summary>
    public static string? FieldDoc(FieldDescriptorProto field) => MetaStrings(field, DocField) is [.., string doc] ? doc : null;

    private static List<string> MetaStrings(FieldDescriptorProto field, int stringField)
    {
        if (field.Options is not { } options)
        {
            return [];
        }

        // The option is kept as the raw bytes of a Meta message; repeated occurrences merge, so their tags add up.
        var values = new List<string>();
        try
        {
            foreach (byte[] meta in Extensible.GetValues<byte[]>(options, ExtensionField))
            {
                ReadStrings(meta, stringField, values);
            }
        }
        catch (ProtoException)
        {
            // Extension 1088 declared by some other file with a scalar type: not Confluent's Meta, no tags.
        }

        return values;
    }

    /// <summary>Reads one string field of a Meta message (doc 1, tags 3), skipping the others; malformed bytes end the read.</summary>
    private static void ReadStrings(ReadOnlySpan<byte> meta, int stringField, List<string> values)
    {
        var reader = new ProtobufPayloadCodec.ProtoReader(meta);
        try
        {
            while (!reader.End)
            {
                (int number, int wireType) = reader.ReadTag();
                if (number == stringField && wireType == 2)
                {
                    values.Add(System.Text.Encoding.UTF8.GetString(reader.ReadLengthDelimited()));
                }
                else
                {
                    reader.SkipField(number, wireType, depth: 0);
                }
            }
        }
        catch (Model.PayloadDecodeException)
        {
            // A malformed option gives no more tags; the schema itself parsed, so this is not an error to report.
        }
    }

    /// <summary>
    /// Whether any field of any message of the file (nested messages included, whichever one a record is), or of a message
    /// their fields hold (from an imported file too), carries <paramref name="tag"/>: a privacy rule by a tag no field has
    /// would mask nothing.
    /// </summary>
    public static bool AnyFieldTagged(ProtobufParsedSchema schema, string tag)
    {
        if (TaggedExtension(schema, tag) is not null)
        {
            return true;
        }

        // Each message is walked once (a recursive or diamond-shaped schema in time linear in its messages), or again when
        // reached less deep, since its fields may then lead further before the depth limit.
        var shallowest = new Dictionary<DescriptorProto, int>(ReferenceEqualityComparer.Instance);
        var pending = new Stack<(DescriptorProto Message, int Depth)>(schema.File.MessageTypes.Select(m => (m, 0)));
        while (pending.Count > 0)
        {
            (DescriptorProto message, int depth) = pending.Pop();
            if (shallowest.TryGetValue(message, out int reached) && reached <= depth)
            {
                continue;
            }

            shallowest[message] = depth;

            foreach (FieldDescriptorProto field in message.Fields)
            {
                if (FieldTags(field).Contains(tag, StringComparer.Ordinal))
                {
                    return true;
                }

                if (depth < Registry.SchemaLimits.MaxDepth && field.type == FieldDescriptorProto.Type.TypeMessage && schema.Types.Find(field.TypeName)?.Message is { } held)
                {
                    pending.Push((held, depth + 1));
                }
            }

            foreach (DescriptorProto nested in depth < Registry.SchemaLimits.MaxDepth ? message.NestedTypes : [])
            {
                pending.Push((nested, depth + 1));
            }
        }

        return false;
    }

    /// <summary>
    /// Dotted field paths, from <paramref name="messageFullName"/> (or the file's first message), of the
    /// fields tagged <paramref name="tag"/>, following nested message fields (not map values) to the depth
    /// limit. Throws <see cref="InvalidOperationException"/> when that walk exceeds its budget.
    /// </summary>
    public static List<string> PathsWithTag(ProtobufParsedSchema schema, string tag, string? messageFullName)
    {
        if (TaggedExtension(schema, tag) is { } extension)
        {
            // The decoder keeps extension fields as unknown fields, as sent: no path reaches them, so the walk fails closed.
            throw Policy.SchemaTags.ExtensionTagged(extension.Name, tag);
        }

        var paths = new List<string>();
        string? root = messageFullName is { } name
            ? (name.StartsWith('.') ? name : "." + name)
            : schema.File.MessageTypes.Count > 0 ? (schema.Package.Length == 0 ? "." : "." + schema.Package + ".") + schema.File.MessageTypes[0].Name : null;
        var pending = new Stack<(DescriptorProto Message, string Prefix, int Depth)>();
        if (schema.Types.Find(root)?.Message is { } start)
        {
            pending.Push((start, "", 0));
        }

        int visited = 0;
        var holdsTag = new Dictionary<DescriptorProto, bool>(ReferenceEqualityComparer.Instance);
        while (pending.Count > 0)
        {
            (DescriptorProto message, string prefix, int depth) = pending.Pop();
            foreach (FieldDescriptorProto field in message.Fields)
            {
                // Paths multiply with every message field a message holds (recursive or diamond-shaped
                // schemas): past the budget the tags cannot all be found, so the caller must fail closed.
                Policy.PrivacyCheckBudget.Step();
                if (++visited > Registry.SchemaLimits.MaxTaggedWalkSteps)
                {
                    throw Registry.SchemaLimits.TaggedWalkTooLarge();
                }

                string path = prefix.Length == 0 ? field.Name : $"{prefix}.{field.Name}";
                if (FieldTags(field).Contains(tag, StringComparer.Ordinal))
                {
                    Registry.SchemaLimits.AddTaggedPath(paths, path);
                }
                else if (depth < Registry.SchemaLimits.MaxDepth
                    && field.type == FieldDescriptorProto.Type.TypeMessage
                    && schema.Types.Find(field.TypeName)?.Message is { } nested)
                {
                    if (!ProtobufTypeIndex.IsMapEntry(nested))
                    {
                        pending.Push((nested, path, depth + 1));
                    }
                    else if (nested.Fields.Find(f => f.Number == 2) is { type: FieldDescriptorProto.Type.TypeMessage } mapValue
                        && schema.Types.Find(mapValue.TypeName)?.Message is { } valueMessage && HoldsTag(schema, valueMessage, tag, depth, holdsTag, ref visited))
                    {
                        throw Policy.SchemaTags.MapValueTagged(path, tag);
                    }
                }
            }
        }

        return paths;
    }

    /// <summary>The first extension field (of the schema or the files it imports) that carries <paramref name="tag"/>, if any.</summary>
    private static FieldDescriptorProto? TaggedExtension(ProtobufParsedSchema schema, string tag)
    {
        foreach (FieldDescriptorProto extension in schema.Types.Extensions)
        {
            if (FieldTags(extension).Contains(tag, StringComparer.Ordinal))
            {
                return extension;
            }
        }

        return null;
    }

    /// <summary>As <see cref="ContainsTag"/>, remembered per message for the walk (a message under many maps is looked into once).</summary>
    private static bool HoldsTag(ProtobufParsedSchema schema, DescriptorProto message, string tag, int depth, Dictionary<DescriptorProto, bool> holdsTag, ref int visited)
    {
        if (!holdsTag.TryGetValue(message, out bool holds))
        {
            holdsTag[message] = holds = ContainsTag(schema, message, tag, [], depth, ref visited);
        }

        return holds;
    }

    /// <summary>
    /// Whether a field tagged <paramref name="tag"/> is anywhere in a message (each message looked into once), within the
    /// levels a decoded record can have: a long chain of message types is not followed past them (nor off the stack).
    /// </summary>
    private static bool ContainsTag(ProtobufParsedSchema schema, DescriptorProto message, string tag, HashSet<DescriptorProto> seen, int depth, ref int visited)
    {
        if (depth > Registry.SchemaLimits.MaxDepth || !seen.Add(message))
        {
            return false;
        }

        foreach (FieldDescriptorProto field in message.Fields)
        {
            Policy.PrivacyCheckBudget.Step();
            if (++visited > Registry.SchemaLimits.MaxTaggedWalkSteps)
            {
                throw Registry.SchemaLimits.TaggedWalkTooLarge();
            }

            if (FieldTags(field).Contains(tag, StringComparer.Ordinal)
                || (field.type == FieldDescriptorProto.Type.TypeMessage && schema.Types.Find(field.TypeName)?.Message is { } nested && ContainsTag(schema, nested, tag, seen, depth + 1, ref visited)))
            {
                return true;
            }
        }

        return false;
    }
}
