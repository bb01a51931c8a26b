namespace SharedLog.Contracts.Rules;

/// <summary>CEL equality, ordering and numeric helpers shared by the evaluator and map lookups.</summary>
internal static class RuleSemantics
{
    public const int Unordered = 2;
    public const int NoOverload = 3;

    private const double TwoPow63 = 9223372036854775808.0;
    private const double TwoPow64 = 18446744073709551616.0;

    public static bool IsNumber(RuleValueKind kind) => kind is RuleValueKind.Int or RuleValueKind.Uint or RuleValueKind.Double;

    /// <summary>Map-key equality: same kind, or int and uint of the same numeric value.</summary>
    public static bool KeyEquals(in RuleValue a, in RuleValue b)
    {
        if (a.Kind == b.Kind)
        {
            return a.Kind switch
            {
                RuleValueKind.String => RuleValue.TextEquals(a, b),
                RuleValueKind.Bool or RuleValueKind.Int or RuleValueKind.Uint => a.AsInt == b.AsInt,
                _ => Equal(a, b),
            };
        }

        return IsNumber(a.Kind) && IsNumber(b.Kind) && CompareNumbers(a, b) == 0;
    }

    /// <summary>An integral double as the int (or, beyond int range, uint) key of the same value.</summary>
    public static bool TryIntegral(double value, out RuleValue key)
    {
        if (Math.Floor(value) == value && value >= -TwoPow63 && value < TwoPow63)
        {
            key = RuleValue.Int((long)value);
            return true;
        }

        if (Math.Floor(value) == value && value >= 0 && value < TwoPow64)
        {
            key = RuleValue.Uint((ulong)value);
            return true;
        }

        key = default;
        return false;
    }

    /// <summary>Deepest nesting compared; deeper (or cyclic) caller data compares unequal instead of overflowing the stack.</summary>
    private const int MaxCompareDepth = 256;

    /// <summary>CEL equality of two values that are not errors. Values of different types are unequal, except numbers.</summary>
    public static bool Equal(in RuleValue a, in RuleValue b)
    {
        long visited = 0;
        return Equal(a, b, 0, ref visited, long.MaxValue);
    }

    /// <summary>
    /// <see cref="Equal(in RuleValue, in RuleValue)"/>, adding to <paramref name="visited"/> the elements of every list and map
    /// compared, at every level, and a step per 16 characters of the shorter of two strings: a list of lists is as costly as all its
    /// elements. Gives up (false) once <paramref name="visited"/> passes <paramref name="limit"/>, which the caller reports as the
    /// evaluation budget spent.
    /// </summary>
    public static bool Equal(in RuleValue a, in RuleValue b, ref long visited, long limit) => Equal(a, b, 0, ref visited, limit);

    private static bool Equal(in RuleValue a, in RuleValue b, int depth, ref long visited, long limit)
    {
        if (depth > MaxCompareDepth || visited > limit)
        {
            return false;
        }

        if (a.Kind != b.Kind)
        {
            return IsNumber(a.Kind) && IsNumber(b.Kind) && CompareNumbers(a, b) == 0;
        }

        switch (a.Kind)
        {
            case RuleValueKind.Null:
                return true;
            case RuleValueKind.Bool:
            case RuleValueKind.Int:
            case RuleValueKind.Uint:
                return a.AsInt == b.AsInt;
            case RuleValueKind.Double:
                return a.AsDouble == b.AsDouble;
            case RuleValueKind.String:
                // Sizes as held differ between UTF-16 and UTF-8 of the same text, so the smaller is charged, compared or not.
                visited += Math.Min(a.TextSize, b.TextSize) / 16;
                return RuleValue.TextEquals(a, b);
            case RuleValueKind.Bytes:
                return a.AsBytes.AsSpan().SequenceEqual(b.AsBytes);
            case RuleValueKind.Timestamp:
            case RuleValueKind.Duration:
                return a.Seconds == b.Seconds && a.Nanos == b.Nanos;
            case RuleValueKind.Type:
                return string.Equals(a.AsTypeName, b.AsTypeName, StringComparison.Ordinal);
            case RuleValueKind.Optional:
                return a.HasOptionalValue == b.HasOptionalValue && (!a.HasOptionalValue || Equal(a.OptionalValue, b.OptionalValue, depth + 1, ref visited, limit));
            case RuleValueKind.List:
                var count = RuleCollections.Count(a);
                if (count != RuleCollections.Count(b))
                {
                    return false;
                }

                visited += count;
                for (var i = 0; i < count; i++)
                {
                    if (!Equal(RuleCollections.Item(a, i), RuleCollections.Item(b, i), depth + 1, ref visited, limit))
                    {
                        return false;
                    }
                }

                return true;
            case RuleValueKind.Map:
                if (RuleCollections.Count(a) != RuleCollections.Count(b))
                {
                    return false;
                }

                visited += RuleCollections.Count(a);
                foreach (var key in RuleCollections.MapKeys(a))
                {
                    if (!RuleCollections.TryGetMapValue(b, key, out var other) || !RuleCollections.TryGetMapValue(a, key, out var mine) || !Equal(mine, other, depth + 1, ref visited, limit))
                    {
                        return false;
                    }
                }

                return true;
            default:
                return false;
        }
    }

