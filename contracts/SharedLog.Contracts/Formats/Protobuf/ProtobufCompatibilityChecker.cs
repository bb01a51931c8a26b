using Google.Protobuf.Reflection;

namespace SharedLog.Contracts.Formats.Protobuf;

/// <summary>
/// Whether data written with one schema can be read with another, after Confluent's Protobuf diff
/// (its "original" is our writer, its "update" our reader). Each message starts with the rule name
/// Confluent uses. Incompatible:
/// PACKAGE_CHANGED (unless configured compatible), MESSAGE_REMOVED (a writer message missing in the
/// reader), FIELD_KIND_CHANGED (scalar/enum vs message vs map, so bytes vs message too, as in
/// Confluent), FIELD_SCALAR_KIND_CHANGED (outside one wire group: int32/int64/uint32/uint64/bool/enum,
/// sint32/sint64, fixed32/sfixed32, fixed64/sfixed64, string/bytes, float, double),
/// FIELD_NAMED_TYPE_CHANGED (message type renamed; same-named types are compared in turn),
/// FIELD_NUMERIC_LABEL_CHANGED (a numeric/enum field turning repeated or singular),
/// REQUIRED_FIELD_ADDED / REQUIRED_FIELD_REMOVED, ONEOF_FIELD_REMOVED (a field dropped from a oneof
/// that still exists), MULTIPLE_FIELDS_MOVED_TO_ONEOF, FIELD_MOVED_TO_EXISTING_ONEOF.
/// Compatible (no message): added/moved messages, field added/removed/renamed, string/bytes/message
/// singular vs repeated, oneof added/removed, field added to a oneof, one field moved into a new
/// oneof, a field moved out of a oneof, enum and enum value changes, a syntax change.
/// Three choices go beyond Confluent, all for the wire: the repeated-vs-singular rule also applies to
/// proto3 fields without a label (Confluent only compares explicit labels), a field the reader
/// requires but the writer only has as optional is reported (REQUIRED_FIELD_ADDED), and so is a reader
/// oneof holding members of two writer oneofs (FIELD_MOVED_TO_EXISTING_ONEOF; a writer may set both).
/// </summary>
internal sealed class ProtobufCompatibilityChecker(ProtobufParsedSchema reader, ProtobufParsedSchema writer, bool packageChangeIsCompatible)
{
    private readonly List<string> _problems = [];
    private readonly HashSet<(string Writer, string Reader)> _queued = [];
    private readonly Queue<(ProtobufTypeEntry Writer, ProtobufTypeEntry Reader)> _pending = new();

    private enum Kind
    {
        Scalar,
        Message,
        Map,
    }

    private enum Cardinality
    {
        Singular,
        Optional,
        Required,
        Repeated,
    }

    public List<string> Check()
    {
        if (!packageChangeIsCompatible && !string.Equals(writer.Package, reader.Package, StringComparison.Ordinal))
        {
            _problems.Add($"PACKAGE_CHANGED: the package is '{writer.Package}' in the writer schema and '{reader.Package}' in the reader schema");
        }

        CompareMessageLists(writer.File.MessageTypes, reader.File.MessageTypes, Scope(writer.Package), Scope(reader.Package));
        // A work queue rather than recursion: chains of message-typed fields can be long.
        while (_pending.TryDequeue(out var pair))
        {
            CompareMessage(pair.Writer, pair.Reader);
        }

        return _problems;
    }

    private static string Scope(string package) => package.Length == 0 ? "" : "." + package;

