using System.Buffers;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;
using SharedLog.Contracts.Model;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Formats.Json;

/// <summary>
/// UTF-8 JSON payloads to and from the <see cref="RecordValue"/> object graph. Validation against the
/// JSON Schema is another component's job; this only reads and writes JSON, within
/// <see cref="RecordValue.MaxDepth"/> and <see cref="RecordValue.MaxElements"/>.
/// <para>Numbers written without fraction or exponent that fit decode to <c>long</c>, every other number
/// to <c>double</c> (so 1.0 stays a double and an integer beyond 64 bits loses precision). A key
/// repeated in one object is an error: readers disagree on which copy wins, and a rule must see what
/// consumers see. Encoding is compact; <c>byte[]</c> becomes base64, <c>DateTimeOffset</c> ISO 8601,
/// <c>TimeSpan</c> its constant ("c") format.</para>
/// </summary>
public sealed class JsonPayloadCodec : IPayloadCodec
{
    private static readonly JsonReaderOptions ReaderOptions = new()
    {
        MaxDepth = RecordValue.MaxDepth,
        CommentHandling = JsonCommentHandling.Disallow,
        AllowTrailingCommas = false,
    };

    private static readonly JsonWriterOptions WriterOptions = new()
    {
        // Relaxed escaping keeps non-ASCII text as it came; the output is not embedded in HTML.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Indented = false,
        MaxDepth = RecordValue.MaxDepth + 1,
    };

    public SchemaType Type => SchemaType.Json;

    public DecodedPayload Decode(IParsedSchema schema, ReadOnlySpan<byte> payload) => Decode(schema, payload, default);

    public DecodedPayload Decode(IParsedSchema schema, ReadOnlyMemory<byte> payload) => Decode(schema, payload.Span, payload);

    /// <param name="source">The memory <paramref name="payload"/> is, when it outlives the result; empty for strings throughout.</param>
    private static DecodedPayload Decode(IParsedSchema schema, ReadOnlySpan<byte> payload, ReadOnlyMemory<byte> source)
    {
        CheckSchema(schema);
        var reader = new Utf8JsonReader(payload, ReaderOptions);
        var elements = 0;
        // Only decodes of memory the caller keeps (the gate's) are later spliced; others leave the layout alone.
        TopLevelLayout? layout = source.IsEmpty ? null : _threadLayout ??= new TopLevelLayout();
        layout?.Forget();
        try
        {
            if (!reader.Read())
            {
                throw new PayloadDecodeException("JSON payload is empty");
            }

            var value = ReadValue(ref reader, ref elements, source, layout);
            if (reader.Read())
            {
                throw new PayloadDecodeException("JSON payload has content after its value");
            }

            layout?.Complete(value, source);

            return new DecodedPayload(value);
        }
        catch (JsonException ex)
        {
            throw new PayloadDecodeException($"invalid JSON payload: {ex.Message}", ex);
        }
        catch (InvalidOperationException ex)
        {
            // Utf8JsonReader reports invalid UTF-8 inside strings this way.
            throw new PayloadDecodeException($"invalid JSON payload: {ex.Message}", ex);
        }
    }

    public byte[] Encode(IParsedSchema schema, DecodedPayload payload) => Encode(schema, payload, []);

    public byte[] Encode(IParsedSchema schema, DecodedPayload payload, ReadOnlySpan<byte> prefix)
    {
        CheckSchema(schema);
        ArgumentNullException.ThrowIfNull(payload);

        ArrayBufferWriter<byte> buffer = ThreadBuffer();
        buffer.Write(prefix);
        Utf8JsonWriter writer = _threadWriter ??= new Utf8JsonWriter(buffer, WriterOptions);
        writer.Reset(buffer);
        WriteValue(writer, payload.Value, 0);
        writer.Flush();
        return TakeBytes(buffer, writer);
    }

