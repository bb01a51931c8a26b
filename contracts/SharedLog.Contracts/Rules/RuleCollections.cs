using System.Collections;
using System.Globalization;
using SharedLog.Contracts.Model;

namespace SharedLog.Contracts.Rules;

/// <summary>A map the rule built (map literals, converted foreign dictionaries). Keys are int, uint, bool or string.</summary>
internal sealed class RuleMap
{
    private const int IndexThreshold = 8;
    private readonly Dictionary<RuleValue, int>? _index;

    public RuleMap(RuleValue[] keys, RuleValue[] values)
    {
        Keys = keys;
        Values = values;
        if (keys.Length > IndexThreshold)
        {
            _index = new Dictionary<RuleValue, int>(keys.Length, MapKeyComparer.Instance);
            for (var i = 0; i < keys.Length; i++)
            {
                _index.TryAdd(keys[i], i);
            }
        }
    }

    public RuleValue[] Keys { get; }

    public RuleValue[] Values { get; }

    public int Count => Keys.Length;

    public bool TryGet(in RuleValue key, out RuleValue value)
    {
        if (_index is not null)
        {
            if (_index.TryGetValue(key, out var position))
            {
                value = Values[position];
                return true;
            }

            value = default;
            return false;
        }

        for (var i = 0; i < Keys.Length; i++)
        {
            if (RuleSemantics.KeyEquals(Keys[i], key))
            {
                value = Values[i];
                return true;
            }
        }

        value = default;
        return false;
    }

    public static RuleMap FromDictionary(IDictionary dictionary)
    {
        var keys = new RuleValue[dictionary.Count];
        var values = new RuleValue[dictionary.Count];
        var i = 0;
        foreach (DictionaryEntry entry in dictionary)
        {
            keys[i] = RuleValue.FromObject(entry.Key);
            values[i] = RuleValue.FromObject(entry.Value);
            i++;
        }

        return new RuleMap(keys, values);
    }

    internal sealed class MapKeyComparer : IEqualityComparer<RuleValue>
    {
        public static readonly MapKeyComparer Instance = new();

        public bool Equals(RuleValue x, RuleValue y) => RuleSemantics.KeyEquals(x, y);

        public int GetHashCode(RuleValue obj) => obj.Kind switch
        {
            RuleValueKind.String => string.GetHashCode(obj.Text(stackalloc char[RuleValue.TextScratchLength])),
            RuleValueKind.Bool => obj.AsBool ? 1 : 0,
            // int and uint keys with the same numeric value are the same key
            RuleValueKind.Int or RuleValueKind.Uint => obj.AsInt.GetHashCode(),
            _ => 0,
        };
    }
}

/// <summary>Uniform read access to the list and map representations of <see cref="RuleValue"/>.</summary>
internal static class RuleCollections
{
    public static int Count(in RuleValue list) => list.Reference switch
    {
        RuleValue[] items => items.Length,
        IReadOnlyList<object?> items => items.Count,
        RuleMap map => map.Count,
        IReadOnlyDictionary<string, object?> map => map.Count,
        _ => 0,
    };

    public static RuleValue Item(in RuleValue list, int index) => list.Reference switch
    {
        RuleValue[] items => items[index],
        IReadOnlyList<object?> items => RuleValue.FromObject(items[index]),
        _ => default,
    };

    /// <summary>
    /// A list index as CEL allows it: an int, a uint, or a double with an integral value; false for any
    /// other kind (no such overload). Out-of-range positions come back as they are (or -1) for the caller to check.
    /// </summary>
    public static bool TryListPosition(in RuleValue index, out long position)
    {
        switch (index.Kind)
        {
            case RuleValueKind.Int:
                position = index.AsInt;
                return true;
            case RuleValueKind.Uint:
                position = index.AsUint > int.MaxValue ? -1 : (long)index.AsUint;
                return true;
            case RuleValueKind.Double when Math.Floor(index.AsDouble) == index.AsDouble && Math.Abs(index.AsDouble) < int.MaxValue:
                position = (long)index.AsDouble;
                return true;
            default:
                position = 0;
                return false;
        }
    }

    public static IEnumerable<RuleValue> ListItems(RuleValue list)
    {
        var count = Count(list);
        for (var i = 0; i < count; i++)
        {
            yield return Item(list, i);
        }
    }

    public static bool TryGetMapValue(in RuleValue map, in RuleValue key, out RuleValue value)
    {
        switch (map.Reference)
        {
            case TypedKeyMap typed:
                if (KeyText(typed.KeyKind, key) is { } text && typed.TryGetValue(text, out var typedRaw))
                {
                    value = RuleValue.FromObject(typedRaw);
                    return true;
                }

                break;
            case IReadOnlyDictionary<string, object?> dictionary:
                if (key.Kind == RuleValueKind.String && dictionary.TryGetValue(key.AsString, out var raw))
                {
                    value = RuleValue.FromObject(raw);
                    return true;
                }

                break;
            case RuleMap ruleMap:
                if (ruleMap.TryGet(key, out value))
                {
                    return true;
                }

                // heterogeneous numeric keys: 1.0 finds the key 1 or 1u
                if (key.Kind == RuleValueKind.Double && RuleSemantics.TryIntegral(key.AsDouble, out var integral))
                {
                    return ruleMap.TryGet(integral, out value);
                }

                break;
        }

        value = default;
        return false;
    }

