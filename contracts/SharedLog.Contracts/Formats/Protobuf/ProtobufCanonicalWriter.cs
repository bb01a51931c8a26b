using System.Globalization;
using System.Text;
using Google.Protobuf.Reflection;

namespace SharedLog.Contracts.Formats.Protobuf;

/// <summary>
/// Renders a parsed file back to .proto text in one canonical layout, so two texts that differ only
/// in whitespace, comments, import order, field order or how type names are qualified render the
/// same. Fields are sorted by number; messages and enum values keep their declared order because
/// that order carries meaning (message indexes on the wire, the proto2 default enum value). Type
/// names are written fully qualified. Well-known options are kept, and of the custom options (extensions of
/// google.protobuf.*Options) Confluent's field annotations (<c>(confluent.field_meta)</c>'s doc and tags, in a file that
/// imports confluent/meta.proto): a serialized descriptor, as confluent-kafka-python registers, keeps its fields' tags
/// (PII), which privacy rules by tag read; before, they were dropped and a tagged field was stored in clear. Other
/// custom options are not rendered.
/// </summary>
internal static class ProtobufCanonicalWriter
{
    private const int MaxFieldNumber = 536_870_911;

    public static string Write(FileDescriptorProto file, ProtobufTypeIndex types)
    {
        var output = new StringBuilder();
        var proto3 = ProtobufTypeIndex.IsProto3(file);
        output.Append("syntax = \"").Append(proto3 ? "proto3" : "proto2").Append("\";\n");
        if (!string.IsNullOrEmpty(file.Package))
        {
            output.Append("package ").Append(file.Package).Append(";\n");
        }

        var publicImports = new HashSet<int>(file.PublicDependencies ?? []);
        var weakImports = new HashSet<int>(file.WeakDependencies ?? []);
        var imports = file.Dependencies
            .Select((path, index) => (Path: path, Modifier: publicImports.Contains(index) ? "public " : weakImports.Contains(index) ? "weak " : ""))
            .OrderBy(i => i.Path, StringComparer.Ordinal);
        foreach (var (path, modifier) in imports)
        {
            output.Append("import ").Append(modifier).Append(Quote(path)).Append(";\n");
        }

        WriteFileOptions(output, file.Options);
        var writer = new Writer(output, types, proto3, file.Dependencies.Contains(ConfluentMeta.ImportName));
        foreach (var enumType in file.EnumTypes)
        {
            writer.WriteEnum(enumType, 0);
        }

        var scope = string.IsNullOrEmpty(file.Package) ? "" : "." + file.Package;
        foreach (var message in file.MessageTypes)
        {
            writer.WriteMessage(message, scope, 0);
        }

        writer.WriteExtensions(file.Extensions, 0);
        foreach (var service in file.Services)
        {
            output.Append("\nservice ").Append(service.Name).Append(" {\n");
            foreach (var method in service.Methods)
            {
                output.Append("  rpc ").Append(method.Name).Append(" (")
                    .Append(method.ClientStreaming ? "stream " : "").Append(method.InputType).Append(") returns (")
                    .Append(method.ServerStreaming ? "stream " : "").Append(method.OutputType).Append(");\n");
            }

            output.Append("}\n");
        }

        return output.ToString();
    }

    private static void WriteFileOptions(StringBuilder output, Google.Protobuf.Reflection.FileOptions? options)
    {
        if (options is null)
        {
            return;
        }

        var rendered = new List<(string Name, string Value)>();
        void AddText(bool present, string name, string value)
        {
            if (present)
            {
                rendered.Add((name, Quote(value)));
            }
        }

        void AddBool(bool present, string name, bool value)
        {
            if (present)
            {
                rendered.Add((name, value ? "true" : "false"));
            }
        }

        AddText(options.ShouldSerializeJavaPackage(), "java_package", options.JavaPackage);
        AddText(options.ShouldSerializeJavaOuterClassname(), "java_outer_classname", options.JavaOuterClassname);
        AddBool(options.ShouldSerializeJavaMultipleFiles(), "java_multiple_files", options.JavaMultipleFiles);
        AddText(options.ShouldSerializeGoPackage(), "go_package", options.GoPackage);
        AddText(options.ShouldSerializeCsharpNamespace(), "csharp_namespace", options.CsharpNamespace);
        AddText(options.ShouldSerializeObjcClassPrefix(), "objc_class_prefix", options.ObjcClassPrefix);
        AddText(options.ShouldSerializePhpNamespace(), "php_namespace", options.PhpNamespace);
        AddText(options.ShouldSerializeRubyPackage(), "ruby_package", options.RubyPackage);
        AddText(options.ShouldSerializeSwiftPrefix(), "swift_prefix", options.SwiftPrefix);
        AddBool(options.ShouldSerializeDeprecated(), "deprecated", options.Deprecated);
        if (options.ShouldSerializeOptimizeFor())
        {
            rendered.Add(("optimize_for", options.OptimizeFor switch
            {
                Google.Protobuf.Reflection.FileOptions.OptimizeMode.CodeSize => "CODE_SIZE",
                Google.Protobuf.Reflection.FileOptions.OptimizeMode.LiteRuntime => "LITE_RUNTIME",
                _ => "SPEED",
            }));
        }

        foreach (var (name, value) in rendered.OrderBy(r => r.Name, StringComparer.Ordinal))
        {
            output.Append("option ").Append(name).Append(" = ").Append(value).Append(";\n");
        }
    }

