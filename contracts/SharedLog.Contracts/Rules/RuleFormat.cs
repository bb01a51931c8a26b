using System.Globalization;
using System.Numerics;
using System.Text;

namespace SharedLog.Contracts.Rules;

/// <summary>
/// string.format(list) of CEL's string extensions: clauses %s %d %f %e %x %X %o %b and %%, with an
/// optional precision (%.3f). Doubles are rounded exactly (half to even on the binary value).
/// </summary>
internal static class RuleFormat
{
    public static RuleValue Format(EvalContext context, RuleValue[] args)
    {
        if (args[0].Kind != RuleValueKind.String || args[1].Kind != RuleValueKind.List)
        {
            return RuleValue.Error($"no such overload: format({RuleValue.TypeNameOf(args[0].Kind)}, {RuleValue.TypeNameOf(args[1].Kind)})");
        }

        var pattern = args[0].AsString;
        var list = args[1];
        var count = RuleCollections.Count(list);
        var output = new StringBuilder(pattern.Length + 16);
        var next = 0;
        for (var i = 0; i < pattern.Length; i++)
        {
            var c = pattern[i];
            if (c != '%')
            {
                output.Append(c);
                continue;
            }

            i++;
            if (i < pattern.Length && pattern[i] == '%')
            {
                output.Append('%');
                continue;
            }

            int? precision = null;
            if (i < pattern.Length && pattern[i] == '.')
            {
                var start = ++i;
                while (i < pattern.Length && char.IsAsciiDigit(pattern[i]))
                {
                    i++;
                }

                if (i == start || !int.TryParse(pattern.AsSpan(start, i - start), NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) || parsed > 100)
                {
                    return RuleValue.Error("could not parse formatting clause: invalid precision");
                }

                precision = parsed;
            }

            if (i >= pattern.Length)
            {
                return RuleValue.Error("could not parse formatting clause: missing clause after %");
            }

            var clause = pattern[i];
            if (clause is not ('s' or 'd' or 'f' or 'e' or 'x' or 'X' or 'o' or 'b'))
            {
                return RuleValue.Error($"could not parse formatting clause: unrecognized formatting clause \"{clause}\"");
            }

            if (next >= count)
            {
                return RuleValue.Error($"index {next} out of range");
            }

            var error = Clause(context, output, clause, precision, RuleCollections.Item(list, next++));
            if (error is not null)
            {
                return RuleValue.Error("error during formatting: " + error);
            }

            if (output.Length > RuleLimits.MaxStringLength)
            {
                return RuleValue.Error("string result exceeds the size limit");
            }
        }

        return RuleValue.String(output.ToString());
    }

