using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using System.Text.Unicode;
using Avro;
using Newtonsoft.Json.Linq;
using SharedLog.Contracts.Model;
using SharedLog.Contracts.Policy;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Formats.Avro;

/// <summary>
/// Avro binary encoding to and from the <see cref="RecordValue"/> object graph, with the writer schema.
/// A bounded reader of its own rather than Apache.Avro's GenericDatumReader, so hostile input cannot
/// make it allocate: every length is checked against the bytes left, block counts against
/// <see cref="RecordValue.MaxElements"/> (and eight per payload byte, at least 4096, as nulls and empty records take none), nesting of records, arrays and maps against <see cref="RecordValue.MaxDepth"/>
/// (a union is not a level: it holds one branch's value, and a union cannot hold a union directly), and
/// bytes left after the datum are an error.
/// <para>Value choices: int and long decode to <c>long</c>, float and double to <c>double</c>, enums to
/// their symbol, bytes and fixed to <c>byte[]</c>, unions to the branch's value.
/// timestamp-millis and timestamp-micros decode to <c>DateTimeOffset</c> (UTC) when .NET can represent
/// the instant, else stay <c>long</c>. Other logical types keep their underlying value, losslessly:
/// date is days since the epoch (<c>long</c>), time-* and local-timestamp-* and timestamp-nanos are
/// <c>long</c>, decimal is the big-endian two's-complement unscaled <c>byte[]</c> (a double would lose
/// precision), uuid is a <c>string</c>. Map keys are unique: a repeated key keeps its last value.</para>
/// <para>Encoding takes the graph back: a record field missing from its dictionary (dropped by a
/// policy) is written as its schema default, else as null when its type is a union with null, else it
/// is an error. Values may be replaced by others of a compatible kind (any integer for int/long, a
/// <c>DateTimeOffset</c> or <c>long</c> for timestamps and dates, a string for bytes as UTF-8).</para>
/// </summary>
public sealed class AvroPayloadCodec : IPayloadCodec
{
    private const long TicksPerMicrosecond = TimeSpan.TicksPerMillisecond / 1000;

