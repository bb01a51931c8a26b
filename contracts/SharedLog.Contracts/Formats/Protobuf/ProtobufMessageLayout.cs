using System.Runtime.CompilerServices;
using Google.Protobuf.Reflection;
using SharedLog.Contracts.Model;

namespace SharedLog.Contracts.Formats.Protobuf;

/// <summary>What the payload codec needs of a message, resolved once per descriptor: fields by number and by name.</summary>
internal sealed class ProtobufMessageLayout
{
    private static readonly ConditionalWeakTable<DescriptorProto, ProtobufMessageLayout> Cache = new();

    private ProtobufMessageLayout(string fullName, DescriptorProto descriptor, bool proto3, ProtobufTypeIndex types)
    {
        FullName = fullName;
        Proto3 = proto3;
        var fields = new List<ProtobufFieldLayout>(descriptor.Fields.Count);
        foreach (var field in descriptor.Fields)
        {
            fields.Add(new ProtobufFieldLayout(field, proto3, types));
        }

        fields.Sort((a, b) => a.Number.CompareTo(b.Number));
        InNumberOrder = [.. fields];
        RequiredFields = [.. fields.Where(f => f.Required).Select(f => f.Name)];
        ByNumber = new Dictionary<int, ProtobufFieldLayout>(fields.Count);
        ByName = new Dictionary<string, ProtobufFieldLayout>(fields.Count, StringComparer.Ordinal);
        foreach (var field in InNumberOrder)
        {
            ByNumber.TryAdd(field.Number, field);
            ByName.TryAdd(field.Name, field);
        }

        _lowNumbers = new ProtobufFieldLayout?[Math.Min(MaxLowNumber, fields.Count == 0 ? 0 : fields[^1].Number) + 1];
        foreach (var field in InNumberOrder)
        {
            if (field.Number < _lowNumbers.Length)
            {
                _lowNumbers[field.Number] ??= field;
            }
        }

        // Members of a real oneof (not proto3's synthetic one for 'optional'): setting one clears the others. One list per
        // oneof, shared by its members (a list of siblings each made a oneof of 30,000 members take 7 GB).
        var oneofMembers = new Dictionary<int, List<string>>();
        foreach (var field in InNumberOrder)
        {
            if (field.OneofIndex >= 0)
            {
                if (!oneofMembers.TryGetValue(field.OneofIndex, out List<string>? members))
                {
                    oneofMembers[field.OneofIndex] = members = [];
                }

                members.Add(field.Name);
            }
        }

        OneofCount = oneofMembers.Count == 0 ? 0 : oneofMembers.Keys.Max() + 1;
        foreach (var field in InNumberOrder)
        {
            if (field.OneofIndex >= 0)
            {
                field.OneofMembers = oneofMembers[field.OneofIndex];
            }
        }
    }

    public string FullName { get; }

    /// <summary>One more than the highest real oneof's index (0 without any): the size of a message's record of its set members.</summary>
    public int OneofCount { get; }

    /// <summary>Declared in a proto3 file: its fields without explicit presence are not written when they hold their default.</summary>
    public bool Proto3 { get; }

    public ProtobufFieldLayout[] InNumberOrder { get; }

    /// <summary>Names of the proto2 <c>required</c> fields.</summary>
    public string[] RequiredFields { get; }

    private bool? _reachesRequiredFields;

    /// <summary>This message, or one its fields (at any depth) hold, has required fields: decoded records are then checked for them.</summary>
    public bool ReachesRequiredFields => _reachesRequiredFields ??= FindRequired(this, new HashSet<ProtobufMessageLayout>(ReferenceEqualityComparer.Instance));

    private static bool FindRequired(ProtobufMessageLayout layout, HashSet<ProtobufMessageLayout> seen)
    {
        if (layout._reachesRequiredFields is { } known)
        {
            return known;
        }

        if (layout.RequiredFields.Length > 0)
        {
            return true;
        }

        if (!seen.Add(layout))
        {
            return false; // a recursive type: what it reaches is being found above
        }

        foreach (var field in layout.InNumberOrder)
        {
            if (field.Type == FieldDescriptorProto.Type.TypeMessage && field.WellKnown == ProtobufWellKnown.None && FindRequired(field.Message, seen))
            {
                return true;
            }
        }

        return false;
    }

    public Dictionary<int, ProtobufFieldLayout> ByNumber { get; }

    // Most messages number their fields from 1 up: the decoder finds those by index, not by hashing, once per field read.
    private const int MaxLowNumber = 128;
    private readonly ProtobufFieldLayout?[] _lowNumbers;

    /// <summary>The field numbered <paramref name="number"/>, as <see cref="ByNumber"/> finds it.</summary>
    public bool TryGetField(int number, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ProtobufFieldLayout? field)
    {
        if ((uint)number < (uint)_lowNumbers.Length)
        {
            field = _lowNumbers[number];
            return field is not null;
        }

        return ByNumber.TryGetValue(number, out field);
    }

    public Dictionary<string, ProtobufFieldLayout> ByName { get; }

    public static ProtobufMessageLayout Of(ProtobufTypeEntry entry, ProtobufTypeIndex types) =>
        Of(entry.FullName, entry.Message!, entry.Proto3, types);

    public static ProtobufMessageLayout Of(string fullName, DescriptorProto descriptor, bool proto3, ProtobufTypeIndex types)
    {
        if (Cache.TryGetValue(descriptor, out var layout))
        {
            return layout;
        }

        layout = new ProtobufMessageLayout(fullName, descriptor, proto3, types);
        return Cache.GetValue(descriptor, _ => layout);
    }
}

/// <summary>Well-known message types decoded to CLR values.</summary>
internal enum ProtobufWellKnown
{
    None,
    Timestamp,
    Duration,
}