    /// <summary>
    /// The text a <see cref="TypedKeyMap"/> holds <paramref name="key"/> as, when the key is of the map's key type (numbers of
    /// the same value match across int, uint and integral double, as CEL's heterogeneous equality has it); else null.
    /// </summary>
    private static string? KeyText(MapKeyKind kind, in RuleValue key)
    {
        RuleValue number = key;
        if (key.Kind == RuleValueKind.Double && !RuleSemantics.TryIntegral(key.AsDouble, out number))
        {
            return null;
        }

        return (kind, number.Kind) switch
        {
            (MapKeyKind.Bool, RuleValueKind.Bool) => number.AsBool ? "true" : "false",
            (MapKeyKind.Int, RuleValueKind.Int) => number.AsInt.ToString(CultureInfo.InvariantCulture),
            (MapKeyKind.Int, RuleValueKind.Uint) when number.AsUint <= long.MaxValue => number.AsUint.ToString(CultureInfo.InvariantCulture),
            (MapKeyKind.Uint, RuleValueKind.Uint) => number.AsUint.ToString(CultureInfo.InvariantCulture),
            (MapKeyKind.Uint, RuleValueKind.Int) when number.AsInt >= 0 => number.AsInt.ToString(CultureInfo.InvariantCulture),
            (MapKeyKind.String, RuleValueKind.String) => number.AsString,
            _ => null,
        };
    }

    /// <summary>A key of a <see cref="TypedKeyMap"/> as the value of its type (the map's text of it is the decoder's own).</summary>
    private static RuleValue TypedKey(MapKeyKind kind, string text) => kind switch
    {
        MapKeyKind.Int => RuleValue.Int(long.Parse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture)),
        MapKeyKind.Uint => RuleValue.Uint(ulong.Parse(text, NumberStyles.None, CultureInfo.InvariantCulture)),
        MapKeyKind.Bool => RuleValue.Bool(text == "true"),
        _ => RuleValue.String(text),
    };

    /// <param name="readDefaults">Whether an absent field a proto3 message reads as its default counts as there (field selection), or not (<c>has()</c>, <c>.?</c>).</param>
    public static bool TryGetField(in RuleValue map, string field, out RuleValue value, bool readDefaults = true)
    {
        switch (map.Reference)
        {
            case Model.TypedKeyMap { KeyKind: not Model.MapKeyKind.String }:
                // Its keys are numbers or bools held as their text: a field name (or a string index) is no key of it, as in CEL.
                value = default;
                return false;
            case Dictionary<string, object?> record:
                // Decoded records are this type: a direct call, not an interface dispatch (but for a field a proto3 message left out).
                return Found(record.TryGetValue(field, out var recordField) || (readDefaults && record is Model.IFieldDefaults defaults && defaults.TryGetDefault(field, out recordField)), recordField, out value);
            case IReadOnlyDictionary<string, object?> dictionary:
                return Found(dictionary.TryGetValue(field, out var raw), raw, out value);
            case RuleMap ruleMap:
                return ruleMap.TryGet(RuleValue.String(field), out value);
        }

        value = default;
        return false;
    }

    private static bool Found(bool found, object? raw, out RuleValue value)
    {
        value = found ? RuleValue.FromObject(raw) : default;
        return found;
    }

    /// <summary>The keys of a map, in insertion order, as a snapshot.</summary>
    public static RuleValue[] MapKeys(in RuleValue map)
    {
        switch (map.Reference)
        {
            case RuleMap ruleMap:
                return ruleMap.Keys;
            case TypedKeyMap typed:
                var typedKeys = new RuleValue[typed.Count];
                var at = 0;
                foreach (var key in typed.Keys)
                {
                    typedKeys[at++] = TypedKey(typed.KeyKind, key);
                }

                return typedKeys;
            case IReadOnlyDictionary<string, object?> dictionary:
                var keys = new RuleValue[dictionary.Count];
                var i = 0;
                foreach (var key in dictionary.Keys)
                {
                    keys[i++] = RuleValue.String(key);
                }

                return keys;
            default:
                return [];
        }
    }

    public static IEnumerable<KeyValuePair<RuleValue, RuleValue>> MapEntries(RuleValue map)
    {
        foreach (var key in MapKeys(map))
        {
            TryGetMapValue(map, key, out var value);
            yield return new KeyValuePair<RuleValue, RuleValue>(key, value);
        }
    }
}
