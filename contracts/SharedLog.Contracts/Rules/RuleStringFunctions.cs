using System.Globalization;
using System.Text;

namespace SharedLog.Contracts.Rules;

internal delegate RuleValue NaryFunction(EvalContext context, RuleValue[] args);

/// <summary>
/// A strict call with any number of arguments (the less common functions; allocates its argument array). Each is charged
/// for reading its arguments whole (strings and bytes by size, lists and maps by count) before it runs: these functions
/// copy, scan or rebuild what they are given.
/// </summary>
/// <param name="readsArguments">False for functions that only wrap or pass on their arguments (the optional ones).</param>
internal sealed class NaryCallNode(NaryFunction function, Node[] arguments, bool readsArguments = true) : Node
{
    public override RuleValue Eval(EvalContext context)
    {
        context.Steps++;
        var values = new RuleValue[arguments.Length];
        for (var i = 0; i < arguments.Length; i++)
        {
            var value = arguments[i].Eval(context);
            if (value.IsError)
            {
                return value;
            }

            values[i] = value;
            if (readsArguments && !context.ChargeSize(value))
            {
                return RuleValue.Error(EvalContext.BudgetExceeded);
            }
        }

        return function(context, values);
    }
}

/// <summary>
/// The string extension library of CEL (charAt, indexOf, lastIndexOf, replace, split, substring,
/// trim, join, reverse, strings.quote). Indexes count code points, not UTF-16 units.
/// </summary>
internal static class RuleStringFunctions
{
    /// <summary>Receiver functions by "name/argument count including the receiver".</summary>
    public static readonly Dictionary<string, NaryFunction> Receiver = new(StringComparer.Ordinal)
    {
        ["charAt/2"] = CharAt,
        ["indexOf/2"] = IndexOf,
        ["indexOf/3"] = IndexOf,
        ["lastIndexOf/2"] = LastIndexOf,
        ["lastIndexOf/3"] = LastIndexOf,
        ["replace/3"] = Replace,
        ["replace/4"] = Replace,
        ["split/2"] = Split,
        ["split/3"] = Split,
        ["substring/2"] = Substring,
        ["substring/3"] = Substring,
        ["trim/1"] = Trim,
        ["join/1"] = Join,
        ["join/2"] = Join,
        ["reverse/1"] = Reverse,
        ["format/2"] = RuleFormat.Format,
    };

    private static RuleValue NoOverload(string name, RuleValue[] args) =>
        RuleValue.Error($"no such overload: {name}({string.Join(", ", args.Select(a => RuleValue.TypeNameOf(a.Kind)))})");