    private static readonly long MinUnixMilliseconds = DateTimeOffset.MinValue.ToUnixTimeMilliseconds();
    private static readonly long MaxUnixMilliseconds = DateTimeOffset.MaxValue.ToUnixTimeMilliseconds();
    private static readonly long MinUnixMicroseconds = (DateTimeOffset.MinValue.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / TicksPerMicrosecond;
    private static readonly long MaxUnixMicroseconds = (DateTimeOffset.MaxValue.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / TicksPerMicrosecond;

    private static ReadOnlySpan<byte> BigDecimalZero => [0x02, 0x00, 0x00];

    public SchemaType Type => SchemaType.Avro;

    public DecodedPayload Decode(IParsedSchema schema, ReadOnlySpan<byte> payload) => Decode(schema, payload, default);

    public DecodedPayload Decode(IParsedSchema schema, ReadOnlyMemory<byte> payload) => Decode(schema, payload.Span, payload);

    /// <param name="source">The memory <paramref name="payload"/> is, when it outlives the result: strings then stay <see cref="Utf8Text"/> slices of it.</param>
    private static DecodedPayload Decode(IParsedSchema schema, ReadOnlySpan<byte> payload, ReadOnlyMemory<byte> source)
    {
        var avro = SchemaOf(schema);
        var reader = new AvroReader(payload, source);
        var value = ReadValue(ref reader, avro, 0);
        if (reader.Remaining > 0)
        {
            throw new PayloadDecodeException($"Avro payload has {reader.Remaining} bytes left after the datum");
        }

        return new DecodedPayload(value);
    }

    public byte[] Encode(IParsedSchema schema, DecodedPayload payload) => Encode(schema, payload, []);

    public byte[] Encode(IParsedSchema schema, DecodedPayload payload, ReadOnlySpan<byte> prefix)
    {
        ArgumentNullException.ThrowIfNull(payload);
        var avro = SchemaOf(schema);
        var writer = PayloadWriter.ForThread(prefix);
        WriteValue(writer, avro, payload.Value, 0);
        return writer.ToArray();
    }

    /// <inheritdoc/>
    public bool SplicesRemovedFields => true;

    /// <summary>
    /// After a privacy rewrite: the original datum with only the changed fields written again (a dropped
    /// one as its default), when every changed path runs through nested records, also inside unions along
    /// the branch the payload took (other shapes encode the whole record). Untouched fields are copied as
    /// they came, not decoded and encoded again, so every union keeps the branch its producer chose.
    /// </summary>
    public void EncodeRewrite(IParsedSchema schema, DecodedPayload payload, ReadOnlySpan<byte> original, IReadOnlyList<string[]> changedPaths, ReadOnlySpan<byte> prefix, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(payload);
        ArgumentNullException.ThrowIfNull(changedPaths);
        ArgumentNullException.ThrowIfNull(output);
        var avro = SchemaOf(schema);
        var reader = new AvroReader(original);
        var record = avro as RecordSchema;
        if (avro is UnionSchema topUnion)
        {
            // A union of record types (several event types in one topic): spliced inside the branch the producer
            // wrote, whose index is copied as it came; encoding afresh could pick another record of the same fields.
            record = topUnion[ReadBranch(reader, topUnion)] as RecordSchema;
            reader.ReadLong();
        }

        if (changedPaths.Count is 0 or > SplicePaths.Max || record is null)
        {
            EncodeGuided(avro, payload.Value, original, prefix, output);
            return;
        }

        var writer = PayloadWriter.ForThread(prefix);
        var copied = 0;
        var live = SplicePaths.All(changedPaths.Count);
        if (!SpliceRecord(ref reader, original, record, payload.Value, changedPaths, 0, live, writer, ref copied, 0))
        {
            EncodeGuided(avro, payload.Value, original, prefix, output);
            return;
        }

        // The unchanged tail (often most of the record) goes to the output once, not through the writer's buffer.
        writer.CopyTo(output);
        output.Write(original[copied..]);
    }

    /// <summary>The whole rewritten value written again, each union along the branch <paramref name="original"/> took where it still fits.</summary>
    private static void EncodeGuided(Schema schema, object? value, ReadOnlySpan<byte> original, ReadOnlySpan<byte> prefix, IBufferWriter<byte> output)
    {
        var writer = PayloadWriter.ForThread(prefix);
        var guide = new AvroReader(original);
        WriteGuided(writer, schema, value, ref guide, 0);
        writer.CopyTo(output);
    }

    /// <summary>
    /// Writes a rewritten value while reading the datum it was decoded from in step, so every union keeps the branch
    /// its producer wrote whenever the new value still fits it: a fresh choice by value could turn a long into an int,
    /// an enum into a string, or one event record into another of the same field names. Array items are walked in step
    /// with the original's, map values from their key's last value in the original (the one decoding kept); a value that
    /// no longer fits its branch (or has no original) is written by <see cref="WriteValue"/>.
    /// </summary>
    private static void WriteGuided(PayloadWriter writer, Schema schema, object? value, ref AvroReader original, int depth)
    {
        switch (schema.Tag)
        {
            case Schema.Type.Union:
                {
                    var union = (UnionSchema)schema;
                    var branch = ReadBranch(original, union);
                    original.ReadLong();
                    if (Fit(union[branch], value) == BranchFit.None)
                    {
                        Skip(ref original, union[branch], depth);
                        WriteValue(writer, union, value, depth);
                        return;
                    }

                    writer.WriteZigZag(branch);
                    WriteGuided(writer, union[branch], value, ref original, depth);
                    return;
                }

            case Schema.Type.Record:
            case Schema.Type.Error:
                {
                    var record = (RecordSchema)schema;
                    var values = value as IDictionary<string, object?> ?? throw Mismatch(schema, value);
                    var inner = Deeper(depth);
                    var matched = 0;
                    foreach (var field in record.Fields)
                    {
                        try
                        {
                            if (values.TryGetValue(field.Name, out var fieldValue))
                            {
                                matched++;
                                WriteGuided(writer, field.Schema, fieldValue, ref original, inner);
                            }
                            else
                            {
                                Skip(ref original, field.Schema, inner);
                                WriteDropped(writer, field, inner);
                            }
                        }
                        catch (PayloadDecodeException ex)
                        {
                            throw new PayloadDecodeException($"{record.Name}.{field.Name}: {ex.Message}", ex.InnerException);
                        }
                    }

                    CheckAllFieldsOf(record, values, matched);
                    return;
                }

            case Schema.Type.Array:
                {
                    var items = value as IList<object?> ?? throw Mismatch(schema, value);
                    var itemSchema = ((ArraySchema)schema).ItemSchema;
                    var inner = Deeper(depth);
                    var cursor = new BlockCursor();
                    if (items.Count > 0)
                    {
                        writer.WriteZigZag(items.Count);
                        for (var index = 0; index < items.Count; index++)
                        {
                            if (cursor.Next(ref original))
                            {
                                WriteGuided(writer, itemSchema, items[index], ref original, inner);
                            }
                            else
                            {
                                WriteValue(writer, itemSchema, items[index], inner);
                            }
                        }
                    }

                    while (cursor.Next(ref original))
                    {
                        Skip(ref original, itemSchema, inner);
                    }

                    writer.WriteByte(0);
                    return;
                }

            case Schema.Type.Map:
                {
                    var entries = value as IDictionary<string, object?> ?? throw Mismatch(schema, value);
                    var valueSchema = ((MapSchema)schema).ValueSchema;
                    var inner = Deeper(depth);

                    // Where each key's value lies in the original: its last one, which the decoded map kept (a key may repeat).
                    var cursor = new BlockCursor();
                    var valueAt = new Dictionary<string, int>(StringComparer.Ordinal);
                    while (cursor.Next(ref original))
                    {
                        valueAt[original.ReadString()] = original.Position;
                        Skip(ref original, valueSchema, inner);
                    }

                    if (entries.Count > 0)
                    {
                        writer.WriteZigZag(entries.Count);
                        foreach (var entry in entries)
                        {
                            WriteString(writer, entry.Key);
                            if (valueAt.TryGetValue(entry.Key, out var at))
                            {
                                var guide = original.At(at);
                                WriteGuided(writer, valueSchema, entry.Value, ref guide, inner);
                            }
                            else
                            {
                                WriteValue(writer, valueSchema, entry.Value, inner);
                            }
                        }
                    }

                    writer.WriteByte(0);
                    return;
                }

            default:
                // No union inside: written from the value alone.
                Skip(ref original, schema, depth);
                WriteValue(writer, schema, value, depth);
                return;
        }
    }

    private readonly struct FieldName(string name) : ISpliceName
    {
        public bool Is(string pathName) => string.Equals(pathName, name, StringComparison.Ordinal);
    }

    /// <summary>Copies a record's fields up to each changed one, which is written from the rewritten values; false if a path leaves the records.</summary>
    private static bool SpliceRecord(ref AvroReader reader, ReadOnlySpan<byte> original, RecordSchema record, object? node, IReadOnlyList<string[]> paths, int level, ulong live, PayloadWriter writer, ref int copied, int depth)
    {
        if (node is not IDictionary<string, object?> values)
        {
            throw new PayloadDecodeException("the rewritten record does not have the shape of its payload");
        }

        foreach (var field in record.Fields)
        {
            var name = new FieldName(field.Name);
            ulong matched = SplicePaths.Matching(live, paths, level, ref name, out var leaf);

            if (matched == 0)
            {
                Skip(ref reader, field.Schema, depth);
                continue;
            }

            var present = values.TryGetValue(field.Name, out var child);
            if (!present && !leaf)
            {
                throw new PayloadDecodeException($"the rewritten record has no field '{field.Name}'");
            }

            if (leaf)
            {
                var start = reader.Position;
                var guide = reader; // at the field's datum, to write the new value along the branches it took
                Skip(ref reader, field.Schema, depth);
                writer.WriteBytes(original[copied..start]);
                if (!present)
                {
                    WriteDropped(writer, field, depth);
                }
                else
                {
                    WriteGuided(writer, field.Schema, child, ref guide, depth);
                }

                copied = reader.Position;
                continue;
            }

            var inner = field.Schema;
            if (inner is UnionSchema union)
            {
                // Through a union (a nullable nested record, most often) along the branch the payload took.
                inner = union[ReadBranch(reader, union)];
                reader.ReadLong();
                if (inner.Tag == Schema.Type.Null && child is null)
                {
                    continue; // nothing under a null; the rewrite left it null
                }
            }

            if (inner is not RecordSchema nested || !SpliceRecord(ref reader, original, nested, child, paths, level + 1, matched, writer, ref copied, Deeper(depth)))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The branch index of the union datum at the reader's position, without moving the reader.</summary>
    private static int ReadBranch(AvroReader reader, UnionSchema union)
    {
        var index = reader.ReadLong();
        return index >= 0 && index < union.Count ? (int)index : throw new PayloadDecodeException($"union index {index} is out of range");
    }

    /// <summary>Moves past one datum that <see cref="Decode"/> has already accepted.</summary>
    private static void Skip(ref AvroReader reader, Schema schema, int depth)
    {
        switch (schema.Tag)
        {
            case Schema.Type.Null:
                return;
            case Schema.Type.Boolean:
                reader.ReadByte();
                return;
            case Schema.Type.Int:
            case Schema.Type.Long:
            case Schema.Type.Enumeration:
                reader.ReadLong();
                return;
            case Schema.Type.Float:
                reader.ReadSpan(4);
                return;
            case Schema.Type.Double:
                reader.ReadSpan(8);
                return;
            case Schema.Type.Bytes:
            case Schema.Type.String:
                reader.ReadSpan(reader.ReadLength());
                return;
            case Schema.Type.Fixed:
                reader.ReadSpan(((FixedSchema)schema).Size);
                return;
            case Schema.Type.Record:
            case Schema.Type.Error:
                foreach (var field in ((RecordSchema)schema).Fields)
                {
                    Skip(ref reader, field.Schema, Deeper(depth));
                }

                return;
            case Schema.Type.Array:
            case Schema.Type.Map:
                {
                    var isMap = schema.Tag == Schema.Type.Map;
                    var items = isMap ? ((MapSchema)schema).ValueSchema : ((ArraySchema)schema).ItemSchema;
                    var cursor = new BlockCursor();
                    while (cursor.Next(ref reader))
                    {
                        if (isMap)
                        {
                            reader.ReadSpan(reader.ReadLength());
                        }

                        Skip(ref reader, items, Deeper(depth));
                    }

                    return;
                }

            case Schema.Type.Union:
                {
                    var union = (UnionSchema)schema;
                    var index = reader.ReadLong();
                    Skip(ref reader, index >= 0 && index < union.Count ? union[(int)index] : throw new PayloadDecodeException($"union index {index} is out of range"), depth);
                    return;
                }

            case Schema.Type.Logical:
                Skip(ref reader, ((LogicalSchema)schema).BaseSchema, depth);
                return;
            default:
                throw new PayloadDecodeException($"unsupported Avro type {schema.Tag}");
        }
    }

    private static Schema SchemaOf(IParsedSchema schema)
    {
        ArgumentNullException.ThrowIfNull(schema);
        return schema is AvroParsedSchema avro
            ? avro.Schema
            : throw new ArgumentException($"expected an Avro schema, got {schema.Type}", nameof(schema));
    }

    private static object? ReadValue(ref AvroReader reader, Schema schema, int depth)
    {
        switch (schema.Tag)
        {
            case Schema.Type.Null:
                return null;
            case Schema.Type.Boolean:
                return reader.ReadByte() switch
                {
                    0 => false,
                    1 => true,
                    var other => throw new PayloadDecodeException($"invalid Avro boolean byte {other}"),
                };
            case Schema.Type.Int:
                return RecordValue.Integer(reader.ReadInt());
            case Schema.Type.Long:
                return RecordValue.Integer(reader.ReadLong());
            case Schema.Type.Float:
                return PayloadValues.WidenFloat(BinaryPrimitives.ReadUInt32LittleEndian(reader.ReadSpan(4)));
            case Schema.Type.Double:
                return BinaryPrimitives.ReadDoubleLittleEndian(reader.ReadSpan(8));
            case Schema.Type.Bytes:
                return reader.ReadSpan(reader.ReadLength()).ToArray();
            case Schema.Type.String:
                return reader.ReadStringValue();
            case Schema.Type.Fixed:
                {
                    var fixedSchema = (FixedSchema)schema;
                    ReadOnlySpan<byte> fixedBytes = reader.ReadSpan(fixedSchema.Size);
                    return AvroInvalidLogicalTypes.IsUuidFixed(fixedSchema) ? new UuidText(new Guid(fixedBytes, bigEndian: true).ToString("D")) : fixedBytes.ToArray();
                }

            case Schema.Type.Enumeration:
                {
                    var symbols = ((EnumSchema)schema).Symbols;
                    var index = reader.ReadInt();
                    return index >= 0 && index < symbols.Count
                        ? symbols[index]
                        : throw new PayloadDecodeException($"enum '{((EnumSchema)schema).Fullname}' has no symbol at index {index}");
                }

            case Schema.Type.Record:
            case Schema.Type.Error:
                return ReadRecord(ref reader, (RecordSchema)schema, Deeper(depth));
            case Schema.Type.Array:
                return ReadArray(ref reader, ((ArraySchema)schema).ItemSchema, Deeper(depth));
            case Schema.Type.Map:
                return ReadMap(ref reader, ((MapSchema)schema).ValueSchema, Deeper(depth));
            case Schema.Type.Union:
                {
                    var union = (UnionSchema)schema;
                    var index = reader.ReadInt();
                    return index >= 0 && index < union.Count
                        ? ReadValue(ref reader, union[(int)index], depth)
                        : throw new PayloadDecodeException($"union index {index} is out of range (the union has {union.Count} branches)");
                }

            case Schema.Type.Logical:
                {
                    var logical = (LogicalSchema)schema;
                    var raw = ReadValue(ref reader, logical.BaseSchema, depth);
                    return FromLogical(logical.LogicalTypeName, raw);
                }

            default:
                throw new PayloadDecodeException($"unsupported Avro type {schema.Tag}");
        }
    }

    private static object? FromLogical(string logicalType, object? raw) => (logicalType, raw) switch
    {
        ("timestamp-millis", long millis) when millis >= MinUnixMilliseconds && millis <= MaxUnixMilliseconds =>
            DateTimeOffset.FromUnixTimeMilliseconds(millis),
        ("timestamp-micros", long micros) when micros >= MinUnixMicroseconds && micros <= MaxUnixMicroseconds =>
            DateTimeOffset.UnixEpoch.AddTicks(micros * TicksPerMicrosecond),
        ("uuid", string text) when Guid.TryParseExact(text, "D", out _) => new UuidText(text),
        // The gate's decodes leave strings as UTF-8; a UUID is kept as its text (see UuidText).
        ("uuid", Utf8Text utf8) => FromLogical(logicalType, utf8.ToString()),
        _ => raw,
    };

    private static Dictionary<string, object?> ReadRecord(ref AvroReader reader, RecordSchema record, int depth)
    {
        var fields = record.Fields;
        reader.CountFields(fields.Count);
        int start = reader.Position;
        var result = reader.DecodesForGate ? RecordGraphPool.RentObject(fields.Count) : new Dictionary<string, object?>(fields.Count, StringComparer.Ordinal);
        foreach (var field in fields)
        {
            try
            {
                result[field.Name] = ReadValue(ref reader, field.Schema, depth);
            }
            catch (PayloadDecodeException ex)
            {
                throw new PayloadDecodeException($"{record.Name}.{field.Name}: {ex.Message}", ex.InnerException);
            }
        }

        if (reader.Position == start)
        {
            // A record of no bytes (no fields, or only nulls) is a dictionary made of nothing: charged as an object, so
            // 125 KB of padding and a block count of a million of them cannot build a million dictionaries (92 MiB).
            reader.CountFields(RecordValue.ObjectElements);
        }

        return result;
    }

    private static List<object?> ReadArray(ref AvroReader reader, Schema itemSchema, int depth)
    {
        var items = new List<object?>();
        while (true)
        {
            var count = reader.ReadBlockCount(out var blockEnd);
            if (count == 0)
            {
                return items;
            }

            // Never size from the claimed count alone: it is bounded by the bytes left (items of a null schema take none).
            // Grown, never set: setting the capacity per block copied the list once per block, quadratic in a
            // payload of one-item blocks.
            items.EnsureCapacity((int)Math.Min(items.Count + (long)count, items.Count + (long)reader.Remaining + 1));
            for (var i = 0; i < count; i++)
            {
                items.Add(ReadValue(ref reader, itemSchema, depth));
            }

            reader.EndBlock(blockEnd);
        }
    }

    private static Dictionary<string, object?> ReadMap(ref AvroReader reader, Schema valueSchema, int depth)
    {
        var entries = new Dictionary<string, object?>(StringComparer.Ordinal);
        while (true)
        {
            var count = reader.ReadBlockCount(out var blockEnd);
            if (count == 0)
            {
                return entries;
            }

            for (var i = 0; i < count; i++)
            {
                var key = reader.ReadString();
                entries[key] = ReadValue(ref reader, valueSchema, depth);
            }

            reader.EndBlock(blockEnd);
        }
    }

    private static int Deeper(int depth) => depth < RecordValue.MaxDepth
        ? depth + 1
        : throw new PayloadDecodeException($"Avro value is nested more than {RecordValue.MaxDepth} levels deep");

    private static void WriteValue(PayloadWriter writer, Schema schema, object? value, int depth)
    {
        switch (schema.Tag)
        {
            case Schema.Type.Null:
                if (value is not null)
                {
                    throw Mismatch(schema, value);
                }

                break;
            case Schema.Type.Boolean:
                writer.WriteByte(value is bool b ? (b ? (byte)1 : (byte)0) : throw Mismatch(schema, value));
                break;
            case Schema.Type.Int:
                writer.WriteZigZag(PayloadValues.TryGetInt64(value, out var i) && i >= int.MinValue && i <= int.MaxValue ? i : throw Mismatch(schema, value));
                break;
            case Schema.Type.Long:
                writer.WriteZigZag(PayloadValues.TryGetInt64(value, out var l) ? l : throw Mismatch(schema, value));
                break;
            case Schema.Type.Float:
                writer.WriteUInt32LittleEndian(PayloadValues.TryGetDouble(value, out var f) ? PayloadValues.NarrowToFloatBits(f) : throw Mismatch(schema, value));
                break;
            case Schema.Type.Double:
                writer.WriteUInt64LittleEndian(BitConverter.DoubleToUInt64Bits(PayloadValues.TryGetDouble(value, out var d) ? d : throw Mismatch(schema, value)));
                break;
            case Schema.Type.Bytes:
                WriteBytes(writer, schema, value);
                break;
            case Schema.Type.String when value is Utf8Text text:
                writer.WriteZigZag(text.Utf8.Length);
                writer.WriteBytes(text.Utf8.Span);
                break;
            case Schema.Type.String:
                WriteString(writer, value as string ?? throw Mismatch(schema, value));
                break;
            case Schema.Type.Fixed when value is UuidText uuidText && AvroInvalidLogicalTypes.IsUuidFixed((FixedSchema)schema):
                {
                    Span<byte> uuidBytes = stackalloc byte[16];
                    Guid uuid = Guid.TryParseExact(uuidText.Text, "D", out Guid parsed) ? parsed : throw Mismatch(schema, value);
                    uuid.TryWriteBytes(uuidBytes, bigEndian: true, out _);
                    writer.WriteBytes(uuidBytes);
                    break;
                }

            case Schema.Type.Fixed:
                {
                    var size = ((FixedSchema)schema).Size;
                    if (value is byte[] { Length: 0 } && size > 0)
                    {
                        // Redacted bytes (the decoder gives a fixed its exact size, so nothing else is empty): zeros of the size.
                        value = new byte[size];
                    }

                    writer.WriteBytes(value is byte[] bytes && bytes.Length == size ? bytes : throw Mismatch(schema, value));
                    break;
                }

            case Schema.Type.Enumeration:
                writer.WriteZigZag(SymbolIndex((EnumSchema)schema, value));
                break;
            case Schema.Type.Record:
            case Schema.Type.Error:
                WriteRecord(writer, (RecordSchema)schema, value as IDictionary<string, object?> ?? throw Mismatch(schema, value), Deeper(depth));
                break;
            case Schema.Type.Array:
                {
                    var items = value as IList<object?> ?? throw Mismatch(schema, value);
                    var itemSchema = ((ArraySchema)schema).ItemSchema;
                    var inner = Deeper(depth);
                    if (items.Count > 0)
                    {
                        writer.WriteZigZag(items.Count);
                        for (var index = 0; index < items.Count; index++)
                        {
                            WriteValue(writer, itemSchema, items[index], inner);
                        }
                    }

                    writer.WriteByte(0);
                    break;
                }

            case Schema.Type.Map:
                {
                    var entries = value as IDictionary<string, object?> ?? throw Mismatch(schema, value);
                    var valueSchema = ((MapSchema)schema).ValueSchema;
                    var inner = Deeper(depth);
                    if (entries.Count > 0)
                    {
                        writer.WriteZigZag(entries.Count);
                        foreach (var entry in entries)
                        {
                            WriteString(writer, entry.Key);
                            WriteValue(writer, valueSchema, entry.Value, inner);
                        }
                    }

                    writer.WriteByte(0);
                    break;
                }

            case Schema.Type.Union:
                {
                    var union = (UnionSchema)schema;
                    var branch = ChooseBranch(union, value);
                    writer.WriteZigZag(branch);
                    WriteValue(writer, union[branch], value, depth);
                    break;
                }

            case Schema.Type.Logical:
                {
                    var logical = (LogicalSchema)schema;
                    if (logical.LogicalTypeName == "decimal" && value is byte[] { Length: 0 })
                    {
                        // Redacted bytes: no bytes are no decimal for Java's reader, and no fixed's size; zero is.
                        value = logical.BaseSchema is FixedSchema fixedDecimal ? new byte[fixedDecimal.Size] : new byte[1];
                    }
                    else if (logical.LogicalTypeName == "big-decimal" && value is byte[] { Length: 0 })
                    {
                        // Zero as Avro 1.12's big-decimal: its unscaled bytes ([0], length-prefixed) and scale 0, both zig-zag.
                        value = BigDecimalZero.ToArray();
                    }

                    WriteValue(writer, logical.BaseSchema, ToLogicalBase(logical.LogicalTypeName, value), depth);
                    break;
                }

            default:
                throw new PayloadDecodeException($"unsupported Avro type {schema.Tag}");
        }
    }

    private static object? ToLogicalBase(string logicalType, object? value)
    {
        if (value is UuidText uuid)
        {
            return uuid.Text;
        }

        if (value is not DateTimeOffset instant)
        {
            return value;
        }

        var ticks = instant.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks;
        return logicalType switch
        {
            "timestamp-millis" => instant.ToUnixTimeMilliseconds(),
            "timestamp-micros" => ticks / TicksPerMicrosecond,
            "date" => (long)Math.Floor(ticks / (double)TimeSpan.TicksPerDay),
            _ => value,
        };
    }

    private static void WriteBytes(PayloadWriter writer, Schema schema, object? value)
    {
        switch (value)
        {
            case byte[] bytes:
                writer.WriteZigZag(bytes.Length);
                writer.WriteBytes(bytes);
                break;
            case string text:
                WriteString(writer, text);
                break;
            case Utf8Text text:
                writer.WriteZigZag(text.Utf8.Length);
                writer.WriteBytes(text.Utf8.Span);
                break;
            default:
                throw Mismatch(schema, value);
        }
    }

    private static void WriteString(PayloadWriter writer, string text)
    {
        writer.WriteZigZag(Encoding.UTF8.GetByteCount(text));
        writer.WriteUtf8(text);
    }

    private static int SymbolIndex(EnumSchema schema, object? value)
    {
        if (Utf8Text.AsString(value) is PrivacyRewriter.RedactedText)
        {
            // Redacted (no symbol is "****"): the enum's default symbol, which readers fall back to, else its first.
            return schema.Default is { } fallback && schema.Contains(fallback) ? schema.Ordinal(fallback) : 0;
        }

        if (Utf8Text.AsString(value) is { } symbol)
        {
            var symbols = schema.Symbols;
            for (var index = 0; index < symbols.Count; index++)
            {
                if (string.Equals(symbols[index], symbol, StringComparison.Ordinal))
                {
                    return index;
                }
            }

            throw new PayloadDecodeException($"'{symbol}' is not a symbol of enum '{schema.Fullname}'");
        }

        throw Mismatch(schema, value);
    }

    private static void WriteRecord(PayloadWriter writer, RecordSchema record, IDictionary<string, object?> values, int depth)
    {
        var matched = 0;
        foreach (var field in record.Fields)
        {
            try
            {
                if (values.TryGetValue(field.Name, out var value))
                {
                    matched++;
                    WriteValue(writer, field.Schema, value, depth);
                }
                else
                {
                    WriteDropped(writer, field, depth);
                }
            }
            catch (PayloadDecodeException ex)
            {
                throw new PayloadDecodeException($"{record.Name}.{field.Name}: {ex.Message}", ex.InnerException);
            }
        }

        CheckAllFieldsOf(record, values, matched);
    }

    /// <summary>After writing the <paramref name="matched"/> values that are fields of <paramref name="record"/>: any other key is an error.</summary>
    private static void CheckAllFieldsOf(RecordSchema record, IDictionary<string, object?> values, int matched)
    {
        if (matched < values.Count)
        {
            foreach (var key in values.Keys)
            {
                if (!record.Contains(key))
                {
                    throw new PayloadDecodeException($"record '{record.Fullname}' has no field '{key}'");
                }
            }
        }
    }

    /// <summary>A field a policy removed: its default, else null in a nullable union, else it cannot be dropped.</summary>
    private static void WriteDropped(PayloadWriter writer, Field field, int depth)
    {
        if (field.DefaultValue is { } token)
        {
            var schema = field.Schema;
            if (schema is UnionSchema union)
            {
                // Avro 1.12 lets a union default match any branch; use the first it matches.
                for (var branch = 0; branch < union.Count; branch++)
                {
                    if (TryConvertDefault(union[branch], token, depth, out var branchValue))
                    {
                        writer.WriteZigZag(branch);
                        WriteValue(writer, union[branch], branchValue, depth);
                        return;
                    }
                }
            }
            else if (TryConvertDefault(schema, token, depth, out var value))
            {
                WriteValue(writer, schema, value, depth);
                return;
            }

            throw new PayloadDecodeException("the field's default does not match its type");
        }

        if (field.Schema is UnionSchema nullable)
        {
            for (var branch = 0; branch < nullable.Count; branch++)
            {
                if (nullable[branch].Tag == Schema.Type.Null)
                {
                    writer.WriteZigZag(branch);
                    return;
                }
            }
        }

        throw new PayloadDecodeException($"the field '{field.Name}' was dropped but cannot be: it has no default and is not nullable");
    }

    /// <summary>Converts a field default (JSON, per the Avro specification) to an object-graph value.</summary>
    private static bool TryConvertDefault(Schema schema, JToken token, int depth, out object? value)
    {
        value = null;
        if (depth > RecordValue.MaxDepth)
        {
            return false;
        }

        switch (schema.Tag)
        {
            case Schema.Type.Null:
                return token.Type == JTokenType.Null;
            case Schema.Type.Boolean when token.Type == JTokenType.Boolean:
                value = token.Value<bool>();
                return true;
            case Schema.Type.Int or Schema.Type.Long when token.Type == JTokenType.Integer:
                value = token.Value<long>();
                return true;
            case Schema.Type.Float or Schema.Type.Double when token.Type is JTokenType.Integer or JTokenType.Float:
                value = token.Value<double>();
                return true;
            case Schema.Type.String when token.Type == JTokenType.String:
                value = token.Value<string>();
                return true;
            case Schema.Type.Enumeration when token.Type == JTokenType.String:
                value = token.Value<string>();
                return ((EnumSchema)schema).Contains((string)value!);
            case Schema.Type.Bytes or Schema.Type.Fixed when token.Type == JTokenType.String:
                {
                    // Bytes defaults are strings whose code points 0-255 are the bytes.
                    var text = token.Value<string>()!;
                    var bytes = new byte[text.Length];
                    for (var index = 0; index < text.Length; index++)
                    {
                        if (text[index] > 0xFF)
                        {
                            return false;
                        }

                        bytes[index] = (byte)text[index];
                    }

                    value = bytes;
                    return schema is not FixedSchema fixedSchema || fixedSchema.Size == bytes.Length;
                }

            case Schema.Type.Array when token is JArray array:
                {
                    var items = new List<object?>(array.Count);
                    foreach (var item in array)
                    {
                        if (!TryConvertDefault(((ArraySchema)schema).ItemSchema, item, depth + 1, out var converted))
                        {
                            return false;
                        }

                        items.Add(converted);
                    }

                    value = items;
                    return true;
                }

            case Schema.Type.Map when token is JObject map:
                {
                    var entries = new Dictionary<string, object?>(StringComparer.Ordinal);
                    foreach (var property in map.Properties())
                    {
                        if (!TryConvertDefault(((MapSchema)schema).ValueSchema, property.Value, depth + 1, out var converted))
                        {
                            return false;
                        }

                        entries[property.Name] = converted;
                    }

                    value = entries;
                    return true;
                }

            case Schema.Type.Record or Schema.Type.Error when token is JObject obj:
                {
                    var record = (RecordSchema)schema;
                    var fields = new Dictionary<string, object?>(StringComparer.Ordinal);
                    foreach (var field in record.Fields)
                    {
                        var fieldToken = obj[field.Name] ?? field.DefaultValue;
                        if (fieldToken is null || !TryConvertDefault(field.Schema, fieldToken, depth + 1, out var converted))
                        {
                            return false;
                        }

                        fields[field.Name] = converted;
                    }

                    value = fields;
                    return true;
                }

            case Schema.Type.Union:
                {
                    var union = (UnionSchema)schema;
                    for (var branch = 0; branch < union.Count; branch++)
                    {
                        if (TryConvertDefault(union[branch], token, depth, out value))
                        {
                            return true;
                        }
                    }

                    return false;
                }

            case Schema.Type.Logical:
                return TryConvertDefault(((LogicalSchema)schema).BaseSchema, token, depth, out value);
            default:
                return false;
        }
    }

    /// <summary>
    /// The union branch a value is written in: the first that takes it as it is, else the first that can convert it.
    /// A record goes to the one record branch with exactly its fields (as decoded); if none has, to the one that takes
    /// it; a record that two record branches take alike (event types with the same fields) is refused: the decoded
    /// record no longer says which it was, and the wrong one would change its type for every consumer.
    /// </summary>
    private static int ChooseBranch(UnionSchema union, object? value)
    {
        var loose = -1;
        for (var branch = 0; branch < union.Count; branch++)
        {
            switch (Fit(union[branch], value))
            {
                case BranchFit.Exact when union[branch] is RecordSchema && value is IDictionary<string, object?> fields:
                    return ChooseRecordBranch(union, fields);
                case BranchFit.Exact:
                    return branch;
                case BranchFit.Convertible when loose < 0:
                    loose = branch;
                    break;
                default:
                    break;
            }
        }

        return loose >= 0
            ? loose
            : throw new PayloadDecodeException($"{PayloadValues.KindOf(value)} value matches no branch of {AvroSchemaKinds.Describe(union)}");
    }

    private static int ChooseRecordBranch(UnionSchema union, IDictionary<string, object?> fields)
    {
        // Taken alike by two branches with exactly the record's fields, or (when none has exactly them) by two that
        // take it: ambiguous.
        int exact = -1, taking = -1, secondTaking = -1;
        for (var branch = 0; branch < union.Count; branch++)
        {
            if (union[branch] is not RecordSchema record || Fit(record, fields) != BranchFit.Exact)
            {
                continue;
            }

            if (record.Fields.Count == fields.Count)
            {
                exact = exact < 0 ? branch : throw Ambiguous(union, exact, branch);
            }

            (taking, secondTaking) = taking < 0 ? (branch, -1) : (taking, secondTaking < 0 ? branch : secondTaking);
        }

        return exact >= 0 ? exact : secondTaking < 0 ? taking : throw Ambiguous(union, taking, secondTaking);
    }

    private static PayloadDecodeException Ambiguous(UnionSchema union, int first, int second) =>
        new($"the record fits both {((RecordSchema)union[first]).Fullname} and {((RecordSchema)union[second]).Fullname} of {AvroSchemaKinds.Describe(union)}, so which one it was cannot be told when it is written again");

    private enum BranchFit
    {
        None,
        Convertible,
        Exact,
    }

    private static BranchFit Fit(Schema schema, object? value)
    {
        var isInteger = PayloadValues.TryGetInt64(value, out var integer) && value is not double;
        switch (schema.Tag)
        {
            case Schema.Type.Null:
                return value is null ? BranchFit.Exact : BranchFit.None;
            case Schema.Type.Boolean:
                return value is bool ? BranchFit.Exact : BranchFit.None;
            case Schema.Type.Int:
                return isInteger && integer >= int.MinValue && integer <= int.MaxValue ? BranchFit.Exact : BranchFit.None;
            case Schema.Type.Long:
                return isInteger ? BranchFit.Exact : BranchFit.None;
            case Schema.Type.Float:
                // Decoded floats and doubles are both doubles: only one a float holds exactly is a float's, so a
                // re-encode never narrows 0.1 from a double branch to 0.10000000149011612.
                return value is float || (value is double d && (double)(float)d == d) ? BranchFit.Exact
                    : value is double || isInteger ? BranchFit.Convertible : BranchFit.None;
            case Schema.Type.Double:
                return value is double or float ? BranchFit.Exact : isInteger ? BranchFit.Convertible : BranchFit.None;
            case Schema.Type.String:
                return value is string or Utf8Text ? BranchFit.Exact : BranchFit.None;
            case Schema.Type.Bytes:
                return value is byte[]? BranchFit.Exact : value is string or Utf8Text ? BranchFit.Convertible : BranchFit.None;
            case Schema.Type.Fixed when value is UuidText:
                return AvroInvalidLogicalTypes.IsUuidFixed((FixedSchema)schema) ? BranchFit.Exact : BranchFit.None;
            case Schema.Type.Fixed when value is byte[] { Length: 16 } && AvroInvalidLogicalTypes.IsUuidFixed((FixedSchema)schema):
                return BranchFit.Convertible; // a uuid fixed is read as a UUID: 16 plain bytes came from another 16-byte fixed
            case Schema.Type.Fixed:
                return value is byte[] bytes && bytes.Length == ((FixedSchema)schema).Size ? BranchFit.Exact
                    : value is byte[] { Length: 0 } ? BranchFit.Convertible : BranchFit.None; // redacted: written as zeros
            case Schema.Type.Enumeration:
                return Utf8Text.AsString(value) is { } symbol && ((EnumSchema)schema).Contains(symbol) ? BranchFit.Exact
                    : Utf8Text.AsString(value) is PrivacyRewriter.RedactedText ? BranchFit.Convertible : BranchFit.None; // redacted: the default symbol
            case Schema.Type.Array:
                return value is IList<object?> ? BranchFit.Exact : BranchFit.None;
            case Schema.Type.Map:
                return value is IDictionary<string, object?> ? BranchFit.Convertible : BranchFit.None;
            case Schema.Type.Record:
            case Schema.Type.Error:
                return value is IDictionary<string, object?> fields && RecordTakes((RecordSchema)schema, fields) ? BranchFit.Exact : BranchFit.None;
            case Schema.Type.Logical:
                {
                    var logical = (LogicalSchema)schema;
                    if (value is UuidText)
                    {
                        return logical.LogicalTypeName == "uuid" ? BranchFit.Exact : BranchFit.None;
                    }

                    if (value is DateTimeOffset)
                    {
                        return logical.LogicalTypeName is "timestamp-millis" or "timestamp-micros" or "date" ? BranchFit.Exact : BranchFit.None;
                    }

                    var fit = Fit(logical.BaseSchema, value);
                    return fit == BranchFit.Exact ? BranchFit.Convertible : fit;
                }

            default:
                return BranchFit.None;
        }
    }

    /// <summary>
    /// <see cref="Fit"/> one level deep: a union fits as its best branch, a record as any object. Records nest in unions
    /// of records, so a full fit of each field of each branch would take time exponential in the value's depth.
    /// </summary>
    private static BranchFit ShallowFit(Schema schema, object? value)
    {
        switch (schema)
        {
            case UnionSchema union:
                {
                    var best = BranchFit.None;
                    for (var branch = 0; branch < union.Count && best != BranchFit.Exact; branch++)
                    {
                        var fit = ShallowFit(union[branch], value);
                        best = fit > best ? fit : best;
                    }

                    return best;
                }

            case RecordSchema:
                return value is IDictionary<string, object?> ? BranchFit.Exact : BranchFit.None;
            default:
                return Fit(schema, value);
        }
    }

    /// <summary>Whether a dictionary can be written as this record: every key is a field (holding a value of its type), every missing field can be dropped.</summary>
    private static bool RecordTakes(RecordSchema record, IDictionary<string, object?> values)
    {
        var matched = 0;
        foreach (var field in record.Fields)
        {
            if (values.TryGetValue(field.Name, out var value))
            {
                // Names alone would let a record of another branch's field types (an id string where this one has a long) pass.
                if (ShallowFit(field.Schema, value) == BranchFit.None)
                {
                    return false;
                }

                matched++;
            }
            else if (field.DefaultValue is null && !IsNullable(field.Schema))
            {
                return false;
            }
        }

        return matched == values.Count;
    }

    private static bool IsNullable(Schema schema)
    {
        if (schema is UnionSchema union)
        {
            for (var branch = 0; branch < union.Count; branch++)
            {
                if (union[branch].Tag == Schema.Type.Null)
                {
                    return true;
                }
            }
        }

        return false;
    }

    private static PayloadDecodeException Mismatch(Schema schema, object? value) =>
        new($"{PayloadValues.KindOf(value)} value cannot be written as {AvroSchemaKinds.Describe(schema)}");

    /// <summary>Reads Avro binary from a span, checking every length and count before using it.</summary>
    private ref struct AvroReader
    {
        private const int MaxIntBytes = 5;
        private readonly ReadOnlySpan<byte> _data;
        private readonly ReadOnlyMemory<byte> _source;
        /// <summary>Elements a payload may hold per byte of it, and at least <see cref="MinElementBudget"/>.</summary>
        private const int ElementsPerByte = 8;
        private const int MinElementBudget = 4096;
        private readonly long _elementBudget;
        private int _position;
        private long _elements;

        /// <param name="source">The memory <paramref name="data"/> is, when strings may stay slices of it; else empty.</param>
        public AvroReader(ReadOnlySpan<byte> data, ReadOnlyMemory<byte> source = default)
        {
            _data = data;
            _source = source;
            // Every Avro value but a null and a record of nulls takes at least a byte, so real data stays far below this. Without it
            // a block count of a million empty records (four bytes of payload) built a million objects, about 92 MiB.
            _elementBudget = Math.Min(RecordValue.MaxElements, Math.Max(MinElementBudget, (long)ElementsPerByte * data.Length));
        }

        public readonly int Remaining => _data.Length - _position;

        /// <summary>Whether this decode is the gate's (memory given): its objects come from <see cref="RecordGraphPool"/>.</summary>
        public readonly bool DecodesForGate => !_source.IsEmpty;

        public readonly int Position => _position;

        /// <summary>This reader, standing at <paramref name="position"/> (one it has passed) instead.</summary>
        public readonly AvroReader At(int position)
        {
            var copy = this;
            copy._position = position;
            return copy;
        }

        public byte ReadByte() => _position < _data.Length
            ? _data[_position++]
            : throw new PayloadDecodeException("Avro payload is truncated");

        public ReadOnlySpan<byte> ReadSpan(long length)
        {
            if (length > Remaining)
            {
                throw new PayloadDecodeException($"Avro payload is truncated: {length} bytes needed, {Remaining} left");
            }

            var span = _data.Slice(_position, (int)length);
            _position += (int)length;
            return span;
        }

        public long ReadLong()
        {
            ulong raw = 0;
            for (var shift = 0; shift < 64; shift += 7)
            {
                var b = ReadByte();
                if (shift == 63 && b > 1)
                {
                    throw new PayloadDecodeException("Avro varint is longer than 64 bits");
                }

                raw |= (ulong)(b & 0x7F) << shift;
                if ((b & 0x80) == 0)
                {
                    return (long)(raw >> 1) ^ -(long)(raw & 1);
                }
            }

            throw new PayloadDecodeException("Avro varint is longer than 64 bits");
        }

        /// <summary>
        /// An Avro int: at most 5 bytes, as Java's BinaryDecoder reads ints (also union and enum indexes); a longer encoding
        /// of a small number would pass here and fail every Java consumer.
        /// </summary>
        public int ReadInt()
        {
            var start = _position;
            var value = ReadLong();
            if (_position - start > MaxIntBytes)
            {
                throw new PayloadDecodeException($"Avro int encoding is {_position - start} bytes long (at most {MaxIntBytes})");
            }

            return value >= int.MinValue && value <= int.MaxValue
                ? (int)value
                : throw new PayloadDecodeException($"Avro int {value} is out of the 32-bit range");
        }

        /// <summary>
        /// A string or bytes length, not negative and not more than the bytes left. Java's BinaryDecoder reads these lengths
        /// as longs (so in up to ten bytes, a non-minimal encoding included), and so does this.
        /// </summary>
        public long ReadLength()
        {
            long length = ReadLong();
            if (length < 0)
            {
                throw new PayloadDecodeException($"negative Avro length {length}");
            }

            return length <= Remaining
                ? length
                : throw new PayloadDecodeException($"Avro length {length} exceeds the {Remaining} bytes left");
        }

        /// <summary>A string value: a <see cref="Utf8Text"/> slice when the memory is known (the gate's decodes), else a string.</summary>
        public object ReadStringValue()
        {
            var length = ReadLength();
            if (_source.IsEmpty)
            {
                return DecodeUtf8(ReadSpan(length));
            }

            var utf8 = _source.Slice(_position, (int)length);
            _position += (int)length;
            return Utf8.IsValid(utf8.Span) ? RecordGraphPool.RentText(utf8) : throw new PayloadDecodeException("Avro string is not valid UTF-8");
        }

        private static string DecodeUtf8(ReadOnlySpan<byte> bytes) => Utf8.IsValid(bytes)
            ? Encoding.UTF8.GetString(bytes)
            : throw new PayloadDecodeException("Avro string is not valid UTF-8");

        public string ReadString() => DecodeUtf8(ReadSpan(ReadLength()));

        /// <summary>
        /// A record's fields, charged against the element budget: a record of null fields takes no bytes, so an array of them
        /// would otherwise build a million members per element the budget counts.
        /// </summary>
        public void CountFields(int count)
        {
            if (count > _elementBudget - _elements)
            {
                throw TooManyElements();
            }

            _elements += count;
        }

        /// <summary>
        /// An array or map block's item count (0 ends), charged against the payload's element budget. A block written
        /// with its size in bytes gives <paramref name="blockEnd"/>, where its items must end (see <see cref="EndBlock"/>);
        /// else it is -1.
        /// </summary>
        public long ReadBlockCount(out int blockEnd)
        {
            blockEnd = -1;
            var count = ReadLong();
            if (count < 0)
            {
                // A negative count is followed by the block's size in bytes, which must fit in what is left.
                count = count == long.MinValue ? throw new PayloadDecodeException("invalid Avro block count") : -count;
                var size = ReadLong();
                if (size < 0 || size > Remaining)
                {
                    throw new PayloadDecodeException($"Avro block size {size} does not fit in the {Remaining} bytes left");
                }

                blockEnd = _position + (int)size;
            }

            // Compared before adding: a count near long.MaxValue would wrap the sum negative and pass the check.
            if (count > _elementBudget - _elements)
            {
                throw TooManyElements();
            }

            _elements += count;
            return count;
        }

        private readonly PayloadDecodeException TooManyElements() => new(_elementBudget == RecordValue.MaxElements
            ? $"Avro payload holds more than {RecordValue.MaxElements} record fields and array or map elements"
            : $"Avro payload of {_data.Length} bytes holds more than {_elementBudget} record fields and array or map elements ({ElementsPerByte} per byte, at least {MinElementBudget}): nulls or empty records in bulk");

        /// <summary>
        /// After a block's items: they must take exactly the size the block gave. Readers that skip a block by its size
        /// (Java's, for a field its reader schema leaves out) would otherwise read what follows from another place than
        /// the items end, so consumers would see other values than the ones the rules checked.
        /// </summary>
        public readonly void EndBlock(int blockEnd)
        {
            if (blockEnd >= 0 && _position != blockEnd)
            {
                throw new PayloadDecodeException($"an Avro block's items end at byte {_position}, not at byte {blockEnd} where its size puts their end");
            }
        }
    }

    /// <summary>Steps through the items of an array or map datum, block by block, checking each block's size.</summary>
    private struct BlockCursor
    {
        private long _left;
        private int _blockEnd;
        private bool _done;

        public BlockCursor() => _blockEnd = -1;

        /// <summary>Whether another item follows; the reader then stands at it (at a map entry's key).</summary>
        public bool Next(ref AvroReader reader)
        {
            while (_left == 0)
            {
                if (_done)
                {
                    return false;
                }

                reader.EndBlock(_blockEnd);
                _left = reader.ReadBlockCount(out _blockEnd);
                _done = _left == 0;
            }

            _left--;
            return true;
        }
    }
}