    private void CompareMessageLists(List<DescriptorProto> writerMessages, List<DescriptorProto> readerMessages, string writerScope, string readerScope)
    {
        // A set: a schema may declare tens of thousands of messages.
        var readerNames = new HashSet<string>(readerMessages.Select(m => m.Name), StringComparer.Ordinal);
        foreach (var writerMessage in writerMessages)
        {
            if (ProtobufTypeIndex.IsMapEntry(writerMessage))
            {
                continue;
            }

            var writerEntry = writer.Types.Find(writerScope + "." + writerMessage.Name)!;
            var readerEntry = readerNames.Contains(writerMessage.Name)
                ? reader.Types.Find(readerScope + "." + writerMessage.Name)
                : null;
            if (readerEntry is null)
            {
                _problems.Add($"MESSAGE_REMOVED: message '{writerEntry.LocalName}' of the writer schema is missing in the reader schema");
                continue;
            }

            Enqueue(writerEntry, readerEntry);
        }
    }

    private void Enqueue(ProtobufTypeEntry writerEntry, ProtobufTypeEntry readerEntry)
    {
        if (_queued.Add((writerEntry.FullName, readerEntry.FullName)))
        {
            _pending.Enqueue((writerEntry, readerEntry));
        }
    }

    private void CompareMessage(ProtobufTypeEntry writerEntry, ProtobufTypeEntry readerEntry)
    {
        var writerMessage = writerEntry.Message!;
        var readerMessage = readerEntry.Message!;
        var messageName = readerEntry.LocalName;
        var writerFields = ByNumber(writerMessage);
        var readerFields = ByNumber(readerMessage);
        var writerOneofOf = OneofMembership(writerMessage);
        var readerOneofOf = OneofMembership(readerMessage);

        // Fields that join a oneof in the reader: one top-level field may found a new oneof; more, or
        // joining fields that already were oneof members, could make the reader drop set values.
        var movedIntoOneof = new HashSet<int>();
        foreach (var oneof in readerOneofOf.GroupBy(m => m.Value, m => m.Key, StringComparer.Ordinal))
        {
            var moved = oneof.Where(n => writerFields.ContainsKey(n) && !writerOneofOf.ContainsKey(n)).Order().ToList();
            var existing = oneof.Count(writerOneofOf.ContainsKey);
            var fromOneofs = oneof.Where(writerOneofOf.ContainsKey).Select(n => writerOneofOf[n]).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
            movedIntoOneof.UnionWith(moved);
            if (moved.Count > 1)
            {
                _problems.Add($"MULTIPLE_FIELDS_MOVED_TO_ONEOF: oneof '{oneof.Key}' of message '{messageName}' in the reader schema holds fields {string.Join(", ", moved)} that are separate fields in the writer schema");
            }
            else if (moved.Count == 1 && existing > 0)
            {
                _problems.Add($"FIELD_MOVED_TO_EXISTING_ONEOF: field number {moved[0]} of message '{messageName}' moved into oneof '{oneof.Key}', which holds fields that were oneof members in the writer schema");
            }
            else if (moved.Count == 0 && fromOneofs.Count > 1)
            {
                // Beyond Confluent, which accepts this: members of two writer oneofs can both be set in one message, and the
                // reader, holding them in one oneof, keeps only the last.
                _problems.Add($"FIELD_MOVED_TO_EXISTING_ONEOF: oneof '{oneof.Key}' of message '{messageName}' in the reader schema holds fields of the writer's oneofs {string.Join(", ", fromOneofs.Select(o => $"'{o}'"))}, which a writer may set together");
            }
        }

        foreach (var oneof in writerOneofOf.GroupBy(m => m.Value, m => m.Key, StringComparer.Ordinal))
        {
            if (!readerOneofOf.ContainsValue(oneof.Key))
            {
                continue; // ONEOF_REMOVED is compatible; members that stay are compared below.
            }

            foreach (var number in oneof.Order())
            {
                if (!readerFields.ContainsKey(number))
                {
                    var field = writerFields[number];
                    _problems.Add($"ONEOF_FIELD_REMOVED: field '{field.Name}' (number {number}) of oneof '{oneof.Key}' in message '{messageName}' of the writer schema is missing in the reader schema");
                }
            }
        }

        foreach (var number in writerFields.Keys.Union(readerFields.Keys).Order())
        {
            writerFields.TryGetValue(number, out var writerField);
            readerFields.TryGetValue(number, out var readerField);
            if (readerField is null)
            {
                if (writerField!.label == FieldDescriptorProto.Label.LabelRequired && !movedIntoOneof.Contains(number))
                {
                    _problems.Add($"REQUIRED_FIELD_REMOVED: required field '{writerField.Name}' (number {number}) of message '{messageName}' in the writer schema is missing in the reader schema");
                }

                continue;
            }

            if (writerField is null)
            {
                if (readerField.label == FieldDescriptorProto.Label.LabelRequired)
                {
                    _problems.Add($"REQUIRED_FIELD_ADDED: required field '{readerField.Name}' (number {number}) of message '{messageName}' in the reader schema is missing in the writer schema");
                }

                continue;
            }

            CompareField(writerField, readerField, writerEntry, readerEntry, messageName, number);
        }

        CompareMessageLists(writerMessage.NestedTypes, readerMessage.NestedTypes, writerEntry.FullName, readerEntry.FullName);
    }

