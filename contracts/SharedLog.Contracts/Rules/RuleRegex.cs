using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace SharedLog.Contracts.Rules;

/// <summary>A translated, compiled pattern, or why it was refused; <paramref name="Size"/> is its size with counted repeats spelled out.</summary>
internal sealed record CompiledPattern(Regex? Regex, string? Error, long Size = 1);

/// <summary>
/// matches(): RE2 syntax translated to .NET and run with <see cref="RegexOptions.NonBacktracking"/>,
/// whose matching time is linear in the input. RE2 constructs .NET reads differently are rewritten
/// (ASCII-only \d \w \s, $ as end of text, (?P&lt;name&gt;), POSIX classes, \Q..\E, \x{...});
/// constructs neither engine supports in linear time (backreferences, lookaround) are refused.
/// </summary>
internal static class RuleRegex
{
    private const int MaxCached = 256;
    private const int MaxRepeat = 1000;

    private static readonly ConcurrentDictionary<string, CompiledPattern> Cache = new(StringComparer.Ordinal);

    /// <summary>
    /// A POSIX class as ranges of a .NET class: its (ASCII) members, or for RE2's <c>[:^name:]</c> every UTF-16 unit
    /// outside it (a negated class inside a class has no .NET spelling).
    /// </summary>
    private static string PosixRanges(Func<char, bool> member, bool negated)
    {
        var ranges = new StringBuilder();
        int start = -1;
        for (int c = 0; c <= 0x80; c++)
        {
            // 0x80 stands for everything above ASCII: never a member, so outside a negated class's ranges it runs to U+FFFF.
            bool wanted = c < 0x80 && member((char)c) != negated;
            if (wanted && start < 0)
            {
                start = c;
            }
            else if (!wanted && start >= 0)
            {
                ranges.Append(CultureInfo.InvariantCulture, $"\\u{start:X4}-\\u{c - 1:X4}");
                start = -1;
            }
        }

        return negated ? ranges.Append("\\u0080-\\uFFFF").ToString() : ranges.ToString();
    }

    // The members of each POSIX class, all ASCII as in RE2.
    private static readonly Dictionary<string, Func<char, bool>> PosixMembers = new(StringComparer.Ordinal)
    {
        ["alnum"] = char.IsAsciiLetterOrDigit,
        ["alpha"] = char.IsAsciiLetter,
        ["ascii"] = static c => c <= 0x7F,
        ["blank"] = static c => c is '\t' or ' ',
        ["cntrl"] = static c => c < 0x20 || c == 0x7F,
        ["digit"] = char.IsAsciiDigit,
        ["graph"] = static c => c is >= '!' and <= '~',
        ["lower"] = char.IsAsciiLetterLower,
        ["print"] = static c => c is >= ' ' and <= '~',
        ["punct"] = static c => c is >= '!' and <= '~' && !char.IsAsciiLetterOrDigit(c),
        ["space"] = static c => c is '\t' or '\n' or '\v' or '\f' or '\r' or ' ',
        ["upper"] = char.IsAsciiLetterUpper,
        ["word"] = static c => char.IsAsciiLetterOrDigit(c) || c == '_',
        ["xdigit"] = char.IsAsciiHexDigit,
    };

    /// <summary>
    /// Steps a pattern taken from a record costs, cached or not (the process-wide cache must not change a record's outcome):
    /// about the time of a thousand ordinary steps per 100 pattern characters, at least ten thousand, as compiling a
    /// pattern of 95 characters took 2 ms.
    /// </summary>
    public static long CompileSteps(string pattern) => Math.Max(10_000, pattern.Length * 10L);

    public static CompiledPattern Get(string pattern)
    {
        if (Cache.TryGetValue(pattern, out var cached))
        {
            return cached;
        }

        var compiled = Compile(pattern);
        // bounded: patterns may come from record data
        if (Cache.Count < MaxCached)
        {
            Cache.TryAdd(pattern, compiled);
        }

        return compiled;
    }

    [System.Runtime.CompilerServices.SkipLocalsInit]
    public static RuleValue Match(EvalContext context, in RuleValue input, CompiledPattern pattern)
    {
        if (input.Kind != RuleValueKind.String)
        {
            return RuleValue.Error($"no such overload: matches({input.TypeName}, string)");
        }

        if (pattern.Regex is null)
        {
            return RuleValue.Error(pattern.Error!);
        }

        Span<char> scratch = stackalloc char[RuleValue.TextScratchLength];
        ReadOnlySpan<char> text = input.Text(scratch);
        // Linear in the input, but each character may step every state of the pattern's automaton, and counted repeats
        // multiply them ([ab]{1000} is a thousand): past a small pattern, the charge grows with its size.
        if (!context.Charge(MatchWork(text.Length, pattern.Size)))
        {
            return RuleValue.Error(EvalContext.BudgetExceeded);
        }

        return RuleValue.Bool(pattern.Regex.IsMatch(text));
    }