    /// <summary>
    /// After a privacy rewrite that kept every member: <paramref name="prefix"/> and the
    /// <paramref name="original"/> payload with only the values at <paramref name="changedPaths"/>
    /// replaced by their rewritten values, so the rest keeps its exact bytes and is not encoded again.
    /// Arrays are walked element by element, as the rewrite walks them.
    /// </summary>
    /// <inheritdoc/>
    public bool SplicesRemovedFields => true;

    public void EncodeRewrite(IParsedSchema schema, DecodedPayload payload, ReadOnlySpan<byte> original, IReadOnlyList<string[]> changedPaths, ReadOnlySpan<byte> prefix, IBufferWriter<byte> output)
    {
        CheckSchema(schema);
        ArgumentNullException.ThrowIfNull(payload);
        ArgumentNullException.ThrowIfNull(changedPaths);
        ArgumentNullException.ThrowIfNull(output);
        if (changedPaths.Count is 0)
        {
            output.Write(Encode(schema, payload, prefix));
            return;
        }

        // Written straight into the caller's buffer: unchanged stretches of the original, then each new value.
        output.Write(prefix);
        Utf8JsonWriter writer = _threadWriter ??= new Utf8JsonWriter(output, WriterOptions);
        if (changedPaths.Count > SplicePaths.Max)
        {
            // More paths than one pass follows (a tag rule on a wide schema): spliced 64 at a time, each pass reading the
            // one before's output, as the graph holds every final value. Written from the graph instead, numbers no path
            // names lost their text (1.0 became 1, a 20-digit integer a rounded double).
            // A path under another changed path is left to that one, which writes (or drops) the whole value, as one pass
            // does: in an earlier pass than its ancestor's drop, it would look for a member the graph no longer has.
            List<string[]> outermost = Outermost(changedPaths);
            byte[] passed = original.ToArray();
            var pass = new ArrayBufferWriter<byte>(passed.Length + 256);
            for (int start = 0; start < outermost.Count; start += SplicePaths.Max)
            {
                var chunk = new List<string[]>(SplicePaths.Max);
                for (int p = start; p < outermost.Count && p < start + SplicePaths.Max; p++)
                {
                    chunk.Add(outermost[p]);
                }

                pass.ResetWrittenCount();
                SpliceByReading(payload.Value, passed, chunk, pass, writer);
                passed = pass.WrittenSpan.ToArray();
            }

            output.Write(passed);
        }
        else if (_threadLayout is not { } layout || !layout.TrySplice(payload.Value, original, changedPaths, output, writer))
        {
            SpliceByReading(payload.Value, original, changedPaths, output, writer);
        }

        // The thread's writer must not keep the caller's buffer reachable; pointing it back costs no allocation.
        writer.Reset(ThreadBuffer());
    }

    /// <summary>The paths no other of them is a proper prefix of.</summary>
    private static List<string[]> Outermost(IReadOnlyList<string[]> paths)
    {
        var outermost = new List<string[]>(paths.Count);
        for (int p = 0; p < paths.Count; p++)
        {
            bool underAnother = false;
            for (int q = 0; q < paths.Count && !underAnother; q++)
            {
                underAnother = paths[q].Length < paths[p].Length && paths[p].AsSpan(0, paths[q].Length).SequenceEqual(paths[q]);
            }

            if (!underAnother)
            {
                outermost.Add(paths[p]);
            }
        }

        return outermost;
    }

    /// <summary><paramref name="original"/> with the values at <paramref name="changedPaths"/> (at most 64) written from <paramref name="graph"/>, found by reading it.</summary>
    private static void SpliceByReading(object? graph, ReadOnlySpan<byte> original, IReadOnlyList<string[]> changedPaths, IBufferWriter<byte> output, Utf8JsonWriter writer)
    {
        var reader = new Utf8JsonReader(original, ReaderOptions);
        var splice = new Splice(original, output, writer, changedPaths);
        try
        {
            if (!reader.Read())
            {
                throw new PayloadDecodeException("JSON payload is empty");
            }

            splice.Value(ref reader, graph, 0, SplicePaths.All(changedPaths.Count), insideArray: false);
        }
        catch (JsonException ex)
        {
            throw new PayloadDecodeException($"invalid JSON payload: {ex.Message}", ex);
        }

        output.Write(original[splice.Copied..]);
    }

