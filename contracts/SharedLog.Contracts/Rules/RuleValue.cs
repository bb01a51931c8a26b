using System.Collections;
using System.Globalization;

using SharedLog.Contracts.Model;

namespace SharedLog.Contracts.Rules;

/// <summary>The kinds of value a rule expression produces.</summary>
public enum RuleValueKind : byte
{
    Null,
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    List,
    Map,
    Timestamp,
    Duration,
    Type,
    Optional,
    Error,
}

/// <summary>
/// One value of the rule language. A small struct so scalars never allocate; lists and maps keep a
/// reference to the caller's <c>List&lt;object?&gt;</c> / <c>Dictionary&lt;string, object?&gt;</c> and convert
/// elements only when they are read, so evaluation never copies a decoded record.
/// </summary>
public readonly struct RuleValue
{
    // Lists: IReadOnlyList<object?> (caller data) or RuleValue[] (built by the rule).
    // Maps: IReadOnlyDictionary<string, object?> (caller data) or RuleMap (built by the rule).
    private readonly object? _ref;
    private readonly long _bits;
    private readonly int _nanos;

    private RuleValue(RuleValueKind kind, long bits, int nanos, object? reference)
    {
        Kind = kind;
        _bits = bits;
        _nanos = nanos;
        _ref = reference;
    }

    public RuleValueKind Kind { get; }

    public static RuleValue Null => default;

    public static RuleValue True { get; } = new(RuleValueKind.Bool, 1, 0, null);

    public static RuleValue False { get; } = new(RuleValueKind.Bool, 0, 0, null);

    public static RuleValue Bool(bool value) => value ? True : False;

    public static RuleValue Int(long value) => new(RuleValueKind.Int, value, 0, null);

    public static RuleValue Uint(ulong value) => new(RuleValueKind.Uint, unchecked((long)value), 0, null);

    public static RuleValue Double(double value) => new(RuleValueKind.Double, BitConverter.DoubleToInt64Bits(value), 0, null);

    public static RuleValue String(string value) => new(RuleValueKind.String, 0, 0, value);

    public static RuleValue Bytes(byte[] value) => new(RuleValueKind.Bytes, 0, 0, value);

    public static RuleValue Type(string name) => new(RuleValueKind.Type, 0, 0, name);

    public static RuleValue Error(string message) => new(RuleValueKind.Error, 0, 0, message);

    /// <summary>An optional without a value (optional.none()).</summary>
    public static RuleValue OptionalNone => new(RuleValueKind.Optional, 0, 0, null);

    /// <summary>An optional holding a value (optional.of(x)).</summary>
    public static RuleValue OptionalOf(RuleValue value) => new(RuleValueKind.Optional, 0, 0, new OptionalBox(value));

    public bool HasOptionalValue => _ref is OptionalBox;

    public RuleValue OptionalValue => ((OptionalBox)_ref!).Value;

    /// <summary>A list backed by values the rule built.</summary>
    public static RuleValue List(RuleValue[] items) => new(RuleValueKind.List, 0, 0, items);

    /// <summary>A list backed by caller data, converted lazily.</summary>
    public static RuleValue List(IReadOnlyList<object?> items) => new(RuleValueKind.List, 0, 0, items);

    public static RuleValue Map(IReadOnlyDictionary<string, object?> map) => new(RuleValueKind.Map, 0, 0, map);

    internal static RuleValue Map(RuleMap map) => new(RuleValueKind.Map, 0, 0, map);

    /// <summary>A timestamp as seconds since the Unix epoch plus nanoseconds (0..999,999,999).</summary>
    public static RuleValue Timestamp(long seconds, int nanos) => new(RuleValueKind.Timestamp, seconds, nanos, null);

    /// <summary>A duration as seconds plus nanoseconds of the same sign.</summary>
    public static RuleValue Duration(long seconds, int nanos) => new(RuleValueKind.Duration, seconds, nanos, null);

    public bool IsError => Kind == RuleValueKind.Error;

    public bool AsBool => _bits != 0;

    public long AsInt => _bits;

    public ulong AsUint => unchecked((ulong)_bits);

    public double AsDouble => BitConverter.Int64BitsToDouble(_bits);

    /// <summary>The string (a field left as UTF-8 is made one now, once).</summary>
    public string AsString => _ref as string ?? ((Utf8Text)_ref!).ToString();

    /// <summary>Characters a string value's stack copy takes at most (<see cref="Text"/>); longer ones are made strings.</summary>
    internal const int TextScratchLength = 256;

    /// <summary>
    /// A string value's characters without making a string of a field left as UTF-8: it is decoded into
    /// <paramref name="scratch"/> (<see cref="TextScratchLength"/> characters) when it fits.
    /// </summary>
    internal ReadOnlySpan<char> Text(Span<char> scratch) => _ref is string text ? text : ((Utf8Text)_ref!).Chars(scratch);

    /// <summary>Ordinal equality of two string values, without making strings of fields left as UTF-8.</summary>
    [System.Runtime.CompilerServices.SkipLocalsInit]
    internal static bool TextEquals(in RuleValue a, in RuleValue b)
    {
        switch (a._ref, b._ref)
        {
            case (string x, string y):
                return string.Equals(x, y, StringComparison.Ordinal);
            case (Utf8Text x, string y):
                return x.TextEquals(y);
            case (string x, Utf8Text y):
                return y.TextEquals(x);
        }

        Span<char> first = stackalloc char[TextScratchLength];
        Span<char> second = stackalloc char[TextScratchLength];
        return a.Text(first).SequenceEqual(b.Text(second));
    }

    /// <summary>A string value's size as held: UTF-16 units, or UTF-8 bytes for a field left as UTF-8 (a measure of work, not CEL's <c>size</c>).</summary>
    internal int TextSize => _ref is string text ? text.Length : ((Utf8Text)_ref!).Utf8.Length;

    /// <summary>A string value's length in code points (CEL's <c>size</c>).</summary>
    internal long CodePointCount() => TextLength.CodePoints(_ref!);

    public byte[] AsBytes => (byte[])_ref!;

    /// <summary>The CEL type of this value (for a type value: <c>type</c>).</summary>
    public string TypeName => TypeNameOf(Kind);

    /// <summary>The type a type value denotes, such as <c>int</c> for <c>type(1)</c>.</summary>
    public string AsTypeName => (string)_ref!;

    public string ErrorMessage => Kind == RuleValueKind.Error ? (string)_ref! : string.Empty;

    public long Seconds => _bits;

    public int Nanos => _nanos;

    internal object? Reference => _ref;

    internal static string TypeNameOf(RuleValueKind kind) => kind switch
    {
        RuleValueKind.Null => "null_type",
        RuleValueKind.Bool => "bool",
        RuleValueKind.Int => "int",
        RuleValueKind.Uint => "uint",
        RuleValueKind.Double => "double",
        RuleValueKind.String => "string",
        RuleValueKind.Bytes => "bytes",
        RuleValueKind.List => "list",
        RuleValueKind.Map => "map",
        RuleValueKind.Timestamp => "google.protobuf.Timestamp",
        RuleValueKind.Duration => "google.protobuf.Duration",
        RuleValueKind.Type => "type",
        RuleValueKind.Optional => "optional_type",
        _ => "error",
    };

    /// <summary>Wraps a value of the record object graph (see <c>RecordValue</c>) without copying it.</summary>
    public static RuleValue FromObject(object? value) => value switch
    {
        null => Null,
        RuleValue v => v,
        string s => String(s),
        // Left as UTF-8: most rules compare, match or prefix it, which they do without a string (see Text).
        Utf8Text text => new(RuleValueKind.String, 0, 0, text),
        long l => Int(l),
        bool b => Bool(b),
        double d => Double(d),
        // Decoded records are this exact type: a class check here spares the interface cast below.
        Dictionary<string, object?> record => Map(record),
        IReadOnlyDictionary<string, object?> map => Map(map),
        IReadOnlyList<object?> list => List(list),
        ulong u => Uint(u),
        int i => Int(i),
        uint u => Uint(u),
        short s => Int(s),
        ushort u => Uint(u),
        byte u => Uint(u),
        sbyte s => Int(s),
        float f => Double(f),
        byte[] bytes => Bytes(bytes),
        DateTimeOffset timestamp => FromDateTimeOffset(timestamp),
        UuidText uuid => String(uuid.Text),
        DateTime dateTime => FromDateTimeOffset(new DateTimeOffset(dateTime.Kind == DateTimeKind.Unspecified ? DateTime.SpecifyKind(dateTime, DateTimeKind.Utc) : dateTime.ToUniversalTime())),
        TimeSpan span => FromTimeSpan(span),
        Model.NanoTimestamp exact => Timestamp(exact.Seconds, exact.Nanos),
        Model.NanoDuration exact => Duration(exact.Seconds, exact.Nanos),
        ReadOnlyMemory<byte> memory => Bytes(memory.ToArray()),
        IDictionary other => Map(RuleMap.FromDictionary(other)),
        IList other => List(FromList(other)),
        _ => Error($"unsupported value of type {value.GetType().Name}"),
    };

    private static RuleValue[] FromList(IList list)
    {
        var items = new RuleValue[list.Count];
        for (var i = 0; i < items.Length; i++)
        {
            items[i] = FromObject(list[i]);
        }

        return items;
    }

    public static RuleValue FromDateTimeOffset(DateTimeOffset timestamp)
    {
        var ticks = timestamp.UtcTicks - DateTime.UnixEpoch.Ticks;
        var seconds = Math.DivRem(ticks, TimeSpan.TicksPerSecond, out var rest);
        if (rest < 0)
        {
            seconds--;
            rest += TimeSpan.TicksPerSecond;
        }

        return Timestamp(seconds, (int)(rest * 100));
    }

    public static RuleValue FromTimeSpan(TimeSpan span)
    {
        var seconds = Math.DivRem(span.Ticks, TimeSpan.TicksPerSecond, out var rest);
        return Duration(seconds, (int)(rest * 100));
    }

    public override string ToString() => Kind switch
    {
        RuleValueKind.Null => "null",
        RuleValueKind.Bool => AsBool ? "true" : "false",
        RuleValueKind.Int => AsInt.ToString(CultureInfo.InvariantCulture),
        RuleValueKind.Uint => AsUint.ToString(CultureInfo.InvariantCulture) + "u",
        RuleValueKind.Double => AsDouble.ToString("R", CultureInfo.InvariantCulture),
        RuleValueKind.String => "\"" + AsString + "\"",
        RuleValueKind.Bytes => "b\"" + Convert.ToHexString(AsBytes) + "\"",
        RuleValueKind.List => "[" + string.Join(", ", RuleCollections.ListItems(this)) + "]",
        RuleValueKind.Map => "{" + string.Join(", ", RuleCollections.MapEntries(this).Select(e => e.Key + ": " + e.Value)) + "}",
        RuleValueKind.Timestamp => "timestamp(" + RuleTime.FormatTimestamp(Seconds, Nanos) + ")",
        RuleValueKind.Duration => "duration(" + RuleTime.FormatDuration(Seconds, Nanos) + ")",
        RuleValueKind.Type => AsTypeName,
        RuleValueKind.Optional => HasOptionalValue ? "optional.of(" + OptionalValue + ")" : "optional.none()",
        _ => "error: " + ErrorMessage,
    };
}

internal sealed class OptionalBox(RuleValue value)
{
    public RuleValue Value { get; } = value;
}