    private static bool Shape(RuleValue[] args, params RuleValueKind[] kinds)
    {
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i].Kind != kinds[i])
            {
                return false;
            }
        }

        return true;
    }

    private static int[] CodePoints(string text)
    {
        var points = new List<int>(text.Length);
        foreach (var rune in text.EnumerateRunes())
        {
            points.Add(rune.Value);
        }

        return [.. points];
    }

    private static string FromCodePoints(ReadOnlySpan<int> points)
    {
        var builder = new StringBuilder(points.Length);
        foreach (var point in points)
        {
            builder.Append(new Rune(point).ToString());
        }

        return builder.ToString();
    }

    /// <summary>
    /// The first index from <paramref name="from"/> where <paramref name="sub"/> (not empty) starts in <paramref name="text"/>,
    /// or -1. Knuth-Morris-Pratt, linear in both lengths: a naive search costs their product ('a'×300k then 'b' in 'a'×700k).
    /// </summary>
    private static int Find(ReadOnlySpan<int> text, ReadOnlySpan<int> sub, int from)
    {
        // longestBorder[k]: the length of the longest proper prefix of sub[..(k+1)] that is also its suffix.
        var longestBorder = new int[sub.Length];
        for (int k = 1, border = 0; k < sub.Length; k++)
        {
            while (border > 0 && sub[k] != sub[border])
            {
                border = longestBorder[border - 1];
            }

            border += sub[k] == sub[border] ? 1 : 0;
            longestBorder[k] = border;
        }

        for (int i = from, matched = 0; i < text.Length; i++)
        {
            while (matched > 0 && text[i] != sub[matched])
            {
                matched = longestBorder[matched - 1];
            }

            matched += text[i] == sub[matched] ? 1 : 0;
            if (matched == sub.Length)
            {
                return i - sub.Length + 1;
            }
        }

        return -1;
    }

    private static RuleValue CharAt(EvalContext context, RuleValue[] args)
    {
        if (!Shape(args, RuleValueKind.String, RuleValueKind.Int))
        {
            return NoOverload("charAt", args);
        }

        var points = CodePoints(args[0].AsString);
        var index = args[1].AsInt;
        if (index < 0 || index > points.Length)
        {
            return RuleValue.Error($"index out of range: {index}");
        }

        return RuleValue.String(index == points.Length ? "" : FromCodePoints(points.AsSpan((int)index, 1)));
    }

    private static RuleValue IndexOf(EvalContext context, RuleValue[] args)
    {
        if (!(args.Length == 2 ? Shape(args, RuleValueKind.String, RuleValueKind.String) : Shape(args, RuleValueKind.String, RuleValueKind.String, RuleValueKind.Int)))
        {
            return NoOverload("indexOf", args);
        }

        var text = CodePoints(args[0].AsString);
        var sub = CodePoints(args[1].AsString);
        var offset = args.Length == 3 ? args[2].AsInt : 0;
        if (offset < 0 || offset > text.Length)
        {
            return RuleValue.Error($"index out of range: {offset}");
        }

        return RuleValue.Int(sub.Length == 0 ? offset : Find(text, sub, (int)offset));
    }

    private static RuleValue LastIndexOf(EvalContext context, RuleValue[] args)
    {
        if (!(args.Length == 2 ? Shape(args, RuleValueKind.String, RuleValueKind.String) : Shape(args, RuleValueKind.String, RuleValueKind.String, RuleValueKind.Int)))
        {
            return NoOverload("lastIndexOf", args);
        }

        var text = CodePoints(args[0].AsString);
        var sub = CodePoints(args[1].AsString);
        long offset = text.Length;
        if (args.Length == 3)
        {
            offset = args[2].AsInt;
            if (offset < 0 || offset >= text.Length)
            {
                return RuleValue.Error($"index out of range: {offset}");
            }
        }

        if (sub.Length == 0)
        {
            return RuleValue.Int(offset);
        }

        // The last start at or before the offset is the first one, in the reversed text, at or after its mirror.
        var latest = (int)Math.Min(offset, text.Length - sub.Length);
        if (latest < 0)
        {
            return RuleValue.Int(-1);
        }

        Array.Reverse(text);
        Array.Reverse(sub);
        var found = Find(text, sub, text.Length - sub.Length - latest);
        return RuleValue.Int(found < 0 ? -1 : text.Length - sub.Length - found);
    }

    private static RuleValue Replace(EvalContext context, RuleValue[] args)
    {
        if (!(args.Length == 3 ? Shape(args, RuleValueKind.String, RuleValueKind.String, RuleValueKind.String) : Shape(args, RuleValueKind.String, RuleValueKind.String, RuleValueKind.String, RuleValueKind.Int)))
        {
            return NoOverload("replace", args);
        }

        var text = args[0].AsString;
        var old = args[1].AsString;
        var replacement = args[2].AsString;
        var limit = args.Length == 4 ? args[3].AsInt : -1;
        var builder = new StringBuilder(text.Length);
        var replaced = 0L;
        var position = 0;
        while (limit < 0 || replaced < limit)
        {
            int match;
            if (old.Length == 0)
            {
                // an empty pattern matches before every code point and at the end
                if (position > text.Length)
                {
                    break;
                }

                builder.Append(replacement);
                replaced++;
                if (position == text.Length)
                {
                    position++;
                    break;
                }

                var step = char.IsSurrogatePair(text, position) ? 2 : 1;
                builder.Append(text, position, step);
                position += step;
            }
            else
            {
                match = text.IndexOf(old, position, StringComparison.Ordinal);
                if (match < 0)
                {
                    break;
                }

                builder.Append(text, position, match - position).Append(replacement);
                position = match + old.Length;
                replaced++;
            }

            if (builder.Length > RuleLimits.MaxStringLength)
            {
                return RuleValue.Error("string result exceeds the size limit");
            }
        }

        if (position < text.Length)
        {
            builder.Append(text, position, text.Length - position);
        }

        // The result may be far longer than the arguments (a long replacement for many matches): charged as built.
        return builder.Length > RuleLimits.MaxStringLength ? RuleValue.Error("string result exceeds the size limit")
            : context.Charge(builder.Length / 16) ? RuleValue.String(builder.ToString()) : RuleValue.Error(EvalContext.BudgetExceeded);
    }

    private static RuleValue Split(EvalContext context, RuleValue[] args)
    {
        if (!(args.Length == 2 ? Shape(args, RuleValueKind.String, RuleValueKind.String) : Shape(args, RuleValueKind.String, RuleValueKind.String, RuleValueKind.Int)))
        {
            return NoOverload("split", args);
        }

        var text = args[0].AsString;
        var separator = args[1].AsString;
        var limit = args.Length == 3 ? args[2].AsInt : -1;
        if (limit == 0)
        {
            return RuleValue.List(Array.Empty<RuleValue>());
        }

        var parts = new List<RuleValue>();
        if (separator.Length == 0)
        {
            var points = CodePoints(text);
            for (var i = 0; i < points.Length; i++)
            {
                if (limit > 0 && parts.Count == limit - 1)
                {
                    parts.Add(RuleValue.String(FromCodePoints(points.AsSpan(i))));
                    break;
                }

                parts.Add(RuleValue.String(FromCodePoints(points.AsSpan(i, 1))));
                if (parts.Count > RuleLimits.MaxCollectionSize)
                {
                    return TooManyParts;
                }
            }
        }
        else
        {
            var position = 0;
            while (limit < 0 || parts.Count < limit - 1)
            {
                var match = text.IndexOf(separator, position, StringComparison.Ordinal);
                if (match < 0)
                {
                    break;
                }

                parts.Add(RuleValue.String(text[position..match]));
                position = match + separator.Length;
                if (parts.Count > RuleLimits.MaxCollectionSize)
                {
                    return TooManyParts;
                }
            }

            parts.Add(RuleValue.String(text[position..]));
        }

        return parts.Count > RuleLimits.MaxCollectionSize ? TooManyParts : RuleValue.List([.. parts]);
    }

    // Said as soon as the parts pass the limit, not once they are all made (split('') of 900,000 characters made 164 MiB first).
    private static RuleValue TooManyParts => RuleValue.Error("list result exceeds the size limit");

    private static RuleValue Substring(EvalContext context, RuleValue[] args)
    {
        if (!(args.Length == 2 ? Shape(args, RuleValueKind.String, RuleValueKind.Int) : Shape(args, RuleValueKind.String, RuleValueKind.Int, RuleValueKind.Int)))
        {
            return NoOverload("substring", args);
        }

        var points = CodePoints(args[0].AsString);
        var start = args[1].AsInt;
        var end = args.Length == 3 ? args[2].AsInt : points.Length;
        if (start < 0 || start > points.Length || end < 0 || end > points.Length || start > end)
        {
            return RuleValue.Error($"substring range [{start}:{end}] out of range for a string of length {points.Length}");
        }

        return RuleValue.String(FromCodePoints(points.AsSpan((int)start, (int)(end - start))));
    }

    private static RuleValue Trim(EvalContext context, RuleValue[] args) =>
        Shape(args, RuleValueKind.String) ? RuleValue.String(args[0].AsString.Trim()) : NoOverload("trim", args);

    private static RuleValue Reverse(EvalContext context, RuleValue[] args)
    {
        if (!Shape(args, RuleValueKind.String))
        {
            return NoOverload("reverse", args);
        }

        var points = CodePoints(args[0].AsString);
        Array.Reverse(points);
        return RuleValue.String(FromCodePoints(points));
    }

    private static RuleValue Join(EvalContext context, RuleValue[] args)
    {
        if (!(args.Length == 1 ? Shape(args, RuleValueKind.List) : Shape(args, RuleValueKind.List, RuleValueKind.String)))
        {
            return NoOverload("join", args);
        }

        var separator = args.Length == 2 ? args[1].AsString : "";
        var count = RuleCollections.Count(args[0]);
        var builder = new StringBuilder();
        for (var i = 0; i < count; i++)
        {
            var item = RuleCollections.Item(args[0], i);
            if (item.Kind != RuleValueKind.String)
            {
                return RuleValue.Error($"join: list element {i} is {RuleValue.TypeNameOf(item.Kind)}, not string");
            }

            // The list was charged by its count; each string is copied into the result.
            if (!context.ChargeSize(item))
            {
                return RuleValue.Error(EvalContext.BudgetExceeded);
            }

            if (i > 0)
            {
                if (!context.Charge(separator.Length / 16))
                {
                    return RuleValue.Error(EvalContext.BudgetExceeded);
                }

                builder.Append(separator);
            }

            builder.Append(item.AsString);
            if (builder.Length > RuleLimits.MaxStringLength)
            {
                return RuleValue.Error("string result exceeds the size limit");
            }
        }

        return RuleValue.String(builder.ToString());
    }

    public static RuleValue Quote(EvalContext context, RuleValue[] args)
    {
        if (!Shape(args, RuleValueKind.String))
        {
            return NoOverload("strings.quote", args);
        }

        var text = args[0].AsString;
        var builder = new StringBuilder(text.Length + 2).Append('"');
        foreach (var rune in text.EnumerateRunes())
        {
            switch (rune.Value)
            {
                case 7: builder.Append("\\a"); break;
                case 8: builder.Append("\\b"); break;
                case 12: builder.Append("\\f"); break;
                case 10: builder.Append("\\n"); break;
                case 13: builder.Append("\\r"); break;
                case 9: builder.Append("\\t"); break;
                case 11: builder.Append("\\v"); break;
                case '\\': builder.Append("\\\\"); break;
                case '"': builder.Append("\\\""); break;
                default:
                    if (Rune.IsControl(rune))
                    {
                        builder.Append("\\u").Append(rune.Value.ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        builder.Append(rune.ToString());
                    }

                    break;
            }
        }

        return RuleValue.String(builder.Append('"').ToString());
    }
}
