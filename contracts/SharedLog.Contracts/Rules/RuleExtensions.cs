namespace SharedLog.Contracts.Rules;

/// <summary>
/// Namespaced functions of CEL's extension libraries: math.* (greatest, least, ceil, floor, round,
/// trunc, abs, sign, isNaN, isInf, isFinite, bit operations), base64.encode/decode and strings.quote.
/// </summary>
internal static class RuleExtensions
{
    /// <summary>By "namespace.name/argument count", or "namespace.name/*" for any count.</summary>
    private static readonly Dictionary<string, NaryFunction> Functions = new(StringComparer.Ordinal)
    {
        ["strings.quote/1"] = RuleStringFunctions.Quote,
        ["optional.of/1"] = RuleOptionals.Of,
        ["optional.none/0"] = RuleOptionals.None,
        ["optional.ofNonZeroValue/1"] = RuleOptionals.OfNonZeroValue,
        ["base64.encode/1"] = Base64Encode,
        ["base64.decode/1"] = Base64Decode,
        ["math.greatest/*"] = (c, a) => Extreme(a, greatest: true),
        ["math.least/*"] = (c, a) => Extreme(a, greatest: false),
        ["math.ceil/1"] = (c, a) => DoubleOp(a, "math.ceil", Math.Ceiling),
        ["math.floor/1"] = (c, a) => DoubleOp(a, "math.floor", Math.Floor),
        ["math.round/1"] = (c, a) => DoubleOp(a, "math.round", static d => Math.Round(d, MidpointRounding.AwayFromZero)),
        ["math.trunc/1"] = (c, a) => DoubleOp(a, "math.trunc", Math.Truncate),
        ["math.abs/1"] = Abs,
        ["math.sign/1"] = Sign,
        ["math.isNaN/1"] = (c, a) => DoubleTest(a, "math.isNaN", double.IsNaN),
        ["math.isInf/1"] = (c, a) => DoubleTest(a, "math.isInf", double.IsInfinity),
        ["math.isFinite/1"] = (c, a) => DoubleTest(a, "math.isFinite", double.IsFinite),
        ["math.bitAnd/2"] = (c, a) => Bits(a, "math.bitAnd", static (x, y) => x & y),
        ["math.bitOr/2"] = (c, a) => Bits(a, "math.bitOr", static (x, y) => x | y),
        ["math.bitXor/2"] = (c, a) => Bits(a, "math.bitXor", static (x, y) => x ^ y),
        ["math.bitNot/1"] = BitNot,
        ["math.bitShiftLeft/2"] = (c, a) => Shift(a, left: true),
        ["math.bitShiftRight/2"] = (c, a) => Shift(a, left: false),
    };

    /// <summary>Receiver functions of optional values, by "name/argument count including the receiver".</summary>
    public static readonly Dictionary<string, NaryFunction> Receiver = new(StringComparer.Ordinal)
    {
        ["hasValue/1"] = RuleOptionals.HasValue,
        ["value/1"] = RuleOptionals.Value,
        ["orValue/2"] = RuleOptionals.OrValue,
        ["or/2"] = RuleOptionals.Or,
    };

    /// <summary>Whether a call of <paramref name="name"/> reads its arguments whole (charged for them): not the optional functions, which wrap or pass them on.</summary>
    public static bool ReadsArguments(string name) => !name.StartsWith("optional.", StringComparison.Ordinal) && name is not ("hasValue" or "value" or "orValue" or "or");

    public static NaryFunction? Find(string name, int arity) =>
        Functions.TryGetValue($"{name}/{arity}", out var function) || Functions.TryGetValue($"{name}/*", out function) ? function : null;

    private static RuleValue NoOverload(string name, RuleValue[] args) =>
        RuleValue.Error($"no such overload: {name}({string.Join(", ", args.Select(a => RuleValue.TypeNameOf(a.Kind)))})");

    private static RuleValue Base64Encode(EvalContext context, RuleValue[] args) =>
        args[0].Kind == RuleValueKind.Bytes ? RuleValue.String(Convert.ToBase64String(args[0].AsBytes)) : NoOverload("base64.encode", args);