    private void CompareField(FieldDescriptorProto writerField, FieldDescriptorProto readerField, ProtobufTypeEntry writerEntry, ProtobufTypeEntry readerEntry, string messageName, int number)
    {
        var location = $"field '{readerField.Name}' (number {number}) of message '{messageName}'";
        var writerCardinality = CardinalityOf(writerField, writerEntry);
        var readerCardinality = CardinalityOf(readerField, readerEntry);
        if (readerCardinality == Cardinality.Required && writerCardinality is Cardinality.Singular or Cardinality.Optional)
        {
            _problems.Add($"REQUIRED_FIELD_ADDED: {location} is required in the reader schema but optional in the writer schema");
        }

        var repeatedChanged = (writerCardinality == Cardinality.Repeated) != (readerCardinality == Cardinality.Repeated);
        CompareTypes(writerField, readerField, repeatedChanged, location);
    }

    private void CompareTypes(FieldDescriptorProto writerField, FieldDescriptorProto readerField, bool repeatedChanged, string location)
    {
        var writerType = writer.Types.Find(writerField.TypeName);
        var readerType = reader.Types.Find(readerField.TypeName);
        var writerKind = KindOf(writerField, writerType);
        var readerKind = KindOf(readerField, readerType);
        if (writerKind != readerKind)
        {
            _problems.Add($"FIELD_KIND_CHANGED: {location} is a {Describe(writerKind)} in the writer schema and a {Describe(readerKind)} in the reader schema");
            return;
        }

        switch (writerKind)
        {
            case Kind.Scalar:
                var writerGroup = WireGroup(writerField);
                var readerGroup = WireGroup(readerField);
                if (!string.Equals(writerGroup, readerGroup, StringComparison.Ordinal))
                {
                    _problems.Add($"FIELD_SCALAR_KIND_CHANGED: {location} has type {TypeText(writerField)} in the writer schema and {TypeText(readerField)} in the reader schema, which are not wire-compatible");
                }
                else if (repeatedChanged && !string.Equals(writerGroup, "string/bytes", StringComparison.Ordinal))
                {
                    _problems.Add($"FIELD_NUMERIC_LABEL_CHANGED: {location} is {(readerField.label == FieldDescriptorProto.Label.LabelRepeated ? "repeated" : "singular")} in the reader schema but not in the writer schema; numeric fields cannot change between singular and repeated");
                }

                break;
            case Kind.Message:
                // Processed schemas resolve every type; the name fallback only keeps a bad input from throwing.
                var writerName = writerType?.LocalName ?? writerField.TypeName;
                var readerName = readerType?.LocalName ?? readerField.TypeName;
                if (writerType is null || readerType is null || !string.Equals(writerName, readerName, StringComparison.Ordinal))
                {
                    if (!string.Equals(writerName, readerName, StringComparison.Ordinal))
                    {
                        _problems.Add($"FIELD_NAMED_TYPE_CHANGED: {location} has message type '{writerName}' in the writer schema and '{readerName}' in the reader schema");
                    }
                }
                else
                {
                    Enqueue(writerType, readerType);
                }

                break;
            case Kind.Map:
                var writerMap = writerType!.Message!;
                var readerMap = readerType!.Message!;
                foreach (var part in new[] { 1, 2 })
                {
                    var writerPart = writerMap.Fields.First(f => f.Number == part);
                    var readerPart = readerMap.Fields.First(f => f.Number == part);
                    CompareTypes(writerPart, readerPart, repeatedChanged: false, $"{(part == 1 ? "key" : "value")} of map {location}");
                }

                break;
        }
    }

