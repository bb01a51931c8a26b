namespace SharedLog.Contracts.Rules;

/// <summary>Bounds that keep one rule evaluation cheap and finite.</summary>
public static class RuleLimits
{
    /// <summary>Longest expression text accepted.</summary>
    public const int MaxExpressionLength = RuleParser.MaxExpressionLength;

    /// <summary>Deepest syntactic nesting (parentheses, calls, lists, ...).</summary>
    public const int MaxNesting = RuleParser.MaxNesting;

    /// <summary>Evaluation steps one evaluation may take (operators, calls, macro iterations, and work proportional to data size).</summary>
    public const int DefaultStepBudget = 100_000;

    /// <summary>Longest string or bytes value an evaluation may build.</summary>
    public const int MaxStringLength = 1 << 20;

    /// <summary>Most elements a list or map built by an evaluation may have.</summary>
    public const int MaxCollectionSize = 100_000;

    /// <summary>Longest regular expression accepted by matches().</summary>
    public const int MaxPatternLength = 4096;
}

/// <summary>Resolves the variables of a rule evaluation (an alternative to a dictionary).</summary>
public interface IRuleActivation
{
    bool TryResolve(string name, out object? value);
}

/// <summary>Error is the zero value, so a default outcome never reads as a pass.</summary>
public enum RuleOutcomeKind
{
    Error,
    Passed,
    Failed,
}

/// <summary>The verdict of a rule: true passes, false fails, anything else (an error, a non-bool) is an error.</summary>
public readonly record struct RuleOutcome(RuleOutcomeKind Kind, string? ErrorMessage)
{
    public static RuleOutcome Passed => new(RuleOutcomeKind.Passed, null);

    public static RuleOutcome Failed => new(RuleOutcomeKind.Failed, null);

    public bool IsPassed => Kind == RuleOutcomeKind.Passed;

    public bool IsFailed => Kind == RuleOutcomeKind.Failed;

    public bool IsError => Kind == RuleOutcomeKind.Error;

    public static RuleOutcome Error(string message) => new(RuleOutcomeKind.Error, message);
}

/// <summary>Entry point: compiles rule expressions in the common subset of CEL.</summary>
public static class CelRule
{
    /// <summary>Parses and compiles an expression; throws <see cref="RuleSyntaxException"/> with line and column.</summary>
    public static CompiledRule Compile(string expression)
    {
        var ast = RuleParser.Parse(expression);
        var compiler = new RuleCompiler(expression);
        var root = compiler.Compile(ast);
        if (root.TryConstant(out var constant) && constant.Kind != RuleValueKind.Bool)
        {
            compiler.Mistakes.Add($"the rule always evaluates to {constant.TypeName}, not a boolean");
        }

        return new CompiledRule(expression, root, compiler.LocalSlots) { Mistakes = [.. compiler.Mistakes], NamesRead = compiler.NamesRead, NamesTested = compiler.NamesTested };
    }
}

/// <summary>
/// A compiled rule: immutable and thread-safe, so compile once and evaluate many times. Each
/// evaluation is bounded by a step budget and by size limits on the values it builds.
/// </summary>
public sealed class CompiledRule
{
    [ThreadStatic]
    private static EvalContext? _threadContext;

    private readonly Node _root;
    private readonly int _localSlots;

    internal CompiledRule(string expression, Node root, int localSlots)
    {
        Expression = expression;
        _root = root;
        _localSlots = localSlots;
    }

    public string Expression { get; }

    /// <summary>What the rule fails on whatever the record (<see cref="RuleCompiler.Mistakes"/>); empty for a rule that can hold.</summary>
    public IReadOnlyList<string> Mistakes { get; init; } = [];

    /// <summary>
    /// The dotted names the rule reads from its variables (<c>value.customer.id</c> as value, customer, id), outside
    /// macros' own variables: what a contract check holds against the schemas (a name no schema declares fails the rule
    /// on every record that reaches it).
    /// </summary>
    public IReadOnlyList<IReadOnlyList<string>> NamesRead { get; init; } = [];

    /// <summary>The dotted names the rule tests with <c>has()</c>, which guard reads of the same names.</summary>
    public IReadOnlyList<IReadOnlyList<string>> NamesTested { get; init; } = [];

    public RuleOutcome Evaluate(IReadOnlyDictionary<string, object?> variables) => ToOutcome(EvaluateValue(variables));

    public RuleOutcome Evaluate(IRuleActivation activation) => ToOutcome(EvaluateValue(activation));

    public RuleValue EvaluateValue(IReadOnlyDictionary<string, object?> variables, int stepBudget = RuleLimits.DefaultStepBudget)
    {
        ArgumentNullException.ThrowIfNull(variables);
        return Run(variables, null, stepBudget);
    }

    public RuleValue EvaluateValue(IRuleActivation activation, int stepBudget = RuleLimits.DefaultStepBudget)
    {
        ArgumentNullException.ThrowIfNull(activation);
        return Run(null, activation, stepBudget);
    }

    /// <summary>
    /// Evaluates <paramref name="rules"/> in order on one activation, each with its own step budget, and stops at the first
    /// that does not pass: its index and outcome, or -1 when all pass. One evaluation context serves them all.
    /// </summary>
    public static int FirstNotPassing(ReadOnlySpan<CompiledRule> rules, IRuleActivation activation, out RuleOutcome outcome)
    {
        ArgumentNullException.ThrowIfNull(activation);
        EvalContext context = AcquireContext();
        try
        {
            for (int i = 0; i < rules.Length; i++)
            {
                CompiledRule rule = rules[i];
                outcome = ToOutcome(rule.EvaluateIn(context, null, activation, RuleLimits.DefaultStepBudget));
                if (!outcome.IsPassed)
                {
                    return i;
                }
            }
        }
        finally
        {
            context.Release();
        }

        outcome = RuleOutcome.Passed;
        return -1;
    }

    private static RuleOutcome ToOutcome(in RuleValue value) => value.Kind switch
    {
        RuleValueKind.Bool => value.AsBool ? RuleOutcome.Passed : RuleOutcome.Failed,
        RuleValueKind.Error => RuleOutcome.Error(value.ErrorMessage),
        _ => RuleOutcome.Error($"rule result is {value.TypeName}, not bool"),
    };

    private RuleValue Run(IReadOnlyDictionary<string, object?>? variables, IRuleActivation? activation, int stepBudget)
    {
        EvalContext context = AcquireContext();
        try
        {
            return EvaluateIn(context, variables, activation, stepBudget);
        }
        finally
        {
            context.Release();
        }
    }

    /// <summary>This thread's evaluation context, reused so evaluation allocates nothing for scalar rules; a new one when it is in use (a rule evaluated inside another's evaluation).</summary>
    private static EvalContext AcquireContext()
    {
        var context = _threadContext ??= new EvalContext();
        return context.InUse ? new EvalContext() : context;
    }

    /// <summary>One evaluation in <paramref name="context"/>, from a fresh step budget and clear locals.</summary>
    private RuleValue EvaluateIn(EvalContext context, IReadOnlyDictionary<string, object?>? variables, IRuleActivation? activation, int stepBudget)
    {
        context.Reset(variables, activation, stepBudget, _localSlots);
        var result = _root.Eval(context);
        return context.Exhausted ? RuleValue.Error(EvalContext.BudgetExceeded) : result;
    }
}
