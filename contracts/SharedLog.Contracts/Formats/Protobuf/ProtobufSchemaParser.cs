using System.Globalization;
using Google.Protobuf.Reflection;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Formats.Protobuf;

/// <summary>Turns .proto text plus its resolved references into a <see cref="ProtobufParsedSchema"/>, within <see cref="SchemaLimits"/>.</summary>
internal static class ProtobufSchemaParser
{
    /// <summary>The virtual name of the schema being parsed; chosen so it cannot clash with an import path a client registers.</summary>
    internal const string MainFileName = "<schema>";

    /// <summary>Most referenced files accepted for one schema, counting transitive references.</summary>
    internal const int MaxReferencedFiles = 1000;

    /// <summary>Most errors quoted in one exception message.</summary>
    private const int MaxReportedErrors = 5;

    public static ProtobufParsedSchema Parse(string schemaText, IReadOnlyList<ResolvedReference> references, bool normalize)
    {
        ArgumentNullException.ThrowIfNull(schemaText);
        references ??= [];
        (schemaText, long work) = CheckedText(schemaText, "the schema");

        var bindings = new ShadowedReferences();
        var importable = FlattenReferences(references, bindings, ref work);
        bindings.Complete();
        if (work > ProtobufTextGuard.MaxDeclarationWork)
        {
            throw new InvalidSchemaException($"Invalid Protobuf schema: the schema and the files it imports hold too many declarations per message for the parser: the squares of each message's count add up to {work:N0}, more than {ProtobufTextGuard.MaxDeclarationWork:N0} (as four messages of {ProtobufTextGuard.MaxDeclarationsPerMessage:N0} fields)");
        }

        // Confluent's registry serves its own annotations file to every schema; it always wins over a
        // reference of that name, so a client cannot redefine where tags live and slip fields past tag rules.
        importable[ConfluentMeta.ImportName] = ConfluentMeta.ProtoText;

        var set = new FileDescriptorSet { FileSystem = new ReferenceFileSystem(importable) };
        // The empty import path makes import names resolve as given, against the virtual file system only.
        set.AddImportPath("");
        ProtoBuf.Reflection.Error[] errors;
        try
        {
            set.Add(MainFileName, true, new StringReader(schemaText));
            set.Process();
            errors = set.GetErrors();
        }
        catch (Exception ex) when (ex is not InvalidSchemaException)
        {
            throw new InvalidSchemaException($"Invalid Protobuf schema: the parser failed: {ex.Message}", ex);
        }

        var fatal = errors.Where(e => e.IsError).ToList();
        if (fatal.Count > 0)
        {
            var described = fatal.Take(MaxReportedErrors).Select(Describe);
            var more = fatal.Count > MaxReportedErrors ? $" (and {fatal.Count - MaxReportedErrors} more)" : "";
            throw new InvalidSchemaException("Invalid Protobuf schema: " + string.Join("; ", described) + more);
        }

        var file = set.Files.FirstOrDefault(f => string.Equals(f.Name, MainFileName, StringComparison.Ordinal))
            ?? throw new InvalidSchemaException("Invalid Protobuf schema: the parser produced no file descriptor");
        foreach (var parsed in set.Files)
        {
            if (string.Equals(parsed.Syntax, "editions", StringComparison.Ordinal))
            {
                throw new InvalidSchemaException($"Invalid Protobuf schema: {DisplayName(parsed.Name)} uses editions; only proto2 and proto3 are supported");
            }

            CheckDeclarations(parsed, asNewSchema: false);
        }

        var types = new ProtobufTypeIndex(set.Files);
        var canonical = ProtobufCanonicalWriter.Write(file, types);
        var customOptions = ProtobufCustomOptions.Identity(file);

        // The canonical layout does not render custom options, so a schema with some is stored as written even when asked
        // to normalize: normalizing must not drop a field's PII tag, and the text must re-parse to the same identity.
        var stored = normalize && customOptions.Length == 0 ? canonical : schemaText;
        return new ProtobufParsedSchema(stored, canonical + customOptions, references, file, types) { Bindings = bindings };
    }

    private static string Describe(ProtoBuf.Reflection.Error error)
    {
        var where = string.Create(CultureInfo.InvariantCulture, $"line {error.LineNumber}, column {error.ColumnNumber}");
        var file = string.Equals(error.File, MainFileName, StringComparison.Ordinal) ? "" : $"in '{error.File}' ";
        var message = error.Message.StartsWith("unable to find", StringComparison.Ordinal)
            ? $"{error.Message} (imports must be registered references or well-known google/protobuf types)"
            : error.Message;
        return $"{file}{where}: {message}";
    }

    private static string DisplayName(string fileName) =>
        string.Equals(fileName, MainFileName, StringComparison.Ordinal) ? "the schema" : $"'{fileName}'";

    /// <summary>All references, transitively, by import name; the first text seen for a name wins (the others are noted in <paramref name="bindings"/>).</summary>
    private static Dictionary<string, string> FlattenReferences(IReadOnlyList<ResolvedReference> references, ShadowedReferences bindings, ref long work)
    {
        var byName = new Dictionary<string, string>(StringComparer.Ordinal);
        var pending = new Stack<ResolvedReference>(references.Reverse());
        while (pending.Count > 0)
        {
            var reference = pending.Pop();
            if (reference is null)
            {
                continue;
            }

            if (byName.ContainsKey(reference.Name))
            {
                bindings.Shadow(reference.Name, reference);
                continue;
            }

            if (byName.Count >= MaxReferencedFiles)
            {
                throw new InvalidSchemaException($"Invalid Protobuf schema: more than {MaxReferencedFiles} referenced files");
            }

            (var text, long referenceWork) = CheckedText(reference.SchemaText ?? "", $"reference '{reference.Name}'");
            work += referenceWork;

            byName.Add(reference.Name, text);
            bindings.Bind(reference.Name, reference);
            foreach (var nested in (reference.References ?? []).Reverse())
            {
                pending.Push(nested);
            }
        }

        return byName;
    }

