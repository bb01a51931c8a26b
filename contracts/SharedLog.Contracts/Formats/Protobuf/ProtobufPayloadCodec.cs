using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Unicode;
using Google.Protobuf.Reflection;
using SharedLog.Contracts.Model;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Formats.Protobuf;

/// <summary>
/// Protobuf payloads (Confluent's message-index path, then the message in the protobuf wire format) to
/// and from the <see cref="RecordValue"/> object graph. Every length is checked against the bytes
/// left, nesting against <see cref="RecordValue.MaxDepth"/>, repeated and map elements against
/// <see cref="RecordValue.MaxElements"/>.
/// <para>Messages are dictionaries keyed by field name. A field absent from the bytes is absent from
/// the dictionary, in proto2 and proto3 alike; in proto3 (which does not write scalars holding their default) a rule
/// reads an absent field without explicit presence as its default (0, "", false, the first enum value, an empty list
/// or map: <see cref="IFieldDefaults"/>), as Confluent's rule executor does. Enums decode to the
/// symbol name, or to the number (<c>long</c>) when an open (proto3) enum has no such value; a closed (proto2) enum's
/// undeclared number is kept as an unknown field and leaves the field unset, as parsers do. int32/int64/sint*/
/// sfixed* decode to <c>long</c>, uint*/fixed* to <c>ulong</c>. Maps decode to dictionaries whose keys are
/// the map keys as invariant text ("true"/"false" for bool keys); a missing entry value is its default.
/// google.protobuf.Timestamp and Duration decode to <c>DateTimeOffset</c> and <c>TimeSpan</c> when
/// that is exact (nanos a multiple of 100), to <see cref="NanoTimestamp"/> and <see cref="NanoDuration"/> for other valid
/// nanos, and stay messages when out of range. Fields unknown to a Timestamp or Duration are not part of its value: the
/// message holding it counts as having unknown fields instead, and a rewrite drops them.
/// A singular message field seen twice is merged, as protobuf parsers do; setting a oneof member
/// removes the others; strings must be valid UTF-8 (as proto3 requires; applied to proto2 too).
/// Group fields are not supported.</para>
/// <para>Fields unknown to the schema are kept as raw bytes attached to their message's dictionary
/// (invisible to rules and policies) and written back after the known fields, unless the codec is
/// created with <c>keepUnknownFields: false</c>; unknown fields inside map entries are always dropped (the map is then
/// marked as having unknown fields, as the payload still carries them).
/// Replacing a message's dictionary drops its unknown fields.</para>
/// </summary>
public sealed class ProtobufPayloadCodec(bool keepUnknownFields = true) : IPayloadCodec
{
    private const long MinTimestampSeconds = -62_135_596_800;
    private const long MaxTimestampSeconds = 253_402_300_799;
    private const long MaxDurationSeconds = 315_576_000_000;
    private const int NanosPerTick = 100;

    private static readonly ConditionalWeakTable<IDictionary<string, object?>, PayloadWriter> UnknownFields = new();

    // Whether the payload being decoded on this thread gave a value the decoded message then replaced (see DecodedPayload.Superseded).
    [ThreadStatic]
    private static bool _superseded;

    public SchemaType Type => SchemaType.Protobuf;

    /// <summary>
    /// Whether a message this codec decoded (or one nested in it, in a field or a repeated field) carried fields its
    /// schema does not declare. They are kept as raw bytes that no rule or privacy step sees.
    /// </summary>
    /// <param name="heldOutToo">Whether a number a proto2 enum does not declare (held out of its field, which a privacy rule on
    /// the field drops) counts as well as a field the schema does not declare.</param>
    public static bool HasUnknownFields(object? value, bool heldOutToo = true) => value switch
    {
        IDictionary<string, object?> message => UnknownFields.TryGetValue(message, out _) || (heldOutToo && message is ProtobufMessage { HeldOut.Count: > 0 }) || AnyHasUnknownFields(message.Values, heldOutToo),
        IList<object?> items => AnyHasUnknownFields(items, heldOutToo),
        _ => false,
    };

