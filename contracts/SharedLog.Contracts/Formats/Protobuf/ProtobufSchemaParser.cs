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

            CheckMessageNesting(parsed);
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

    private static void CheckMessageNesting(FileDescriptorProto file)
    {
        var pending = new Stack<(DescriptorProto Message, int Depth)>();
        foreach (var message in file.MessageTypes)
        {
            pending.Push((message, 1));
        }

        while (pending.Count > 0)
        {
            var (message, depth) = pending.Pop();
            if (depth > SchemaLimits.MaxDepth)
            {
                throw new InvalidSchemaException($"Invalid Protobuf schema: messages in {DisplayName(file.Name)} are nested more than {SchemaLimits.MaxDepth} levels deep (at '{message.Name}')");
            }

            foreach (var nested in message.NestedTypes)
            {
                pending.Push((nested, depth + 1));
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