    private static string? Clause(EvalContext context, StringBuilder output, char clause, int? precision, in RuleValue value)
    {
        var type = RuleValue.TypeNameOf(value.Kind);
        switch (clause)
        {
            case 's':
                return AppendString(context, output, value, 0);
            case 'd':
                switch (value.Kind)
                {
                    case RuleValueKind.Int:
                        output.Append(value.AsInt.ToString(CultureInfo.InvariantCulture));
                        return null;
                    case RuleValueKind.Uint:
                        output.Append(value.AsUint.ToString(CultureInfo.InvariantCulture));
                        return null;
                    case RuleValueKind.Double when !double.IsFinite(value.AsDouble):
                        output.Append(NonFinite(value.AsDouble));
                        return null;
                    default:
                        return $"decimal clause can only be used on integers, was given {type}";
                }

            case 'f':
            case 'e':
                double number;
                switch (value.Kind)
                {
                    case RuleValueKind.Double:
                        number = value.AsDouble;
                        break;
                    case RuleValueKind.Int:
                        number = value.AsInt;
                        break;
                    case RuleValueKind.Uint:
                        number = value.AsUint;
                        break;
                    default:
                        return clause == 'f'
                            ? $"fixed-point clause can only be used on doubles, was given {type}"
                            : $"scientific clause can only be used on doubles, was given {type}";
                }

                if (!double.IsFinite(number))
                {
                    output.Append(NonFinite(number));
                }
                else if (clause == 'f')
                {
                    output.Append(Fixed(number, precision ?? 6));
                }
                else
                {
                    var text = number.ToString("E" + (precision ?? 6).ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
                    var e = text.IndexOf('E', StringComparison.Ordinal);
                    var exponent = int.Parse(text.AsSpan(e + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
                    output.Append(text, 0, e).Append('e').Append(exponent < 0 ? '-' : '+').Append(Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture));
                }

                return null;
            case 'x':
            case 'X':
                // Strings and bytes are copied twice over as hex: charged for their size, as %s charges what it copies.
                if (!context.ChargeSize(value, collections: false))
                {
                    return EvalContext.BudgetExceeded;
                }

                string hex;
                switch (value.Kind)
                {
                    case RuleValueKind.Int:
                        hex = value.AsInt < 0 ? "-" + ((ulong)(-(value.AsInt + 1)) + 1).ToString("x", CultureInfo.InvariantCulture) : value.AsInt.ToString("x", CultureInfo.InvariantCulture);
                        break;
                    case RuleValueKind.Uint:
                        hex = value.AsUint.ToString("x", CultureInfo.InvariantCulture);
                        break;
                    case RuleValueKind.String:
                        hex = Convert.ToHexStringLower(Encoding.UTF8.GetBytes(value.AsString));
                        break;
                    case RuleValueKind.Bytes:
                        hex = Convert.ToHexStringLower(value.AsBytes);
                        break;
                    default:
                        return $"only integers, byte buffers, and strings can be formatted as hex, was given {type}";
                }

                output.Append(clause == 'X' ? hex.ToUpperInvariant() : hex);
                return null;
            case 'o':
                return value.Kind switch
                {
                    RuleValueKind.Int => AppendRadix(output, value.AsInt, 8),
                    RuleValueKind.Uint => AppendRadix(output, value.AsUint, 8),
                    _ => $"octal clause can only be used on integers, was given {type}",
                };
            default:
                return value.Kind switch
                {
                    RuleValueKind.Int => AppendRadix(output, value.AsInt, 2),
                    RuleValueKind.Uint => AppendRadix(output, value.AsUint, 2),
                    RuleValueKind.Bool => AppendRadix(output, value.AsBool ? 1UL : 0UL, 2),
                    _ => $"only integers and bools can be formatted as binary, was given {type}",
                };
        }
    }

    private static string? AppendRadix(StringBuilder output, long value, int radix)
    {
        if (value < 0)
        {
            output.Append('-');
            return AppendRadix(output, (ulong)(-(value + 1)) + 1, radix);
        }

        return AppendRadix(output, (ulong)value, radix);
    }

    private static string? AppendRadix(StringBuilder output, ulong value, int radix)
    {
        Span<char> digits = stackalloc char[64];
        var position = digits.Length;
        do
        {
            digits[--position] = (char)('0' + (int)(value % (ulong)radix));
            value /= (ulong)radix;
        }
        while (value > 0);

        output.Append(digits[position..]);
        return null;
    }

    private static string NonFinite(double value) =>
        double.IsNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity";

    /// <summary>Fixed-point text of the exact binary value, rounded half to even.</summary>
    private static string Fixed(double value, int precision)
    {
        var bits = BitConverter.DoubleToInt64Bits(value);
        var negative = bits < 0;
        var exponent = (int)((bits >> 52) & 0x7FF);
        var mantissa = bits & 0xFFFFFFFFFFFFFL;
        if (exponent == 0)
        {
            exponent = 1;
        }
        else
        {
            mantissa |= 1L << 52;
        }

        exponent -= 1075;
        // value = mantissa * 2^exponent; scaled = value * 10^precision as numerator / denominator
        var numerator = new BigInteger(mantissa) * BigInteger.Pow(10, precision);
        var denominator = BigInteger.One;
        if (exponent > 0)
        {
            numerator <<= exponent;
        }
        else
        {
            denominator <<= -exponent;
        }

        var quotient = BigInteger.DivRem(numerator, denominator, out var remainder);
        var twice = remainder * 2;
        if (twice > denominator || (twice == denominator && !quotient.IsEven))
        {
            quotient++;
        }

        var digits = quotient.ToString(CultureInfo.InvariantCulture).PadLeft(precision + 1, '0');
        var builder = new StringBuilder(digits.Length + 2);
        if (negative && !quotient.IsZero)
        {
            builder.Append('-');
        }

        builder.Append(digits, 0, digits.Length - precision);
        if (precision > 0)
        {
            builder.Append('.').Append(digits, digits.Length - precision, precision);
        }

        return builder.ToString();
    }

    private static string? AppendString(EvalContext context, StringBuilder output, in RuleValue value, int depth)
    {
        if (depth > RuleParser.MaxNesting)
        {
            return "value nested too deeply";
        }

        // Every string copied and every list or map walked, at any depth, is charged (the call itself was charged for the
        // argument list only).
        if (!context.ChargeSize(value))
        {
            return EvalContext.BudgetExceeded;
        }

        switch (value.Kind)
        {
            case RuleValueKind.String:
                output.Append(value.AsString);
                return null;
            case RuleValueKind.Bytes:
                output.Append(Encoding.UTF8.GetString(value.AsBytes));
                return null;
            case RuleValueKind.Double:
                output.Append(double.IsFinite(value.AsDouble) ? RuleFunctions.FormatDouble(value.AsDouble) : NonFinite(value.AsDouble));
                return null;
            case RuleValueKind.Int:
            case RuleValueKind.Uint:
            case RuleValueKind.Bool:
            case RuleValueKind.Null:
            case RuleValueKind.Type:
                output.Append(value.Kind == RuleValueKind.Uint ? value.AsUint.ToString(CultureInfo.InvariantCulture) : value.ToString());
                return null;
            case RuleValueKind.Timestamp:
                output.Append(RuleTime.FormatTimestamp(value.Seconds, value.Nanos));
                return null;
            case RuleValueKind.Duration:
                output.Append(RuleTime.FormatDuration(value.Seconds, value.Nanos));
                return null;
            case RuleValueKind.List:
                output.Append('[');
                var count = RuleCollections.Count(value);
                for (var i = 0; i < count; i++)
                {
                    if (i > 0)
                    {
                        output.Append(", ");
                    }

                    if (AppendString(context, output, RuleCollections.Item(value, i), depth + 1) is { } error)
                    {
                        return error;
                    }
                }

                output.Append(']');
                return null;
            case RuleValueKind.Map:
                // entries sorted by the text of their keys, so output does not depend on map order
                var entries = new List<(string Key, RuleValue Value)>();
                foreach (var entry in RuleCollections.MapEntries(value))
                {
                    var key = new StringBuilder();
                    AppendString(context, key, entry.Key, depth + 1);
                    entries.Add((key.ToString(), entry.Value));
                }

                entries.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
                output.Append('{');
                for (var i = 0; i < entries.Count; i++)
                {
                    if (i > 0)
                    {
                        output.Append(", ");
                    }

                    output.Append(entries[i].Key).Append(": ");
                    if (AppendString(context, output, entries[i].Value, depth + 1) is { } error)
                    {
                        return error;
                    }
                }

                output.Append('}');
                return null;
            default:
                return $"string clause can only be used on strings, bools, bytes, ints, doubles, maps, lists, types, durations, and timestamps, was given {RuleValue.TypeNameOf(value.Kind)}";
        }
    }
}
