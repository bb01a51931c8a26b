using System.Buffers;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Model;

/// <summary>
/// A decoded key or value as the contract gate sees it, whatever the schema language: a plain object
/// graph that rules evaluate and privacy policies rewrite.
/// <list type="bullet">
/// <item>record / struct / message / JSON object / map: <c>Dictionary&lt;string, object?&gt;</c> (ordinal keys, field order kept)</item>
/// <item>array / repeated / JSON array: <c>List&lt;object?&gt;</c></item>
/// <item>integers: <c>long</c>; unsigned (Protobuf uint32/uint64/fixed): <c>ulong</c>; float/double: <c>double</c></item>
/// <item>string and enum symbols: <c>string</c>, or <see cref="Utf8Text"/> for an unescaped string the gate decoded from a payload
/// it holds (its UTF-8 bytes, made a string only when a rule, schema keyword or privacy rule needs one); bytes and fixed:
/// <c>byte[]</c>; boolean: <c>bool</c>; null: <c>null</c></item>
/// <item>timestamps (Avro timestamp-*, google.protobuf.Timestamp): <c>DateTimeOffset</c>; durations: <c>TimeSpan</c></item>
/// </list>
/// Unions decode to the value of their branch. Decoders bound depth, sizes and counts.
/// </summary>
public static class RecordValue
{
    /// <summary>Deepest nesting a decoded value may have.</summary>
    public const int MaxDepth = SchemaLimits.MaxDepth;

    /// <summary>Most elements (all lists and maps together) one decoded payload may hold.</summary>
    public const int MaxElements = 1_000_000;

    /// <summary>
    /// What a decoded JSON object or Protobuf map entry is charged against <see cref="MaxElements"/>: a dictionary takes about
    /// four times the memory of a scalar element, and an empty one two or three bytes of payload. A Protobuf message counts
    /// as one: a proto3 message of default values is two bytes too, and real records hold hundreds of thousands of them.
    /// </summary>
    public const int ObjectElements = 4;

    private const long SmallestSharedInteger = -128;

    // Quantities, counts, flags and codes make most of a record's integers; each decode would box them again.
    private static readonly object[] SharedIntegers = CreateSharedIntegers(1024 - SmallestSharedInteger);

    /// <summary>A decoded integer as the graph holds it: a box shared by every record for small values (-128 to 1023), a new one otherwise.</summary>
    public static object Integer(long value)
    {
        ulong index = unchecked((ulong)(value - SmallestSharedInteger));
        return index < (ulong)SharedIntegers.Length ? SharedIntegers[index] : value;
    }

    private static object[] CreateSharedIntegers(long count)
    {
        var boxes = new object[count];
        for (long i = 0; i < count; i++)
        {
            boxes[i] = SmallestSharedInteger + i;
        }

        return boxes;
    }
}

/// <summary>
/// A string value left as UTF-8: a (validated) slice of the payload it came from, or a privacy hash's text. Most strings of
/// a record (names, notes, descriptions) are never read by a rule, and those that are are mostly compared, matched or
/// prefixed, which rules do on a stack copy of the characters: turning each into a UTF-16 string per record costs time and
/// most of the gate's small allocations for nothing. A slice lives only as long as the payload's memory: the gate drops the
/// decoded graph before the batch's buffer goes back, and gives the objects back to <see cref="RecordGraphPool"/>.
/// </summary>
public sealed class Utf8Text
{
    private string? _text;
    private ReadOnlyMemory<byte> _utf8;

    // A hash's text, kept by a pooled object for the next hash.
    private byte[]? _owned;

    public Utf8Text(ReadOnlyMemory<byte> utf8) => _utf8 = utf8;

    /// <summary>The string's UTF-8 bytes (no escapes).</summary>
    public ReadOnlyMemory<byte> Utf8 => _utf8;

    /// <summary>The string, made on first use and kept.</summary>
    public override string ToString() => _text ??= System.Text.Encoding.UTF8.GetString(_utf8.Span);

