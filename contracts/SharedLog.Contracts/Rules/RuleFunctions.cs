using System.Globalization;
using System.Text;

namespace SharedLog.Contracts.Rules;

/// <summary>Operators and functions of the rule language. Each is strict: callers pass only non-error arguments.</summary>
internal static class RuleFunctions
{
    private static readonly UTF8Encoding StrictUtf8 = new(false, true);

    private static readonly Dictionary<string, UnaryFunction> GlobalUnary = new(StringComparer.Ordinal)
    {
        ["-_"] = Negate,
        ["size"] = Size,
        ["int"] = ChargedForText(ToInt),
        ["uint"] = ChargedForText(ToUint),
        ["double"] = ChargedForText(ToDouble),
        ["string"] = ChargedForText(ToStringValue),
        ["bytes"] = ChargedForText(ToBytes),
        ["bool"] = ChargedForText(ToBool),
        ["type"] = TypeOf,
        ["dyn"] = Identity,
        ["timestamp"] = ChargedForText(ToTimestamp),
        ["duration"] = ChargedForText(ToDuration),
    };

    private static readonly Dictionary<string, BinaryFunction> GlobalBinary = new(StringComparer.Ordinal)
    {
        ["_+_"] = Add,
        ["_-_"] = Subtract,
        ["_*_"] = Multiply,
        ["_/_"] = Divide,
        ["_%_"] = Modulo,
        ["_==_"] = (EvalContext c, in RuleValue a, in RuleValue b) => Equal(c, a, b),
        ["_!=_"] = (EvalContext c, in RuleValue a, in RuleValue b) => NotEqual(c, a, b),
        ["_<_"] = (EvalContext c, in RuleValue a, in RuleValue b) => Compare(c, a, b, "<", static r => r < 0),
        ["_<=_"] = (EvalContext c, in RuleValue a, in RuleValue b) => Compare(c, a, b, "<=", static r => r <= 0),
        ["_>_"] = (EvalContext c, in RuleValue a, in RuleValue b) => Compare(c, a, b, ">", static r => r > 0),
        ["_>=_"] = (EvalContext c, in RuleValue a, in RuleValue b) => Compare(c, a, b, ">=", static r => r >= 0),
        ["@in"] = In,
        ["_[_]"] = Index,
        ["_[?_]"] = (EvalContext c, in RuleValue a, in RuleValue b) => c.ChargeSize(b, collections: false) ? RuleOptionals.Index(a, b) : RuleValue.Error(EvalContext.BudgetExceeded),
        ["matches"] = Matches,
    };

    private static readonly Dictionary<string, UnaryFunction> ReceiverUnary = new(StringComparer.Ordinal)
    {
        ["size"] = Size,
        ["lowerAscii"] = (EvalContext c, in RuleValue a) => MapAscii(c, a, toUpper: false),
        ["upperAscii"] = (EvalContext c, in RuleValue a) => MapAscii(c, a, toUpper: true),
        ["getFullYear"] = (EvalContext c, in RuleValue a) => TimePart(a, null, TimeField.FullYear),
        ["getMonth"] = (EvalContext c, in RuleValue a) => TimePart(a, null, TimeField.Month),
        ["getDate"] = (EvalContext c, in RuleValue a) => TimePart(a, null, TimeField.Date),
        ["getDayOfMonth"] = (EvalContext c, in RuleValue a) => TimePart(a, null, TimeField.DayOfMonth),
        ["getDayOfWeek"] = (EvalContext c, in RuleValue a) => TimePart(a, null, TimeField.DayOfWeek),
        ["getDayOfYear"] = (EvalContext c, in RuleValue a) => TimePart(a, null, TimeField.DayOfYear),
        ["getHours"] = (EvalContext c, in RuleValue a) => TimePart(a, null, TimeField.Hours),
        ["getMinutes"] = (EvalContext c, in RuleValue a) => TimePart(a, null, TimeField.Minutes),
        ["getSeconds"] = (EvalContext c, in RuleValue a) => TimePart(a, null, TimeField.Seconds),
        ["getMilliseconds"] = (EvalContext c, in RuleValue a) => TimePart(a, null, TimeField.Milliseconds),
    };