    private static bool AnyHasUnknownFields(IEnumerable<object?> values, bool heldOutToo)
    {
        foreach (object? value in values)
        {
            if (value is (IDictionary<string, object?> or IList<object?>) && HasUnknownFields(value, heldOutToo))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// As <see cref="Decode(IParsedSchema, ReadOnlySpan{byte})"/>, for a payload whose memory outlives the result (the gate's):
    /// string fields stay <see cref="Utf8Text"/> slices of it instead of becoming .NET strings, as Avro's and JSON's do.
    /// Map keys are still strings.
    /// </summary>
    public DecodedPayload Decode(IParsedSchema schema, ReadOnlyMemory<byte> payload)
    {
        _source = payload;
        try
        {
            return Decode(schema, payload.Span);
        }
        finally
        {
            _source = default;
        }
    }

    /// <summary>The memory this thread decodes from, when strings may be slices of it (empty otherwise).</summary>
    [ThreadStatic]
    private static ReadOnlyMemory<byte> _source;

    public DecodedPayload Decode(IParsedSchema schema, ReadOnlySpan<byte> payload)
    {
        var protobuf = SchemaOf(schema);
        Span<int> indexes = stackalloc int[SchemaWireFormat.MaxMessageIndexes];
        if (!SchemaWireFormat.TryReadMessageIndexes(payload, indexes, out var count, out var read))
        {
            throw new PayloadDecodeException("Protobuf payload does not start with a valid message-index path");
        }

        var path = indexes[..count].ToArray();
        var layout = LayoutOf(protobuf, path);
        var message = new ProtobufMessage(layout, Math.Min(layout.InNumberOrder.Length, 32));
        var elements = 0;
        _superseded = false;
        DecodeMessage(payload[read..], layout, message, 1, ref elements);
        // Checked once the whole payload is read: a message sent in pieces may get a required field from a later piece, and
        // only the messages the record keeps count (not a oneof member another replaced, nor a map value given again).
        if (layout.ReachesRequiredFields)
        {
            CheckRequired(message);
        }

        return new DecodedPayload(message, layout.FullName.TrimStart('.'), path) { Superseded = _superseded };
    }

    public byte[] Encode(IParsedSchema schema, DecodedPayload payload) => Encode(schema, payload, []);

    public byte[] Encode(IParsedSchema schema, DecodedPayload payload, ReadOnlySpan<byte> prefix)
    {
        ArgumentNullException.ThrowIfNull(payload);
        var protobuf = SchemaOf(schema);
        var path = payload.MessageIndexes;
        if (path is null)
        {
            path = payload.MessageFullName is { } name
                ? protobuf.GetMessageIndexes(name) ?? throw new PayloadDecodeException($"the schema has no message '{name}'")
                : [0];
        }

        var layout = LayoutOf(protobuf, path);
        if (payload.MessageFullName is { } expected && !string.Equals(expected.TrimStart('.'), layout.FullName.TrimStart('.'), StringComparison.Ordinal))
        {
            throw new PayloadDecodeException($"message indexes name '{layout.FullName.TrimStart('.')}', not '{expected}'");
        }

        var writer = PayloadWriter.ForThread(prefix);
        Span<byte> header = stackalloc byte[SchemaWireFormat.MessageIndexesSize(path)];
        SchemaWireFormat.WriteMessageIndexes(header, path);
        writer.WriteBytes(header);
        var values = payload.Value as IDictionary<string, object?>
            ?? throw new PayloadDecodeException($"a Protobuf message must be a dictionary, not a {PayloadValues.KindOf(payload.Value)}");
        EncodeMessage(writer, layout, values, 1);
        return writer.ToArray();
    }

    /// <summary>Dropped fields are spliced out as masked ones are spliced in.</summary>
    public bool SplicesRemovedFields => true;

    /// <summary>
    /// Writes a masked record by replacing, in the bytes it came in, only the fields the privacy step changed, when each
    /// is a singular scalar (string, bytes, number, enum) of the top-level message, outside a oneof, that the payload
    /// holds at most once; the rest (often most of the record) is copied as it came. Any other rewrite (nested or
    /// repeated fields, a field sent twice, superseded values, held-out enum numbers) is encoded whole.
    /// </summary>
    public void EncodeRewrite(IParsedSchema schema, DecodedPayload payload, ReadOnlySpan<byte> original, IReadOnlyList<string[]> changedPaths, ReadOnlySpan<byte> prefix, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(payload);
        ArgumentNullException.ThrowIfNull(changedPaths);
        ArgumentNullException.ThrowIfNull(output);
        if (!payload.Superseded && TrySpliceTopLevel(payload, original, changedPaths, prefix, output))
        {
            return;
        }

        output.Write(Encode(schema, payload, prefix));
    }

    /// <summary>The splice of <see cref="EncodeRewrite"/>; false (nothing written) when the rewrite does not qualify.</summary>
    private bool TrySpliceTopLevel(DecodedPayload payload, ReadOnlySpan<byte> original, IReadOnlyList<string[]> changedPaths, ReadOnlySpan<byte> prefix, IBufferWriter<byte> output)
    {
        if (payload.Value is not ProtobufMessage { HeldOut: null } message || changedPaths.Count is 0 or > MaxSplicedFields)
        {
            return false;
        }

        ProtobufMessageLayout layout = message.Layout;
        Span<int> numbers = stackalloc int[MaxSplicedFields];
        Span<int> starts = stackalloc int[MaxSplicedFields];
        Span<int> ends = stackalloc int[MaxSplicedFields];
        int fieldCount = 0;
        foreach (string[] path in changedPaths)
        {
            if (path.Length != 1 || !layout.ByName.TryGetValue(path[0], out ProtobufFieldLayout? field) || !IsSpliceable(field))
            {
                return false;
            }

            if (numbers[..fieldCount].IndexOf(field.Number) < 0)
            {
                numbers[fieldCount] = field.Number;
                starts[fieldCount] = -1;
                fieldCount++;
            }
        }

        Span<int> indexes = stackalloc int[SchemaWireFormat.MaxMessageIndexes];
        if (!SchemaWireFormat.TryReadMessageIndexes(original, indexes, out _, out int bodyStart))
        {
            return false;
        }

        // Where each changed field is in the top-level message: a field given twice (the last one wins at a parser, but the
        // first still carries its bytes) is encoded whole instead, which writes it once.
        var reader = new ProtoReader(original[bodyStart..]);
        while (!reader.End)
        {
            int tagStart = reader.Position;
            (int number, int wireType) = reader.ReadTag();
            reader.SkipField(number, wireType, 1);
            int at = numbers[..fieldCount].IndexOf(number);
            if (at >= 0)
            {
                if (starts[at] >= 0)
                {
                    return false;
                }

                starts[at] = bodyStart + tagStart;
                ends[at] = bodyStart + reader.Position;
            }
        }

        // The replacements first, so a value that cannot be written leaves the output untouched.
        PayloadWriter replacements = PayloadWriter.ForThread([]);
        Span<int> replacementEnds = stackalloc int[MaxSplicedFields];
        for (int i = 0; i < fieldCount; i++)
        {
            ProtobufFieldLayout field = layout.ByNumber[numbers[i]];
            if (message.TryGetValue(field.Name, out object? value) && value is not null)
            {
                try
                {
                    EncodeField(replacements, field, value, 1);
                }
                catch (PayloadDecodeException ex)
                {
                    throw new PayloadDecodeException($"{ShortName(layout)}.{field.Name}: {ex.Message}", ex.InnerException);
                }
            }
            else if (field.Required)
            {
                throw new PayloadDecodeException($"{ShortName(layout)}.{field.Name} is a required field and cannot be dropped or set to null");
            }

            replacementEnds[i] = replacements.Length;
        }

        output.Write(prefix);
        ReadOnlySpan<byte> written = replacements.WrittenSpan;
        int copied = 0;
        int done = 0;
        while (done < fieldCount)
        {
            // The next changed field in payload order; fields the payload did not hold are written after the rest.
            int next = -1;
            for (int i = 0; i < fieldCount; i++)
            {
                if (starts[i] >= copied && (next < 0 || starts[i] < starts[next]))
                {
                    next = i;
                }
            }

            if (next < 0)
            {
                break;
            }

            output.Write(original[copied..starts[next]]);
            output.Write(written[(next == 0 ? 0 : replacementEnds[next - 1])..replacementEnds[next]]);
            copied = ends[next];
            done++;
        }

        output.Write(original[copied..]);
        for (int i = 0; i < fieldCount; i++)
        {
            if (starts[i] < 0)
            {
                output.Write(written[(i == 0 ? 0 : replacementEnds[i - 1])..replacementEnds[i]]);
            }
        }

        return true;
    }

    /// <summary>The most changed fields a splice takes; a rewrite of more is encoded whole.</summary>
    private const int MaxSplicedFields = 16;

    /// <summary>A field whose bytes in the top-level message are one tag and value, written again alone by <see cref="EncodeField"/>.</summary>
    private static bool IsSpliceable(ProtobufFieldLayout field) =>
        !field.IsMap && !field.Repeated && field.OneofMembers.Count == 0
        && field.Type is not (FieldDescriptorProto.Type.TypeMessage or FieldDescriptorProto.Type.TypeGroup);

    private static ProtobufParsedSchema SchemaOf(IParsedSchema schema)
    {
        ArgumentNullException.ThrowIfNull(schema);
        return schema as ProtobufParsedSchema ?? throw new ArgumentException($"expected a Protobuf schema, got {schema.Type}", nameof(schema));
    }

    private static ProtobufMessageLayout LayoutOf(ProtobufParsedSchema schema, int[] path)
    {
        // Nearly every record names a top-level message (Confluent writes [0] as one zero byte): found once per schema.
        if (path.Length == 1 && schema.TopLevelLayout(path[0]) is { } known)
        {
            return known;
        }

        var layout = FindLayout(schema, path);
        if (path.Length == 1)
        {
            schema.KeepTopLevelLayout(path[0], layout);
        }

        return layout;
    }

    private static ProtobufMessageLayout FindLayout(ProtobufParsedSchema schema, int[] path)
    {
        var info = schema.FindMessage(path)
            ?? throw new PayloadDecodeException($"the schema has no message at index path [{string.Join(", ", path)}]");
        var fullName = "." + info.FullName;
        var proto3 = schema.Types.Find(fullName)?.Proto3 ?? string.Equals(schema.Syntax, "proto3", StringComparison.Ordinal);
        return ProtobufMessageLayout.Of(fullName, info.Descriptor, proto3, schema.Types);
    }

    private void DecodeMessage(ReadOnlySpan<byte> data, ProtobufMessageLayout layout, Dictionary<string, object?> target, int depth, ref int elements)
    {
        if (depth > RecordValue.MaxDepth)
        {
            throw new PayloadDecodeException($"Protobuf message is nested more than {RecordValue.MaxDepth} levels deep");
        }

        var reader = new ProtoReader(data);
        PayloadWriter? unknown = null;
        while (!reader.End)
        {
            var tagStart = reader.Position;
            var (number, wireType) = reader.ReadTag();
            if (!layout.TryGetField(number, out var field))
            {
                reader.SkipField(number, wireType, depth);
                if (keepUnknownFields)
                {
                    // A message sent in pieces keeps the unknown fields of every piece, in order, as a parser's merge does:
                    // appended to the earlier pieces' (copying them again per piece made thousands of pieces quadratic).
                    unknown ??= UnknownFields.TryGetValue(target, out PayloadWriter? earlier) ? earlier : new PayloadWriter(64);
                    unknown.WriteBytes(data[tagStart..reader.Position]);
                }

                continue;
            }

            try
            {
                DecodeField(ref reader, field, wireType, target, depth, ref elements);
            }
            catch (PayloadDecodeException ex)
            {
                throw new PayloadDecodeException($"{ShortName(layout)}.{field.Name}: {ex.Message}", ex.InnerException);
            }
        }

        if (unknown is not null)
        {
            UnknownFields.AddOrUpdate(target, unknown);
        }
    }

    private void DecodeField(ref ProtoReader reader, ProtobufFieldLayout field, int wireType, Dictionary<string, object?> target, int depth, ref int elements)
    {
        if (field.Type == FieldDescriptorProto.Type.TypeGroup)
        {
            throw new PayloadDecodeException("group fields are not supported");
        }

        if (field.IsMap)
        {
            ExpectWireType(field, wireType, 2);
            CountElement(ref elements);
            var entryBytes = reader.ReadLengthDelimited();
            var (key, value, entryHadUnknownFields, heldOut) = DecodeMapEntry(entryBytes, field.Message, depth + 1, ref elements);
            if (heldOut)
            {
                // Its value is a number the closed enum does not declare: Java keeps the whole entry as an unknown field of
                // the message, out of the map.
                if (keepUnknownFields && target is ProtobufMessage holder)
                {
                    var bytes = new PayloadWriter(entryBytes.Length + 10);
                    bytes.WriteVarint(((ulong)field.Number << 3) | 2);
                    bytes.WriteVarint((ulong)entryBytes.Length);
                    bytes.WriteBytes(entryBytes);
                    (holder.HeldOut ??= []).Add((field.Name, bytes.ToArray()));
                }

                return;
            }

            var map = target.TryGetValue(field.Name, out var existing) && existing is Dictionary<string, object?> known
                ? known
                : NewMap(field);
            target[field.Name] = map;
            if (entryHadUnknownFields)
            {
                // Dropped with the entry, but the payload still carries them: the map answers for them (see HasUnknownFields).
                UnknownFields.AddOrUpdate(map, new PayloadWriter(0));
            }

            if (!map.TryAdd(key, value))
            {
                map[key] = value;
                _superseded = true;
            }

            return;
        }

        if (field.Repeated)
        {
            var list = target.TryGetValue(field.Name, out var existing) && existing is List<object?> known ? known : [];
            if (wireType == 2 && field.Packable)
            {
                var packed = new ProtoReader(reader.ReadLengthDelimited());
                var single = ProtobufFieldLayout.WireTypeOf(field.Type);
                while (!packed.End)
                {
                    CountElement(ref elements);
                    if (ReadScalar(ref packed, field, single) is var item && !KeptAsUnknown(item, field, target, ref elements))
                    {
                        list.Add(item);
                    }
                }
            }
            else
            {
                CountElement(ref elements);
                if (ReadSingle(ref reader, field, wireType, null, target, depth, ref elements) is var item && !KeptAsUnknown(item, field, target, ref elements))
                {
                    list.Add(item);
                }
            }

            if (list.Count == 0)
            {
                // An empty packed run, or only numbers a closed enum does not declare, adds nothing: a repeated field is set
                // when it has elements.
                return;
            }

            target[field.Name] = list;
            return;
        }

        bool given = target.TryGetValue(field.Name, out var previous);
        // A message given again is merged into the first (its own scalars checked as they come); a Timestamp or Duration
        // already turned into a value is merged as its seconds and nanos, as a parser merges the message.
        var mergeInto = !given || field.Type != FieldDescriptorProto.Type.TypeMessage ? null
            : previous as Dictionary<string, object?> ?? SecondsAndNanos(field, previous);
        if (field.Type == FieldDescriptorProto.Type.TypeMessage)
        {
            // A nested message is an object of the decoded record as a repeated element is: two bytes on the wire each,
            // so without this a payload of messages nested in messages would build objects past the element budget.
            CountElement(ref elements);
        }

        var read = ReadSingle(ref reader, field, wireType, mergeInto, target, depth, ref elements);
        if (KeptAsUnknown(read, field, target, ref elements))
        {
            return; // the field keeps what it had, and a oneof's other member stays set
        }

        // A scalar given again replaces the first value.
        _superseded |= given && mergeInto is null;
        if (field.ImplicitPresence && IsImplicitDefault(field, read))
        {
            // Proto3 without explicit presence: a field holding its default is not set (has() is false, and a rule reads the
            // default), as Java's and Go's parsers keep it. A default given after a value clears it (last one wins).
            target.Remove(field.Name);
        }
        else
        {
            target[field.Name] = read;
        }

        if (field.OneofIndex >= 0)
        {
            ClearOtherOneofMember(field, target);
        }
    }

    /// <summary>Setting a oneof member clears the one set before (in this piece of the message or an earlier one).</summary>
    private static void ClearOtherOneofMember(ProtobufFieldLayout field, Dictionary<string, object?> target)
    {
        if (target is ProtobufMessage message)
        {
            // The message remembers its set member per oneof: clearing every other member each time made a payload naming
            // members of a 3,000-member oneof in turn take seconds per megabyte.
            if (message.SetOneofMember(field.OneofIndex, field.Name) is { } previous && !string.Equals(previous, field.Name, StringComparison.Ordinal))
            {
                _superseded |= target.Remove(previous);
            }

            return;
        }

        for (int i = 0; i < field.OneofMembers.Count; i++)
        {
            string member = field.OneofMembers[i];
            if (!string.Equals(member, field.Name, StringComparison.Ordinal))
            {
                _superseded |= target.Remove(member);
            }
        }
    }

    /// <summary>
    /// Whether a proto3 field without explicit presence holds its default: 0 (and not -0.0, whose bits Java and C++ test), "",
    /// empty bytes, false, or the enum value numbered 0.
    /// </summary>
    private static bool IsImplicitDefault(ProtobufFieldLayout field, object? value) => value switch
    {
        string text when field.Type == FieldDescriptorProto.Type.TypeEnum => field.EnumNames!.TryGetValue(0, out var zero) && string.Equals(text, zero, StringComparison.Ordinal),
        string text => text.Length == 0,
        Utf8Text text => text.Utf8.IsEmpty,
        byte[] bytes => bytes.Length == 0,
        bool flag => !flag,
        long number => number == 0,
        ulong number => number == 0,
        double number => BitConverter.DoubleToInt64Bits(number) == 0,
        _ => false,
    };

    /// <summary>A Timestamp or Duration decoded to a value, back as the message a later piece of it merges into.</summary>
    private static ProtobufMessage? SecondsAndNanos(ProtobufFieldLayout field, object? value)
    {
        if (SecondsAndNanosOf(field, value) is not { } known)
        {
            return null;
        }

        var message = new ProtobufMessage(field.Message);
        if (known.Seconds != 0)
        {
            message["seconds"] = known.Seconds;
        }

        if (known.Nanos != 0)
        {
            message["nanos"] = known.Nanos;
        }

        return message;
    }

    /// <summary>The seconds and nanos of a Timestamp or Duration field's value (a CLR time), as the message holds them.</summary>
    private static (long Seconds, long Nanos)? SecondsAndNanosOf(ProtobufFieldLayout field, object? value)
    {
        switch (value)
        {
            case DateTimeOffset instant when field.WellKnown == ProtobufWellKnown.Timestamp:
                {
                    // Seconds round down and nanos stay non-negative, as the message requires before 1970 too.
                    long seconds = Math.DivRem(instant.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks, TimeSpan.TicksPerSecond, out long rest);
                    return rest < 0 ? (seconds - 1, (rest + TimeSpan.TicksPerSecond) * NanosPerTick) : (seconds, rest * NanosPerTick);
                }

            case TimeSpan duration when field.WellKnown == ProtobufWellKnown.Duration:
                return (duration.Ticks / TimeSpan.TicksPerSecond, duration.Ticks % TimeSpan.TicksPerSecond * NanosPerTick);
            case NanoTimestamp exact when field.WellKnown == ProtobufWellKnown.Timestamp:
                return (exact.Seconds, exact.Nanos);
            case NanoDuration exact when field.WellKnown == ProtobufWellKnown.Duration:
                return (exact.Seconds, exact.Nanos);
            default:
                return null;
        }
    }

    /// <summary>
    /// As Java's and C++'s parsers: a proto2 message without one of its required fields does not parse, nor does one holding
    /// (in a field, a repeated field or a map value) such a message. Bounded by the decode's own depth and element limits.
    /// </summary>
    private static void CheckRequired(object? value)
    {
        switch (value)
        {
            case ProtobufMessage message when message.Layout.ReachesRequiredFields:
                foreach (string name in message.Layout.RequiredFields)
                {
                    if (!message.ContainsKey(name))
                    {
                        throw new PayloadDecodeException($"{ShortName(message.Layout)}.{name}: required field is missing");
                    }
                }

                foreach (object? field in message.Values)
                {
                    CheckRequired(field);
                }

                break;
            case List<object?> items:
                foreach (object? item in items)
                {
                    CheckRequired(item);
                }

                break;
            case Dictionary<string, object?> map when map is not ProtobufMessage:
                foreach (object? entryValue in map.Values)
                {
                    CheckRequired(entryValue);
                }

                break;
        }
    }

    /// <summary>One value; a message is merged into <paramref name="mergeInto"/> when the field was already set.</summary>
    /// <param name="owner">The message the value goes into: it answers for fields unknown to a Timestamp or Duration, whose value
    /// does not keep them.</param>
    private object? ReadSingle(ref ProtoReader reader, ProtobufFieldLayout field, int wireType, Dictionary<string, object?>? mergeInto, Dictionary<string, object?> owner, int depth, ref int elements)
    {
        if (field.Type != FieldDescriptorProto.Type.TypeMessage)
        {
            return ReadScalar(ref reader, field, wireType);
        }

        ExpectWireType(field, wireType, 2);
        var bytes = reader.ReadLengthDelimited();
        var layout = field.Message;
        var message = mergeInto ?? new ProtobufMessage(layout);
        DecodeMessage(bytes, layout, message, depth + 1, ref elements);
        object? value = field.WellKnown switch
        {
            ProtobufWellKnown.Timestamp => ToTimestamp(message),
            ProtobufWellKnown.Duration => ToDuration(message),
            _ => message,
        };
        if (!ReferenceEquals(value, message) && UnknownFields.TryGetValue(message, out _) && !UnknownFields.TryGetValue(owner, out _))
        {
            // A time with fields unknown to it is still the time (as parsers read it, and as rules must, or `!=` would pass
            // a map); the message holding it answers for them, so a sensitive topic still refuses the record (HasUnknownFields).
            UnknownFields.Add(owner, new PayloadWriter(0));
        }

        return value;
    }

    private static object? ReadScalar(ref ProtoReader reader, ProtobufFieldLayout field, int wireType)
    {
        ExpectWireType(field, wireType, ProtobufFieldLayout.WireTypeOf(field.Type));
        switch (field.Type)
        {
            case FieldDescriptorProto.Type.TypeInt32:
                return RecordValue.Integer((int)reader.ReadVarint());
            case FieldDescriptorProto.Type.TypeInt64:
                return RecordValue.Integer((long)reader.ReadVarint());
            case FieldDescriptorProto.Type.TypeUint32:
                return (ulong)(uint)reader.ReadVarint();
            case FieldDescriptorProto.Type.TypeUint64:
                return reader.ReadVarint();
            case FieldDescriptorProto.Type.TypeSint32:
                {
                    var raw = (uint)reader.ReadVarint();
                    return RecordValue.Integer((int)(raw >> 1) ^ -(int)(raw & 1));
                }

            case FieldDescriptorProto.Type.TypeSint64:
                {
                    var raw = reader.ReadVarint();
                    return RecordValue.Integer((long)(raw >> 1) ^ -(long)(raw & 1));
                }

            case FieldDescriptorProto.Type.TypeBool:
                return reader.ReadVarint() != 0;
            case FieldDescriptorProto.Type.TypeEnum:
                {
                    var raw = reader.ReadVarint();
                    var number = (int)raw;
                    return field.EnumNames!.TryGetValue(number, out var name) ? name
                        : field.ClosedEnum ? new UndeclaredEnumNumber(raw)
                        : (long)number;
                }

            case FieldDescriptorProto.Type.TypeFixed32:
                return (ulong)reader.ReadFixed32();
            case FieldDescriptorProto.Type.TypeSfixed32:
                return RecordValue.Integer((int)reader.ReadFixed32());
            case FieldDescriptorProto.Type.TypeFloat:
                return PayloadValues.WidenFloat(reader.ReadFixed32());
            case FieldDescriptorProto.Type.TypeFixed64:
                return reader.ReadFixed64();
            case FieldDescriptorProto.Type.TypeSfixed64:
                return RecordValue.Integer((long)reader.ReadFixed64());
            case FieldDescriptorProto.Type.TypeDouble:
                return BitConverter.UInt64BitsToDouble(reader.ReadFixed64());
            case FieldDescriptorProto.Type.TypeString:
                {
                    var bytes = reader.ReadLengthDelimited();
                    if (!Utf8.IsValid(bytes))
                    {
                        throw new PayloadDecodeException("string is not valid UTF-8");
                    }

                    return !_source.IsEmpty && _source.Span.Overlaps(bytes, out int offset)
                        ? RecordGraphPool.RentText(_source.Slice(offset, bytes.Length))
                        : Encoding.UTF8.GetString(bytes);
                }

            case FieldDescriptorProto.Type.TypeBytes:
                return reader.ReadLengthDelimited().ToArray();
            default:
                throw new PayloadDecodeException($"unsupported field type {field.Type}");
        }
    }

    private (string Key, object? Value, bool HadUnknownFields, bool HeldOut) DecodeMapEntry(ReadOnlySpan<byte> data, ProtobufMessageLayout entryLayout, int depth, ref int elements)
    {
        // The caller counted the entry as one element; the entry's dictionary costs more (see RecordValue.ObjectElements).
        CountElement(ref elements, RecordValue.ObjectElements - 1);
        var entry = new Dictionary<string, object?>(2, StringComparer.Ordinal);
        DecodeMessage(data, entryLayout, entry, depth, ref elements);
        bool hadUnknownFields = UnknownFields.TryGetValue(entry, out _);
        var keyField = entryLayout.ByNumber.GetValueOrDefault(1) ?? throw new PayloadDecodeException("map entry has no key field");
        var valueField = entryLayout.ByNumber.GetValueOrDefault(2) ?? throw new PayloadDecodeException("map entry has no value field");
        var key = entry.TryGetValue(keyField.Name, out var rawKey) ? rawKey : DefaultOf(keyField);
        // A missing message value is the type's empty message (one with required fields then fails their check, as in Java).
        var value = entry.TryGetValue(valueField.Name, out var rawValue) ? rawValue
            : valueField.Type == FieldDescriptorProto.Type.TypeMessage && valueField.WellKnown == ProtobufWellKnown.None ? new ProtobufMessage(valueField.Message) : DefaultOf(valueField);
        var text = key switch
        {
            string s => s,
            Utf8Text s => s.ToString(),
            bool b => b ? "true" : "false",
            long l => l.ToString(CultureInfo.InvariantCulture),
            ulong u => u.ToString(CultureInfo.InvariantCulture),
            _ => throw new PayloadDecodeException($"unsupported map key type {keyField.Type}"),
        };
        if (key is Utf8Text slice)
        {
            // The key is kept as its string: the slice goes back to the pool for the next string.
            RecordGraphPool.Return(slice);
        }

        // A value its closed enum does not declare, given last: Java keeps the whole entry as an unknown field, out of the map.
        return (text, value, hadUnknownFields, value is UndeclaredEnumNumber);
    }

    /// <summary>
    /// A decoded message: its fields by name, and, in proto3, the value each absent field without explicit presence reads
    /// as (its default, which proto3 does not write): a rule <c>value.amount >= 0.0</c> holds for an amount of 0.
    /// </summary>
    /// <param name="capacity">Members to make room for: the record's own message is sized to its fields; nested ones grow
    /// as fields arrive, so a payload of many empty messages (2 bytes each) does not allocate room for every field of each.</param>
    private sealed class ProtobufMessage(ProtobufMessageLayout layout, int capacity = 0) : Dictionary<string, object?>(capacity, StringComparer.Ordinal), IFieldDefaults, IHeldOutValues
    {
        public ProtobufMessageLayout Layout => layout;

        /// <summary>Fields as they came (tag and value) that carry numbers a closed enum does not declare, by field name.</summary>
        public List<(string Field, byte[] Bytes)>? HeldOut { get; set; }

        // The member set last per oneof index, made on the first oneof member decoded.
        private string?[]? _oneofMembers;

        /// <summary>Records <paramref name="member"/> as its oneof's set member, and returns the one recorded before.</summary>
        public string? SetOneofMember(int oneofIndex, string member)
        {
            _oneofMembers ??= new string?[layout.OneofCount];
            string? previous = _oneofMembers[oneofIndex];
            _oneofMembers[oneofIndex] = member;
            return previous;
        }

        // The lambda in its own method: one capturing the parameter here allocated its closure on every call, held-out values or not.
        public bool ForgetHeldOut(string? field) => HeldOut is not null && RemoveHeldOut(HeldOut, field);

        private static bool RemoveHeldOut(List<(string Field, byte[] Bytes)> heldOut, string? field) => heldOut.RemoveAll(held => field is null || held.Field == field) > 0;

        public bool TryGetDefault(string field, out object? value)
        {
            value = null;
            if (!layout.Proto3 || !layout.ByName.TryGetValue(field, out ProtobufFieldLayout? known) || known.ExplicitPresence)
            {
                return false;
            }

            if (known.IsMap)
            {
                value = NewMap(known);
            }
            else if (known.Repeated)
            {
                value = new List<object?>();
            }
            else if (known.Type is FieldDescriptorProto.Type.TypeMessage or FieldDescriptorProto.Type.TypeGroup)
            {
                return false; // an absent message field is absent: has() and a missing key say so
            }
            else
            {
                value = DefaultOf(known);
            }

            return true;
        }
    }

    /// <summary>An empty map for a map field: one that tells rules its keys' type when they are not strings.</summary>
    private static Dictionary<string, object?> NewMap(ProtobufFieldLayout field) => field.Message?.ByNumber.GetValueOrDefault(1)?.Type switch
    {
        FieldDescriptorProto.Type.TypeInt32 or FieldDescriptorProto.Type.TypeInt64 or FieldDescriptorProto.Type.TypeSint32
            or FieldDescriptorProto.Type.TypeSint64 or FieldDescriptorProto.Type.TypeSfixed32 or FieldDescriptorProto.Type.TypeSfixed64 => new TypedKeyMap(MapKeyKind.Int),
        FieldDescriptorProto.Type.TypeUint32 or FieldDescriptorProto.Type.TypeUint64 or FieldDescriptorProto.Type.TypeFixed32
            or FieldDescriptorProto.Type.TypeFixed64 => new TypedKeyMap(MapKeyKind.Uint),
        FieldDescriptorProto.Type.TypeBool => new TypedKeyMap(MapKeyKind.Bool),
        _ => new Dictionary<string, object?>(StringComparer.Ordinal),
    };

    private static object? DefaultOf(ProtobufFieldLayout field) => field.Type switch
    {
        FieldDescriptorProto.Type.TypeString => "",
        FieldDescriptorProto.Type.TypeBytes => Array.Empty<byte>(),
        FieldDescriptorProto.Type.TypeBool => false,
        FieldDescriptorProto.Type.TypeEnum => (object?)field.EnumDefault ?? 0L,
        FieldDescriptorProto.Type.TypeDouble or FieldDescriptorProto.Type.TypeFloat => 0.0,
        FieldDescriptorProto.Type.TypeUint32 or FieldDescriptorProto.Type.TypeUint64
            or FieldDescriptorProto.Type.TypeFixed32 or FieldDescriptorProto.Type.TypeFixed64 => 0UL,
        FieldDescriptorProto.Type.TypeMessage => field.WellKnown switch
        {
            ProtobufWellKnown.Timestamp => DateTimeOffset.UnixEpoch,
            ProtobufWellKnown.Duration => TimeSpan.Zero,
            _ => new Dictionary<string, object?>(StringComparer.Ordinal),
        },
        _ => 0L,
    };

    private static object ToTimestamp(Dictionary<string, object?> message)
    {
        if (TryReadSecondsAndNanos(message, out var seconds, out var nanos)
            && seconds >= MinTimestampSeconds && seconds <= MaxTimestampSeconds && nanos >= 0 && nanos < 1_000_000_000)
        {
            // Nanosecond clocks (Go's timestamppb.Now()) write nanos a DateTimeOffset cannot hold: kept exact instead.
            return nanos % NanosPerTick == 0
                ? DateTimeOffset.UnixEpoch.AddTicks((seconds * TimeSpan.TicksPerSecond) + (nanos / NanosPerTick))
                : new NanoTimestamp(seconds, (int)nanos);
        }

        return message;
    }

    private static object ToDuration(Dictionary<string, object?> message)
    {
        if (TryReadSecondsAndNanos(message, out var seconds, out var nanos)
            && seconds >= -MaxDurationSeconds && seconds <= MaxDurationSeconds && nanos > -1_000_000_000 && nanos < 1_000_000_000
            && (seconds == 0 || nanos == 0 || (seconds < 0) == (nanos < 0)))
        {
            return nanos % NanosPerTick == 0 ? TimeSpan.FromTicks((seconds * TimeSpan.TicksPerSecond) + (nanos / NanosPerTick)) : new NanoDuration(seconds, (int)nanos);
        }

        return message;
    }

    private static bool TryReadSecondsAndNanos(Dictionary<string, object?> message, out long seconds, out long nanos)
    {
        seconds = 0;
        nanos = 0;
        var known = 0;
        if (message.TryGetValue("seconds", out var rawSeconds))
        {
            if (rawSeconds is not long s)
            {
                return false;
            }

            seconds = s;
            known++;
        }

        if (message.TryGetValue("nanos", out var rawNanos))
        {
            if (rawNanos is not long n)
            {
                return false;
            }

            nanos = n;
            known++;
        }

        return known == message.Count;
    }

    private static void ExpectWireType(ProtobufFieldLayout field, int actual, int expected)
    {
        if (actual != expected)
        {
            throw new PayloadDecodeException($"wire type {actual} does not match field type {field.Type} (wire type {expected})");
        }
    }

    private static void CountElement(ref int elements, int charge = 1)
    {
        if ((elements += charge) > RecordValue.MaxElements)
        {
            throw new PayloadDecodeException($"Protobuf payload holds more than {RecordValue.MaxElements} repeated or map elements and nested messages (a map entry counts as {RecordValue.ObjectElements})");
        }
    }

    /// <summary>A number a closed (proto2) enum does not declare, as read: kept with the message's unknown fields, not as a value.</summary>
    private sealed record UndeclaredEnumNumber(ulong Raw);

    /// <summary>
    /// Whether <paramref name="read"/> is a number its closed enum does not declare. Parsers keep it as an unknown varint field
    /// of the message (so consumers read the field as unset, and a rewrite writes the number back); this decoder holds it out
    /// of the field the same way (<see cref="ProtobufMessage.HeldOut"/>), where masking the field drops it.
    /// </summary>
    private bool KeptAsUnknown(object? read, ProtobufFieldLayout field, Dictionary<string, object?> target, ref int elements)
    {
        if (read is not UndeclaredEnumNumber undeclared)
        {
            return false;
        }

        // Each held-out value takes memory of its own, so it is charged as an object is.
        CountElement(ref elements, RecordValue.ObjectElements);
        if (target is not ProtobufMessage message)
        {
            // A map entry's value: the entry's last value decides, and DecodeMapEntry holds the entry out of the map whole.
            target[field.Name] = undeclared;
        }
        else if (keepUnknownFields)
        {
            var bytes = new PayloadWriter(16);
            bytes.WriteVarint((ulong)field.Number << 3);
            bytes.WriteVarint(undeclared.Raw);
            (message.HeldOut ??= []).Add((field.Name, bytes.ToArray()));
        }

        return true;
    }

    private static string ShortName(ProtobufMessageLayout layout)
    {
        var name = layout.FullName;
        var dot = name.LastIndexOf('.');
        return dot >= 0 ? name[(dot + 1)..] : name;
    }

    private void EncodeMessage(PayloadWriter writer, ProtobufMessageLayout layout, IDictionary<string, object?> values, int depth)
    {
        if (depth > RecordValue.MaxDepth)
        {
            throw new PayloadDecodeException($"value is nested more than {RecordValue.MaxDepth} levels deep");
        }

        var matched = 0;
        foreach (var field in layout.InNumberOrder)
        {
            var present = values.TryGetValue(field.Name, out var value);
            matched += present ? 1 : 0;
            if (value is null)
            {
                // A proto2 message without one of its required fields does not parse in Java or Python: refused here
                // (a drop or redact of it) rather than stored where no consumer can read it.
                if (field.Required)
                {
                    throw new PayloadDecodeException($"{ShortName(layout)}.{field.Name} is a required field and cannot be dropped or set to null");
                }

                continue;
            }

            try
            {
                EncodeField(writer, field, value, depth);
            }
            catch (PayloadDecodeException ex)
            {
                throw new PayloadDecodeException($"{ShortName(layout)}.{field.Name}: {ex.Message}", ex.InnerException);
            }
        }

        if (matched < values.Count)
        {
            foreach (var key in values.Keys)
            {
                if (!layout.ByName.ContainsKey(key))
                {
                    throw new PayloadDecodeException($"message '{layout.FullName.TrimStart('.')}' has no field '{key}'");
                }
            }
        }

        if (keepUnknownFields && UnknownFields.TryGetValue(values, out var unknown))
        {
            writer.WriteBytes(unknown.WrittenSpan);
        }

        if (keepUnknownFields && values is ProtobufMessage { HeldOut: { } heldOut })
        {
            foreach ((_, byte[] bytes) in heldOut)
            {
                writer.WriteBytes(bytes);
            }
        }
    }

    private void EncodeField(PayloadWriter writer, ProtobufFieldLayout field, object value, int depth)
    {
        if (field.Type == FieldDescriptorProto.Type.TypeGroup)
        {
            throw new PayloadDecodeException("group fields are not supported");
        }

        if (field.IsMap)
        {
            var entries = value as IDictionary<string, object?> ?? throw Mismatch(field, value);
            var entryLayout = field.Message;
            var keyField = entryLayout.ByNumber.GetValueOrDefault(1) ?? throw new PayloadDecodeException("map entry has no key field");
            var valueField = entryLayout.ByNumber.GetValueOrDefault(2) ?? throw new PayloadDecodeException("map entry has no value field");
            foreach (var entry in entries)
            {
                WriteTag(writer, field.Number, 2);
                var start = writer.Length;
                WriteSingle(writer, keyField, ParseMapKey(keyField, entry.Key), depth + 1);
                if (entry.Value is not null)
                {
                    WriteSingle(writer, valueField, entry.Value, depth + 1);
                }

                writer.InsertLengthPrefix(start);
            }

            return;
        }

        if (field.Repeated)
        {
            var items = value as IList<object?> ?? throw Mismatch(field, value);
            if (field.Packed)
            {
                if (items.Count > 0)
                {
                    WriteTag(writer, field.Number, 2);
                    var start = writer.Length;
                    for (var index = 0; index < items.Count; index++)
                    {
                        WriteScalar(writer, field, items[index]);
                    }

                    writer.InsertLengthPrefix(start);
                }

                return;
            }

            for (var index = 0; index < items.Count; index++)
            {
                WriteSingle(writer, field, items[index] ?? throw Mismatch(field, null), depth);
            }

            return;
        }

        WriteSingle(writer, field, value, depth);
    }

    /// <summary>Tag and value of one non-repeated occurrence.</summary>
    private void WriteSingle(PayloadWriter writer, ProtobufFieldLayout field, object value, int depth)
    {
        if (field.Type != FieldDescriptorProto.Type.TypeMessage)
        {
            WriteTag(writer, field.Number, ProtobufFieldLayout.WireTypeOf(field.Type));
            WriteScalar(writer, field, value);
            return;
        }

        WriteTag(writer, field.Number, 2);
        var start = writer.Length;
        switch (value)
        {
            case not IDictionary<string, object?> when SecondsAndNanosOf(field, value) is { } parts:
                WriteSecondsAndNanos(writer, parts.Seconds, parts.Nanos);
                break;
            case IDictionary<string, object?> message:
                EncodeMessage(writer, field.Message, message, depth + 1);
                break;
            default:
                throw Mismatch(field, value);
        }

        writer.InsertLengthPrefix(start);
    }

    private static void WriteSecondsAndNanos(PayloadWriter writer, long seconds, long nanos)
    {
        if (seconds != 0)
        {
            WriteTag(writer, 1, 0);
            writer.WriteVarint((ulong)seconds);
        }

        if (nanos != 0)
        {
            WriteTag(writer, 2, 0);
            writer.WriteVarint((ulong)nanos);
        }
    }

    /// <summary>A scalar's value without its tag (also the element of a packed field).</summary>
    private static void WriteScalar(PayloadWriter writer, ProtobufFieldLayout field, object? value)
    {
        switch (field.Type)
        {
            case FieldDescriptorProto.Type.TypeInt32:
                writer.WriteVarint((ulong)Int64In(field, value, int.MinValue, int.MaxValue));
                break;
            case FieldDescriptorProto.Type.TypeInt64:
                writer.WriteVarint((ulong)Int64In(field, value, long.MinValue, long.MaxValue));
                break;
            case FieldDescriptorProto.Type.TypeUint32:
                writer.WriteVarint(UInt64Upto(field, value, uint.MaxValue));
                break;
            case FieldDescriptorProto.Type.TypeUint64:
                writer.WriteVarint(UInt64Upto(field, value, ulong.MaxValue));
                break;
            case FieldDescriptorProto.Type.TypeSint32:
                {
                    var v = (int)Int64In(field, value, int.MinValue, int.MaxValue);
                    writer.WriteVarint((uint)((v << 1) ^ (v >> 31)));
                    break;
                }

            case FieldDescriptorProto.Type.TypeSint64:
                writer.WriteZigZag(Int64In(field, value, long.MinValue, long.MaxValue));
                break;
            case FieldDescriptorProto.Type.TypeBool:
                writer.WriteVarint(value is bool flag ? (flag ? 1UL : 0UL) : throw Mismatch(field, value));
                break;
            case FieldDescriptorProto.Type.TypeEnum:
                {
                    long number = value is string symbol
                        ? field.EnumNumbers!.TryGetValue(symbol, out var known) ? known
                            // Redacted (no value is named "****"): the enum's first value, its default (proto3's zero), as Avro's codec does.
                            : symbol == Policy.PrivacyRewriter.RedactedText && field.EnumDefault is { } first ? field.EnumNumbers[first]
                            : throw new PayloadDecodeException($"'{symbol}' is not a value of the field's enum")
                        : Int64In(field, value, int.MinValue, int.MaxValue);
                    writer.WriteVarint((ulong)number);
                    break;
                }

            case FieldDescriptorProto.Type.TypeFixed32:
                writer.WriteUInt32LittleEndian((uint)UInt64Upto(field, value, uint.MaxValue));
                break;
            case FieldDescriptorProto.Type.TypeSfixed32:
                writer.WriteUInt32LittleEndian((uint)(int)Int64In(field, value, int.MinValue, int.MaxValue));
                break;
            case FieldDescriptorProto.Type.TypeFloat:
                writer.WriteUInt32LittleEndian(PayloadValues.TryGetDouble(value, out var f) ? PayloadValues.NarrowToFloatBits(f) : throw Mismatch(field, value));
                break;
            case FieldDescriptorProto.Type.TypeFixed64:
                writer.WriteUInt64LittleEndian(UInt64Upto(field, value, ulong.MaxValue));
                break;
            case FieldDescriptorProto.Type.TypeSfixed64:
                writer.WriteUInt64LittleEndian((ulong)Int64In(field, value, long.MinValue, long.MaxValue));
                break;
            case FieldDescriptorProto.Type.TypeDouble:
                writer.WriteUInt64LittleEndian(BitConverter.DoubleToUInt64Bits(PayloadValues.TryGetDouble(value, out var d) ? d : throw Mismatch(field, value)));
                break;
            case FieldDescriptorProto.Type.TypeString:
                {
                    if (value is Utf8Text utf8)
                    {
                        writer.WriteVarint((ulong)utf8.Utf8.Length);
                        writer.WriteBytes(utf8.Utf8.Span);
                        break;
                    }

                    var text = value as string ?? throw Mismatch(field, value);
                    writer.WriteVarint((ulong)Encoding.UTF8.GetByteCount(text));
                    writer.WriteUtf8(text);
                    break;
                }

            case FieldDescriptorProto.Type.TypeBytes:
                switch (value)
                {
                    case byte[] bytes:
                        writer.WriteVarint((ulong)bytes.Length);
                        writer.WriteBytes(bytes);
                        break;
                    case string text:
                        writer.WriteVarint((ulong)Encoding.UTF8.GetByteCount(text));
                        writer.WriteUtf8(text);
                        break;
                    default:
                        throw Mismatch(field, value);
                }

                break;
            default:
                throw new PayloadDecodeException($"unsupported field type {field.Type}");
        }
    }

    private static object ParseMapKey(ProtobufFieldLayout keyField, string key)
    {
        switch (keyField.Type)
        {
            case FieldDescriptorProto.Type.TypeString:
                return key;
            case FieldDescriptorProto.Type.TypeBool:
                return key switch
                {
                    "true" => true,
                    "false" => false,
                    _ => throw new PayloadDecodeException($"map key '{key}' is not a bool"),
                };
            case FieldDescriptorProto.Type.TypeUint32 or FieldDescriptorProto.Type.TypeUint64
                or FieldDescriptorProto.Type.TypeFixed32 or FieldDescriptorProto.Type.TypeFixed64:
                return ulong.TryParse(key, NumberStyles.None, CultureInfo.InvariantCulture, out var unsigned)
                    ? unsigned
                    : throw new PayloadDecodeException($"map key '{key}' is not an unsigned integer");
            default:
                return long.TryParse(key, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var signed)
                    ? signed
                    : throw new PayloadDecodeException($"map key '{key}' is not an integer");
        }
    }

    private static long Int64In(ProtobufFieldLayout field, object? value, long min, long max) =>
        PayloadValues.TryGetInt64(value, out var result) && result >= min && result <= max ? result : throw Mismatch(field, value);

    private static ulong UInt64Upto(ProtobufFieldLayout field, object? value, ulong max) =>
        PayloadValues.TryGetUInt64(value, out var result) && result <= max ? result : throw Mismatch(field, value);

    private static void WriteTag(PayloadWriter writer, int number, int wireType) =>
        writer.WriteVarint(((ulong)(uint)number << 3) | (uint)wireType);

    private static PayloadDecodeException Mismatch(ProtobufFieldLayout field, object? value) =>
        new($"{PayloadValues.KindOf(value)} value cannot be written as {(field.IsMap ? "map" : field.Repeated ? "repeated " : "")}{(field.IsMap ? "" : field.Type.ToString())}");

    /// <summary>Reads the protobuf wire format from a span, checking every length before using it.</summary>
    internal ref struct ProtoReader
    {
        private const int MaxFieldNumber = (1 << 29) - 1;

        private readonly ReadOnlySpan<byte> _data;

        public ProtoReader(ReadOnlySpan<byte> data)
        {
            _data = data;
        }

        public int Position { get; private set; }

        public readonly bool End => Position >= _data.Length;

        private readonly int Remaining => _data.Length - Position;

        public (int Number, int WireType) ReadTag()
        {
            var key = ReadVarint();
            var number = key >> 3;
            if (number == 0 || number > MaxFieldNumber)
            {
                throw new PayloadDecodeException($"invalid Protobuf field number {number}");
            }

            return ((int)number, (int)(key & 7));
        }

        public ulong ReadVarint()
        {
            ulong value = 0;
            for (var shift = 0; shift < 64; shift += 7)
            {
                if (End)
                {
                    throw new PayloadDecodeException("Protobuf payload is truncated inside a varint");
                }

                var b = _data[Position++];
                if (shift == 63 && b > 1)
                {
                    break;
                }

                value |= (ulong)(b & 0x7F) << shift;
                if ((b & 0x80) == 0)
                {
                    return value;
                }
            }

            throw new PayloadDecodeException("Protobuf varint is longer than 64 bits");
        }

        public uint ReadFixed32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));

        public ulong ReadFixed64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));

        public ReadOnlySpan<byte> ReadLengthDelimited()
        {
            var length = ReadVarint();
            return length <= (ulong)Remaining
                ? Take((int)length)
                : throw new PayloadDecodeException($"Protobuf length {length} exceeds the {Remaining} bytes left");
        }

        /// <summary>Skips a field the schema does not know; groups are skipped to their end, nesting bounded.</summary>
        public void SkipField(int number, int wireType, int depth)
        {
            switch (wireType)
            {
                case 0:
                    ReadVarint();
                    break;
                case 1:
                    Take(8);
                    break;
                case 2:
                    ReadLengthDelimited();
                    break;
                case 5:
                    Take(4);
                    break;
                case 3:
                    if (depth >= RecordValue.MaxDepth)
                    {
                        throw new PayloadDecodeException($"Protobuf groups are nested more than {RecordValue.MaxDepth} levels deep");
                    }

                    while (true)
                    {
                        var (inner, innerWireType) = ReadTag();
                        if (innerWireType == 4)
                        {
                            if (inner != number)
                            {
                                throw new PayloadDecodeException($"group {number} ends with the end tag of {inner}");
                            }

                            return;
                        }

                        SkipField(inner, innerWireType, depth + 1);
                    }

                default:
                    throw new PayloadDecodeException($"invalid Protobuf wire type {wireType} for field {number}");
            }
        }

        private ReadOnlySpan<byte> Take(int length)
        {
            if (length > Remaining)
            {
                throw new PayloadDecodeException($"Protobuf payload is truncated: {length} bytes needed, {Remaining} left");
            }

            var span = _data.Slice(Position, length);
            Position += length;
            return span;
        }
    }
}