    private static CompiledPattern Compile(string pattern)
    {
        if (pattern.Length > RuleLimits.MaxPatternLength)
        {
            return new CompiledPattern(null, $"regular expression is longer than {RuleLimits.MaxPatternLength} characters");
        }

        try
        {
            var translated = Translate(pattern);
            return new CompiledPattern(new Regex(translated, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant), null, ExpandedSize(translated));
        }
        catch (RuleSyntaxException ex)
        {
            return new CompiledPattern(null, $"invalid regular expression '{pattern}': {ex.Reason}");
        }
        catch (ArgumentException ex)
        {
            return new CompiledPattern(null, $"invalid regular expression '{pattern}': {ex.Message}");
        }
        catch (NotSupportedException ex)
        {
            return new CompiledPattern(null, $"unsupported regular expression '{pattern}': {ex.Message}");
        }
    }

    /// <summary>Pattern size up to which a match is charged by the input's length alone.</summary>
    private const int SizeChargedAsOne = 16;

    /// <summary>
    /// The work of a linear-time match of <paramref name="textLength"/> characters against a pattern of
    /// <see cref="ExpandedSize"/> <paramref name="patternSize"/>: one per 16 characters for a small pattern, times the
    /// pattern's size in sixteens past that ([ab]*a[ab]{1000}c takes 9 us a character, ^[a-z]+$ 15 ns).
    /// </summary>
    internal static long MatchWork(int textLength, long patternSize) => 1 + (textLength / 16 * Math.Clamp(patternSize / SizeChargedAsOne, 1, int.MaxValue));

    /// <summary>
    /// The size of a translated (valid .NET) pattern with its counted repeats spelled out: a character, class or escape is
    /// one, a group the sum of what it holds, <c>x{n,m}</c> m times x's size. An estimate of the automaton's states, which
    /// the work per input character can reach.
    /// </summary>
    internal static long ExpandedSize(string pattern)
    {
        const long Cap = 1L << 40;
        var groups = new Stack<(long Total, long Last)>();
        long total = 0;
        long last = 0;
        var i = 0;
        while (i < pattern.Length)
        {
            var c = pattern[i];
            switch (c)
            {
                case '\\':
                    // \p{Name} and \P{Name} hold braces that are no repeat; \uXXXX and \xXX are one character too.
                    var next = i + 1 < pattern.Length ? pattern[i + 1] : '\0';
                    var close = next is 'p' or 'P' && i + 2 < pattern.Length && pattern[i + 2] == '{' ? pattern.IndexOf('}', i + 2) : -1;
                    i = close >= 0 ? close + 1 : next == 'u' ? i + 6 : next == 'x' ? i + 4 : i + 2;
                    total += last = 1;
                    continue;
                case '[':
                    var j = i + 1;
                    j += j < pattern.Length && pattern[j] == '^' ? 1 : 0;
                    j += j < pattern.Length && pattern[j] == ']' ? 1 : 0;
                    for (var depth = 1; j < pattern.Length && depth > 0; j++)
                    {
                        // A subtraction ([a-z-[aeiou]]) nests a class; an escaped bracket (\[, \]) is a member, skipped whole.
                        if (pattern[j] == '\\')
                        {
                            j++;
                            continue;
                        }

                        depth += pattern[j] switch { '[' => 1, ']' => -1, _ => 0 };
                    }

                    i = j;
                    total += last = 1;
                    continue;
                case '(':
                    groups.Push((total, last));
                    (total, last) = (0, 0);
                    i++;
                    if (i < pattern.Length && pattern[i] == '?')
                    {
                        // (?:, (?<name>, (?i) and (?i: open no atom of their own.
                        while (i < pattern.Length && pattern[i] is not (':' or '>' or ')'))
                        {
                            i++;
                        }

                        i += i < pattern.Length && pattern[i] != ')' ? 1 : 0;
                    }

                    continue;
                case ')':
                    var group = total;
                    (total, last) = groups.Count > 0 ? groups.Pop() : (0, 0);
                    total = Math.Min(Cap, total + group);
                    last = group;
                    i++;
                    continue;
                case '{' when RepeatAt(pattern, i, out var times, out var end):
                    total = Math.Min(Cap, total + (last * (times - 1)));
                    last = Math.Min(Cap, last * times);
                    i = end + 1;
                    continue;
                case '*' or '+' or '?' or '|' or '^' or '$':
                    i++;
                    continue;
                default:
                    total += last = 1;
                    i++;
                    continue;
            }
        }

        while (groups.Count > 0)
        {
            total = Math.Min(Cap, total + groups.Pop().Total);
        }

        return Math.Max(1, total);
    }