    private static readonly Dictionary<string, BinaryFunction> ReceiverBinary = new(StringComparer.Ordinal)
    {
        ["contains"] = (EvalContext c, in RuleValue a, in RuleValue b) => StringTest(c, a, b, "contains", static (s, t) => s.Contains(t, StringComparison.Ordinal)),
        ["startsWith"] = (EvalContext c, in RuleValue a, in RuleValue b) => StringTest(c, a, b, "startsWith", static (s, t) => s.StartsWith(t, StringComparison.Ordinal)),
        ["endsWith"] = (EvalContext c, in RuleValue a, in RuleValue b) => StringTest(c, a, b, "endsWith", static (s, t) => s.EndsWith(t, StringComparison.Ordinal)),
        ["matches"] = Matches,
        ["getFullYear"] = (EvalContext c, in RuleValue a, in RuleValue b) => ZonedTimePart(c, a, b, TimeField.FullYear),
        ["getMonth"] = (EvalContext c, in RuleValue a, in RuleValue b) => ZonedTimePart(c, a, b, TimeField.Month),
        ["getDate"] = (EvalContext c, in RuleValue a, in RuleValue b) => ZonedTimePart(c, a, b, TimeField.Date),
        ["getDayOfMonth"] = (EvalContext c, in RuleValue a, in RuleValue b) => ZonedTimePart(c, a, b, TimeField.DayOfMonth),
        ["getDayOfWeek"] = (EvalContext c, in RuleValue a, in RuleValue b) => ZonedTimePart(c, a, b, TimeField.DayOfWeek),
        ["getDayOfYear"] = (EvalContext c, in RuleValue a, in RuleValue b) => ZonedTimePart(c, a, b, TimeField.DayOfYear),
        ["getHours"] = (EvalContext c, in RuleValue a, in RuleValue b) => ZonedTimePart(c, a, b, TimeField.Hours),
        ["getMinutes"] = (EvalContext c, in RuleValue a, in RuleValue b) => ZonedTimePart(c, a, b, TimeField.Minutes),
        ["getSeconds"] = (EvalContext c, in RuleValue a, in RuleValue b) => ZonedTimePart(c, a, b, TimeField.Seconds),
        ["getMilliseconds"] = (EvalContext c, in RuleValue a, in RuleValue b) => ZonedTimePart(c, a, b, TimeField.Milliseconds),
    };

    private enum TimeField
    {
        FullYear,
        Month,
        Date,
        DayOfMonth,
        DayOfWeek,
        DayOfYear,
        Hours,
        Minutes,
        Seconds,
        Milliseconds,
    }

    public static bool IsNamespacedFunction(string name, int arity) => RuleExtensions.Find(name, arity) is not null;

    /// <summary>The node for a call, or null when no function of that name and shape exists.</summary>
    public static Node? Bind(string name, Node? target, Node[] args)
    {
        if (target is null)
        {
            if (args.Length == 1 && GlobalUnary.TryGetValue(name, out var unary))
            {
                return new UnaryCallNode(unary, args[0]);
            }

            if (args.Length == 2 && GlobalBinary.TryGetValue(name, out var binary))
            {
                return BindBinary(name, binary, args[0], args[1]);
            }

            // namespaced functions such as strings.quote(s)
            if (name.Contains('.', StringComparison.Ordinal) && RuleExtensions.Find(name, args.Length) is { } namespaced)
            {
                return new NaryCallNode(namespaced, args, RuleExtensions.ReadsArguments(name));
            }

            return null;
        }

        if (args.Length == 0 && ReceiverUnary.TryGetValue(name, out var receiverUnary))
        {
            return new UnaryCallNode(receiverUnary, target);
        }

        if (args.Length == 1 && ReceiverBinary.TryGetValue(name, out var receiverBinary))
        {
            return BindBinary(name, receiverBinary, target, args[0]);
        }

        if (RuleStringFunctions.Receiver.TryGetValue($"{name}/{args.Length + 1}", out var nary) || RuleExtensions.Receiver.TryGetValue($"{name}/{args.Length + 1}", out nary))
        {
            return new NaryCallNode(nary, [target, .. args], RuleExtensions.ReadsArguments(name));
        }

        return null;
    }

