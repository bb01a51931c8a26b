namespace SharedLog.Contracts.Rules;

/// <summary>
/// Optional values (CEL's optional types): a.?b and a[?k] give an optional instead of an error for
/// an absent field or key; selecting or indexing into an optional continues the optional chain.
/// </summary>
internal static class RuleOptionals
{
    /// <summary>a.?b, and a.b when a is an optional.</summary>
    public static RuleValue SelectField(in RuleValue target, string field)
    {
        var container = target;
        if (target.Kind == RuleValueKind.Optional)
        {
            if (!target.HasOptionalValue)
            {
                return target;
            }

            container = target.OptionalValue;
        }

        if (container.Kind == RuleValueKind.Map)
        {
            return RuleCollections.TryGetField(container, field, out var value, readDefaults: false) ? RuleValue.OptionalOf(value) : RuleValue.OptionalNone;
        }

        return container.IsError ? container : RuleValue.Error($"no such key: field selection '.{field}' needs a map, not {container.TypeName}");
    }

    /// <summary>a[?k], and a[k] when a is an optional.</summary>
    public static RuleValue Index(in RuleValue target, in RuleValue index)
    {
        var container = target;
        if (target.Kind == RuleValueKind.Optional)
        {
            if (!target.HasOptionalValue)
            {
                return target;
            }

            container = target.OptionalValue;
        }

        switch (container.Kind)
        {
            case RuleValueKind.List:
                if (!RuleCollections.TryListPosition(index, out long position))
                {
                    return RuleValue.Error($"no such overload: [?]({container.TypeName}, {index.TypeName})");
                }

                return position >= 0 && position < RuleCollections.Count(container)
                    ? RuleValue.OptionalOf(RuleCollections.Item(container, (int)position))
                    : RuleValue.OptionalNone;
            case RuleValueKind.Map:
                return RuleCollections.TryGetMapValue(container, index, out var value) ? RuleValue.OptionalOf(value) : RuleValue.OptionalNone;
            default:
                return RuleValue.Error($"no such overload: [?]({container.TypeName}, {index.TypeName})");
        }
    }

    public static bool IsZero(in RuleValue value) => value.Kind switch
    {
        RuleValueKind.Null => true,
        RuleValueKind.Bool or RuleValueKind.Int or RuleValueKind.Uint => value.AsInt == 0,
        RuleValueKind.Double => value.AsDouble == 0,
        RuleValueKind.String => value.AsString.Length == 0,
        RuleValueKind.Bytes => value.AsBytes.Length == 0,
        RuleValueKind.List or RuleValueKind.Map => RuleCollections.Count(value) == 0,
        RuleValueKind.Timestamp or RuleValueKind.Duration => value.Seconds == 0 && value.Nanos == 0,
        RuleValueKind.Optional => !value.HasOptionalValue,
        _ => false,
    };

    public static RuleValue Of(EvalContext context, RuleValue[] args) => RuleValue.OptionalOf(args[0]);

    public static RuleValue None(EvalContext context, RuleValue[] args) => RuleValue.OptionalNone;

    public static RuleValue OfNonZeroValue(EvalContext context, RuleValue[] args) =>
        IsZero(args[0]) ? RuleValue.OptionalNone : RuleValue.OptionalOf(args[0]);

    private static RuleValue NotOptional(string function, in RuleValue value) =>
        RuleValue.Error($"no such overload: {function} needs an optional, not {value.TypeName}");

    public static RuleValue HasValue(EvalContext context, RuleValue[] args) =>
        args[0].Kind == RuleValueKind.Optional ? RuleValue.Bool(args[0].HasOptionalValue) : NotOptional("hasValue", args[0]);

    public static RuleValue Value(EvalContext context, RuleValue[] args)
    {
        if (args[0].Kind != RuleValueKind.Optional)
        {
            return NotOptional("value", args[0]);
        }

        return args[0].HasOptionalValue ? args[0].OptionalValue : RuleValue.Error("optional.none() dereference");
    }

    public static RuleValue OrValue(EvalContext context, RuleValue[] args)
    {
        if (args[0].Kind != RuleValueKind.Optional)
        {
            return NotOptional("orValue", args[0]);
        }

        return args[0].HasOptionalValue ? args[0].OptionalValue : args[1];
    }

    public static RuleValue Or(EvalContext context, RuleValue[] args)
    {
        if (args[0].Kind != RuleValueKind.Optional || args[1].Kind != RuleValueKind.Optional)
        {
            return NotOptional("or", args[0].Kind != RuleValueKind.Optional ? args[0] : args[1]);
        }

        return args[0].HasOptionalValue ? args[0] : args[1];
    }
}

/// <summary>a.?b</summary>
internal sealed class OptionalSelectNode(Node operand, string field) : Node
{
    public override RuleValue Eval(EvalContext context)
    {
        var target = operand.Eval(context);
        return target.IsError ? target : RuleOptionals.SelectField(target, field);
    }
}

/// <summary>opt.optMap(x, f) and opt.optFlatMap(x, f): apply f to the value of a non-empty optional.</summary>
internal sealed class OptionalMapNode(Node range, int slot, Node body, bool flat) : Node
{
    public override RuleValue Eval(EvalContext context)
    {
        var target = range.Eval(context);
        if (target.IsError)
        {
            return target;
        }

        if (target.Kind != RuleValueKind.Optional)
        {
            return RuleValue.Error($"no such overload: {(flat ? "optFlatMap" : "optMap")} needs an optional, not {target.TypeName}");
        }

        if (!target.HasOptionalValue)
        {
            return target;
        }

        context.Locals[slot] = target.OptionalValue;
        var result = body.Eval(context);
        if (result.IsError || !flat)
        {
            return result.IsError ? result : RuleValue.OptionalOf(result);
        }

        return result.Kind == RuleValueKind.Optional ? result : RuleValue.Error("optFlatMap: the function must return an optional");
    }
}
