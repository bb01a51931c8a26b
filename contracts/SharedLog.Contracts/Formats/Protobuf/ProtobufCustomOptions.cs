using System.Text;
using Google.Protobuf.Reflection;
using ProtoBuf;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Formats.Protobuf;

/// <summary>
/// The custom options of a parsed file (extensions of google.protobuf.*Options, such as Confluent's
/// <c>(confluent.field_meta).tags</c>) as text for the schema's identity. The canonical text does not
/// render them, yet tagging a field PII must register as a new version, as in Confluent's registry.
/// </summary>
internal static class ProtobufCustomOptions
{
    /// <summary>One line per element with custom options (its path and the options' encoded bytes in hex); "" when there are none.</summary>
    public static string Identity(FileDescriptorProto file)
    {
        var output = new StringBuilder();
        string prefix = string.IsNullOrEmpty(file.Package) ? "" : file.Package + ".";
        Append(output, "file", file.Options);
        foreach (DescriptorProto message in file.MessageTypes)
        {
            AppendMessage(output, prefix + message.Name, message, depth: 0);
        }

        foreach (EnumDescriptorProto enumType in file.EnumTypes)
        {
            AppendEnum(output, prefix + enumType.Name, enumType);
        }

        foreach (ServiceDescriptorProto service in file.Services)
        {
            Append(output, prefix + service.Name, service.Options);
            foreach (MethodDescriptorProto method in service.Methods)
            {
                Append(output, $"{prefix}{service.Name}.{method.Name}", method.Options);
            }
        }

        return output.ToString();
    }

    private static void AppendMessage(StringBuilder output, string fullName, DescriptorProto message, int depth)
    {
        if (depth > SchemaLimits.MaxDepth)
        {
            return; // the parser bounds nesting before this; a guard against recursing without end
        }

        Append(output, fullName, message.Options);
        // By number, as the canonical text lists them: a schema sent as a serialized descriptor is read back from that text,
        // and must have the identity of the same schema sent as text with its fields in another order.
        foreach (FieldDescriptorProto field in message.Fields.OrderBy(f => f.Number))
        {
            Append(output, $"{fullName}.{field.Name}", field.Options);
        }

        foreach (OneofDescriptorProto oneof in message.OneofDecls)
        {
            Append(output, $"{fullName}.{oneof.Name}", oneof.Options);
        }

        foreach (DescriptorProto nested in message.NestedTypes)
        {
            AppendMessage(output, $"{fullName}.{nested.Name}", nested, depth + 1);
        }

        foreach (EnumDescriptorProto enumType in message.EnumTypes)
        {
            AppendEnum(output, $"{fullName}.{enumType.Name}", enumType);
        }
    }

    private static void AppendEnum(StringBuilder output, string fullName, EnumDescriptorProto enumType)
    {
        Append(output, fullName, enumType.Options);
        foreach (EnumValueDescriptorProto value in enumType.Values)
        {
            Append(output, $"{fullName}.{value.Name}", value.Options);
        }
    }

    private static void Append(StringBuilder output, string path, IExtensible? options)
    {
        if (options?.GetExtensionObject(createIfMissing: false) is not { } extension || extension.GetLength() == 0)
        {
            return;
        }

        Stream stream = extension.BeginQuery();
        try
        {
            using var bytes = new MemoryStream();
            stream.CopyTo(bytes);
            output.Append("option ").Append(path).Append(' ').Append(Convert.ToHexString(bytes.GetBuffer(), 0, (int)bytes.Length)).Append('\n');
        }
        finally
        {
            extension.EndQuery(stream);
        }
    }
}