    private static RuleValue Base64Decode(EvalContext context, RuleValue[] args)
    {
        if (args[0].Kind != RuleValueKind.String)
        {
            return NoOverload("base64.decode", args);
        }

        var text = args[0].AsString;
        // unpadded input is accepted, as CEL's reference implementation does
        if (text.Length % 4 != 0)
        {
            text = text.PadRight(text.Length + (4 - (text.Length % 4)), '=');
        }

        try
        {
            return RuleValue.Bytes(Convert.FromBase64String(text));
        }
        catch (FormatException)
        {
            return RuleValue.Error("base64.decode: invalid base64 text");
        }
    }

    private static RuleValue Extreme(RuleValue[] args, bool greatest)
    {
        var name = greatest ? "math.greatest" : "math.least";
        var values = args;
        if (args.Length == 1 && args[0].Kind == RuleValueKind.List)
        {
            values = [.. RuleCollections.ListItems(args[0])];
            if (values.Length == 0)
            {
                return RuleValue.Error($"{name}(): list is empty");
            }
        }

        var best = values[0];
        foreach (var value in values)
        {
            if (!RuleSemantics.IsNumber(value.Kind))
            {
                return NoOverload(name, args);
            }

            var order = RuleSemantics.CompareNumbers(value, best);
            if (greatest ? order == 1 : order == -1)
            {
                best = value;
            }
        }

        return best;
    }

    private static RuleValue DoubleOp(RuleValue[] args, string name, Func<double, double> op) =>
        args[0].Kind == RuleValueKind.Double ? RuleValue.Double(op(args[0].AsDouble)) : NoOverload(name, args);

    private static RuleValue DoubleTest(RuleValue[] args, string name, Func<double, bool> test) =>
        args[0].Kind == RuleValueKind.Double ? RuleValue.Bool(test(args[0].AsDouble)) : NoOverload(name, args);

    private static RuleValue Abs(EvalContext context, RuleValue[] args)
    {
        var a = args[0];
        return a.Kind switch
        {
            RuleValueKind.Int => a.AsInt == long.MinValue ? RuleValue.Error("integer overflow in math.abs") : RuleValue.Int(Math.Abs(a.AsInt)),
            RuleValueKind.Uint => a,
            RuleValueKind.Double => RuleValue.Double(Math.Abs(a.AsDouble)),
            _ => NoOverload("math.abs", args),
        };
    }

    private static RuleValue Sign(EvalContext context, RuleValue[] args)
    {
        var a = args[0];
        return a.Kind switch
        {
            RuleValueKind.Int => RuleValue.Int(Math.Sign(a.AsInt)),
            RuleValueKind.Uint => RuleValue.Uint(a.AsUint == 0 ? 0UL : 1UL),
            RuleValueKind.Double => RuleValue.Double(double.IsNaN(a.AsDouble) ? double.NaN : Math.Sign(a.AsDouble)),
            _ => NoOverload("math.sign", args),
        };
    }

    private static RuleValue Bits(RuleValue[] args, string name, Func<ulong, ulong, ulong> op) => (args[0].Kind, args[1].Kind) switch
    {
        (RuleValueKind.Int, RuleValueKind.Int) => RuleValue.Int(unchecked((long)op((ulong)args[0].AsInt, (ulong)args[1].AsInt))),
        (RuleValueKind.Uint, RuleValueKind.Uint) => RuleValue.Uint(op(args[0].AsUint, args[1].AsUint)),
        _ => NoOverload(name, args),
    };

    private static RuleValue BitNot(EvalContext context, RuleValue[] args) => args[0].Kind switch
    {
        RuleValueKind.Int => RuleValue.Int(~args[0].AsInt),
        RuleValueKind.Uint => RuleValue.Uint(~args[0].AsUint),
        _ => NoOverload("math.bitNot", args),
    };

    private static RuleValue Shift(RuleValue[] args, bool left)
    {
        var name = left ? "math.bitShiftLeft" : "math.bitShiftRight";
        if (args[1].Kind != RuleValueKind.Int || args[0].Kind is not (RuleValueKind.Int or RuleValueKind.Uint))
        {
            return NoOverload(name, args);
        }

        var offset = args[1].AsInt;
        if (offset < 0)
        {
            return RuleValue.Error($"{name}: negative offset {offset}");
        }

        // shifts are logical for int too, and shifting by 64 or more clears every bit
        var bits = args[0].AsUint;
        var shifted = offset >= 64 ? 0UL : left ? bits << (int)offset : bits >> (int)offset;
        return args[0].Kind == RuleValueKind.Int ? RuleValue.Int(unchecked((long)shifted)) : RuleValue.Uint(shifted);
    }
}