    internal static string Quote(string value)
    {
        var quoted = new StringBuilder(value.Length + 2).Append('"');
        foreach (var c in value)
        {
            switch (c)
            {
                case '"': quoted.Append("\\\""); break;
                case '\\': quoted.Append("\\\\"); break;
                case '\n': quoted.Append("\\n"); break;
                case '\r': quoted.Append("\\r"); break;
                case '\t': quoted.Append("\\t"); break;
                default:
                    if (c < ' ')
                    {
                        quoted.Append('\\').Append(Convert.ToString(c, 8).PadLeft(3, '0'));
                    }
                    else
                    {
                        quoted.Append(c);
                    }

                    break;
            }
        }

        return quoted.Append('"').ToString();
    }

    internal static string ScalarName(FieldDescriptorProto.Type type) =>
        type.ToString()["Type".Length..].ToLowerInvariant();

    /// <summary>The JSON name protoc derives from a field name; json_name is only rendered when it differs.</summary>
    private static string DefaultJsonName(string name)
    {
        var json = new StringBuilder(name.Length);
        var upperNext = false;
        foreach (var c in name)
        {
            if (c == '_')
            {
                upperNext = true;
            }
            else
            {
                json.Append(upperNext ? char.ToUpperInvariant(c) : c);
                upperNext = false;
            }
        }

        return json.ToString();
    }

    private sealed class Writer(StringBuilder output, ProtobufTypeIndex types, bool proto3, bool confluentMeta)
    {
        public void WriteMessage(DescriptorProto message, string scope, int indent)
        {
            var fullName = scope + "." + message.Name;
            Line(indent, "");
            Line(indent, $"message {message.Name} {{");
            WriteMessageBody(message, fullName, indent + 1);
            Line(indent, "}");
        }

        private void WriteMessageBody(DescriptorProto message, string fullName, int indent)
        {
            if (message.Options?.ShouldSerializeDeprecated() == true)
            {
                Line(indent, $"option deprecated = {(message.Options.Deprecated ? "true" : "false")};");
            }

            foreach (var range in message.ReservedRanges.OrderBy(r => r.Start))
            {
                // Descriptor ranges are end-exclusive; the text form is inclusive.
                Line(indent, $"reserved {Range(range.Start, range.End - 1)};");
            }

            foreach (var name in message.ReservedNames.Order(StringComparer.Ordinal))
            {
                Line(indent, $"reserved {Quote(name)};");
            }

            foreach (var range in message.ExtensionRanges.OrderBy(r => r.Start))
            {
                Line(indent, $"extensions {Range(range.Start, range.End - 1)};");
            }

            var groupTypes = new HashSet<string>(StringComparer.Ordinal);
            var realOneofs = new Dictionary<int, List<FieldDescriptorProto>>();
            foreach (var field in message.Fields.OrderBy(f => f.Number))
            {
                if (field.ShouldSerializeOneofIndex() && !field.Proto3Optional)
                {
                    if (!realOneofs.TryGetValue(field.OneofIndex, out var members))
                    {
                        realOneofs[field.OneofIndex] = members = [];
                    }

                    members.Add(field);
                    continue;
                }

                WriteField(field, indent, inOneof: false, groupTypes);
            }

            // Oneofs are placed by their lowest field number so that declaration order does not matter.
            foreach (var (index, members) in realOneofs.OrderBy(o => o.Value[0].Number))
            {
                Line(indent, $"oneof {message.OneofDecls[index].Name} {{");
                foreach (var field in members)
                {
                    WriteField(field, indent + 1, inOneof: true, groupTypes);
                }

                Line(indent, "}");
            }

            foreach (var enumType in message.EnumTypes)
            {
                WriteEnum(enumType, indent);
            }

            foreach (var nested in message.NestedTypes)
            {
                var nestedName = fullName + "." + nested.Name;
                if (!ProtobufTypeIndex.IsMapEntry(nested) && !groupTypes.Contains(nestedName))
                {
                    WriteMessage(nested, fullName, indent);
                }
            }

            WriteExtensions(message.Extensions, indent);
        }

        public void WriteExtensions(List<FieldDescriptorProto> extensions, int indent)
        {
            foreach (var byExtendee in extensions.GroupBy(e => e.Extendee).OrderBy(g => g.Key, StringComparer.Ordinal))
            {
                Line(indent, "");
                Line(indent, $"extend {byExtendee.Key} {{");
                foreach (var field in byExtendee.OrderBy(f => f.Number))
                {
                    WriteField(field, indent + 1, inOneof: false, []);
                }

                Line(indent, "}");
            }
        }