/// <summary>One field of a <see cref="ProtobufMessageLayout"/>, with its message or enum type resolved.</summary>
internal sealed class ProtobufFieldLayout
{
    private readonly ProtobufTypeIndex _types;
    private readonly ProtobufTypeEntry? _messageType;
    private ProtobufMessageLayout? _message;

    public ProtobufFieldLayout(FieldDescriptorProto field, bool proto3, ProtobufTypeIndex types)
    {
        _types = types;
        Name = field.Name;
        Number = field.Number;
        Type = field.type;
        Repeated = field.label == FieldDescriptorProto.Label.LabelRepeated;
        Required = field.label == FieldDescriptorProto.Label.LabelRequired;
        Packable = Repeated && WireTypeOf(Type) is 0 or 1 or 5;
        var explicitPacked = field.Options?.ShouldSerializePacked() == true;
        Packed = Packable && (explicitPacked ? field.Options!.Packed : proto3);
        OneofIndex = field.ShouldSerializeOneofIndex() && !field.Proto3Optional ? field.OneofIndex : -1;
        ExplicitPresence = field.Proto3Optional || field.ShouldSerializeOneofIndex();
        ImplicitPresence = proto3 && !ExplicitPresence && !Repeated && Type is not (FieldDescriptorProto.Type.TypeMessage or FieldDescriptorProto.Type.TypeGroup);

        var type = types.Find(field.TypeName);
        if (Type is FieldDescriptorProto.Type.TypeMessage or FieldDescriptorProto.Type.TypeGroup)
        {
            _messageType = type?.Message is not null
                ? type
                : throw new PayloadDecodeException($"field '{Name}' has unresolved message type '{field.TypeName}'");
            IsMap = Repeated && ProtobufTypeIndex.IsMapEntry(_messageType.Message!);
            WellKnown = _messageType.FullName switch
            {
                ".google.protobuf.Timestamp" => ProtobufWellKnown.Timestamp,
                ".google.protobuf.Duration" => ProtobufWellKnown.Duration,
                _ => ProtobufWellKnown.None,
            };
        }
        else if (Type == FieldDescriptorProto.Type.TypeEnum)
        {
            var values = type?.Enum?.Values ?? throw new PayloadDecodeException($"field '{Name}' has unresolved enum type '{field.TypeName}'");
            EnumNames = new Dictionary<int, string>(values.Count);
            EnumNumbers = new Dictionary<string, int>(values.Count, StringComparer.Ordinal);
            foreach (var value in values)
            {
                EnumNames.TryAdd(value.Number, value.Name);
                EnumNumbers.TryAdd(value.Name, value.Number);
            }

            EnumDefault = values.Count > 0 ? values[0].Name : null;
            ClosedEnum = !proto3;
        }
    }

    /// <summary>
    /// An enum field of a proto2 message: closed, so a parser keeps a number the enum does not declare as an unknown field
    /// and leaves the field unset (Java and C++ decide by the file of the message, also for an enum of a proto3 file). In a
    /// proto3 message the enum is open: the number is the field's value.
    /// </summary>
    public bool ClosedEnum { get; }

    public string Name { get; }

    public int Number { get; }

    public FieldDescriptorProto.Type Type { get; }

    public bool Repeated { get; }

    /// <summary>A proto2 <c>required</c> field: a message without it does not parse.</summary>
    public bool Required { get; }

    /// <summary>Repeated scalar numeric: the decoder accepts both packed and unpacked encodings.</summary>
    public bool Packable { get; }

    /// <summary>Whether the encoder packs it: proto3 by default, proto2 only with [packed = true].</summary>
    public bool Packed { get; }

    public bool IsMap { get; }

    public int OneofIndex { get; }

    /// <summary>Proto3 <c>optional</c> or a oneof member: absent means not set, not its default.</summary>
    public bool ExplicitPresence { get; }

    /// <summary>A proto3 singular scalar without explicit presence: set only when it holds other than its default.</summary>
    public bool ImplicitPresence { get; }

    /// <summary>Every member of this field's oneof, itself included; empty outside a real oneof.</summary>
    public IReadOnlyList<string> OneofMembers { get; set; } = [];

    public ProtobufWellKnown WellKnown { get; }

    public Dictionary<int, string>? EnumNames { get; }

    public Dictionary<string, int>? EnumNumbers { get; }

    public string? EnumDefault { get; }

    /// <summary>The message type's layout (map fields: the synthesized entry message with 'key' and 'value').</summary>
    public ProtobufMessageLayout Message => _message ??= ProtobufMessageLayout.Of(_messageType!, _types);

    /// <summary>The wire type a single value of a field type has (packed fields use 2 around them).</summary>
    public static int WireTypeOf(FieldDescriptorProto.Type type) => type switch
    {
        FieldDescriptorProto.Type.TypeInt32 or FieldDescriptorProto.Type.TypeInt64 or FieldDescriptorProto.Type.TypeUint32
            or FieldDescriptorProto.Type.TypeUint64 or FieldDescriptorProto.Type.TypeSint32 or FieldDescriptorProto.Type.TypeSint64
            or FieldDescriptorProto.Type.TypeBool or FieldDescriptorProto.Type.TypeEnum => 0,
        FieldDescriptorProto.Type.TypeFixed64 or FieldDescriptorProto.Type.TypeSfixed64 or FieldDescriptorProto.Type.TypeDouble => 1,
        FieldDescriptorProto.Type.TypeFixed32 or FieldDescriptorProto.Type.TypeSfixed32 or FieldDescriptorProto.Type.TypeFloat => 5,
        FieldDescriptorProto.Type.TypeGroup => 3,
        _ => 2,
    };
}
