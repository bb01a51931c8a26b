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

    // Nodes cheaper than a call (&&, ||, !, ?:, selections, has(), cel.bind): a step per sixteen, so an ordinary rule over
    // a list of 10,000 items stays in the budget while a rule of thousands of them inside a macro does not run for seconds.
    private int _lightNodes;

    /// <summary>Counts <paramref name="count"/> units cheaper than a call (a node, or a name's characters): every sixteenth is a step.</summary>
    public void ChargeLight(int count = 1)
    {
        _lightNodes += count;
        Steps += _lightNodes >> 4;
        _lightNodes &= 15;
    }

    public void Reset(IReadOnlyDictionary<string, object?>? variables, IRuleActivation? activation, int stepLimit, int localSlots)
    {
        bool reused = InUse;
        InUse = true;
        _variables = variables;
        _activation = activation;
        Steps = 0;
        _lightNodes = 0;
        StepLimit = stepLimit;
        if (Locals.Length < localSlots)
        {
            Locals = new RuleValue[localSlots];
        }
        else if (reused && localSlots > 0)
        {
            // A context reused for the next rule of a record starts with clear locals, as a fresh one does.
            Array.Clear(Locals, 0, localSlots);
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

    /// <summary>
    /// Charges for reading <paramref name="value"/> whole: a step per 16 characters of a string or bytes of a bytes value,
    /// and, when <paramref name="collections"/>, a step per element of a list or map. False once the budget is exhausted.
    /// </summary>
    public bool ChargeSize(in RuleValue value, bool collections = true) => Charge(value.Kind switch
    {
        RuleValueKind.String => value.TextSize / 16,
        RuleValueKind.Bytes => value.AsBytes.Length / 16,
        RuleValueKind.List or RuleValueKind.Map when collections => RuleCollections.Count(value),
        _ => 0,
    });

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

/// <summary>
/// A dotted name a.b.c that starts with a variable: CEL resolves the longest bound prefix
/// ("a.b.c", then "a.b", then "a") and selects the remaining fields from its value.
/// </summary>
internal sealed class QualifiedNode : Node
{
    private readonly string[] _segments;
    private readonly string[] _prefixes;
    private readonly RuleValue _missing;

    // A light node per name, and one per 16 characters of the prefixes looked up (each is hashed or compared whole).
    private readonly int _lightNodes;

    public QualifiedNode(string[] segments)
    {
        _segments = segments;
        _prefixes = new string[segments.Length];
        long prefixChars = 0;
        for (var i = 0; i < segments.Length; i++)
        {
            _prefixes[i] = string.Join('.', segments, 0, i + 1);
            prefixChars += _prefixes[i].Length;
        }

        _lightNodes = (int)Math.Min(int.MaxValue, segments.Length + (prefixChars >> 4));

        _missing = RuleValue.Error($"undeclared reference to '{segments[0]}'");
    }

    public override RuleValue Eval(EvalContext context)
    {
        // Each name is looked up (as a prefix first, then as a field): a name of 950 parts charged once ran for seconds.
        context.ChargeLight(_lightNodes);
        for (var bound = _segments.Length; bound >= 1; bound--)
        {
            if (!context.TryResolve(_prefixes[bound - 1], out var raw))
            {
                continue;
            }

            // A field of a decoded record is looked up directly, without wrapping the record in a value first. A map with
            // number or bool keys (held as their text) is left to TryGetField below, for which a field name is no key of it.
            var i = bound;
            while (i < _segments.Length && raw is Dictionary<string, object?> record and not Model.TypedKeyMap { KeyKind: not Model.MapKeyKind.String })
            {
                if (!record.TryGetValue(_segments[i], out raw) && !(record is Model.IFieldDefaults defaults && defaults.TryGetDefault(_segments[i], out raw)))
                {
                    return RuleValue.Error($"no such key: {_segments[i]}");
                }

                i++;
            }

            var value = RuleValue.FromObject(raw);
            for (; i < _segments.Length; i++)
            {
                if (value.Kind != RuleValueKind.Map)
                {
                    return value.IsError ? value : RuleValue.Error($"no such overload: field selection '.{_segments[i]}' needs a map");
                }

                if (!RuleCollections.TryGetField(value, _segments[i], out value))
                {
                    return RuleValue.Error($"no such key: {_segments[i]}");
                }
            }

            return value;
        }

        return _missing;
    }
}

/// <summary>
/// cel.bind(name, init, body): as in CEL (a comprehension whose accumulator is init), an error from init is a value the
/// name holds, so a body that does not reach it, or absorbs it with || and &amp;&amp;, decides the result
/// (<c>cel.bind(r, value.a / value.b, value.b == 0 || r &gt; 5)</c> holds when b is 0). A spent step budget still ends
/// the evaluation: <see cref="EvalContext.Exhausted"/> is checked at the end.
/// </summary>
internal sealed class BindNode(int slot, Node init, Node body) : Node
{
    public override RuleValue Eval(EvalContext context)
    {
        context.ChargeLight();
        context.Locals[slot] = init.Eval(context);
        return body.Eval(context);
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

    // The field's name is hashed per lookup: a light node, and one per 16 of its characters.
    private readonly int _lightNodes = 1 + (field.Length >> 4);

    public override RuleValue Eval(EvalContext context)
    {
        context.ChargeLight(_lightNodes);
        var target = operand.Eval(context);
        if (target.Kind == RuleValueKind.Map)
        {
            return RuleCollections.TryGetField(target, field, out var value) ? value : _missing;
        }

        if (target.Kind == RuleValueKind.Optional)
        {
            return RuleOptionals.SelectField(target, field);
        }

        return target.IsError ? target : _unsupported;
    }
}

internal sealed class HasNode(Node operand, string field) : Node
{
    private readonly RuleValue _unsupported = RuleValue.Error($"no such overload: has() of '.{field}' needs a map");

    // As SelectNode: a 16,000-character name in has() inside macros was 0.4 s of uncharged hashing per evaluation.
    private readonly int _lightNodes = 1 + (field.Length >> 4);

    public override RuleValue Eval(EvalContext context)
    {
        context.ChargeLight(_lightNodes);
        var target = operand.Eval(context);
        if (target.Kind == RuleValueKind.Optional)
        {
            if (!target.HasOptionalValue)
            {
                return RuleValue.False;
            }

            target = target.OptionalValue;
        }

        if (target.Kind == RuleValueKind.Map)
        {
            // Presence, as CEL's has() on a proto3 message: a field left at its default (not written) is not there.
            return RuleValue.Bool(RuleCollections.TryGetField(target, field, out _, readDefaults: false));
        }

        return target.IsError ? target : _unsupported;
    }
}

/// <summary>Logical and: false wins over errors from either side (commutative), so evaluation order does not matter.</summary>
internal sealed class AndNode(Node left, Node right) : Node
{
    public override RuleValue Eval(EvalContext context)
    {
        context.ChargeLight();
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
        context.ChargeLight();
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
        context.ChargeLight();
        var value = operand.Eval(context);
        return value.Kind == RuleValueKind.Bool ? RuleValue.Bool(!value.AsBool) : Logic.NotBool(value, "!");
    }
}

internal sealed class ConditionalNode(Node condition, Node whenTrue, Node whenFalse) : Node
{
    public override RuleValue Eval(EvalContext context)
    {
        context.ChargeLight();
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

/// <summary>A list literal; elements flagged optional ([?x]) are added only when x has a value.</summary>
internal sealed class ListNode(Node[] elements, bool[]? optional) : Node
{
    public override RuleValue Eval(EvalContext context)
    {
        // Charged for its elements too (a step per four): a literal of thousands inside map() builds that many values per
        // iteration, and what map() keeps is bounded by the budget (about 400,000 values).
        context.Steps += 1 + (elements.Length >> 2);
        var items = elements.Length == 0 ? [] : new RuleValue[elements.Length];
        var count = 0;
        for (var i = 0; i < elements.Length; i++)
        {
            var value = elements[i].Eval(context);
            if (value.IsError)
            {
                return value;
            }

            if (optional is not null && optional[i])
            {
                if (value.Kind != RuleValueKind.Optional)
                {
                    return RuleValue.Error($"[?x] needs an optional value, not {value.TypeName}");
                }

                if (!value.HasOptionalValue)
                {
                    continue;
                }

                value = value.OptionalValue;
            }

            items[count++] = value;
        }

        return RuleValue.List(count == items.Length ? items : items[..count]);
    }
}

/// <summary>A map literal; entries flagged optional ({?k: v}) are added only when v has a value.</summary>
internal sealed class MapNode(Node[] keys, Node[] values, bool[]? optional) : Node
{
    public override RuleValue Eval(EvalContext context)
    {
        context.Steps += 1 + keys.Length;
        var keyValues = new RuleValue[keys.Length];
        var valueValues = new RuleValue[keys.Length];
        HashSet<RuleValue>? seen = null;
        bool[]? skipped = null;
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

            if (IsRepeated(keyValues, i, key, ref seen))
            {
                return RuleValue.Error($"Failed with repeated key {key}");
            }

            var value = values[i].Eval(context);
            if (value.IsError)
            {
                return value;
            }

            if (optional is not null && optional[i])
            {
                if (value.Kind != RuleValueKind.Optional)
                {
                    return RuleValue.Error($"{{?k: v}} needs an optional value, not {value.TypeName}");
                }

                if (!value.HasOptionalValue)
                {
                    skipped ??= new bool[keys.Length];
                    skipped[i] = true;
                    continue;
                }

                value = value.OptionalValue;
            }

            keyValues[i] = key;
            valueValues[i] = value;
        }

        if (skipped is not null)
        {
            var kept = Enumerable.Range(0, keys.Length).Where(i => !skipped[i]).ToArray();
            return RuleValue.Map(new RuleMap([.. kept.Select(i => keyValues[i])], [.. kept.Select(i => valueValues[i])]));
        }

        return RuleValue.Map(new RuleMap(keyValues, valueValues));
    }

    // small maps compare pairwise; large ones use a set so the check stays linear
    private static bool IsRepeated(RuleValue[] keys, int count, in RuleValue key, ref HashSet<RuleValue>? seen)
    {
        if (keys.Length <= 8)
        {
            for (var j = 0; j < count; j++)
            {
                if (RuleSemantics.KeyEquals(keys[j], key))
                {
                    return true;
                }
            }

            return false;
        }

        seen ??= new HashSet<RuleValue>(RuleMap.MapKeyComparer.Instance);
        return !seen.Add(key);
    }
}

internal enum ComprehensionKind
{
    All,
    Exists,
    ExistsOne,
    Map,
    Filter,
    TransformMap,
}

/// <summary>
/// The macros all, exists, exists_one, map and filter, and their two-variable forms (all, exists,
/// existsOne, transformList, transformMap): iterate a list (index, element) or a map (key, value).
/// </summary>
internal sealed class ComprehensionNode(ComprehensionKind kind, Node range, int slot, int valueSlot, Node? predicate, Node? transform) : Node
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
            // Its keys are copied before the first iteration: charged for all of them first (a nested comprehension over a
            // map of 50,000 keys copied them all for one step).
            if (!context.ChargeSize(target))
            {
                return RuleValue.Error(EvalContext.BudgetExceeded);
            }

            mapKeys = RuleCollections.MapKeys(target);
        }
        else if (target.Kind != RuleValueKind.List)
        {
            return RuleValue.Error($"no such overload: macro {kind} needs a list or map, not {target.TypeName}");
        }

        var count = mapKeys?.Length ?? RuleCollections.Count(target);
        RuleValue? firstError = null;
        var matches = 0;
        var produces = kind is ComprehensionKind.Map or ComprehensionKind.Filter or ComprehensionKind.TransformMap;
        List<RuleValue>? results = produces ? new List<RuleValue>(Math.Min(count, 64)) : null;
        List<RuleValue>? resultKeys = kind == ComprehensionKind.TransformMap ? new List<RuleValue>(Math.Min(count, 64)) : null;
        var locals = context.Locals;
        for (var i = 0; i < count; i++)
        {
            if (!context.Charge(1))
            {
                return RuleValue.Error(EvalContext.BudgetExceeded);
            }

            RuleValue key;
            RuleValue item;
            if (mapKeys is not null)
            {
                key = mapKeys[i];
                item = key;
                if (valueSlot >= 0)
                {
                    RuleCollections.TryGetMapValue(target, key, out var entryValue);
                    locals[valueSlot] = entryValue;
                }
            }
            else
            {
                key = RuleValue.Int(i);
                item = RuleCollections.Item(target, i);
                if (valueSlot >= 0)
                {
                    locals[valueSlot] = item;
                }
            }

            locals[slot] = valueSlot >= 0 ? key : item;
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
                case ComprehensionKind.Map or ComprehensionKind.Filter or ComprehensionKind.TransformMap when verdict.AsBool:
                    var produced = kind == ComprehensionKind.Filter ? item : transform!.Eval(context);
                    if (produced.IsError)
                    {
                        return produced;
                    }

                    results!.Add(produced);
                    resultKeys?.Add(key);
                    break;
            }
        }

        return kind switch
        {
            ComprehensionKind.All => firstError ?? RuleValue.True,
            ComprehensionKind.Exists => firstError ?? RuleValue.False,
            ComprehensionKind.ExistsOne => RuleValue.Bool(matches == 1),
            ComprehensionKind.TransformMap => RuleValue.Map(new RuleMap([.. resultKeys!], [.. results!])),
            _ => RuleValue.List([.. results!]),
        };
    }
}

