using Google.Protobuf.Reflection;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Formats.Protobuf;

/// <summary>A message of a parsed schema, found by name or by its Confluent message-index path.</summary>
public sealed record ProtobufMessageInfo(string FullName, DescriptorProto Descriptor);

/// <summary>A parsed .proto schema with its resolved imports.</summary>
public sealed class ProtobufParsedSchema : IParsedSchema
{
    internal ProtobufParsedSchema(string text, string canonical, IReadOnlyList<ResolvedReference> references, FileDescriptorProto file, ProtobufTypeIndex types)
    {
        Text = text;
        Canonical = canonical;
        References = references;
        File = file;
        Types = types;
    }

    public SchemaType Type => SchemaType.Protobuf;

    public string Text { get; }

    public string Canonical { get; }

    public IReadOnlyList<ResolvedReference> References { get; }

    /// <summary>Which schema each import path stands for, and the references that named another one (see <see cref="ShadowedReference"/>).</summary>
    public ShadowedReferences Bindings { get; init; } = new();

    /// <summary>The package declared by the schema ("" when none).</summary>
    public string Package => File.Package ?? "";

    /// <summary>"proto2" or "proto3".</summary>
    public string Syntax => ProtobufTypeIndex.IsProto3(File) ? "proto3" : "proto2";

    internal FileDescriptorProto File { get; }

    // The payload codec's layouts of the file's top-level messages, by index, made on first use (a race makes one twice).
    private ProtobufMessageLayout?[]? _topLevelLayouts;

    internal ProtobufMessageLayout? TopLevelLayout(int index) =>
        _topLevelLayouts is { } known && (uint)index < (uint)known.Length ? known[index] : null;

    internal void KeepTopLevelLayout(int index, ProtobufMessageLayout layout)
    {
        ProtobufMessageLayout?[] layouts = _topLevelLayouts ??= new ProtobufMessageLayout?[File.MessageTypes.Count];
        if ((uint)index < (uint)layouts.Length)
        {
            layouts[index] = layout;
        }
    }

    /// <summary>The full name of the file's first message (what Confluent's serializers name a schema by), or null when it has none.</summary>
    public string? FirstMessageFullName => File.MessageTypes.Count == 0 ? null : FullNameOf(File.MessageTypes[0]);

    /// <summary>
    /// The full names of every message of the file a record may name by its message indexes: top-level ones ([i]) and
    /// nested ones ([i, j, ...]), not map entries.
    /// </summary>
    public IEnumerable<string> RecordMessageFullNames
    {
        get
        {
            // Nesting was bounded when the schema was parsed; the stack only spares a recursion.
            var pending = new Stack<(string FullName, DescriptorProto Message)>(File.MessageTypes.Select(m => (FullNameOf(m), m)));
            while (pending.Count > 0)
            {
                (string fullName, DescriptorProto message) = pending.Pop();
                yield return fullName;
                foreach (DescriptorProto nested in message.NestedTypes)
                {
                    if (!ProtobufTypeIndex.IsMapEntry(nested))
                    {
                        pending.Push(($"{fullName}.{nested.Name}", nested));
                    }
                }
            }
        }
    }

    private string FullNameOf(DescriptorProto message) => Package.Length == 0 ? message.Name : $"{Package}.{message.Name}";

    /// <summary>
    /// The schema as the base64 of its serialized <c>FileDescriptorProto</c>: Confluent's <c>format=serialized</c>, which
    /// confluent-kafka-python's Protobuf deserializer asks for (it names the file itself).
    /// </summary>
    public string SerializedDescriptor()
    {
        var buffer = new MemoryStream();
        ProtoBuf.Serializer.Serialize(buffer, File);
        return Convert.ToBase64String(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    internal ProtobufTypeIndex Types { get; }

    /// <summary>
    /// The message-index path Confluent's serializers write after the schema id: the index of the
    /// top-level message among the file's messages, then the index within each enclosing message's
    /// nested messages. Synthesized map-entry messages are not counted (they are not declared in the
    /// text, and Confluent's registry indexes the declared messages). Null when the schema has no
    /// such message.
    /// </summary>
    public int[]? GetMessageIndexes(string messageFullName)
    {
        ArgumentNullException.ThrowIfNull(messageFullName);
        var wanted = messageFullName.StartsWith('.') ? messageFullName : "." + messageFullName;
        var scope = Package.Length == 0 ? "" : "." + Package;
        if (!wanted.StartsWith(scope + ".", StringComparison.Ordinal))
        {
            return null;
        }

        var path = new List<int>();
        var candidates = File.MessageTypes;
        while (true)
        {
            var found = false;
            var index = 0;
            foreach (var message in candidates)
            {
                if (ProtobufTypeIndex.IsMapEntry(message))
                {
                    continue;
                }

                var name = scope + "." + message.Name;
                if (string.Equals(name, wanted, StringComparison.Ordinal))
                {
                    path.Add(index);
                    return [.. path];
                }

                if (wanted.StartsWith(name + ".", StringComparison.Ordinal))
                {
                    path.Add(index);
                    scope = name;
                    candidates = message.NestedTypes;
                    found = true;
                    break;
                }

                index++;
            }

            if (!found)
            {
                return null;
            }
        }
    }

    /// <summary>The message an index path designates; an empty path means the first message, as in Confluent's wire format.</summary>
    public ProtobufMessageInfo? FindMessage(IReadOnlyList<int> indexes)
    {
        ArgumentNullException.ThrowIfNull(indexes);
        IReadOnlyList<int> path = indexes.Count == 0 ? [0] : indexes;
        var scope = Package.Length == 0 ? "" : "." + Package;
        var candidates = File.MessageTypes;
        DescriptorProto? current = null;
        foreach (var wanted in path)
        {
            var declared = candidates.Where(m => !ProtobufTypeIndex.IsMapEntry(m)).ToList();
            if (wanted < 0 || wanted >= declared.Count)
            {
                return null;
            }

            current = declared[wanted];
            scope = scope + "." + current.Name;
            candidates = current.NestedTypes;
        }

        return current is null ? null : new ProtobufMessageInfo(scope.TrimStart('.'), current);
    }
}
