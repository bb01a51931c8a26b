namespace SharedLog.Contracts.Rules;

/// <summary>State of one evaluation: the variables, macro iteration variables and the step budget.</summary>
internal sealed class EvalContext
{
    public const string BudgetExceeded = "evaluation step budget exceeded";

    private IReadOnlyDictionary<string, object?>? _variables;
    private IRuleActivation? _activation;

    public RuleValue[] Locals { get; private set; } = new RuleValue[4];

    public long Steps { get; set; }

    public long StepLimit { get; private set; }

    public bool InUse { get; private set; }

    public bool Exhausted => Steps > StepLimit;

    public void Reset(IReadOnlyDictionary<string, object?>? variables, IRuleActivation? activation, int stepLimit, int localSlots)
    {
        InUse = true;
        _variables = variables;
        _activation = activation;
        Steps = 0;
        StepLimit = stepLimit;
        if (Locals.Length < localSlots)
        {
            Locals = new RuleValue[localSlots];
        }
    }

    public void Release()
    {
        _variables = null;
        _activation = null;
        Array.Clear(Locals);
        InUse = false;
    }

    /// <summary>Adds work to the budget; false once it is exhausted.</summary>
    public bool Charge(long steps)
    {
        Steps += steps;
        return Steps <= StepLimit;
    }

    public bool TryResolve(string name, out object? value)
    {
        if (_variables is not null)
        {
            return _variables.TryGetValue(name, out value);
        }

        if (_activation is not null)
        {
            return _activation.TryResolve(name, out value);
        }

        value = null;
        return false;
    }
}

internal abstract class Node
{
    public abstract RuleValue Eval(EvalContext context);

    /// <summary>The constant this node always produces, if it is one (for compile-time regex compilation).</summary>
    public virtual bool TryConstant(out RuleValue value)
    {
        value = default;
        return false;
    }
}

internal sealed class ConstantNode(RuleValue value) : Node
{
    public override RuleValue Eval(EvalContext context) => value;

    public override bool TryConstant(out RuleValue constant)
    {
        constant = value;
        return true;
    }
}

internal sealed class VariableNode(string name) : Node
{
    private readonly RuleValue _missing = RuleValue.Error($"undeclared reference to '{name}'");
    private readonly RuleValue? _typeName = RuleCompiler.TypeNames.Contains(name) ? RuleValue.Type(name) : null;

    public override RuleValue Eval(EvalContext context)
    {
        if (context.TryResolve(name, out var value))
        {
            return RuleValue.FromObject(value);
        }

        return _typeName ?? _missing;
    }
}

internal sealed class LocalNode(int slot) : Node
{
    public override RuleValue Eval(EvalContext context) => context.Locals[slot];
}

internal sealed class SelectNode(Node operand, string field) : Node
{
    private readonly RuleValue _missing = RuleValue.Error($"no such key: {field}");
    private readonly RuleValue _unsupported = RuleValue.Error($"no such overload: field selection '.{field}' needs a map");

    public override RuleValue Eval(EvalContext context)
    {
        var target = operand.Eval(context);
        if (target.Kind == RuleValueKind.Map)
        {
            return RuleCollections.TryGetField(target, field, out var value) ? value : _missing;
        }

        return target.IsError ? target : _unsupported;
    }
}

internal sealed class HasNode(Node operand, string field) : Node
{
    private readonly RuleValue _unsupported = RuleValue.Error($"no such overload: has() of '.{field}' needs a map");

    public override RuleValue Eval(EvalContext context)
    {
        var target = operand.Eval(context);
        if (target.Kind == RuleValueKind.Map)
        {
            return RuleValue.Bool(RuleCollections.TryGetField(target, field, out _));
        }

        return target.IsError ? target : _unsupported;
    }
}