    private static Node BindBinary(string name, BinaryFunction function, Node left, Node right)
    {
        // a constant pattern is translated and compiled once, with the rule
        if (string.Equals(name, "matches", StringComparison.Ordinal) && right.TryConstant(out var pattern) && pattern.Kind == RuleValueKind.String)
        {
            var compiled = RuleRegex.Get(pattern.AsString);
            return new UnaryCallNode((EvalContext c, in RuleValue a) => RuleRegex.Match(c, a, compiled), left);
        }

        return new BinaryCallNode(function, left, right);
    }

    private static RuleValue NoOverload(string function, in RuleValue a) =>
        RuleValue.Error($"no such overload: {function}({a.TypeName})");

    private static RuleValue NoOverload(string function, in RuleValue a, in RuleValue b) =>
        RuleValue.Error($"no such overload: {function}({a.TypeName}, {b.TypeName})");

    private static RuleValue Overflow(string op) => RuleValue.Error($"integer overflow in {op}");

    private static RuleValue Identity(EvalContext context, in RuleValue a) => a;

    /// <summary>A conversion charged for reading its string or bytes argument whole (parsed, copied, or quoted in its error).</summary>
    private static UnaryFunction ChargedForText(UnaryFunction function) =>
        (EvalContext context, in RuleValue a) => context.ChargeSize(a, collections: false) ? function(context, a) : RuleValue.Error(EvalContext.BudgetExceeded);

    private static RuleValue TypeOf(EvalContext context, in RuleValue a) => RuleValue.Type(RuleValue.TypeNameOf(a.Kind));

    /// <summary>Equality, charged for every element and long string compared at any depth (a budget error when that spends it).</summary>
    private static RuleValue Equal(EvalContext context, in RuleValue a, in RuleValue b)
    {
        long visited = 0;
        bool equal = RuleSemantics.Equal(a, b, ref visited, context.StepLimit - context.Steps);
        return context.Charge(visited) ? RuleValue.Bool(equal) : RuleValue.Error(EvalContext.BudgetExceeded);
    }

    private static RuleValue NotEqual(EvalContext context, in RuleValue a, in RuleValue b)
    {
        RuleValue equal = Equal(context, a, b);
        return equal.IsError ? equal : RuleValue.Bool(!equal.AsBool);
    }

    private static RuleValue Compare(EvalContext context, in RuleValue a, in RuleValue b, string op, Func<int, bool> test)
    {
        // Strings are compared code point by code point, up to the shorter one's end.
        if (a.Kind == RuleValueKind.String && b.Kind == RuleValueKind.String && !context.Charge(Math.Min(a.TextSize, b.TextSize) / 16))
        {
            return RuleValue.Error(EvalContext.BudgetExceeded);
        }

        var order = RuleSemantics.Compare(a, b);
        return order switch
        {
            RuleSemantics.NoOverload => NoOverload(op, a, b),
            RuleSemantics.Unordered => RuleValue.False,
            _ => RuleValue.Bool(test(order)),
        };
    }

    private static RuleValue Negate(EvalContext context, in RuleValue a) => a.Kind switch
    {
        RuleValueKind.Int => a.AsInt == long.MinValue ? Overflow("negation") : RuleValue.Int(-a.AsInt),
        RuleValueKind.Double => RuleValue.Double(-a.AsDouble),
        _ => NoOverload("-", a),
    };