    /// <summary>A member name as UTF-8 (unescaped), compared with path names without making a string of it.</summary>
    private readonly ref struct JsonMemberName(ReadOnlySpan<byte> utf8) : ISpliceName
    {
        private readonly ReadOnlySpan<byte> _utf8 = utf8;

        /// <summary>The name the reader stands at; an escaped name (rare) is unescaped into a new array.</summary>
        public static JsonMemberName At(ref Utf8JsonReader reader)
        {
            if (!reader.ValueIsEscaped)
            {
                return new JsonMemberName(reader.ValueSpan);
            }

            byte[] unescaped = new byte[reader.ValueSpan.Length];
            return new JsonMemberName(unescaped.AsSpan(0, reader.CopyString(unescaped)));
        }

        public bool Is(string pathName)
        {
            // UTF-8 as long as the UTF-16 text only for ASCII, so equal lengths compare char by byte with no encoding;
            // a name too short or too long to be the path name's UTF-8 is no match either.
            if (_utf8.Length == pathName.Length)
            {
                return System.Text.Ascii.Equals(_utf8, pathName);
            }

            if (_utf8.Length < pathName.Length || _utf8.Length > pathName.Length * 3)
            {
                return false;
            }

            Span<byte> encoded = stackalloc byte[256];
            return System.Text.Encoding.UTF8.TryGetBytes(pathName, encoded, out int written)
                ? encoded[..written].SequenceEqual(_utf8)
                : System.Text.Encoding.UTF8.GetBytes(pathName).AsSpan().SequenceEqual(_utf8);
        }
    }

    /// <summary>
    /// Copies the original payload up to each changed value, then writes that value from the rewritten graph.
    /// Once every path has been written (none through an array, where a path matches once per item) the walk
    /// stops: the rest of the payload is unchanged and the caller copies it whole without reading it again.
    /// </summary>
    private ref struct Splice(ReadOnlySpan<byte> original, IBufferWriter<byte> buffer, Utf8JsonWriter writer, IReadOnlyList<string[]> paths)
    {
        private readonly ReadOnlySpan<byte> _original = original;
        private ulong _pending = SplicePaths.All(paths.Count);

        public int Copied { get; private set; }

        /// <summary>The value at the reader; <paramref name="live"/> has a bit per path whose first <paramref name="level"/> names led here.</summary>
        public void Value(ref Utf8JsonReader reader, object? node, int level, ulong live, bool insideArray)
        {
            if (reader.TokenType == JsonTokenType.StartArray)
            {
                var items = node as List<object?> ?? throw Mismatch();
                int index = 0;
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    Value(ref reader, index < items.Count ? items[index] : throw Mismatch(), level, live, insideArray: true);
                    index++;
                }

                return;
            }

            if (reader.TokenType != JsonTokenType.StartObject)
            {
                return;
            }

            var fields = node as Dictionary<string, object?> ?? throw Mismatch();
            int lastKeptEnd = -1; // end of the last member of this object that stays, -1 while none has
            while (_pending != 0 && reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                int nameStart = (int)reader.TokenStartIndex;
                var member = JsonMemberName.At(ref reader);
                ulong matched = SplicePaths.Matching(live, paths, level, ref member, out bool leaf);
                reader.Read();
                if (matched == 0)
                {
                    reader.Skip();
                    lastKeptEnd = (int)reader.BytesConsumed;
                    continue;
                }

                bool present = fields.TryGetValue(SplicePaths.NameAt(matched, paths, level), out object? child);
                if (!leaf)
                {
                    Value(ref reader, present ? child : throw Mismatch(), level + 1, matched, insideArray);
                    lastKeptEnd = (int)reader.BytesConsumed;
                    continue;
                }

                int start = (int)reader.TokenStartIndex;
                reader.Skip();
                if (present)
                {
                    buffer.Write(_original[Copied..start]);
                    WriteReplacement(buffer, writer, child, level);
                    Copied = (int)reader.BytesConsumed;
                    lastKeptEnd = Copied;
                }
                else
                {
                    Drop(nameStart, (int)reader.BytesConsumed, lastKeptEnd);
                }

                if (!insideArray)
                {
                    // Keys are unique (the decoder refuses repeats), so these paths cannot match again.
                    _pending &= ~matched;
                }
            }
        }