/// <summary>Logical and: false wins over errors from either side (commutative), so evaluation order does not matter.</summary>
internal sealed class AndNode(Node left, Node right) : Node
{
    public override RuleValue Eval(EvalContext context)
    {
        var l = left.Eval(context);
        if (l.Kind == RuleValueKind.Bool && !l.AsBool)
        {
            return l;
        }

        var r = right.Eval(context);
        if (r.Kind == RuleValueKind.Bool)
        {
            if (!r.AsBool)
            {
                return r;
            }

            return l.Kind == RuleValueKind.Bool ? r : Logic.NotBool(l, "&&");
        }

        return l.IsError ? l : Logic.NotBool(r, "&&");
    }
}

/// <summary>Logical or: true wins over errors from either side.</summary>
internal sealed class OrNode(Node left, Node right) : Node
{
    public override RuleValue Eval(EvalContext context)
    {
        var l = left.Eval(context);
        if (l.Kind == RuleValueKind.Bool && l.AsBool)
        {
            return l;
        }

        var r = right.Eval(context);
        if (r.Kind == RuleValueKind.Bool)
        {
            if (r.AsBool)
            {
                return r;
            }

            return l.Kind == RuleValueKind.Bool ? r : Logic.NotBool(l, "||");
        }

        return l.IsError ? l : Logic.NotBool(r, "||");
    }
}

internal static class Logic
{
    public static RuleValue NotBool(in RuleValue value, string op) =>
        value.IsError ? value : RuleValue.Error($"no such overload: {op} applied to {value.TypeName}");
}

internal sealed class NotNode(Node operand) : Node
{
    public override RuleValue Eval(EvalContext context)
    {
        var value = operand.Eval(context);
        return value.Kind == RuleValueKind.Bool ? RuleValue.Bool(!value.AsBool) : Logic.NotBool(value, "!");
    }
}

internal sealed class ConditionalNode(Node condition, Node whenTrue, Node whenFalse) : Node
{
    public override RuleValue Eval(EvalContext context)
    {
        var value = condition.Eval(context);
        if (value.Kind == RuleValueKind.Bool)
        {
            return value.AsBool ? whenTrue.Eval(context) : whenFalse.Eval(context);
        }

        return Logic.NotBool(value, "?:");
    }
}

internal delegate RuleValue UnaryFunction(EvalContext context, in RuleValue a);

internal delegate RuleValue BinaryFunction(EvalContext context, in RuleValue a, in RuleValue b);

/// <summary>A strict one-argument function or operator: an error argument is the result.</summary>
internal sealed class UnaryCallNode(UnaryFunction function, Node argument) : Node
{
    public override RuleValue Eval(EvalContext context)
    {
        context.Steps++;
        var a = argument.Eval(context);
        return a.IsError ? a : function(context, a);
    }
}

/// <summary>A strict two-argument function or operator.</summary>
internal sealed class BinaryCallNode(BinaryFunction function, Node left, Node right) : Node
{
    public override RuleValue Eval(EvalContext context)
    {
        context.Steps++;
        var a = left.Eval(context);
        if (a.IsError)
        {
            return a;
        }

        var b = right.Eval(context);
        return b.IsError ? b : function(context, a, b);
    }
}

/// <summary>A call of a function that does not exist (with these arguments): an error when evaluated, like CEL without a type checker.</summary>
internal sealed class UnboundCallNode(string message, Node[] arguments) : Node
{
    private readonly RuleValue _error = RuleValue.Error(message);

    public override RuleValue Eval(EvalContext context)
    {
        foreach (var argument in arguments)
        {
            var value = argument.Eval(context);
            if (value.IsError)
            {
                return value;
            }
        }

        return _error;
    }
}

internal sealed class ListNode(Node[] elements) : Node
{
    public override RuleValue Eval(EvalContext context)
    {
        context.Steps++;
        var items = elements.Length == 0 ? [] : new RuleValue[elements.Length];
        for (var i = 0; i < elements.Length; i++)
        {
            var value = elements[i].Eval(context);
            if (value.IsError)
            {
                return value;
            }

            items[i] = value;
        }

        return RuleValue.List(items);
    }
}