    /// <summary>
    /// The schema's .proto text, checked before the parser reads it: its length, and the lexical guard's bounds. A serialized
    /// descriptor (as confluent-kafka-python registers schemas) is checked again as the text it is rendered to: as base64
    /// the guard sees no blocks, and a 923 KB descriptor of one 40,000-field message took 6.8 s to parse.
    /// </summary>
    private static (string Text, long Work) CheckedText(string text, string what)
    {
        if (text.Length > SchemaLimits.MaxSchemaChars)
        {
            throw new InvalidSchemaException($"Invalid Protobuf schema: {what} is {text.Length} characters long; the limit is {SchemaLimits.MaxSchemaChars}");
        }

        long work = ProtobufTextGuard.CheckBraceDepth(text, what);
        if (ProtobufSerializedSchema.Is(text))
        {
            // A descriptor may render to far more text than it holds (a review's 1 MB rendered to 7.9 MB): held to the
            // same length as text sent as text.
            text = ProtobufSerializedSchema.ToText(text, what);
            if (text.Length > SchemaLimits.MaxSchemaChars)
            {
                throw new InvalidSchemaException($"Invalid Protobuf schema: {what} renders to {text.Length} characters of .proto text; the limit is {SchemaLimits.MaxSchemaChars}");
            }

            work = ProtobufTextGuard.CheckBraceDepth(text, what);
        }

        return (text, work);
    }

    /// <summary>
    /// Refuses, in a schema registered from now on, what protoc (and the Wire parser of Confluent's registry) refuses and
    /// protobuf-net's parser lets through: field numbers in the range the Protocol Buffers implementation reserves, and an
    /// enum giving two names one number without <c>option allow_alias = true;</c> (a record's value would then read as the
    /// first name in rules, whichever the producer meant). Not checked on parse, so a schema stored before still loads.
    /// </summary>
    internal static void CheckNewSchema(ProtobufParsedSchema schema) => CheckDeclarations(schema.File, asNewSchema: true);

    /// <summary>Messages nested past <see cref="SchemaLimits.MaxDepth"/>, and with <paramref name="asNewSchema"/> what <see cref="CheckNewSchema"/> says.</summary>
    private static void CheckDeclarations(FileDescriptorProto file, bool asNewSchema)
    {
        if (asNewSchema)
        {
            CheckFieldNumbers(file, file.Extensions, "");
            foreach (var enumType in file.EnumTypes)
            {
                CheckEnumAliases(file, enumType, "");
            }
        }

        var pending = new Stack<(DescriptorProto Message, int Depth, string Scope)>();
        foreach (var message in file.MessageTypes)
        {
            pending.Push((message, 1, ""));
        }

        while (pending.Count > 0)
        {
            var (message, depth, scope) = pending.Pop();
            if (depth > SchemaLimits.MaxDepth)
            {
                throw new InvalidSchemaException($"Invalid Protobuf schema: messages in {DisplayName(file.Name)} are nested more than {SchemaLimits.MaxDepth} levels deep (at '{message.Name}')");
            }

            string name = scope + message.Name;
            if (asNewSchema)
            {
                CheckFieldNumbers(file, message.Fields, name + ".");
                CheckFieldNumbers(file, message.Extensions, name + ".");
                foreach (var enumType in message.EnumTypes)
                {
                    CheckEnumAliases(file, enumType, name + ".");
                }
            }

            foreach (var nested in message.NestedTypes)
            {
                pending.Push((nested, depth + 1, name + "."));
            }
        }
    }

    /// <summary>First and last field number the Protocol Buffers implementation keeps for itself.</summary>
    private const int FirstImplementationReservedNumber = 19000, LastImplementationReservedNumber = 19999;

    private static void CheckFieldNumbers(FileDescriptorProto file, List<FieldDescriptorProto> fields, string scope)
    {
        foreach (var field in fields)
        {
            if (field.Number is >= FirstImplementationReservedNumber and <= LastImplementationReservedNumber)
            {
                throw new InvalidSchemaException($"Invalid Protobuf schema: field '{scope}{field.Name}' in {DisplayName(file.Name)} has number {field.Number}; numbers {FirstImplementationReservedNumber} through {LastImplementationReservedNumber} are reserved for the Protocol Buffers implementation");
            }
        }
    }

    private static void CheckEnumAliases(FileDescriptorProto file, EnumDescriptorProto enumType, string scope)
    {
        if (enumType.Options?.AllowAlias == true)
        {
            return;
        }

        var names = new Dictionary<int, string>();
        foreach (var value in enumType.Values)
        {
            if (!names.TryAdd(value.Number, value.Name))
            {
                throw new InvalidSchemaException($"Invalid Protobuf schema: enum '{scope}{enumType.Name}' in {DisplayName(file.Name)} gives '{value.Name}' the number {value.Number.ToString(CultureInfo.InvariantCulture)} of '{names[value.Number]}'; to allow that, declare 'option allow_alias = true;' in the enum");
            }
        }
    }

    /// <summary>Serves imports from the schema's references only, never from the disk.</summary>
    private sealed class ReferenceFileSystem(Dictionary<string, string> files) : IFileSystem
    {
        public bool Exists(string path) => files.ContainsKey(path);

        public TextReader OpenText(string path) => new StringReader(files[path]);
    }
}