        /// <summary>
        /// Leaves out a dropped member and one comma beside it: the one before it when a member before it stays
        /// (everything from that member's end goes), else the one after it.
        /// </summary>
        private void Drop(int nameStart, int valueEnd, int lastKeptEnd)
        {
            if (lastKeptEnd >= 0)
            {
                if (Copied < lastKeptEnd)
                {
                    buffer.Write(_original[Copied..lastKeptEnd]);
                }

                Copied = valueEnd;
                return;
            }

            if (Copied < nameStart)
            {
                buffer.Write(_original[Copied..nameStart]);
            }

            int next = SkipWhiteSpace(valueEnd);
            Copied = next < _original.Length && _original[next] == (byte)',' ? SkipWhiteSpace(next + 1) : valueEnd;
        }

        private readonly int SkipWhiteSpace(int at)
        {
            while (at < _original.Length && _original[at] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n')
            {
                at++;
            }

            return at;
        }

        private static PayloadDecodeException Mismatch() => new("the rewritten record does not have the shape of its payload");
    }

    /// <summary>A rewritten value spliced into a payload, at <paramref name="depth"/>: by the JSON writer, or directly when it is a plain string.</summary>
    private static void WriteReplacement(IBufferWriter<byte> output, Utf8JsonWriter writer, object? value, int depth)
    {
        if ((value is string text && TryWritePlainString(text, output)) || (value is Utf8Text utf8 && TryWritePlainString(utf8.Utf8.Span, output)))
        {
            return;
        }

        writer.Reset(output);
        WriteValue(writer, value, depth);
        writer.Flush();
    }

    // Plain strings longer than this go through the writer (hashes and the redacted text are far shorter).
    private const int MaxPlainLength = 256;

    /// <summary>
    /// Writes a short string that needs no escaping (printable ASCII without quote or backslash, as hashed and
    /// redacted values are) in quotes, straight to the output: what the writer would write, without its setup.
    /// </summary>
    private static bool TryWritePlainString(string text, IBufferWriter<byte> output)
    {
        if (text.Length > MaxPlainLength || text.AsSpan().ContainsAnyExceptInRange((char)0x20, (char)0x7E) || text.AsSpan().ContainsAny('"', '\\'))
        {
            return false;
        }

        Span<byte> target = output.GetSpan(text.Length + 2);
        target[0] = (byte)'"';
        System.Text.Encoding.ASCII.GetBytes(text, target[1..]);
        target[text.Length + 1] = (byte)'"';
        output.Advance(text.Length + 2);
        return true;
    }

    /// <summary>The same for a string held as UTF-8 (a hash's text).</summary>
    private static bool TryWritePlainString(ReadOnlySpan<byte> utf8, IBufferWriter<byte> output)
    {
        if (utf8.Length > MaxPlainLength || utf8.ContainsAnyExceptInRange((byte)0x20, (byte)0x7E) || utf8.ContainsAny((byte)'"', (byte)'\\'))
        {
            return false;
        }

        Span<byte> target = output.GetSpan(utf8.Length + 2);
        target[0] = (byte)'"';
        utf8.CopyTo(target[1..]);
        target[utf8.Length + 1] = (byte)'"';
        output.Advance(utf8.Length + 2);
        return true;
    }