    private static RuleValue Add(EvalContext context, in RuleValue a, in RuleValue b)
    {
        switch (a.Kind, b.Kind)
        {
            case (RuleValueKind.Int, RuleValueKind.Int):
                var sum = unchecked(a.AsInt + b.AsInt);
                return ((a.AsInt ^ sum) & (b.AsInt ^ sum)) < 0 ? Overflow("addition") : RuleValue.Int(sum);
            case (RuleValueKind.Uint, RuleValueKind.Uint):
                var usum = unchecked(a.AsUint + b.AsUint);
                return usum < a.AsUint ? Overflow("addition") : RuleValue.Uint(usum);
            case (RuleValueKind.Double, RuleValueKind.Double):
                return RuleValue.Double(a.AsDouble + b.AsDouble);
            case (RuleValueKind.String, RuleValueKind.String):
                var length = (long)a.AsString.Length + b.AsString.Length;
                if (length > RuleLimits.MaxStringLength)
                {
                    return RuleValue.Error("string result exceeds the size limit");
                }

                context.Charge(length / 64);
                return RuleValue.String(string.Concat(a.AsString, b.AsString));
            case (RuleValueKind.Bytes, RuleValueKind.Bytes):
                var byteLength = (long)a.AsBytes.Length + b.AsBytes.Length;
                if (byteLength > RuleLimits.MaxStringLength)
                {
                    return RuleValue.Error("bytes result exceeds the size limit");
                }

                context.Charge(byteLength / 64);
                return RuleValue.Bytes([.. a.AsBytes, .. b.AsBytes]);
            case (RuleValueKind.List, RuleValueKind.List):
                return Concat(context, a, b);
            case (RuleValueKind.Timestamp, RuleValueKind.Duration):
                return RuleTime.AddDuration(a, b, subtract: false);
            case (RuleValueKind.Duration, RuleValueKind.Timestamp):
                return RuleTime.AddDuration(b, a, subtract: false);
            case (RuleValueKind.Duration, RuleValueKind.Duration):
                return RuleTime.AddDurations(a, b, subtract: false);
            default:
                return NoOverload("+", a, b);
        }
    }

    private static RuleValue Concat(EvalContext context, in RuleValue a, in RuleValue b)
    {
        var left = RuleCollections.Count(a);
        var right = RuleCollections.Count(b);
        if ((long)left + right > RuleLimits.MaxCollectionSize)
        {
            return RuleValue.Error("list result exceeds the size limit");
        }

        if (!context.Charge(left + right))
        {
            return RuleValue.Error(EvalContext.BudgetExceeded);
        }

        var items = new RuleValue[left + right];
        for (var i = 0; i < left; i++)
        {
            items[i] = RuleCollections.Item(a, i);
        }

        for (var i = 0; i < right; i++)
        {
            items[left + i] = RuleCollections.Item(b, i);
        }

        return RuleValue.List(items);
    }

    private static RuleValue Subtract(EvalContext context, in RuleValue a, in RuleValue b)
    {
        switch (a.Kind, b.Kind)
        {
            case (RuleValueKind.Int, RuleValueKind.Int):
                var difference = unchecked(a.AsInt - b.AsInt);
                return ((a.AsInt ^ b.AsInt) & (a.AsInt ^ difference)) < 0 ? Overflow("subtraction") : RuleValue.Int(difference);
            case (RuleValueKind.Uint, RuleValueKind.Uint):
                return a.AsUint < b.AsUint ? Overflow("subtraction") : RuleValue.Uint(a.AsUint - b.AsUint);
            case (RuleValueKind.Double, RuleValueKind.Double):
                return RuleValue.Double(a.AsDouble - b.AsDouble);
            case (RuleValueKind.Timestamp, RuleValueKind.Timestamp):
                return RuleTime.Difference(a, b);
            case (RuleValueKind.Timestamp, RuleValueKind.Duration):
                return RuleTime.AddDuration(a, b, subtract: true);
            case (RuleValueKind.Duration, RuleValueKind.Duration):
                return RuleTime.AddDurations(a, b, subtract: true);
            default:
                return NoOverload("-", a, b);
        }
    }

    private static RuleValue Multiply(EvalContext context, in RuleValue a, in RuleValue b)
    {
        switch (a.Kind, b.Kind)
        {
            case (RuleValueKind.Int, RuleValueKind.Int):
                var high = Math.BigMul(a.AsInt, b.AsInt, out var low);
                return high != (low >> 63) ? Overflow("multiplication") : RuleValue.Int(low);
            case (RuleValueKind.Uint, RuleValueKind.Uint):
                var uhigh = Math.BigMul(a.AsUint, b.AsUint, out var ulow);
                return uhigh != 0 ? Overflow("multiplication") : RuleValue.Uint(ulow);
            case (RuleValueKind.Double, RuleValueKind.Double):
                return RuleValue.Double(a.AsDouble * b.AsDouble);
            default:
                return NoOverload("*", a, b);
        }
    }