/// <summary>Turns the syntax tree into evaluation nodes: resolves macros, operators and functions once, at compile time.</summary>
internal sealed class RuleCompiler(string text)
{
    /// <summary>Marks an optional list element [?x] or map entry {?k: v} in the syntax tree.</summary>
    public const string OptionalEntry = "@optional";

    public static readonly HashSet<string> TypeNames = new(StringComparer.Ordinal)
    {
        "int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type", "optional_type",
    };

    private readonly List<string> _scope = [];

    /// <summary>How many iteration variables are live at once at most.</summary>
    public int LocalSlots { get; private set; }

    /// <summary>
    /// Parts of the rule that fail whenever they are evaluated, whatever the record: a function that does not exist, a
    /// constant pattern that is no regular expression, constants that fold to an error. CEL reports them when evaluated;
    /// a contract is refused for them, since every record would fail the rule.
    /// </summary>
    public List<string> Mistakes { get; } = [];

    /// <summary>The dotted names the rule reads from a variable (<c>value.customer.id</c> as its parts), in order.</summary>
    public List<string[]> NamesRead { get; } = [];

    /// <summary>The dotted names the rule tests with <c>has()</c> or <c>in</c> (<c>has(value.discount)</c>, <c>'discount' in value</c> as value, discount).</summary>
    public List<string[]> NamesTested { get; } = [];

