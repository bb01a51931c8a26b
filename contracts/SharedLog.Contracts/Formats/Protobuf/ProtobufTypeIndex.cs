using Google.Protobuf.Reflection;

namespace SharedLog.Contracts.Formats.Protobuf;

/// <summary>A message or enum type declared in a schema or one of its imports.</summary>
internal sealed record ProtobufTypeEntry(string FullName, string Package, bool Proto3, DescriptorProto? Message, EnumDescriptorProto? Enum)
{
    /// <summary>The name inside its package ("Outer.Inner"), which Confluent compares when a field's message type changes.</summary>
    public string LocalName => Package.Length == 0 ? FullName.TrimStart('.') : FullName[(Package.Length + 2)..];
}

/// <summary>Every type of a parsed file set by fully-qualified name (leading dot, as protobuf-net resolves field types).</summary>
internal sealed class ProtobufTypeIndex
{
    private readonly Dictionary<string, ProtobufTypeEntry> _byName = new(StringComparer.Ordinal);
    private readonly List<FieldDescriptorProto> _extensions = [];

    /// <summary>The extension fields every indexed file declares (at file level or inside messages).</summary>
    public IReadOnlyList<FieldDescriptorProto> Extensions => _extensions;

    public ProtobufTypeIndex(IEnumerable<FileDescriptorProto> files)
    {
        foreach (var file in files)
        {
            _extensions.AddRange(file.Extensions);
            var package = file.Package ?? "";
            var prefix = package.Length == 0 ? "" : "." + package;
            var proto3 = IsProto3(file);
            // Nesting was bounded before indexing, so an explicit stack only avoids needless recursion.
            var pending = new Stack<(string Scope, DescriptorProto Message)>();
            foreach (var message in file.MessageTypes)
            {
                pending.Push((prefix, message));
            }

            foreach (var enumType in file.EnumTypes)
            {
                Add(new ProtobufTypeEntry(prefix + "." + enumType.Name, package, proto3, null, enumType));
            }

            while (pending.Count > 0)
            {
                var (scope, message) = pending.Pop();
                var fullName = scope + "." + message.Name;
                Add(new ProtobufTypeEntry(fullName, package, proto3, message, null));
                _extensions.AddRange(message.Extensions);
                foreach (var nested in message.NestedTypes)
                {
                    pending.Push((fullName, nested));
                }

                foreach (var enumType in message.EnumTypes)
                {
                    Add(new ProtobufTypeEntry(fullName + "." + enumType.Name, package, proto3, null, enumType));
                }
            }
        }
    }

    public ProtobufTypeEntry? Find(string? fullName) =>
        fullName is not null && _byName.TryGetValue(fullName, out var entry) ? entry : null;

    public static bool IsProto3(FileDescriptorProto file) =>
        string.Equals(file.Syntax, "proto3", StringComparison.Ordinal);

    public static bool IsMapEntry(DescriptorProto message) => message.Options?.MapEntry == true;

    /// <summary>Every message type, by full name (the first declaration of a name, as <see cref="Find"/> gives it).</summary>
    public IEnumerable<(string FullName, DescriptorProto Message)> Messages
    {
        get
        {
            foreach (ProtobufTypeEntry entry in _byName.Values)
            {
                if (entry.Message is { } message)
                {
                    yield return (entry.FullName, message);
                }
            }
        }
    }

    /// <summary>Messages a second file declared under a full name an earlier file had taken: every use of the name reads the first.</summary>
    public List<(DescriptorProto Kept, DescriptorProto Dropped, string FullName)> HiddenMessages { get; } = [];

    private void Add(ProtobufTypeEntry entry)
    {
        if (!_byName.TryAdd(entry.FullName, entry) && _byName[entry.FullName].Message is { } kept && entry.Message is { } dropped && !ReferenceEquals(kept, dropped))
        {
            HiddenMessages.Add((kept, dropped, entry.FullName));
        }
    }
}