    private static RuleValue Divide(EvalContext context, in RuleValue a, in RuleValue b)
    {
        switch (a.Kind, b.Kind)
        {
            case (RuleValueKind.Int, RuleValueKind.Int):
                if (b.AsInt == 0)
                {
                    return RuleValue.Error("division by zero");
                }

                return a.AsInt == long.MinValue && b.AsInt == -1 ? Overflow("division") : RuleValue.Int(a.AsInt / b.AsInt);
            case (RuleValueKind.Uint, RuleValueKind.Uint):
                return b.AsUint == 0 ? RuleValue.Error("division by zero") : RuleValue.Uint(a.AsUint / b.AsUint);
            case (RuleValueKind.Double, RuleValueKind.Double):
                return RuleValue.Double(a.AsDouble / b.AsDouble);
            default:
                return NoOverload("/", a, b);
        }
    }

    private static RuleValue Modulo(EvalContext context, in RuleValue a, in RuleValue b)
    {
        switch (a.Kind, b.Kind)
        {
            case (RuleValueKind.Int, RuleValueKind.Int):
                if (b.AsInt == 0)
                {
                    return RuleValue.Error("modulus by zero");
                }

                return a.AsInt == long.MinValue && b.AsInt == -1 ? Overflow("modulus") : RuleValue.Int(a.AsInt % b.AsInt);
            case (RuleValueKind.Uint, RuleValueKind.Uint):
                return b.AsUint == 0 ? RuleValue.Error("modulus by zero") : RuleValue.Uint(a.AsUint % b.AsUint);
            default:
                return NoOverload("%", a, b);
        }
    }

    private static RuleValue In(EvalContext context, in RuleValue element, in RuleValue container)
    {
        switch (container.Kind)
        {
            case RuleValueKind.List:
                var count = RuleCollections.Count(container);
                if (!context.Charge(count))
                {
                    return RuleValue.Error(EvalContext.BudgetExceeded);
                }

                // Each comparison is charged for what it reads below the element (lists in a list compared whole).
                long visited = 0;
                long limit = context.StepLimit - context.Steps;
                var found = false;
                for (var i = 0; i < count && !found && visited <= limit; i++)
                {
                    found = RuleSemantics.Equal(element, RuleCollections.Item(container, i), ref visited, limit);
                }

                return context.Charge(visited) ? RuleValue.Bool(found) : RuleValue.Error(EvalContext.BudgetExceeded);
            case RuleValueKind.Map:
                // A key is hashed whole to be looked up.
                return context.ChargeSize(element, collections: false) ? RuleValue.Bool(RuleCollections.TryGetMapValue(container, element, out _)) : RuleValue.Error(EvalContext.BudgetExceeded);
            default:
                return NoOverload("in", element, container);
        }
    }

    private static RuleValue Index(EvalContext context, in RuleValue container, in RuleValue index)
    {
        switch (container.Kind)
        {
            case RuleValueKind.Optional:
                return RuleOptionals.Index(container, index);
            case RuleValueKind.List:
                if (!RuleCollections.TryListPosition(index, out long position))
                {
                    return NoOverload("[]", container, index);
                }

                var count = RuleCollections.Count(container);
                return position < 0 || position >= count
                    ? RuleValue.Error($"index out of bounds: {index}")
                    : RuleCollections.Item(container, (int)position);
            case RuleValueKind.Map:
                if (index.Kind is not (RuleValueKind.String or RuleValueKind.Int or RuleValueKind.Uint or RuleValueKind.Bool or RuleValueKind.Double))
                {
                    return NoOverload("[]", container, index);
                }

                if (!context.ChargeSize(index, collections: false))
                {
                    return RuleValue.Error(EvalContext.BudgetExceeded);
                }

                if (RuleCollections.TryGetMapValue(container, index, out var value))
                {
                    return value;
                }

                // value['amount'] reads an absent proto3 field as value.amount does (its default).
                return index.Kind == RuleValueKind.String && RuleCollections.TryGetField(container, index.AsString, out value) ? value : RuleValue.Error($"no such key: {index}");
            default:
                return NoOverload("[]", container, index);
        }
    }

    private static RuleValue Size(EvalContext context, in RuleValue a)
    {
        switch (a.Kind)
        {
            case RuleValueKind.String:
                long codePoints = a.CodePointCount();
                context.Charge(codePoints / 64);
                return RuleValue.Int(codePoints);
            case RuleValueKind.Bytes:
                return RuleValue.Int(a.AsBytes.Length);
            case RuleValueKind.List:
            case RuleValueKind.Map:
                return RuleValue.Int(RuleCollections.Count(a));
            default:
                return NoOverload("size", a);
        }
    }