    public Node Compile(Expr expr) => expr switch
    {
        ConstantExpr constant => new ConstantNode(constant.Value),
        IdentExpr ident => CompileIdent(ident.Name),
        SelectExpr select => CompileSelect(select),
        ListExpr list => CompileList(list),
        MapExpr map => CompileMap(map),
        CallExpr call => CompileCall(call),
        _ => throw Error("unsupported expression", expr),
    };

    private Node CompileList(ListExpr list)
    {
        var optional = OptionalFlags(list.Elements);
        Node[] elements = [.. list.Elements.Select(e => Compile(Unmarked(e)))];
        return Fold(new ListNode(elements, optional), elements);
    }

    private Node CompileMap(MapExpr map)
    {
        var optional = OptionalFlags(map.Keys);
        Node[] keys = [.. map.Keys.Select(e => Compile(Unmarked(e)))];
        Node[] values = [.. map.Values.Select(Compile)];
        return Fold(new MapNode(keys, values, optional), [.. keys, .. values]);
    }

    private static bool IsOptionalEntry(Expr expr) => expr is CallExpr { Function: OptionalEntry };

    private static Expr Unmarked(Expr expr) => IsOptionalEntry(expr) ? ((CallExpr)expr).Args[0] : expr;

    private static bool[]? OptionalFlags(Expr[] entries) =>
        entries.Any(IsOptionalEntry) ? [.. entries.Select(IsOptionalEntry)] : null;