    /// <summary>
    /// The characters: the string once made, else the UTF-8 decoded into <paramref name="scratch"/> when it fits (a UTF-8
    /// string has at most as many UTF-16 characters as bytes), else the string made now.
    /// </summary>
    public ReadOnlySpan<char> Chars(Span<char> scratch) => _text is { } text ? text
        : _utf8.Length <= scratch.Length ? scratch[..System.Text.Encoding.UTF8.GetChars(_utf8.Span, scratch)]
        : ToString();

    /// <summary>Ordinal equality with <paramref name="expected"/>, without making a string of this one.</summary>
    [System.Runtime.CompilerServices.SkipLocalsInit]
    public bool TextEquals(string expected)
    {
        // A string of n UTF-16 characters takes n to 3n bytes of UTF-8.
        if (_utf8.Length < expected.Length || _utf8.Length > 3L * expected.Length)
        {
            return false;
        }

        Span<char> scratch = stackalloc char[256];
        return Chars(scratch).SequenceEqual(expected);
    }

    /// <summary>The value as a string when it is one (a <c>string</c> or a <see cref="Utf8Text"/>).</summary>
    public static string? AsString(object? value) => value as string ?? (value as Utf8Text)?.ToString();

    /// <summary>Points a pooled object at another string's bytes.</summary>
    internal void Reuse(ReadOnlyMemory<byte> utf8)
    {
        _utf8 = utf8;
        _text = null;
    }

    /// <summary>Makes this object hold <paramref name="length"/> bytes of its own (valid UTF-8 the caller writes into the span returned).</summary>
    internal Span<byte> Own(int length)
    {
        if (_owned is null || _owned.Length < length)
        {
            _owned = new byte[Math.Max(length, 64)];
        }

        _utf8 = _owned.AsMemory(0, length);
        _text = null;
        return _owned.AsSpan(0, length);
    }
}

/// <summary>The type of a map's keys, which a decoded record holds as text (decimal numbers, <c>true</c>/<c>false</c>).</summary>
public enum MapKeyKind : byte
{
    String,
    Int,
    Uint,
    Bool,
}

/// <summary>
/// A decoded map whose keys are not strings (Protobuf's <c>map&lt;int32, V&gt;</c>, <c>map&lt;bool, V&gt;</c>...): held, as every
/// map, by the keys' text, so privacy paths name an entry as <c>counts.7</c>; rules read the keys as their type, as CEL
/// does (<c>value.byId[7]</c>, <c>7 in value.byId</c>).
/// </summary>
public sealed class TypedKeyMap(MapKeyKind keyKind) : Dictionary<string, object?>(StringComparer.Ordinal)
{
    public MapKeyKind KeyKind => keyKind;
}

/// <summary>A string's length in code points, as JSON Schema's length keywords and CEL's <c>size</c> count it.</summary>
public static class TextLength
{
    public static long CodePoints(string text)
    {
        long length = text.Length;
        foreach (char c in text)
        {
            if (char.IsLowSurrogate(c))
            {
                length--;
            }
        }

        return length;
    }

    /// <summary>The same for valid UTF-8, where every code point has exactly one byte that is not a continuation byte (10xxxxxx).</summary>
    public static long CodePoints(ReadOnlySpan<byte> validUtf8)
    {
        long length = 0;
        foreach (byte b in validUtf8)
        {
            if ((b & 0xC0) != 0x80)
            {
                length++;
            }
        }

        return length;
    }

    /// <summary>The same for a string value of a decoded record (a <c>string</c> or a <see cref="Utf8Text"/>).</summary>
    public static long CodePoints(object value) => value is Utf8Text utf8 ? CodePoints(utf8.Utf8.Span) : CodePoints((string)value);
}

/// <summary>
/// A string the schema declares a UUID (Avro's <c>uuid</c> logical type), kept as written (case included): rules read
/// it as that text, and privacy rules mask it as a UUID, so readers that parse the logical type still read it.
/// </summary>
public sealed record UuidText(string Text)
{
    public override string ToString() => Text;
}