internal sealed class MapNode(Node[] keys, Node[] values) : Node
{
    public override RuleValue Eval(EvalContext context)
    {
        context.Steps += 1 + keys.Length;
        var keyValues = new RuleValue[keys.Length];
        var valueValues = new RuleValue[keys.Length];
        for (var i = 0; i < keys.Length; i++)
        {
            var key = keys[i].Eval(context);
            if (key.IsError)
            {
                return key;
            }

            if (key.Kind is not (RuleValueKind.String or RuleValueKind.Int or RuleValueKind.Uint or RuleValueKind.Bool))
            {
                return RuleValue.Error($"unsupported map key type {key.TypeName}");
            }

            for (var j = 0; j < i; j++)
            {
                if (RuleSemantics.KeyEquals(keyValues[j], key))
                {
                    return RuleValue.Error($"Failed with repeated key {key}");
                }
            }

            var value = values[i].Eval(context);
            if (value.IsError)
            {
                return value;
            }

            keyValues[i] = key;
            valueValues[i] = value;
        }

        return RuleValue.Map(new RuleMap(keyValues, valueValues));
    }
}

internal enum ComprehensionKind
{
    All,
    Exists,
    ExistsOne,
    Map,
    Filter,
}

/// <summary>The macros all, exists, exists_one, map and filter: iterate a list (or a map's keys) with a bound variable.</summary>
internal sealed class ComprehensionNode(ComprehensionKind kind, Node range, int slot, Node? predicate, Node? transform) : Node
{
    public override RuleValue Eval(EvalContext context)
    {
        var target = range.Eval(context);
        if (target.IsError)
        {
            return target;
        }

        RuleValue[]? mapKeys = null;
        if (target.Kind == RuleValueKind.Map)
        {
            mapKeys = RuleCollections.MapKeys(target);
        }
        else if (target.Kind != RuleValueKind.List)
        {
            return RuleValue.Error($"no such overload: macro {kind} needs a list or map, not {target.TypeName}");
        }

        var count = mapKeys?.Length ?? RuleCollections.Count(target);
        RuleValue? firstError = null;
        var matches = 0;
        List<RuleValue>? results = kind is ComprehensionKind.Map or ComprehensionKind.Filter ? new List<RuleValue>(Math.Min(count, 64)) : null;
        var locals = context.Locals;
        for (var i = 0; i < count; i++)
        {
            if (!context.Charge(1))
            {
                return RuleValue.Error(EvalContext.BudgetExceeded);
            }

            var item = mapKeys is not null ? mapKeys[i] : RuleCollections.Item(target, i);
            locals[slot] = item;
            var verdict = predicate?.Eval(context) ?? RuleValue.True;
            if (verdict.Kind != RuleValueKind.Bool)
            {
                verdict = Logic.NotBool(verdict, kind.ToString());
                if (kind is ComprehensionKind.All or ComprehensionKind.Exists)
                {
                    firstError ??= verdict;
                    continue;
                }

                return verdict;
            }

            switch (kind)
            {
                case ComprehensionKind.All when !verdict.AsBool:
                    return RuleValue.False;
                case ComprehensionKind.Exists when verdict.AsBool:
                    return RuleValue.True;
                case ComprehensionKind.ExistsOne when verdict.AsBool:
                    matches++;
                    break;
                case ComprehensionKind.Map or ComprehensionKind.Filter when verdict.AsBool:
                    var produced = kind == ComprehensionKind.Filter ? item : transform!.Eval(context);
                    if (produced.IsError)
                    {
                        return produced;
                    }

                    results!.Add(produced);
                    break;
            }
        }

        return kind switch
        {
            ComprehensionKind.All => firstError ?? RuleValue.True,
            ComprehensionKind.Exists => firstError ?? RuleValue.False,
            ComprehensionKind.ExistsOne => RuleValue.Bool(matches == 1),
            _ => RuleValue.List([.. results!]),
        };
    }
}

/// <summary>Turns the syntax tree into evaluation nodes: resolves macros, operators and functions once, at compile time.</summary>
internal sealed class RuleCompiler(string text)
{
    public static readonly HashSet<string> TypeNames = new(StringComparer.Ordinal)
    {
        "int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type",
    };

    private readonly List<string> _scope = [];

    /// <summary>How many iteration variables are live at once at most.</summary>
    public int LocalSlots { get; private set; }