    /// <summary>-1, 0, 1, or <see cref="Unordered"/> (NaN) or <see cref="NoOverload"/> (types not comparable).</summary>
    public static int Compare(in RuleValue a, in RuleValue b)
    {
        if (IsNumber(a.Kind) && IsNumber(b.Kind))
        {
            // like CEL's reference implementations, ordering against a double converts the integer to double
            if (a.Kind != b.Kind && (a.Kind == RuleValueKind.Double || b.Kind == RuleValueKind.Double))
            {
                return CompareDoubles(ToDouble(a), ToDouble(b));
            }

            return CompareNumbers(a, b);
        }

        if (a.Kind != b.Kind)
        {
            return NoOverload;
        }

        return a.Kind switch
        {
            RuleValueKind.Bool => a.AsInt.CompareTo(b.AsInt),
            RuleValueKind.String => CompareCodePoints(a.AsString, b.AsString),
            RuleValueKind.Bytes => Math.Sign(a.AsBytes.AsSpan().SequenceCompareTo(b.AsBytes)),
            RuleValueKind.Timestamp or RuleValueKind.Duration => a.Seconds != b.Seconds ? a.Seconds.CompareTo(b.Seconds) : a.Nanos.CompareTo(b.Nanos),
            _ => NoOverload,
        };
    }

    // UTF-16 ordinal order differs from code point order only around surrogates; CEL orders by code point.
    private static int CompareCodePoints(string a, string b)
    {
        var length = Math.Min(a.Length, b.Length);
        for (var i = 0; i < length; i++)
        {
            var x = a[i];
            var y = b[i];
            if (x == y)
            {
                continue;
            }

            var xs = char.IsSurrogate(x);
            var ys = char.IsSurrogate(y);
            if (xs != ys)
            {
                return xs ? 1 : -1;
            }

            return x < y ? -1 : 1;
        }

        return a.Length.CompareTo(b.Length);
    }

    public static int CompareNumbers(in RuleValue a, in RuleValue b)
    {
        switch (a.Kind, b.Kind)
        {
            case (RuleValueKind.Int, RuleValueKind.Int):
                return a.AsInt.CompareTo(b.AsInt);
            case (RuleValueKind.Uint, RuleValueKind.Uint):
                return a.AsUint.CompareTo(b.AsUint);
            case (RuleValueKind.Double, RuleValueKind.Double):
                return CompareDoubles(a.AsDouble, b.AsDouble);
            case (RuleValueKind.Int, RuleValueKind.Uint):
                return a.AsInt < 0 ? -1 : ((ulong)a.AsInt).CompareTo(b.AsUint);
            case (RuleValueKind.Uint, RuleValueKind.Int):
                return b.AsInt < 0 ? 1 : a.AsUint.CompareTo((ulong)b.AsInt);
            case (RuleValueKind.Int, RuleValueKind.Double):
                return CompareIntDouble(a.AsInt, b.AsDouble);
            case (RuleValueKind.Double, RuleValueKind.Int):
                return Negate(CompareIntDouble(b.AsInt, a.AsDouble));
            case (RuleValueKind.Uint, RuleValueKind.Double):
                return CompareUintDouble(a.AsUint, b.AsDouble);
            case (RuleValueKind.Double, RuleValueKind.Uint):
                return Negate(CompareUintDouble(b.AsUint, a.AsDouble));
            default:
                return NoOverload;
        }
    }

    private static double ToDouble(in RuleValue value) => value.Kind switch
    {
        RuleValueKind.Int => value.AsInt,
        RuleValueKind.Uint => value.AsUint,
        _ => value.AsDouble,
    };

    private static int Negate(int comparison) => comparison is -1 or 1 ? -comparison : comparison;

    private static int CompareDoubles(double a, double b) =>
        double.IsNaN(a) || double.IsNaN(b) ? Unordered : a < b ? -1 : a > b ? 1 : 0;

    private static int CompareIntDouble(long a, double b)
    {
        if (double.IsNaN(b))
        {
            return Unordered;
        }

        if (b >= TwoPow63)
        {
            return -1;
        }

        if (b < -TwoPow63)
        {
            return 1;
        }

        // exact: compare the integral parts, then the fraction
        var whole = (long)Math.Truncate(b);
        if (a != whole)
        {
            return a < whole ? -1 : 1;
        }

        var fraction = b - Math.Truncate(b);
        return fraction > 0 ? -1 : fraction < 0 ? 1 : 0;
    }

    private static int CompareUintDouble(ulong a, double b)
    {
        if (double.IsNaN(b))
        {
            return Unordered;
        }

        if (b < 0)
        {
            return 1;
        }

        if (b >= TwoPow64)
        {
            return -1;
        }

        var whole = (ulong)Math.Truncate(b);
        if (a != whole)
        {
            return a < whole ? -1 : 1;
        }

        return b - Math.Truncate(b) > 0 ? -1 : 0;
    }
}