    private delegate bool TextTest(ReadOnlySpan<char> text, ReadOnlySpan<char> other);

    [System.Runtime.CompilerServices.SkipLocalsInit]
    private static RuleValue StringTest(EvalContext context, in RuleValue a, in RuleValue b, string function, TextTest test)
    {
        if (a.Kind != RuleValueKind.String || b.Kind != RuleValueKind.String)
        {
            return NoOverload(function, a, b);
        }

        Span<char> first = stackalloc char[RuleValue.TextScratchLength];
        Span<char> second = stackalloc char[RuleValue.TextScratchLength];
        ReadOnlySpan<char> text = a.Text(first);
        context.Charge(text.Length / 64);
        return RuleValue.Bool(test(text, b.Text(second)));
    }

    private static RuleValue Matches(EvalContext context, in RuleValue a, in RuleValue b)
    {
        if (a.Kind != RuleValueKind.String || b.Kind != RuleValueKind.String)
        {
            return NoOverload("matches", a, b);
        }

        // A pattern from the record is compiled here unless cached: charged first, cached or not, so a record's outcome does
        // not depend on what other records left in the cache (a pattern in the rule text was compiled once, at apply).
        return context.Charge(RuleRegex.CompileSteps(b.AsString)) ? RuleRegex.Match(context, a, RuleRegex.Get(b.AsString)) : RuleValue.Error(EvalContext.BudgetExceeded);
    }

    private static RuleValue MapAscii(EvalContext context, in RuleValue a, bool toUpper)
    {
        if (a.Kind != RuleValueKind.String)
        {
            return NoOverload(toUpper ? "upperAscii" : "lowerAscii", a);
        }

        context.Charge(a.AsString.Length / 64);
        return RuleValue.String(string.Create(a.AsString.Length, (a.AsString, toUpper), static (span, state) =>
        {
            for (var i = 0; i < span.Length; i++)
            {
                var c = state.AsString[i];
                span[i] = state.toUpper ? (char.IsAsciiLetterLower(c) ? (char)(c - 32) : c) : (char.IsAsciiLetterUpper(c) ? (char)(c + 32) : c);
            }
        }));
    }

    private static RuleValue ZonedTimePart(EvalContext context, in RuleValue a, in RuleValue zone, TimeField field) =>
        zone.Kind != RuleValueKind.String || a.Kind != RuleValueKind.Timestamp ? NoOverload(field.ToString(), a, zone)
        : context.Charge(RuleTime.ZoneLookupSteps(zone.AsString)) ? TimePart(a, zone.AsString, field)
        : RuleValue.Error(EvalContext.BudgetExceeded);

    private static RuleValue TimePart(in RuleValue a, string? zone, TimeField field)
    {
        if (a.Kind == RuleValueKind.Duration)
        {
            // duration accessors give whole units of the total (milliseconds: the component below a second)
            return zone is not null ? NoOverload(field.ToString(), a) : field switch
            {
                TimeField.Hours => RuleValue.Int(a.Seconds / 3600),
                TimeField.Minutes => RuleValue.Int(a.Seconds / 60),
                TimeField.Seconds => RuleValue.Int(a.Seconds),
                TimeField.Milliseconds => RuleValue.Int(a.Nanos / 1_000_000),
                _ => NoOverload("get" + field, a),
            };
        }

        if (a.Kind != RuleValueKind.Timestamp)
        {
            return NoOverload("get" + field, a);
        }

        if (!RuleTime.TryLocalTime(a, zone, out var local, out var error))
        {
            return RuleValue.Error(error!);
        }

        return RuleValue.Int(field switch
        {
            TimeField.FullYear => local.Year,
            TimeField.Month => local.Month - 1,
            TimeField.Date => local.Day,
            TimeField.DayOfMonth => local.Day - 1,
            TimeField.DayOfWeek => (int)local.DayOfWeek,
            TimeField.DayOfYear => local.DayOfYear - 1,
            TimeField.Hours => local.Hour,
            TimeField.Minutes => local.Minute,
            TimeField.Seconds => local.Second,
            _ => a.Nanos / 1_000_000,
        });
    }