    public Node Compile(Expr expr) => expr switch
    {
        ConstantExpr constant => new ConstantNode(constant.Value),
        IdentExpr ident => CompileIdent(ident.Name),
        SelectExpr select => CompileSelect(select),
        ListExpr list => new ListNode([.. list.Elements.Select(Compile)]),
        MapExpr map => new MapNode([.. map.Keys.Select(Compile)], [.. map.Values.Select(Compile)]),
        CallExpr call => CompileCall(call),
        _ => throw Error("unsupported expression", expr),
    };

    private RuleSyntaxException Error(string message, Expr at) => RuleLexer.Error(text, message, at.Offset);

    private Node CompileIdent(string name)
    {
        var slot = _scope.LastIndexOf(name);
        return slot >= 0 ? new LocalNode(slot) : new VariableNode(name);
    }

    private Node CompileSelect(SelectExpr select)
    {
        var qualified = QualifiedName(select);
        if (qualified is "google.protobuf.Timestamp" or "google.protobuf.Duration")
        {
            return new ConstantNode(RuleValue.Type(qualified));
        }

        return new SelectNode(Compile(select.Operand), select.Field);
    }

    private static string? QualifiedName(Expr expr) => expr switch
    {
        IdentExpr ident => ident.Name,
        SelectExpr select => QualifiedName(select.Operand) is { } prefix ? prefix + "." + select.Field : null,
        _ => null,
    };

    private Node CompileCall(CallExpr call)
    {
        var args = call.Args;
        switch (call.Function)
        {
            case "_&&_":
                return new AndNode(Compile(args[0]), Compile(args[1]));
            case "_||_":
                return new OrNode(Compile(args[0]), Compile(args[1]));
            case "_?_:_":
                return new ConditionalNode(Compile(args[0]), Compile(args[1]), Compile(args[2]));
            case "!_":
                return new NotNode(Compile(args[0]));
            case "has" when call.Target is null:
                if (args.Length != 1 || args[0] is not SelectExpr field)
                {
                    throw Error("has() needs one field selection argument, as in has(value.field)", call);
                }

                return new HasNode(Compile(field.Operand), field.Field);
            case "all" or "exists" or "exists_one" or "filter" or "map" when call.Target is not null && args.Length >= 2 && args[0] is IdentExpr:
                return CompileComprehension(call);
        }

        var target = call.Target is null ? null : Compile(call.Target);
        var compiled = args.Select(Compile).ToArray();
        var node = RuleFunctions.Bind(call.Function, target, compiled);
        if (node is not null)
        {
            return node;
        }

        var all = target is null ? compiled : [target, .. compiled];
        return new UnboundCallNode($"unbound function: no such overload for '{call.Function}' with {all.Length} argument(s)", all);
    }

    private ComprehensionNode CompileComprehension(CallExpr call)
    {
        var variable = ((IdentExpr)call.Args[0]).Name;
        var kind = call.Function switch
        {
            "all" => ComprehensionKind.All,
            "exists" => ComprehensionKind.Exists,
            "exists_one" => ComprehensionKind.ExistsOne,
            "filter" => ComprehensionKind.Filter,
            _ => ComprehensionKind.Map,
        };
        var expected = kind == ComprehensionKind.Map ? "2 or 3" : "2";
        if (call.Args.Length > 3 || (call.Args.Length == 3 && kind != ComprehensionKind.Map))
        {
            throw Error($"macro {call.Function}() takes {expected} arguments", call);
        }

        var range = Compile(call.Target!);
        var slot = _scope.Count;
        _scope.Add(variable);
        LocalSlots = Math.Max(LocalSlots, _scope.Count);
        try
        {
            if (kind == ComprehensionKind.Map)
            {
                var filter = call.Args.Length == 3 ? Compile(call.Args[1]) : null;
                var transform = Compile(call.Args[^1]);
                return new ComprehensionNode(kind, range, slot, filter, transform);
            }

            return new ComprehensionNode(kind, range, slot, Compile(call.Args[1]), null);
        }
        finally
        {
            _scope.RemoveAt(_scope.Count - 1);
        }
    }
}