    private static ArrayBufferWriter<byte> ThreadBuffer()
    {
        // One buffer and writer per thread, reset per payload; a buffer grown by a huge payload is dropped.
        ArrayBufferWriter<byte> buffer = _threadBuffer is { Capacity: <= 1024 * 1024 } cached ? cached : _threadBuffer = new ArrayBufferWriter<byte>(2048);
        buffer.ResetWrittenCount();
        return buffer;
    }

    private static byte[] TakeBytes(ArrayBufferWriter<byte> buffer, Utf8JsonWriter writer)
    {
        byte[] bytes = buffer.WrittenSpan.ToArray();
        if (buffer.Capacity > 1024 * 1024)
        {
            // Do not keep a huge record's buffer alive on this thread until its next encode.
            _threadBuffer = null;
            writer.Reset(Stream.Null);
        }

        return bytes;
    }

    [ThreadStatic]
    private static ArrayBufferWriter<byte>? _threadBuffer;

    [ThreadStatic]
    private static Utf8JsonWriter? _threadWriter;

    private static void CheckSchema(IParsedSchema schema)
    {
        ArgumentNullException.ThrowIfNull(schema);
        if (schema.Type != SchemaType.Json)
        {
            throw new ArgumentException($"expected a JSON schema, got {schema.Type}", nameof(schema));
        }
    }

    /// <param name="layout">Given for the payload's top-level value only: where each of its members' values lies.</param>
    /// <param name="nested">Inside the top-level value: objects there start empty and grow, so a payload of many empty
    /// objects (three bytes each) does not allocate room for eight members per object.</param>
    private static object? ReadValue(ref Utf8JsonReader reader, ref int elements, ReadOnlyMemory<byte> source, TopLevelLayout? layout = null, bool nested = false)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null:
                return null;
            case JsonTokenType.True:
                return true;
            case JsonTokenType.False:
                return false;
            case JsonTokenType.String:
                return source.IsEmpty || reader.ValueIsEscaped ? reader.GetString() : LazyString(ref reader, source);
            case JsonTokenType.Number:
                return ReadNumber(ref reader);
            case JsonTokenType.StartArray:
                {
                    var items = new List<object?>();
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                    {
                        Count(ref elements);
                        items.Add(ReadValue(ref reader, ref elements, source, nested: true));
                    }

                    return items;
                }

            case JsonTokenType.StartObject:
                {
                    // A record's own object usually has a handful of fields: it starts big enough to skip the first regrowths.
                    int capacity = nested ? 0 : 8;
                    // Counted by its parent as one element; an object costs more (see RecordValue.ObjectElements).
                    Count(ref elements, RecordValue.ObjectElements - 1);
                    var members = source.IsEmpty ? new Dictionary<string, object?>(capacity, StringComparer.Ordinal) : RecordGraphPool.RentObject(capacity);
                    while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                    {
                        Count(ref elements);
                        var name = MemberName(ref reader);
                        reader.Read();
                        int valueStart = (int)reader.TokenStartIndex;
                        if (!members.TryAdd(name, ReadValue(ref reader, ref elements, source, nested: true)))
                        {
                            throw new PayloadDecodeException($"JSON object has the key '{name}' more than once");
                        }

                        layout?.Add(name, valueStart, (int)reader.BytesConsumed);
                    }

                    return members;
                }