    /// <summary>Whether a counted repeat (<c>{n}</c>, <c>{n,}</c>, <c>{n,m}</c>) starts at <paramref name="start"/>: the times it spells out and where it ends.</summary>
    private static bool RepeatAt(string pattern, int start, out long times, out int end)
    {
        times = 0;
        end = pattern.IndexOf('}', start);
        if (end < 0)
        {
            return false;
        }

        var parts = pattern.AsSpan(start + 1, end - start - 1);
        var comma = parts.IndexOf(',');
        if (!int.TryParse(comma < 0 ? parts : parts[..comma], NumberStyles.None, CultureInfo.InvariantCulture, out var least))
        {
            return false;
        }

        if (comma < 0 || comma == parts.Length - 1)
        {
            times = comma < 0 ? least : least + 1;
            return true;
        }

        if (!int.TryParse(parts[(comma + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var most))
        {
            return false;
        }

        times = Math.Max(least, most);
        return true;
    }

    /// <summary>Rewrites RE2 syntax into equivalent .NET syntax; throws <see cref="RuleSyntaxException"/> for what has no linear-time equivalent.</summary>
    internal static string Translate(string pattern)
    {
        var output = new StringBuilder(pattern.Length + 16);
        var multiline = HasMultilineFlag(pattern);
        var inClass = false;
        var i = 0;
        while (i < pattern.Length)
        {
            var c = pattern[i];
            if (c == '\\')
            {
                i = TranslateEscape(pattern, i, inClass, output);
                continue;
            }

            if (inClass)
            {
                if (c == '[' && pattern.AsSpan(i).StartsWith("[:"))
                {
                    var end = pattern.IndexOf(":]", i + 2, StringComparison.Ordinal);
                    if (end < 0)
                    {
                        throw new RuleSyntaxException("unterminated POSIX class");
                    }

                    var name = pattern[(i + 2)..end];
                    var negated = name.StartsWith('^');
                    if (!PosixMembers.TryGetValue(negated ? name[1..] : name, out var member))
                    {
                        throw new RuleSyntaxException($"unsupported POSIX class [:{name}:]");
                    }

                    output.Append(PosixRanges(member, negated));
                    i = end + 2;
                    continue;
                }

                if (c == '[')
                {
                    output.Append("\\["); // .NET would read [a-[b]] as class subtraction
                    i++;
                    continue;
                }

                if (char.IsSurrogate(c))
                {
                    // .NET classes hold UTF-16 units: [😀] would match either half of any character sharing one (a wrong answer).
                    throw new RuleSyntaxException("code points above U+FFFF are not supported in character classes");
                }

                if (c == ']')
                {
                    inClass = false;
                }

                output.Append(c);
                i++;
                continue;
            }

            switch (c)
            {
                case '[':
                    inClass = true;
                    output.Append('[');
                    i++;
                    if (i < pattern.Length && pattern[i] == '^')
                    {
                        output.Append('^');
                        i++;
                    }

                    if (i < pattern.Length && pattern[i] == ']')
                    {
                        output.Append("\\]"); // a leading ] is a literal in RE2
                        i++;
                    }

                    continue;
                case '(':
                    i = TranslateGroup(pattern, i, output);
                    continue;
                case '$':
                    output.Append(multiline ? "$" : "\\z");
                    i++;
                    continue;
                case '{':
                    CheckRepeat(pattern, i);
                    break;
            }

            output.Append(c);
            i++;
        }

        if (inClass)
        {
            throw new RuleSyntaxException("missing closing ]");
        }

        return output.ToString();
    }

    private static bool HasMultilineFlag(string pattern)
    {
        for (var i = pattern.IndexOf("(?", StringComparison.Ordinal); i >= 0; i = pattern.IndexOf("(?", i + 2, StringComparison.Ordinal))
        {
            for (var j = i + 2; j < pattern.Length && char.IsAsciiLetter(pattern[j]) || (j < pattern.Length && pattern[j] == '-'); j++)
            {
                if (pattern[j] == 'm')
                {
                    return true;
                }
            }
        }

        return false;
    }

    private static void CheckRepeat(string pattern, int start)
    {
        var end = pattern.IndexOf('}', start);
        if (end < 0)
        {
            return;
        }

        foreach (var part in pattern[(start + 1)..end].Split(','))
        {
            if (int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var count) && count > MaxRepeat)
            {
                throw new RuleSyntaxException($"repeat count {count} exceeds {MaxRepeat}");
            }
        }
    }

    private static int TranslateGroup(string pattern, int i, StringBuilder output)
    {
        var rest = pattern.AsSpan(i);
        if (rest.StartsWith("(?P<"))
        {
            output.Append("(?<");
            return i + 4;
        }

        if (rest.StartsWith("(?=") || rest.StartsWith("(?!") || rest.StartsWith("(?<=") || rest.StartsWith("(?<!"))
        {
            throw new RuleSyntaxException("lookaround assertions are not supported");
        }

        if (rest.StartsWith("(?>"))
        {
            throw new RuleSyntaxException("atomic groups are not supported");
        }

        if (rest.StartsWith("(?<") || rest.StartsWith("(?'"))
        {
            throw new RuleSyntaxException("named groups are written (?P<name>...)");
        }

        if (rest.StartsWith("(?"))
        {
            var j = 2;
            while (j < rest.Length && rest[j] != ')' && rest[j] != ':')
            {
                if (rest[j] is not ('i' or 'm' or 's' or '-'))
                {
                    throw new RuleSyntaxException($"unsupported group flag '{rest[j]}'");
                }

                j++;
            }
        }

        output.Append('(');
        return i + 1;
    }

    private static int TranslateEscape(string pattern, int i, bool inClass, StringBuilder output)
    {
        if (i + 1 >= pattern.Length)
        {
            throw new RuleSyntaxException("trailing backslash");
        }

        var next = pattern[i + 1];
        switch (next)
        {
            case 'd':
                output.Append(inClass ? "0-9" : "[0-9]");
                return i + 2;
            case 'D':
                output.Append(inClass ? "\\x00-/:-\\uFFFF" : "[^0-9]");
                return i + 2;
            case 'w':
                output.Append(inClass ? "0-9A-Za-z_" : "[0-9A-Za-z_]");
                return i + 2;
            case 'W':
                if (inClass)
                {
                    throw new RuleSyntaxException("\\W inside a character class is not supported");
                }

                output.Append("[^0-9A-Za-z_]");
                return i + 2;
            case 's':
                output.Append(inClass ? "\\t\\n\\f\\r " : "[\\t\\n\\f\\r ]");
                return i + 2;
            case 'S':
                if (inClass)
                {
                    throw new RuleSyntaxException("\\S inside a character class is not supported");
                }

                output.Append("[^\\t\\n\\f\\r ]");
                return i + 2;
            case 'Q':
                var end = pattern.IndexOf("\\E", i + 2, StringComparison.Ordinal);
                var literal = end < 0 ? pattern[(i + 2)..] : pattern[(i + 2)..end];
                output.Append(Regex.Escape(literal));
                return end < 0 ? pattern.Length : end + 2;
            case 'x' when i + 2 < pattern.Length && pattern[i + 2] == '{':
                var close = pattern.IndexOf('}', i + 3);
                if (close < 0 || !int.TryParse(pattern.AsSpan(i + 3, close - i - 3), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var codePoint) || codePoint > 0x10FFFF)
                {
                    throw new RuleSyntaxException("invalid \\x{...} escape");
                }

                if (codePoint > 0xFFFF)
                {
                    if (inClass)
                    {
                        throw new RuleSyntaxException("code points above U+FFFF are not supported in character classes");
                    }

                    output.Append("(?:").Append(Regex.Escape(char.ConvertFromUtf32(codePoint))).Append(')');
                }
                else
                {
                    output.Append("\\u").Append(codePoint.ToString("X4", CultureInfo.InvariantCulture));
                }

                return close + 1;
            case 'p' or 'P' when i + 2 < pattern.Length && pattern[i + 2] != '{':
                output.Append('\\').Append(next).Append('{').Append(pattern[i + 2]).Append('}');
                return i + 3;
            case 'p' or 'P' when i + 3 < pattern.Length && pattern[i + 3] == '^':
                // RE2's negated form \p{^L} is .NET's \P{L} (and \P{^L} is \p{L}).
                output.Append('\\').Append(next == 'p' ? 'P' : 'p').Append('{');
                return i + 4;
            case 'C':
                throw new RuleSyntaxException("\\C is not supported");
            case 'Z':
                throw new RuleSyntaxException("\\Z is not RE2 syntax; use \\z");
            case '0':
            case >= '1' and <= '7' when i + 2 < pattern.Length && pattern[i + 2] is >= '0' and <= '7':
                // RE2: \0, or a digit 1-7 followed by an octal digit, starts an octal code of up to three digits (\141 is 'a').
                int octalEnd = i + 1;
                int octalCode = 0;
                while (octalEnd < pattern.Length && octalEnd < i + 4 && pattern[octalEnd] is >= '0' and <= '7')
                {
                    octalCode = (octalCode * 8) + (pattern[octalEnd] - '0');
                    octalEnd++;
                }

                output.Append("\\u").Append(octalCode.ToString("X4", CultureInfo.InvariantCulture));
                return octalEnd;
            case >= '1' and <= '9':
                throw new RuleSyntaxException("backreferences are not supported");
            default:
                output.Append('\\').Append(next);
                return i + 2;
        }
    }
}