    private static Dictionary<int, FieldDescriptorProto> ByNumber(DescriptorProto message)
    {
        var fields = new Dictionary<int, FieldDescriptorProto>();
        foreach (var field in message.Fields)
        {
            fields.TryAdd(field.Number, field);
        }

        return fields;
    }

    /// <summary>Field number to oneof name, for real oneofs only (proto3 "optional" makes synthetic ones).</summary>
    private static Dictionary<int, string> OneofMembership(DescriptorProto message)
    {
        var membership = new Dictionary<int, string>();
        foreach (var field in message.Fields)
        {
            if (field.ShouldSerializeOneofIndex() && !field.Proto3Optional && field.OneofIndex < message.OneofDecls.Count)
            {
                membership.TryAdd(field.Number, message.OneofDecls[field.OneofIndex].Name);
            }
        }

        return membership;
    }

    private static Cardinality CardinalityOf(FieldDescriptorProto field, ProtobufTypeEntry message) => field.label switch
    {
        FieldDescriptorProto.Label.LabelRepeated => Cardinality.Repeated,
        FieldDescriptorProto.Label.LabelRequired => Cardinality.Required,
        _ when field.Proto3Optional || !message.Proto3 => Cardinality.Optional,
        _ => Cardinality.Singular,
    };

    private static Kind KindOf(FieldDescriptorProto field, ProtobufTypeEntry? type) => field.type switch
    {
        FieldDescriptorProto.Type.TypeMessage or FieldDescriptorProto.Type.TypeGroup =>
            type?.Message is { } message && ProtobufTypeIndex.IsMapEntry(message) ? Kind.Map : Kind.Message,
        _ => Kind.Scalar,
    };

    private static string Describe(Kind kind) => kind switch
    {
        Kind.Scalar => "scalar or enum",
        Kind.Message => "message",
        _ => "map",
    };

    private static string TypeText(FieldDescriptorProto field) =>
        field.type == FieldDescriptorProto.Type.TypeEnum ? $"enum {field.TypeName.TrimStart('.')}" : ProtobufCanonicalWriter.ScalarName(field.type);

    /// <summary>Scalar types that share an encoding and can be read as one another (enums are varints).</summary>
    private static string WireGroup(FieldDescriptorProto field) => field.type switch
    {
        FieldDescriptorProto.Type.TypeInt32 or FieldDescriptorProto.Type.TypeInt64 or FieldDescriptorProto.Type.TypeUint32
            or FieldDescriptorProto.Type.TypeUint64 or FieldDescriptorProto.Type.TypeBool or FieldDescriptorProto.Type.TypeEnum => "varint",
        FieldDescriptorProto.Type.TypeSint32 or FieldDescriptorProto.Type.TypeSint64 => "zigzag",
        FieldDescriptorProto.Type.TypeFixed32 or FieldDescriptorProto.Type.TypeSfixed32 => "fixed32",
        FieldDescriptorProto.Type.TypeFixed64 or FieldDescriptorProto.Type.TypeSfixed64 => "fixed64",
        FieldDescriptorProto.Type.TypeString or FieldDescriptorProto.Type.TypeBytes => "string/bytes",
        FieldDescriptorProto.Type.TypeFloat => "float",
        FieldDescriptorProto.Type.TypeDouble => "double",
        _ => field.type.ToString(),
    };
}