            default:
                throw new PayloadDecodeException($"unexpected JSON token {reader.TokenType}");
        }
    }

    /// <summary>An unescaped string as a slice of the payload; its UTF-8 is checked here, as <c>GetString</c> would.</summary>
    private static Utf8Text LazyString(ref Utf8JsonReader reader, ReadOnlyMemory<byte> source)
    {
        // Without escapes the value's bytes are the string's UTF-8, right after the opening quote.
        ReadOnlyMemory<byte> utf8 = source.Slice((int)reader.TokenStartIndex + 1, reader.ValueSpan.Length);
        if (!System.Text.Unicode.Utf8.IsValid(utf8.Span))
        {
            throw new PayloadDecodeException("invalid JSON payload: a string is not valid UTF-8");
        }

        return RecordGraphPool.RentText(utf8);
    }

    /// <summary>
    /// The member name at the reader. Records repeat the same few names, so short unescaped ones are found
    /// by their UTF-8 bytes in a per-thread cache instead of being transcoded and allocated for every record.
    /// </summary>
    private static string MemberName(ref Utf8JsonReader reader)
    {
        if (reader.ValueIsEscaped || reader.HasValueSequence || reader.ValueSpan.Length > Utf8NameCache.MaxNameBytes)
        {
            return reader.GetString()!;
        }

        return (_threadNames ??= new Utf8NameCache()).Get(reader.ValueSpan);
    }

    [ThreadStatic]
    private static Utf8NameCache? _threadNames;

    [ThreadStatic]
    private static TopLevelLayout? _threadLayout;

    /// <summary>
    /// Drops this thread's note of the last decoded payload's member positions, and with it the references to that
    /// payload's memory and graph: the gate calls it when a batch is done, so a large batch is not kept alive by it.
    /// </summary>
    public static void ForgetThreadLayout() => _threadLayout?.Forget();

    /// <summary>
    /// Where the members of the top-level object of the payload this thread decoded last lie in its bytes. The gate
    /// rewrites a record right after decoding it, on the same thread, and privacy rules mostly name top-level
    /// fields: with this the rewrite copies the bytes around each changed value instead of reading the payload again.
    /// It applies only to the very graph and bytes it was made from, so anything else takes the reading path.
    /// </summary>
    private sealed class TopLevelLayout
    {
        private const int MaxMembers = 32;

        private readonly string[] _names = new string[MaxMembers];
        private readonly int[] _starts = new int[MaxMembers];
        private readonly int[] _ends = new int[MaxMembers];
        private int _count;
        private bool _overflow;
        private object? _graph;
        private ReadOnlyMemory<byte> _source;

        public void Forget()
        {
            _graph = null;
            _source = default;
            _count = 0;
            _overflow = false;
        }

        public void Add(string name, int start, int end)
        {
            if (_count == MaxMembers)
            {
                _overflow = true;
                return;
            }

            _names[_count] = name;
            _starts[_count] = start;
            _ends[_count] = end;
            _count++;
        }

        /// <summary>Called once the whole payload decoded: only then does the layout describe <paramref name="graph"/>.</summary>
        public void Complete(object? graph, ReadOnlyMemory<byte> source)
        {
            if (graph is Dictionary<string, object?> && !_overflow)
            {
                _graph = graph;
                _source = source;
            }
        }

        /// <summary>
        /// Writes <paramref name="original"/> with the values of <paramref name="changedPaths"/> replaced, when every
        /// path is one top-level name and this layout is the one of <paramref name="graph"/> read from these very bytes.
        /// </summary>
        public bool TrySplice(object? graph, ReadOnlySpan<byte> original, IReadOnlyList<string[]> changedPaths, IBufferWriter<byte> output, Utf8JsonWriter writer)
        {
            if (_graph is null || !ReferenceEquals(graph, _graph) || original.Length != _source.Length || !Unsafe.AreSame(ref MemoryMarshal.GetReference(original), ref MemoryMarshal.GetReference(_source.Span)))
            {
                return false;
            }

            var fields = (Dictionary<string, object?>)graph!;
            Span<int> ordered = stackalloc int[SplicePaths.Max];
            int found = 0;
            for (int p = 0; p < changedPaths.Count; p++)
            {
                string[] path = changedPaths[p];
                int member = path.Length == 1 ? IndexOf(path[0]) : -1;
                if (member < 0 || !fields.ContainsKey(_names[member]))
                {
                    return false;
                }

                // Insertion in payload order: a rewrite names a few fields.
                int at = found++;
                while (at > 0 && _starts[ordered[at - 1]] > _starts[member])
                {
                    ordered[at] = ordered[at - 1];
                    at--;
                }

                ordered[at] = member;
            }

            int copied = 0;
            foreach (int member in ordered[..found])
            {
                if (_starts[member] < copied)
                {
                    // A field named by two rules is written once.
                    continue;
                }

                output.Write(original[copied.._starts[member]]);
                WriteReplacement(output, writer, fields[_names[member]], 0);
                copied = _ends[member];
            }

            output.Write(original[copied..]);
            return true;
        }

        private int IndexOf(string name)
        {
            for (int i = 0; i < _count; i++)
            {
                if (string.Equals(_names[i], name, StringComparison.Ordinal))
                {
                    return i;
                }
            }

            return -1;
        }
    }

    private static object ReadNumber(ref Utf8JsonReader reader)
    {
        var raw = reader.ValueSpan;
        if (raw.IndexOfAny((byte)'.', (byte)'e', (byte)'E') < 0 && reader.TryGetInt64(out var integer))
        {
            return RecordValue.Integer(integer);
        }

        return reader.TryGetDouble(out var number) && double.IsFinite(number)
            ? number
            : throw new PayloadDecodeException("JSON number is out of the double range");
    }

    private static void Count(ref int elements, int charge = 1)
    {
        if ((elements += charge) > RecordValue.MaxElements)
        {
            throw new PayloadDecodeException($"JSON payload holds more than {RecordValue.MaxElements} array items or object members (an object counts as {RecordValue.ObjectElements})");
        }
    }

    private static void WriteValue(Utf8JsonWriter writer, object? value, int depth)
    {
        if (depth > RecordValue.MaxDepth)
        {
            throw new PayloadDecodeException($"value is nested more than {RecordValue.MaxDepth} levels deep");
        }

        switch (value)
        {
            case null:
                writer.WriteNullValue();
                break;
            case string text:
                writer.WriteStringValue(text);
                break;
            case bool flag:
                writer.WriteBooleanValue(flag);
                break;
            case ulong unsigned:
                writer.WriteNumberValue(unsigned);
                break;
            case double or float or decimal:
                {
                    PayloadValues.TryGetDouble(value, out var number);
                    if (!double.IsFinite(number))
                    {
                        throw new PayloadDecodeException("JSON cannot hold NaN or infinite numbers");
                    }

                    writer.WriteNumberValue(number);
                    break;
                }

            case byte[] bytes:
                writer.WriteBase64StringValue(bytes);
                break;
            case Utf8Text text:
                writer.WriteStringValue(text.Utf8.Span);
                break;
            case DateTimeOffset instant:
                writer.WriteStringValue(instant);
                break;
            case TimeSpan duration:
                writer.WriteStringValue(duration.ToString("c", CultureInfo.InvariantCulture));
                break;
            case IDictionary<string, object?> members:
                writer.WriteStartObject();
                foreach (var member in members)
                {
                    writer.WritePropertyName(member.Key);
                    WriteValue(writer, member.Value, depth + 1);
                }

                writer.WriteEndObject();
                break;
            case IList<object?> items:
                writer.WriteStartArray();
                for (var index = 0; index < items.Count; index++)
                {
                    WriteValue(writer, items[index], depth + 1);
                }

                writer.WriteEndArray();
                break;
            default:
                if (PayloadValues.TryGetInt64(value, out var integer))
                {
                    writer.WriteNumberValue(integer);
                    break;
                }

                throw new PayloadDecodeException($"{PayloadValues.KindOf(value)} value cannot be written as JSON");
        }
    }
}
