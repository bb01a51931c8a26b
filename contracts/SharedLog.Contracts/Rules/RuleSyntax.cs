namespace SharedLog.Contracts.Rules;

/// <summary>A rule expression that does not parse, or is outside the supported subset. Line and column are 1-based.</summary>
public sealed class RuleSyntaxException : Exception
{
    public RuleSyntaxException(string message, int line, int column)
        : base($"{message} (line {line}, column {column})")
    {
        Reason = message;
        Line = line;
        Column = column;
    }

    public RuleSyntaxException()
        : this("invalid rule expression", 1, 1)
    {
    }

    public RuleSyntaxException(string message)
        : this(message, 1, 1)
    {
    }

    public RuleSyntaxException(string message, Exception innerException)
        : base(message, innerException)
    {
        Reason = message;
        Line = 1;
        Column = 1;
    }

    /// <summary>The message without the position.</summary>
    public string Reason { get; }

    public int Line { get; }

    public int Column { get; }
}

/// <summary>Syntax tree of a rule expression. Operators are calls named like CEL's internal names (_+_, _&amp;&amp;_, ...).</summary>
internal abstract class Expr(int offset)
{
    /// <summary>Character offset in the expression text, for error positions.</summary>
    public int Offset { get; } = offset;

    /// <summary>Height of the subtree; bounded so evaluation recursion is bounded.</summary>
    public abstract int Height { get; }

    protected static int MaxHeight(IEnumerable<Expr> children)
    {
        var height = 0;
        foreach (var child in children)
        {
            height = Math.Max(height, child.Height);
        }

        return height;
    }
}

internal sealed class ConstantExpr(int offset, RuleValue value) : Expr(offset)
{
    public RuleValue Value { get; } = value;

    public override int Height => 1;
}

internal sealed class IdentExpr(int offset, string name) : Expr(offset)
{
    public string Name { get; } = name;

    public override int Height => 1;
}

internal sealed class SelectExpr(int offset, Expr operand, string field, bool optional = false) : Expr(offset)
{
    public Expr Operand { get; } = operand;

    public string Field { get; } = field;

    /// <summary>Optional selection a.?b: an optional value instead of an error when the field is absent.</summary>
    public bool Optional { get; } = optional;

    public override int Height { get; } = operand.Height + 1;
}

internal sealed class CallExpr(int offset, Expr? target, string function, Expr[] args) : Expr(offset)
{
    public Expr? Target { get; } = target;

    public string Function { get; } = function;

    public Expr[] Args { get; } = args;

    public override int Height { get; } = Math.Max(target?.Height ?? 0, MaxHeight(args)) + 1;
}

internal sealed class ListExpr(int offset, Expr[] elements) : Expr(offset)
{
    public Expr[] Elements { get; } = elements;

    public override int Height { get; } = MaxHeight(elements) + 1;
}

internal sealed class MapExpr(int offset, Expr[] keys, Expr[] values) : Expr(offset)
{
    public Expr[] Keys { get; } = keys;

    public Expr[] Values { get; } = values;

    public override int Height { get; } = Math.Max(MaxHeight(keys), MaxHeight(values)) + 1;
}