/// <summary>
/// A google.protobuf.Timestamp whose nanos are not a multiple of 100, which <c>DateTimeOffset</c> (100 ns ticks) cannot
/// hold: kept exact, so rules compare it to the nanosecond and a rewritten message encodes it as it came.
/// </summary>
public sealed record NanoTimestamp(long Seconds, int Nanos);

/// <summary>A google.protobuf.Duration whose nanos are not a multiple of 100 (see <see cref="NanoTimestamp"/>).</summary>
public sealed record NanoDuration(long Seconds, int Nanos);

/// <summary>A payload that does not decode against its schema, or breaks a decoding bound.</summary>
public sealed class PayloadDecodeException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Decodes and encodes serialized payloads (the bytes after Confluent's 5-byte header) with a parsed
/// schema of one language. For Protobuf the bytes start with the message-index path.
/// </summary>
public interface IPayloadCodec
{
    SchemaType Type { get; }

    /// <summary>Decodes the whole payload into the object graph of <see cref="RecordValue"/>; throws <see cref="PayloadDecodeException"/>.</summary>
    DecodedPayload Decode(IParsedSchema schema, ReadOnlySpan<byte> payload);

    /// <summary>
    /// The same for a payload whose memory outlives the decoded graph: a codec may then leave strings
    /// as <see cref="Utf8Text"/> slices of it instead of strings.
    /// </summary>
    DecodedPayload Decode(IParsedSchema schema, ReadOnlyMemory<byte> payload) => Decode(schema, payload.Span);

    /// <summary>Encodes a (possibly rewritten) decoded payload back to bytes in the same layout <see cref="Decode"/> read.</summary>
    byte[] Encode(IParsedSchema schema, DecodedPayload payload);

    /// <summary>
    /// The same, with <paramref name="prefix"/> (e.g. Confluent's 5-byte header) in front: one exact-size
    /// array, so a rewritten record is not encoded and then copied again behind its header.
    /// </summary>
    byte[] Encode(IParsedSchema schema, DecodedPayload payload, ReadOnlySpan<byte> prefix);

    /// <summary>
    /// Whether <see cref="EncodeRewrite"/> also takes a rewrite that removed fields (drop); otherwise such a
    /// rewrite is encoded whole with <see cref="Encode(IParsedSchema, DecodedPayload, ReadOnlySpan{byte})"/>.
    /// </summary>
    bool SplicesRemovedFields => false;

    /// <summary>
    /// Encodes a payload after a privacy rewrite that replaced the values at <paramref name="changedPaths"/>
    /// (field names per level) and, when <see cref="SplicesRemovedFields"/>, removed some, <paramref name="prefix"/> first, into
    /// <paramref name="output"/> (the gate's pooled buffer of rewritten records, so no array per record);
    /// a codec that can splice the new values into the <paramref name="original"/> bytes does so instead
    /// of encoding the whole record again.
    /// </summary>
    void EncodeRewrite(IParsedSchema schema, DecodedPayload payload, ReadOnlySpan<byte> original, IReadOnlyList<string[]> changedPaths, ReadOnlySpan<byte> prefix, IBufferWriter<byte> output) => output.Write(Encode(schema, payload, prefix));
}

/// <summary>A decoded payload: the value and, for Protobuf, which message of the file it is.</summary>
public sealed record DecodedPayload(object? Value, string? MessageFullName = null, int[]? MessageIndexes = null)
{
    /// <summary>
    /// The payload holds values the decoded record does not: a Protobuf oneof member that a later member replaced, a scalar
    /// field or a map key given twice. Parsers keep the last (protobufjs keeps every oneof member), so bytes stored as sent
    /// would carry data no rule or privacy policy saw: a record whose sides a policy masks is written again from the record.
    /// </summary>
    public bool Superseded { get; init; }
}

/// <summary>
/// Objects (dictionaries) of decoded records, reused on one thread: the gate decodes a record, checks it
/// and drops it before the next, so each record's objects can serve the next one instead of being
/// garbage. Only decodes the gate owns use it (<see cref="IPayloadCodec.Decode(IParsedSchema, ReadOnlyMemory{byte})"/>),
/// and the gate returns a graph only once nothing refers to it. Bounded per thread, in count and size.
/// </summary>
public static class RecordGraphPool
{
    private const int MaxPooled = 64;
    private const int MaxPooledMembers = 64;

    // A record has a string for most of its fields.
    private const int MaxPooledTexts = 256;

    [ThreadStatic]
    private static Stack<Dictionary<string, object?>>? _objects;

    [ThreadStatic]
    private static Stack<Utf8Text>? _texts;

    /// <summary>A string value as a slice of <paramref name="utf8"/> (already checked to be UTF-8), from this thread's pool when it has one.</summary>
    public static Utf8Text RentText(ReadOnlyMemory<byte> utf8)
    {
        if (_texts is { Count: > 0 } pooled)
        {
            Utf8Text reused = pooled.Pop();
            reused.Reuse(utf8);
            return reused;
        }

        return new Utf8Text(utf8);
    }

    private static void ReturnText(Utf8Text text)
    {
        Stack<Utf8Text> pool = _texts ??= new Stack<Utf8Text>(MaxPooledTexts);
        if (pool.Count < MaxPooledTexts)
        {
            // Holds no payload memory while pooled.
            text.Reuse(default);
            pool.Push(text);
        }
    }

    /// <summary>An empty ordinal dictionary for a decoded object, from this thread's pool when it has one.</summary>
    public static Dictionary<string, object?> RentObject(int capacity)
    {
        if (_objects is { Count: > 0 } pooled)
        {
            Dictionary<string, object?> reused = pooled.Pop();
            reused.EnsureCapacity(capacity);
            return reused;
        }

        return new Dictionary<string, object?>(capacity, StringComparer.Ordinal);
    }

    /// <summary>Gives the objects of a decoded graph back to this thread's pool; the caller must hold no reference into it.</summary>
    public static void Return(object? graph) => Return(graph, 0);

    private static void Return(object? node, int depth)
    {
        if (depth > RecordValue.MaxDepth)
        {
            return;
        }

        switch (node)
        {
            case Dictionary<string, object?> members:
                foreach (object? member in members.Values)
                {
                    // Most members are scalars: only containers and texts are given back.
                    if (member is Dictionary<string, object?> or List<object?> or Utf8Text)
                    {
                        Return(member, depth + 1);
                    }
                }

                Stack<Dictionary<string, object?>> pool = _objects ??= new Stack<Dictionary<string, object?>>(MaxPooled);
                // Only plain dictionaries: a decoded Protobuf message is a subclass that reads its absent fields as defaults,
                // which an object of a JSON or Avro record taken from the pool must not.
                if (pool.Count < MaxPooled && members.Count <= MaxPooledMembers && members.GetType() == typeof(Dictionary<string, object?>) && ReferenceEquals(members.Comparer, StringComparer.Ordinal))
                {
                    members.Clear();
                    pool.Push(members);
                }

                break;
            case List<object?> items:
                foreach (object? item in items)
                {
                    Return(item, depth + 1);
                }

                break;
            case Utf8Text text:
                ReturnText(text);
                break;
        }
    }
}

/// <summary>
/// A decoded record object that carries values it does not show as fields: a proto2 message keeps a number its closed enum
/// does not declare as an unknown field, as parsers do, and writes it back. Masking the field must drop it too, or a reader
/// whose schema declares the number would read what the policy hides.
/// </summary>
public interface IHeldOutValues
{
    /// <summary>Drops the values held out of <paramref name="field"/>, or of every field when it is null; whether there were any.</summary>
    bool ForgetHeldOut(string? field);
}

/// <summary>
/// A decoded record object whose absent fields still read as a value: a proto3 message, whose scalars holding their
/// default are not written, reads them as 0, "", false, the first enum value or an empty list, as Confluent's rule
/// executor sees them. <c>has()</c> still tells them absent.
/// </summary>
public interface IFieldDefaults
{
    /// <summary>The value an absent field reads as, if it has one.</summary>
    bool TryGetDefault(string field, out object? value);
}