    /// <summary>
    /// Evaluates a pure node whose inputs are all constants once, at compile time, so that literals
    /// such as ['EUR', 'USD'] or timestamp('2030-01-01T00:00:00Z') cost nothing per evaluation.
    /// Errors are left to evaluation time.
    /// </summary>
    private Node Fold(Node node, Node[] inputs)
    {
        foreach (var input in inputs)
        {
            if (!input.TryConstant(out _))
            {
                return node;
            }
        }

        var context = new EvalContext();
        context.Reset(null, null, RuleLimits.DefaultStepBudget, 0);
        var value = node.Eval(context);
        if (value.IsError)
        {
            Mistakes.Add(value.AsString);
            return node;
        }

        return new ConstantNode(value);
    }

    private RuleSyntaxException Error(string message, Expr at) => RuleLexer.Error(text, message, at.Offset);

    private Node CompileIdent(string name)
    {
        var slot = _scope.LastIndexOf(name);
        return slot >= 0 ? new LocalNode(slot) : new VariableNode(name);
    }

    private Node CompileSelect(SelectExpr select)
    {
        if (select.Optional)
        {
            return new OptionalSelectNode(Compile(select.Operand), select.Field);
        }

        var segments = QualifiedSegments(select);
        if (segments is not null)
        {
            var qualified = string.Join('.', segments);
            if (qualified is "google.protobuf.Timestamp" or "google.protobuf.Duration")
            {
                return new ConstantNode(RuleValue.Type(qualified));
            }

            if (_scope.LastIndexOf(segments[0]) < 0)
            {
                string[] names = [.. segments];
                NamesRead.Add(names);
                return new QualifiedNode(names);
            }
        }

        return new SelectNode(Compile(select.Operand), select.Field);
    }