    private const double TwoPow63 = 9223372036854775808.0;
    private const double TwoPow64 = 18446744073709551616.0;

    private static RuleValue ToInt(EvalContext context, in RuleValue a)
    {
        switch (a.Kind)
        {
            case RuleValueKind.Int:
                return a;
            case RuleValueKind.Uint:
                return a.AsUint > long.MaxValue ? RuleValue.Error("int() range error: value out of int range") : RuleValue.Int((long)a.AsUint);
            case RuleValueKind.Double:
                var d = a.AsDouble;
                // the bounds exclude -2^63 too: it does not round-trip through every implementation
                return double.IsNaN(d) || d <= -TwoPow63 || d >= TwoPow63 ? RuleValue.Error("int() range error: value out of int range") : RuleValue.Int((long)d);
            case RuleValueKind.String:
                return long.TryParse(a.AsString, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var parsed)
                    ? RuleValue.Int(parsed)
                    : RuleValue.Error($"int() cannot convert '{a.AsString}'");
            case RuleValueKind.Timestamp:
                return RuleValue.Int(a.Seconds);
            default:
                return NoOverload("int", a);
        }
    }

    private static RuleValue ToUint(EvalContext context, in RuleValue a)
    {
        switch (a.Kind)
        {
            case RuleValueKind.Uint:
                return a;
            case RuleValueKind.Int:
                return a.AsInt < 0 ? RuleValue.Error("uint() range error: negative value") : RuleValue.Uint((ulong)a.AsInt);
            case RuleValueKind.Double:
                var d = a.AsDouble;
                return double.IsNaN(d) || d < 0 || d >= TwoPow64 ? RuleValue.Error("uint() range error: value out of uint range") : RuleValue.Uint((ulong)d);
            case RuleValueKind.String:
                return ulong.TryParse(a.AsString, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed)
                    ? RuleValue.Uint(parsed)
                    : RuleValue.Error($"uint() cannot convert '{a.AsString}'");
            default:
                return NoOverload("uint", a);
        }
    }

    private static RuleValue ToDouble(EvalContext context, in RuleValue a)
    {
        switch (a.Kind)
        {
            case RuleValueKind.Double:
                return a;
            case RuleValueKind.Int:
                return RuleValue.Double(a.AsInt);
            case RuleValueKind.Uint:
                return RuleValue.Double(a.AsUint);
            case RuleValueKind.String:
                var text = a.AsString;
                var body = text.AsSpan().TrimStart("+-");
                if (body.Equals("inf", StringComparison.OrdinalIgnoreCase) || body.Equals("infinity", StringComparison.OrdinalIgnoreCase))
                {
                    return RuleValue.Double(text.StartsWith('-') ? double.NegativeInfinity : double.PositiveInfinity);
                }

                if (body.Equals("nan", StringComparison.OrdinalIgnoreCase))
                {
                    return RuleValue.Double(double.NaN);
                }

                // Only 'inf' is infinite: a number past the double range is out of range, as Go's ParseFloat (cel-go) has it.
                return double.TryParse(text, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent, CultureInfo.InvariantCulture, out var parsed)
                    ? double.IsFinite(parsed) ? RuleValue.Double(parsed) : RuleValue.Error($"double() cannot convert '{text}': out of range")
                    : RuleValue.Error($"double() cannot convert '{text}'");
            default:
                return NoOverload("double", a);
        }
    }

    private static RuleValue ToStringValue(EvalContext context, in RuleValue a)
    {
        switch (a.Kind)
        {
            case RuleValueKind.String:
                return a;
            case RuleValueKind.Int:
                return RuleValue.String(a.AsInt.ToString(CultureInfo.InvariantCulture));
            case RuleValueKind.Uint:
                return RuleValue.String(a.AsUint.ToString(CultureInfo.InvariantCulture));
            case RuleValueKind.Double:
                return RuleValue.String(FormatDouble(a.AsDouble));
            case RuleValueKind.Bool:
                return RuleValue.String(a.AsBool ? "true" : "false");
            case RuleValueKind.Bytes:
                try
                {
                    return RuleValue.String(StrictUtf8.GetString(a.AsBytes));
                }
                catch (DecoderFallbackException)
                {
                    return RuleValue.Error("string() of bytes that are not valid UTF-8");
                }

            case RuleValueKind.Timestamp:
                return RuleValue.String(RuleTime.FormatTimestamp(a.Seconds, a.Nanos));
            case RuleValueKind.Duration:
                return RuleValue.String(RuleTime.FormatDuration(a.Seconds, a.Nanos));
            default:
                return NoOverload("string", a);
        }
    }