        public void WriteEnum(EnumDescriptorProto enumType, int indent)
        {
            Line(indent, "");
            Line(indent, $"enum {enumType.Name} {{");
            if (enumType.Options?.ShouldSerializeAllowAlias() == true)
            {
                Line(indent + 1, $"option allow_alias = {(enumType.Options.AllowAlias ? "true" : "false")};");
            }

            if (enumType.Options?.ShouldSerializeDeprecated() == true)
            {
                Line(indent + 1, $"option deprecated = {(enumType.Options.Deprecated ? "true" : "false")};");
            }

            foreach (var range in enumType.ReservedRanges.OrderBy(r => r.Start))
            {
                // Enum reserved ranges are end-inclusive in descriptors.
                Line(indent + 1, $"reserved {Range(range.Start, range.End)};");
            }

            foreach (var name in enumType.ReservedNames.Order(StringComparer.Ordinal))
            {
                Line(indent + 1, $"reserved {Quote(name)};");
            }

            foreach (var value in enumType.Values)
            {
                var deprecated = value.Options?.ShouldSerializeDeprecated() == true
                    ? $" [deprecated = {(value.Options.Deprecated ? "true" : "false")}]"
                    : "";
                Line(indent + 1, string.Create(CultureInfo.InvariantCulture, $"{value.Name} = {value.Number}{deprecated};"));
            }

            Line(indent, "}");
        }

        private void WriteField(FieldDescriptorProto field, int indent, bool inOneof, HashSet<string> groupTypes)
        {
            var label = inOneof ? "" : field.label switch
            {
                FieldDescriptorProto.Label.LabelRepeated => "repeated ",
                FieldDescriptorProto.Label.LabelRequired => "required ",
                _ when !proto3 || field.Proto3Optional => "optional ",
                _ => "",
            };
            var options = FieldOptions(field);
            var entry = types.Find(field.TypeName);
            if (entry?.Message is { } mapEntry && ProtobufTypeIndex.IsMapEntry(mapEntry))
            {
                var key = mapEntry.Fields.First(f => f.Number == 1);
                var value = mapEntry.Fields.First(f => f.Number == 2);
                Line(indent, string.Create(CultureInfo.InvariantCulture, $"map<{TypeName(key)}, {TypeName(value)}> {field.Name} = {field.Number}{options};"));
                return;
            }

            if (field.type == FieldDescriptorProto.Type.TypeGroup && entry?.Message is { } group)
            {
                // A group declares its message inline; the nested message is not rendered again.
                groupTypes.Add(entry.FullName);
                Line(indent, string.Create(CultureInfo.InvariantCulture, $"{label}group {group.Name} = {field.Number}{options} {{"));
                WriteMessageBody(group, entry.FullName, indent + 1);
                Line(indent, "}");
                return;
            }

            Line(indent, string.Create(CultureInfo.InvariantCulture, $"{label}{TypeName(field)} {field.Name} = {field.Number}{options};"));
        }

        private static string TypeName(FieldDescriptorProto field) =>
            field.type is FieldDescriptorProto.Type.TypeMessage or FieldDescriptorProto.Type.TypeEnum or FieldDescriptorProto.Type.TypeGroup
                ? field.TypeName
                : ScalarName(field.type);

        private string FieldOptions(FieldDescriptorProto field)
        {
            var options = new List<string>();
            if (field.ShouldSerializeDefaultValue())
            {
                var value = field.type switch
                {
                    FieldDescriptorProto.Type.TypeString => Quote(field.DefaultValue),
                    // Bytes defaults are stored C-escaped already.
                    FieldDescriptorProto.Type.TypeBytes => "\"" + field.DefaultValue + "\"",
                    _ => field.DefaultValue,
                };
                options.Add("default = " + value);
            }

            if (field.ShouldSerializeJsonName() && !string.Equals(field.JsonName, DefaultJsonName(field.Name), StringComparison.Ordinal))
            {
                options.Add("json_name = " + Quote(field.JsonName));
            }

            if (field.Options?.ShouldSerializePacked() == true)
            {
                options.Add("packed = " + (field.Options.Packed ? "true" : "false"));
            }

            if (field.Options?.ShouldSerializeDeprecated() == true)
            {
                options.Add("deprecated = " + (field.Options.Deprecated ? "true" : "false"));
            }

            if (confluentMeta && ConfluentMeta.FieldDoc(field) is { } doc)
            {
                options.Add("(confluent.field_meta).doc = " + Quote(doc));
            }

            foreach (string tag in confluentMeta ? ConfluentMeta.FieldTags(field) : [])
            {
                options.Add("(confluent.field_meta).tags = " + Quote(tag));
            }

            return options.Count == 0 ? "" : " [" + string.Join(", ", options) + "]";
        }

        private static string Range(int start, int end) =>
            start == end
                ? start.ToString(CultureInfo.InvariantCulture)
                : string.Create(CultureInfo.InvariantCulture, $"{start} to {(end >= MaxFieldNumber ? "max" : end.ToString(CultureInfo.InvariantCulture))}");

        private void Line(int indent, string text)
        {
            if (text.Length == 0)
            {
                output.Append('\n');
                return;
            }

            output.Append(' ', indent * 2).Append(text).Append('\n');
        }
    }
}