    /// <summary>The names of a.b.c, or null when the chain has other parts (calls, indexes, quoted names).</summary>
    private static List<string>? QualifiedSegments(Expr expr)
    {
        switch (expr)
        {
            case IdentExpr ident:
                return [ident.Name];
            case SelectExpr select when !select.Optional && IsPlainName(select.Field) && QualifiedSegments(select.Operand) is { } prefix:
                prefix.Add(select.Field);
                return prefix;
            default:
                return null;
        }
    }

    private static bool IsPlainName(string name) => name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');

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

                if (QualifiedSegments(field) is { } tested && _scope.LastIndexOf(tested[0]) < 0)
                {
                    NamesTested.Add([.. tested]);
                }

                return new HasNode(Compile(field.Operand), field.Field);
            case "optMap" or "optFlatMap" when call.Target is not null && args.Length == 2 && args[0] is IdentExpr:
                return CompileOptionalMap(call);
            case OptionalEntry:
                throw Error("'?' marks optional entries only in list and map literals", call);
            case "bind" when call.Target is IdentExpr { Name: "cel" } && _scope.LastIndexOf("cel") < 0 && args.Length == 3 && args[0] is IdentExpr:
                return CompileBind(call);
            case "all" or "exists" or "exists_one" or "existsOne" or "filter" or "map" or "transformList" or "transformMap" when call.Target is not null && args.Length >= 2 && args[0] is IdentExpr:
                return CompileComprehension(call);
        }

        // 'discount' in value tests presence as has(value.discount) does: it guards reads of that name.
        if (call.Function == "@in" && args.Length == 2 && args[0] is ConstantExpr { Value.Kind: RuleValueKind.String } member
            && QualifiedSegments(args[1]) is { } container && _scope.LastIndexOf(container[0]) < 0)
        {
            NamesTested.Add([.. container, member.Value.AsString]);
        }

        var function = call.Function;
        var targetExpr = call.Target;
        // a call on a dotted name that is not a variable may be a namespaced function, as strings.quote(s)
        if (targetExpr is not null && QualifiedSegments(targetExpr) is { } space && _scope.LastIndexOf(space[0]) < 0
            && RuleFunctions.IsNamespacedFunction(string.Join('.', space) + "." + function, args.Length))
        {
            function = string.Join('.', space) + "." + function;
            targetExpr = null;
        }

        var target = targetExpr is null ? null : Compile(targetExpr);
        var compiled = args.Select(Compile).ToArray();
        var node = RuleFunctions.Bind(function, target, compiled);
        var all = target is null ? compiled : [target, .. compiled];
        if (node is not null)
        {
            if (function == "matches" && all.Length == 2 && all[1].TryConstant(out var pattern) && pattern.Kind == RuleValueKind.String && RuleRegex.Get(pattern.AsString).Error is { } invalid)
            {
                Mistakes.Add(invalid);
            }

            return Fold(node, all);
        }

        var unbound = $"unbound function: no such overload for '{call.Function}' with {all.Length} argument(s)";
        Mistakes.Add(unbound);
        return new UnboundCallNode(unbound, all);
    }

    private OptionalMapNode CompileOptionalMap(CallExpr call)
    {
        var range = Compile(call.Target!);
        var slot = _scope.Count;
        _scope.Add(((IdentExpr)call.Args[0]).Name);
        LocalSlots = Math.Max(LocalSlots, _scope.Count);
        try
        {
            return new OptionalMapNode(range, slot, Compile(call.Args[1]), string.Equals(call.Function, "optFlatMap", StringComparison.Ordinal));
        }
        finally
        {
            _scope.RemoveAt(slot);
        }
    }

    /// <summary>cel.bind(name, value, body): evaluates value once and binds it to name inside body.</summary>
    private BindNode CompileBind(CallExpr call)
    {
        var init = Compile(call.Args[1]);
        var slot = _scope.Count;
        _scope.Add(((IdentExpr)call.Args[0]).Name);
        LocalSlots = Math.Max(LocalSlots, _scope.Count);
        try
        {
            return new BindNode(slot, init, Compile(call.Args[2]));
        }
        finally
        {
            _scope.RemoveAt(slot);
        }
    }

    private ComprehensionNode CompileComprehension(CallExpr call)
    {
        var args = call.Args;
        var twoVariables = call.Function is "transformList" or "transformMap"
            || (call.Function is "all" or "exists" or "exists_one" or "existsOne" && args.Length == 3);
        if (twoVariables && args[1] is not IdentExpr)
        {
            throw Error($"macro {call.Function}() needs two variable names", call);
        }

        var kind = call.Function switch
        {
            "all" => ComprehensionKind.All,
            "exists" => ComprehensionKind.Exists,
            "exists_one" or "existsOne" => ComprehensionKind.ExistsOne,
            "filter" => ComprehensionKind.Filter,
            "transformMap" => ComprehensionKind.TransformMap,
            _ => ComprehensionKind.Map,
        };
        var variables = twoVariables ? 2 : 1;
        var rest = args.Length - variables;
        var allowed = kind is ComprehensionKind.Map or ComprehensionKind.TransformMap ? rest is 1 or 2 : rest == 1;
        if (!allowed)
        {
            throw Error($"macro {call.Function}() has the wrong number of arguments", call);
        }

        var range = Compile(call.Target!);
        var slot = _scope.Count;
        _scope.Add(((IdentExpr)args[0]).Name);
        var valueSlot = -1;
        if (twoVariables)
        {
            valueSlot = _scope.Count;
            _scope.Add(((IdentExpr)args[1]).Name);
        }

        LocalSlots = Math.Max(LocalSlots, _scope.Count);
        try
        {
            if (kind is ComprehensionKind.Map or ComprehensionKind.TransformMap)
            {
                var filter = rest == 2 ? Compile(args[variables]) : null;
                var transform = Compile(args[^1]);
                return new ComprehensionNode(kind, range, slot, valueSlot, filter, transform);
            }

            return new ComprehensionNode(kind, range, slot, valueSlot, Compile(args[^1]), null);
        }
        finally
        {
            _scope.RemoveRange(slot, _scope.Count - slot);
        }
    }
}