    /// <summary>Shortest round-trip digits in the layout of Go's %g, as CEL's reference implementation prints doubles.</summary>
    internal static string FormatDouble(double value)
    {
        if (double.IsNaN(value))
        {
            return "NaN";
        }

        if (double.IsInfinity(value))
        {
            return value > 0 ? "+Inf" : "-Inf";
        }

        if (value == 0)
        {
            return double.IsNegative(value) ? "-0" : "0";
        }

        var text = Math.Abs(value).ToString("R", CultureInfo.InvariantCulture);
        var exponent = 0;
        var e = text.IndexOf('E', StringComparison.Ordinal);
        if (e >= 0)
        {
            exponent = int.Parse(text.AsSpan(e + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            text = text[..e];
        }

        var dot = text.IndexOf('.', StringComparison.Ordinal);
        var digits = dot >= 0 ? text[..dot] + text[(dot + 1)..] : text;
        var point = (dot >= 0 ? dot : text.Length) + exponent;
        var leading = 0;
        while (leading < digits.Length - 1 && digits[leading] == '0')
        {
            leading++;
            point--;
        }

        digits = digits[leading..].TrimEnd('0');
        var builder = new StringBuilder(32);
        if (value < 0)
        {
            builder.Append('-');
        }

        // Go's %g with the shortest digits: exponent form below 1e-4 and from 1e+06 on (1500000.0 prints 1.5e+06).
        var decimalExponent = point - 1;
        if (decimalExponent < -4 || decimalExponent >= 6)
        {
            builder.Append(digits[0]);
            if (digits.Length > 1)
            {
                builder.Append('.').Append(digits, 1, digits.Length - 1);
            }

            builder.Append('e').Append(decimalExponent < 0 ? '-' : '+').Append(Math.Abs(decimalExponent).ToString("00", CultureInfo.InvariantCulture));
        }
        else if (point <= 0)
        {
            builder.Append("0.").Append('0', -point).Append(digits);
        }
        else if (point >= digits.Length)
        {
            builder.Append(digits).Append('0', point - digits.Length);
        }
        else
        {
            builder.Append(digits, 0, point).Append('.').Append(digits, point, digits.Length - point);
        }

        return builder.ToString();
    }

    private static RuleValue ToBytes(EvalContext context, in RuleValue a) => a.Kind switch
    {
        RuleValueKind.Bytes => a,
        RuleValueKind.String => RuleValue.Bytes(Encoding.UTF8.GetBytes(a.AsString)),
        _ => NoOverload("bytes", a),
    };

    private static RuleValue ToBool(EvalContext context, in RuleValue a)
    {
        switch (a.Kind)
        {
            case RuleValueKind.Bool:
                return a;
            case RuleValueKind.String:
                switch (a.AsString)
                {
                    case "1" or "t" or "T" or "true" or "TRUE" or "True":
                        return RuleValue.True;
                    case "0" or "f" or "F" or "false" or "FALSE" or "False":
                        return RuleValue.False;
                    default:
                        return RuleValue.Error($"bool() cannot convert '{a.AsString}'");
                }

            default:
                return NoOverload("bool", a);
        }
    }

    private static RuleValue ToTimestamp(EvalContext context, in RuleValue a) => a.Kind switch
    {
        RuleValueKind.Timestamp => a,
        RuleValueKind.String => RuleTime.ParseTimestamp(a.AsString),
        RuleValueKind.Int => RuleTime.FromUnixSeconds(a.AsInt),
        _ => NoOverload("timestamp", a),
    };

    private static RuleValue ToDuration(EvalContext context, in RuleValue a) => a.Kind switch
    {
        RuleValueKind.Duration => a,
        RuleValueKind.String => RuleTime.ParseDuration(a.AsString),
        _ => NoOverload("duration", a),
    };
}
