using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace SharedLog.Contracts.Formats.Json;

/// <summary>
/// Decides whether every value valid under a writer schema is valid under a reader schema, by a
/// structural comparison that errs on the side of "incompatible" where containment cannot be shown.
/// The writer side is a conjunction of schemas (from allOf, $ref siblings and the chosen branch of a
/// union); the reader side is checked one schema at a time, since accepting a conjunction means
/// accepting each part.
/// </summary>
internal sealed class JsonSchemaComparer
{
    private const int MaxComparisonDepth = 1000;
    private const int MaxSteps = 25_000;
    private const int MaxConjuncts = 256;

    /// <summary>
    /// Work (<see cref="Rules.RuleRegex.MatchWork"/>: at least one per match) of matching property names against
    /// patternProperties in one comparison, at most: a schema may hold thousands of each, and a large pattern costs more per
    /// character.
    /// </summary>
    private const long MaxPatternWork = 1_000_000;
    private const int MaxMessages = 100;
    private const int MaxMessageChars = 1_000;
    private const string TooComplex = "#: the schemas are too large or too recursive to compare within limits; treated as incompatible";

    /// <summary>Keywords whose containment is not worked out: the reader's value must equal one of the writer's.</summary>
    private static readonly string[] ExactKeywords =
    [
        "not", "if", "then", "else", "unevaluatedProperties", "unevaluatedItems", "minContains", "maxContains", "$dynamicRef", "$recursiveRef",
    ];

    private static readonly string[] ExactMapKeywords = ["dependencies", "dependentRequired", "dependentSchemas"];

    /// <summary>Pairs under comparison: meeting one again means a recursive schema, assumed compatible (co-induction).</summary>
    private readonly HashSet<string> _inProgress = new(StringComparer.Ordinal);
    private int _steps;
    private bool _overBudget;
    private long _patternWork;

    /// <summary>CPU time the backtracking patterns' matches took in this comparison (<see cref="ThreadCpuClock"/>).</summary>
    private long _backtrackingNanoseconds;

    /// <summary>Most CPU time the backtracking matches of one comparison may take together, as for one record's.</summary>
    private static readonly long MaxBacktrackingNanoseconds = (long)(BoundedRegex.RecordAllowance.TotalMilliseconds * 1_000_000);

    /// <summary>Each pattern compiled once per comparison; null for one that is not a valid .NET pattern.</summary>
    private readonly Dictionary<string, (Regex Regex, long Size)?> _patterns = new(StringComparer.Ordinal);

    public IReadOnlyList<string> Compare(JsonSchemaSet reader, JsonSchemaSet writer)
    {
        var messages = new List<string>();
        Check("#", reader.Root.RootNode, new WriterView([writer.Root.RootNode], "the writer schema"), messages, 0);
        if (_overBudget)
        {
            messages.Add(TooComplex);
        }

        // A long property name repeats in the path of every message under it: the answer keeps the first hundred, each cut in
        // its middle (the path's start and the difference at its end stay).
        var distinct = messages.Distinct(StringComparer.Ordinal).ToList();
        var shown = distinct.Take(MaxMessages).Select(static m => ShortText.Cut(m, MaxMessageChars)).ToList();
        if (distinct.Count > MaxMessages)
        {
            shown.Add($"#: and {distinct.Count - MaxMessages} more differences");
        }

        return shown;
    }

    private void Check(string path, SchemaNode reader, WriterView writer, List<string> messages, int depth)
    {
        if (_overBudget)
        {
            messages.Add(TooComplex);
            return;
        }

        if (++_steps > MaxSteps || depth > MaxComparisonDepth || !RuntimeHelpers.TryEnsureSufficientExecutionStack())
        {
            _overBudget = true;
            messages.Add(TooComplex);
            return;
        }

        var conjuncts = Flatten(writer.Conjuncts);
        if (conjuncts is null || reader.IsTrue)
        {
            // The writer accepts nothing, or the reader accepts everything.
            return;
        }

        if (reader.IsFalse)
        {
            messages.Add($"{path}: the reader schema is false and rejects every value {writer.Label} allows");
            return;
        }

        var key = reader.Location + "<=" + string.Join(",", conjuncts.Select(static c => c.Location).Order(StringComparer.Ordinal));
        if (!_inProgress.Add(key))
        {
            return;
        }

        try
        {
            CheckResolved(path, reader, writer with { Conjuncts = conjuncts }, messages, depth);
        }
        finally
        {
            _inProgress.Remove(key);
        }
    }

    private void CheckResolved(string path, SchemaNode reader, WriterView writer, List<string> messages, int depth)
    {
        if (reader.TryGet("$ref", out var reference))
        {
            if (reader.Document.Set.Resolve(reader.Document, reader.Pointer, reference.GetString()!) is { } target)
            {
                Check(path, target, writer, messages, depth + 1);
            }

            if (!reader.Document.RefOverridesSiblings)
            {
                Check(path, reader.Without(IgnoredKeywords.Ref), writer, messages, depth + 1);
            }

            return;
        }

        if (reader.TryGet("allOf", out var allOf))
        {
            var index = 0;
            foreach (var part in allOf.EnumerateArray())
            {
                Check($"{path}/allOf/{Index(index)}", reader.Child(part, "allOf", Index(index)), writer, messages, depth + 1);
                index++;
            }

            Check(path, reader.Without(IgnoredKeywords.AllOf), writer, messages, depth + 1);
            return;
        }

        if (ExpandWriterUnion(path, reader, writer, messages, depth))
        {
            return;
        }

        if (reader.TryGet("anyOf", out _) || reader.TryGet("oneOf", out _))
        {
            CheckReaderUnion(path, reader, "anyOf", writer, messages, depth);
            CheckReaderUnion(path, reader, "oneOf", writer, messages, depth);
            Check(path, reader.Without(IgnoredKeywords.AnyOf | IgnoredKeywords.OneOf), writer, messages, depth + 1);
            return;
        }

        CheckKeywords(path, reader, writer, messages, depth);
    }

    /// <summary>A writer union is a set of alternatives: the reader must accept each of them.</summary>
    private bool ExpandWriterUnion(string path, SchemaNode reader, WriterView writer, List<string> messages, int depth)
    {
        var unions = writer.Conjuncts.Where(static c => c.TryGet("anyOf", out _) || c.TryGet("oneOf", out _)).ToList();
        if (unions.Count == 0)
        {
            return false;
        }

        // A conjunction is contained in the reader when one of its parts is; trying each union on its own
        // first avoids multiplying out independent unions (allOf of several oneOfs).
        if (writer.Conjuncts.Count > 1)
        {
            foreach (var union in unions)
            {
                var attempt = new List<string>();
                Check(path, reader, writer with { Conjuncts = [union] }, attempt, depth + 1);
                if (attempt.Count == 0)
                {
                    return true;
                }
            }
        }

        for (var k = 0; k < writer.Conjuncts.Count; k++)
        {
            var conjunct = writer.Conjuncts[k];
            var kind = conjunct.TryGet("anyOf", out var branches) ? "anyOf" : conjunct.TryGet("oneOf", out branches) ? "oneOf" : null;
            if (kind is null)
            {
                continue;
            }

            // oneOf rejects a value matching two branches, which anyOf accepted.
            if (kind == "anyOf" && !conjunct.TryGet("oneOf", out _) && reader.TryGet("oneOf", out _) && !reader.TryGet("anyOf", out _))
            {
                messages.Add($"{path}: combined type changed from anyOf to oneOf; a value matching several branches would be rejected");
            }

            var rest = writer.Conjuncts.Where((_, i) => i != k).Append(conjunct.Without(kind == "anyOf" ? IgnoredKeywords.AnyOf : IgnoredKeywords.OneOf)).ToList();
            var index = 0;
            foreach (var branch in branches.EnumerateArray())
            {
                var branchNode = conjunct.Child(branch, kind, Index(index));
                Check(path, reader, new WriterView([.. rest, branchNode], "writer branch " + branchNode.Document.Label(branchNode.Pointer)), messages, depth + 1);
                index++;
            }

            return true;
        }

        return false;
    }

    private void CheckReaderUnion(string path, SchemaNode reader, string kind, WriterView writer, List<string> messages, int depth)
    {
        if (!reader.TryGet(kind, out var branches))
        {
            return;
        }

        List<string>? closest = null;
        var index = 0;
        foreach (var branch in branches.EnumerateArray())
        {
            var attempt = new List<string>();
            Check($"{path}/{kind}/{Index(index)}", reader.Child(branch, kind, Index(index)), writer, attempt, depth + 1);
            if (attempt.Count == 0)
            {
                return;
            }

            if (closest is null || attempt.Count < closest.Count)
            {
                closest = attempt;
            }

            index++;
        }

        var detail = closest is { Count: > 0 } ? $" (closest: {closest[0]})" : string.Empty;
        messages.Add($"{path}/{kind}: no reader branch accepts {writer.Label}{detail}");
    }

    private void CheckKeywords(string path, SchemaNode reader, WriterView writer, List<string> messages, int depth)
    {
        var readerKinds = ValueKindsOf(reader);
        var writerKinds = writer.Conjuncts.Aggregate(JsonValueKinds.All, static (kinds, c) => kinds & ValueKindsOf(c));
        if ((writerKinds & ~readerKinds) != 0)
        {
            messages.Add($"{path}: type narrowed from {Describe(writerKinds)} to {Describe(readerKinds)}");
        }

        var kinds = writerKinds & readerKinds;
        if (kinds == JsonValueKinds.None)
        {
            return;
        }

        CheckEnum(path, reader, writer, kinds, messages);
        CheckPatternLike(path, "format", reader, writer, messages);
        if ((kinds & JsonValueKinds.Number) != 0)
        {
            CheckNumeric(path, reader, writer, (kinds & JsonValueKinds.Fraction) == 0, messages);
        }

        if ((kinds & JsonValueKinds.String) != 0)
        {
            CheckCountBounds(path, "minLength", "maxLength", reader, writer, messages);
            CheckPatternLike(path, "pattern", reader, writer, messages);
        }

        if ((kinds & JsonValueKinds.Array) != 0)
        {
            CheckArray(path, reader, writer, messages, depth);
        }

        if ((kinds & JsonValueKinds.Object) != 0)
        {
            CheckObject(path, reader, writer, messages, depth);
        }

        CheckExactKeywords(path, reader, writer, messages);
    }

    private static void CheckEnum(string path, SchemaNode reader, WriterView writer, JsonValueKinds kinds, List<string> messages)
    {
        HashSet<string>? writerValues = null;
        foreach (var conjunct in writer.Conjuncts)
        {
            foreach (var values in new[] { EnumValues(conjunct, "enum"), EnumValues(conjunct, "const") })
            {
                if (values is not null)
                {
                    writerValues = writerValues is null ? values.Where(v => (kinds & v.Kind) != 0).Select(static v => v.Key).ToHashSet(StringComparer.Ordinal) : writerValues.Intersect(values.Select(static v => v.Key), StringComparer.Ordinal).ToHashSet(StringComparer.Ordinal);
                }
            }
        }

        // Without an enum, a writer of only null and booleans still has a finite set of values.
        if (writerValues is null && (kinds & ~(JsonValueKinds.Null | JsonValueKinds.Boolean)) == 0)
        {
            writerValues = new HashSet<string>(StringComparer.Ordinal);
            if ((kinds & JsonValueKinds.Null) != 0)
            {
                writerValues.Add("null");
            }

            if ((kinds & JsonValueKinds.Boolean) != 0)
            {
                writerValues.UnionWith(["true", "false"]);
            }
        }

        foreach (var keyword in new[] { "enum", "const" })
        {
            if (EnumValues(reader, keyword) is not { } readerList)
            {
                continue;
            }

            var readerValues = readerList.Select(static v => v.Key).ToHashSet(StringComparer.Ordinal);
            if (writerValues is null)
            {
                messages.Add($"{path}/{keyword}: the reader restricts values to [{string.Join(", ", readerValues)}] but {writer.Label} allows any value");
                continue;
            }

            // One message for all of them: a thousand-value enum under a thousand properties made a million messages.
            var missing = writerValues.Where(v => !readerValues.Contains(v)).ToList();
            if (missing.Count == 1)
            {
                messages.Add($"{path}/{keyword}: value {missing[0]} allowed by the writer is missing from the reader's {keyword}");
            }
            else if (missing.Count > 1)
            {
                messages.Add($"{path}/{keyword}: values {FirstFew(missing)} allowed by the writer are missing from the reader's {keyword}");
            }
        }
    }

    /// <summary>The first ten of <paramref name="items"/>, each cut to 200 characters, and how many more.</summary>
    private static string FirstFew(List<string> items) =>
        string.Join(", ", items.Take(10).Select(static i => i.Length > 200 ? i[..200] + "…" : i)) + (items.Count > 10 ? $" and {items.Count - 10} more" : "");

    private static List<(string Key, JsonValueKinds Kind)>? EnumValues(SchemaNode node, string keyword)
    {
        if (!node.TryGet(keyword, out var value))
        {
            return null;
        }

        var items = keyword == "enum" && value.ValueKind == JsonValueKind.Array ? value.EnumerateArray().ToList() : [value];
        return items.Select(static v => (JsonCanonical.ValueKey(v), KindOfValue(v))).ToList();
    }

    private static void CheckNumeric(string path, SchemaNode reader, WriterView writer, bool integersOnly, List<string> messages)
    {
        foreach (var lower in new[] { true, false })
        {
            if (Bound.Of(reader, lower, integersOnly) is not { } readerBound)
            {
                continue;
            }

            var writerBound = writer.Conjuncts.Select(c => Bound.Of(c, lower, integersOnly)).OfType<Bound>().Aggregate((Bound?)null, (tightest, b) => tightest is null || b.IsTighterThan(tightest.Value, lower) ? b : tightest);
            var side = lower ? "lower" : "upper";
            if (writerBound is null)
            {
                messages.Add($"{path}/{readerBound.Keyword}: {readerBound.Keyword} added ({readerBound.Describe(lower)}) where {writer.Label} has no {side} bound");
            }
            else if (readerBound.IsTighterThan(writerBound.Value, lower))
            {
                messages.Add($"{path}/{readerBound.Keyword}: {side} bound tightened from {writerBound.Value.Describe(lower)} to {readerBound.Describe(lower)}");
            }
        }

        if (reader.TryGet("multipleOf", out var readerMultiple) && JsonNumbers.Read(readerMultiple) is { } divisor)
        {
            var writerMultiples = writer.Conjuncts.Select(c => c.TryGet("multipleOf", out var m) ? JsonNumbers.Read(m) : null).OfType<decimal>().ToList();
            var covered = writerMultiples.Any(m => m % divisor == 0) || (integersOnly && 1m % divisor == 0);
            if (!covered)
            {
                messages.Add(writerMultiples.Count == 0
                    ? $"{path}/multipleOf: multipleOf {JsonNumbers.Format(divisor)} added"
                    : $"{path}/multipleOf: multipleOf changed from {JsonNumbers.Format(writerMultiples[0])} to {JsonNumbers.Format(divisor)}");
            }
        }
    }

    private static void CheckCountBounds(string path, string minKeyword, string maxKeyword, SchemaNode reader, WriterView writer, List<string> messages)
    {
        if (Count(reader, minKeyword) is { } readerMin)
        {
            var writerMin = writer.Conjuncts.Select(c => Count(c, minKeyword)).OfType<decimal>().DefaultIfEmpty(-1).Max();
            if (readerMin > Math.Max(writerMin, 0))
            {
                messages.Add(writerMin < 0
                    ? $"{path}/{minKeyword}: {minKeyword} {JsonNumbers.Format(readerMin)} added"
                    : $"{path}/{minKeyword}: {minKeyword} increased from {JsonNumbers.Format(writerMin)} to {JsonNumbers.Format(readerMin)}");
            }
        }

        if (Count(reader, maxKeyword) is { } readerMax)
        {
            var writerMax = writer.Conjuncts.Select(c => Count(c, maxKeyword)).OfType<decimal>().DefaultIfEmpty(-1).Min();
            if (writerMax < 0)
            {
                messages.Add($"{path}/{maxKeyword}: {maxKeyword} {JsonNumbers.Format(readerMax)} added");
            }
            else if (writerMax > readerMax)
            {
                messages.Add($"{path}/{maxKeyword}: {maxKeyword} decreased from {JsonNumbers.Format(writerMax)} to {JsonNumbers.Format(readerMax)}");
            }
        }
    }

    private static decimal? Count(SchemaNode node, string keyword) => node.TryGet(keyword, out var value) ? JsonNumbers.Read(value) : null;

    /// <summary>pattern and format: containment between two regexes or formats is not decided, so only an unchanged one passes.</summary>
    private static void CheckPatternLike(string path, string keyword, SchemaNode reader, WriterView writer, List<string> messages)
    {
        if (!reader.TryGet(keyword, out var readerValue))
        {
            return;
        }

        var expected = readerValue.GetString()!;
        var writerValues = writer.Conjuncts.Select(c => c.TryGet(keyword, out var v) ? v.GetString() : null).OfType<string>().ToList();
        if (writerValues.Contains(expected, StringComparer.Ordinal))
        {
            return;
        }

        messages.Add(writerValues.Count == 0
            ? $"{path}/{keyword}: {keyword} '{expected}' added"
            : $"{path}/{keyword}: {keyword} changed from '{writerValues[0]}' to '{expected}'");
    }

    private void CheckArray(string path, SchemaNode reader, WriterView writer, List<string> messages, int depth)
    {
        CheckCountBounds(path, "minItems", "maxItems", reader, writer, messages);
        if (reader.TryGet("uniqueItems", out var unique) && unique.ValueKind == JsonValueKind.True
            && !writer.Conjuncts.Any(static c => c.TryGet("uniqueItems", out var u) && u.ValueKind == JsonValueKind.True))
        {
            messages.Add($"{path}/uniqueItems: uniqueItems added");
        }

        var readerItems = ItemsModel.Of(reader);
        var writerItems = writer.Conjuncts.Select(ItemsModel.Of).ToList();
        var positions = writerItems.Select(static m => m.Tuple.Count).Append(readerItems.Tuple.Count).Max();
        for (var i = 0; i < positions; i++)
        {
            var (suffix, readerItem) = readerItems.At(i);
            if (readerItem is { } item)
            {
                var writerAt = writerItems.Select(m => m.At(i).Node).OfType<SchemaNode>().ToList();
                Check($"{path}/{suffix}", item, writer with { Conjuncts = writerAt }, messages, depth + 1);
            }
        }

        if (readerItems.Rest is { } readerRest)
        {
            var writerRest = writerItems.Select(static m => m.Rest).OfType<SchemaNode>().ToList();
            Check($"{path}/{readerItems.RestKeyword}", readerRest, writer with { Conjuncts = writerRest }, messages, depth + 1);
        }

        if (reader.TryGet("contains", out var contains))
        {
            var writerContains = writer.Conjuncts.Where(static c => c.TryGet("contains", out _)).Select(static c => c.Child(c.Element.GetProperty("contains"), "contains")).ToList();
            if (writerContains.Count == 0)
            {
                messages.Add($"{path}/contains: contains added");
            }
            else
            {
                Check($"{path}/contains", reader.Child(contains, "contains"), writer with { Conjuncts = writerContains }, messages, depth + 1);
            }
        }
    }

    private void CheckObject(string path, SchemaNode reader, WriterView writer, List<string> messages, int depth)
    {
        CheckCountBounds(path, "minProperties", "maxProperties", reader, writer, messages);

        var writerRequired = writer.Conjuncts.SelectMany(static c => Strings(c, "required")).ToHashSet(StringComparer.Ordinal);
        var newlyRequired = Strings(reader, "required").Distinct(StringComparer.Ordinal).Where(n => !writerRequired.Contains(n)).ToList();
        if (newlyRequired.Count == 1)
        {
            messages.Add($"{path}/required: property '{newlyRequired[0]}' newly required");
        }
        else if (newlyRequired.Count > 1)
        {
            messages.Add($"{path}/required: properties {FirstFew(newlyRequired.ConvertAll(n => $"'{n}'"))} newly required");
        }

        var names = PropertyNames(reader).Concat(writer.Conjuncts.SelectMany(PropertyNames)).Distinct(StringComparer.Ordinal);
        foreach (var name in names)
        {
            if (_overBudget)
            {
                break;
            }

            CheckProperty(path, name, reader, writer, messages, depth);
        }

        CheckAdditionalProperties(path, reader, writer, messages, depth);

        if (reader.TryGet("propertyNames", out var propertyNames))
        {
            var writerNames = writer.Conjuncts.Where(static c => c.TryGet("propertyNames", out _)).Select(static c => c.Child(c.Element.GetProperty("propertyNames"), "propertyNames")).ToList();
            Check($"{path}/propertyNames", reader.Child(propertyNames, "propertyNames"), writer with { Conjuncts = writerNames }, messages, depth + 1);
        }
    }

    private void CheckProperty(string path, string name, SchemaNode reader, WriterView writer, List<string> messages, int depth)
    {
        var writerParts = writer.Conjuncts.SelectMany(c => PropertyParts(c, name)).Select(static p => p.Node).Where(static n => !n.IsTrue).ToList();
        if (writerParts.Any(static n => n.IsFalse))
        {
            // The writer's closed model never produces this property.
            return;
        }

        var propertyPath = $"{path}/properties/{JsonPointer.Escape(name)}";
        foreach (var (suffix, readerPart) in PropertyParts(reader, name))
        {
            var attempt = new List<string>();
            Check($"{path}/{suffix}", readerPart, writer with { Conjuncts = writerParts }, attempt, depth + 1);
            if (attempt.Count == 0)
            {
                continue;
            }

            if (readerPart.IsFalse)
            {
                var why = suffix == "additionalProperties" ? " (additionalProperties is false)" : string.Empty;
                messages.Add($"{propertyPath}: property '{name}' produced by the writer is not allowed by the reader{why}");
            }
            else if (writerParts.Count == 0)
            {
                messages.Add($"{propertyPath}: property '{name}' is constrained by the reader but the writer's open content model allows any value for it");
            }
            else
            {
                messages.AddRange(attempt);
            }
        }
    }

    /// <summary>Properties neither side names: the reader's additionalProperties and patternProperties must accept what the writer allows.</summary>
    private void CheckAdditionalProperties(string path, SchemaNode reader, WriterView writer, List<string> messages, int depth)
    {
        var writerAdditional = writer.Conjuncts.Where(static c => c.TryGet("additionalProperties", out _))
            .Select(static c => c.Child(c.Element.GetProperty("additionalProperties"), "additionalProperties")).ToList();
        SchemaNode? readerAdditional = reader.TryGet("additionalProperties", out var additional) ? reader.Child(additional, "additionalProperties") : null;

        if (readerAdditional is { } readerNode)
        {
            var attempt = new List<string>();
            Check($"{path}/additionalProperties", readerNode, writer with { Conjuncts = writerAdditional }, attempt, depth + 1);
            if (attempt.Count > 0 && readerNode.IsFalse)
            {
                messages.Add($"{path}/additionalProperties: the reader closes the content model (additionalProperties false) but the writer allows additional properties");
            }
            else
            {
                messages.AddRange(attempt);
            }
        }

        var readerPatterns = reader.TryGet("patternProperties", out var patterns) ? patterns.EnumerateObject().ToList() : [];
        foreach (var pattern in readerPatterns)
        {
            var samePattern = writer.Conjuncts.Where(c => c.TryGet("patternProperties", out var wp) && wp.TryGetProperty(pattern.Name, out _))
                .Select(c => c.Child(c.Element.GetProperty("patternProperties").GetProperty(pattern.Name), "patternProperties", pattern.Name)).ToList();
            var readerNodeForPattern = reader.Child(pattern.Value, "patternProperties", pattern.Name);
            Check($"{path}/patternProperties/{JsonPointer.Escape(pattern.Name)}", readerNodeForPattern, writer with { Conjuncts = samePattern.Count > 0 ? samePattern : writerAdditional }, messages, depth + 1);
        }

        foreach (var conjunct in writer.Conjuncts)
        {
            if (!conjunct.TryGet("patternProperties", out var writerPatterns) || readerAdditional is not { } readerNode2)
            {
                continue;
            }

            foreach (var pattern in writerPatterns.EnumerateObject().Where(p => !readerPatterns.Any(r => string.Equals(r.Name, p.Name, StringComparison.Ordinal))))
            {
                var attempt = new List<string>();
                Check($"{path}/additionalProperties", readerNode2, writer with { Conjuncts = [conjunct.Child(pattern.Value, "patternProperties", pattern.Name)] }, attempt, depth + 1);
                if (attempt.Count > 0 && readerNode2.IsFalse)
                {
                    messages.Add($"{path}/patternProperties/{JsonPointer.Escape(pattern.Name)}: properties matching '{pattern.Name}' produced by the writer are not allowed by the reader (additionalProperties is false)");
                }
                else
                {
                    messages.AddRange(attempt);
                }
            }
        }
    }

    private static void CheckExactKeywords(string path, SchemaNode reader, WriterView writer, List<string> messages)
    {
        foreach (var keyword in ExactKeywords)
        {
            if (reader.TryGet(keyword, out var value) && !WriterHasEqual(writer, value, keyword))
            {
                messages.Add($"{path}/{keyword}: '{keyword}' added or changed in the reader; only an unchanged value is known to be compatible");
            }
        }

        foreach (var keyword in ExactMapKeywords)
        {
            if (!reader.TryGet(keyword, out var map) || map.ValueKind != JsonValueKind.Object)
            {
                continue;
            }

            foreach (var entry in map.EnumerateObject())
            {
                if (!WriterHasEqual(writer, entry.Value, keyword, entry.Name))
                {
                    messages.Add($"{path}/{keyword}/{JsonPointer.Escape(entry.Name)}: dependency on '{entry.Name}' added or changed in the reader");
                }
            }
        }
    }

    private static bool WriterHasEqual(WriterView writer, JsonElement value, string keyword, string? entry = null)
    {
        var expected = JsonCanonical.Write(value);
        foreach (var conjunct in writer.Conjuncts)
        {
            if (!conjunct.TryGet(keyword, out var candidate))
            {
                continue;
            }

            if (entry is not null && (candidate.ValueKind != JsonValueKind.Object || !candidate.TryGetProperty(entry, out candidate)))
            {
                continue;
            }

            if (string.Equals(JsonCanonical.Write(candidate), expected, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Expands $ref and allOf into the conjunction they stand for; null when a part is false (the writer accepts nothing).</summary>
    private List<SchemaNode>? Flatten(IReadOnlyList<SchemaNode> nodes)
    {
        var result = new List<SchemaNode>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<SchemaNode>(nodes.Reverse());
        while (pending.Count > 0)
        {
            var node = pending.Pop();
            if (!seen.Add(node.Location))
            {
                continue;
            }

            if (node.IsFalse)
            {
                return null;
            }

            if (node.IsTrue)
            {
                continue;
            }

            if (node.TryGet("$ref", out var reference))
            {
                if (!node.Document.RefOverridesSiblings)
                {
                    pending.Push(node.Without(IgnoredKeywords.Ref));
                }

                if (node.Document.Set.Resolve(node.Document, node.Pointer, reference.GetString()!) is { } target)
                {
                    pending.Push(target);
                }

                continue;
            }

            if (node.TryGet("allOf", out var allOf))
            {
                pending.Push(node.Without(IgnoredKeywords.AllOf));
                var index = 0;
                foreach (var part in allOf.EnumerateArray())
                {
                    pending.Push(node.Child(part, "allOf", Index(index)));
                    index++;
                }

                continue;
            }

            result.Add(node);
            if (result.Count > MaxConjuncts)
            {
                _overBudget = true;
                break;
            }
        }

        return result;
    }

    private static List<string> PropertyNames(SchemaNode node) =>
        node.TryGet("properties", out var properties) && properties.ValueKind == JsonValueKind.Object
            ? properties.EnumerateObject().Select(static p => p.Name).ToList()
            : [];

    private static List<string> Strings(SchemaNode node, string keyword) =>
        node.TryGet(keyword, out var value) && value.ValueKind == JsonValueKind.Array
            ? value.EnumerateArray().Where(static v => v.ValueKind == JsonValueKind.String).Select(static v => v.GetString()!).ToList()
            : [];

    /// <summary>The schemas a node applies to a property of this name, as the specification assigns them.</summary>
    private List<(string Suffix, SchemaNode Node)> PropertyParts(SchemaNode node, string name)
    {
        var parts = new List<(string, SchemaNode)>();
        if (node.TryGet("properties", out var properties) && node.Document.TryGetMember(node.Pointer + "/properties", properties, name, out var declared))
        {
            parts.Add(($"properties/{JsonPointer.Escape(name)}", node.Child(declared, "properties", name)));
        }

        if (node.TryGet("patternProperties", out var patterns))
        {
            foreach (var pattern in patterns.EnumerateObject().Where(p => Matches(p.Name, name)))
            {
                parts.Add(($"patternProperties/{JsonPointer.Escape(pattern.Name)}", node.Child(pattern.Value, "patternProperties", pattern.Name)));
            }
        }

        if (parts.Count == 0 && node.TryGet("additionalProperties", out var additional))
        {
            parts.Add(("additionalProperties", node.Child(additional, "additionalProperties")));
        }

        return parts;
    }

    private bool Matches(string pattern, string name)
    {
        // Assuming a match applies one more constraint on the reader side: the cautious side.
        if (_overBudget || Compiled(pattern) is not ({ } regex, long size))
        {
            return true;
        }

        bool backtracks = BoundedRegex.Backtracks(regex);
        if ((_patternWork += Rules.RuleRegex.MatchWork(name.Length, backtracks ? 1 : size)) > MaxPatternWork)
        {
            _overBudget = true;
            return true;
        }

        if (!backtracks)
        {
            return regex.IsMatch(name);
        }

        long started = ThreadCpuClock.Now();
        try
        {
            return regex.IsMatch(name);
        }
        catch (RegexMatchTimeoutException)
        {
            // A pattern that backtracks this long would cost its timeout again for every other name: the comparison ends as
            // too complex (incompatible) instead.
            _overBudget = true;
            return true;
        }
        finally
        {
            // Names each just under the timeout add up as well: a review's 1,000 took 10 s of one registration.
            if ((_backtrackingNanoseconds += ThreadCpuClock.Now() - started) > MaxBacktrackingNanoseconds)
            {
                _overBudget = true;
            }
        }
    }

    /// <summary>
    /// A pattern as the validator builds it (<see cref="BoundedRegex"/>: the linear-time engine, or for the few constructs
    /// it lacks the backtracking one under its timeout), so a comparison reads a pattern as records are checked against it.
    /// </summary>
    private (Regex Regex, long Size)? Compiled(string pattern)
    {
        if (_patterns.TryGetValue(pattern, out (Regex Regex, long Size)? compiled))
        {
            return compiled;
        }

        try
        {
            Regex regex = BoundedRegex.Create(pattern);
            compiled = (regex, BoundedRegex.SizeOf(regex));
        }
        catch (global::Json.Schema.JsonSchemaException)
        {
            compiled = null;
        }

        _patterns[pattern] = compiled;
        return compiled;
    }

    private static JsonValueKinds ValueKindsOf(SchemaNode node)
    {
        var kinds = JsonValueKinds.All;
        if (node.TryGet("type", out var type))
        {
            kinds = JsonValueKinds.None;
            var names = type.ValueKind == JsonValueKind.Array ? type.EnumerateArray().Select(static t => t.GetString()!) : [type.GetString()!];
            foreach (var name in names)
            {
                kinds |= JsonValueKindNames.Of(name);
            }
        }

        // An enum or const also limits the types a value can have.
        foreach (var keyword in new[] { "enum", "const" })
        {
            if (EnumValues(node, keyword) is { } values)
            {
                kinds &= values.Aggregate(JsonValueKinds.None, static (k, v) => k | v.Kind);
            }
        }

        return kinds;
    }

    private static JsonValueKinds KindOfValue(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Null => JsonValueKinds.Null,
        JsonValueKind.True or JsonValueKind.False => JsonValueKinds.Boolean,
        JsonValueKind.Object => JsonValueKinds.Object,
        JsonValueKind.Array => JsonValueKinds.Array,
        JsonValueKind.String => JsonValueKinds.String,
        JsonValueKind.Number => JsonNumbers.Read(value) is { } n && n == decimal.Truncate(n) ? JsonValueKinds.Integer : JsonValueKinds.Fraction,
        _ => JsonValueKinds.None,
    };

    private static string Describe(JsonValueKinds kinds)
    {
        if (kinds == JsonValueKinds.All)
        {
            return "any";
        }

        var names = new List<string>();
        foreach (var (kind, name) in new[]
        {
            (JsonValueKinds.Null, "null"), (JsonValueKinds.Boolean, "boolean"), (JsonValueKinds.Object, "object"),
            (JsonValueKinds.Array, "array"), (JsonValueKinds.String, "string"),
        })
        {
            if ((kinds & kind) != 0)
            {
                names.Add(name);
            }
        }

        if ((kinds & JsonValueKinds.Number) == JsonValueKinds.Number || (kinds & JsonValueKinds.Number) == JsonValueKinds.Fraction)
        {
            names.Add("number");
        }
        else if ((kinds & JsonValueKinds.Integer) != 0)
        {
            names.Add("integer");
        }

        return names.Count switch
        {
            0 => "nothing",
            1 => names[0],
            _ => "[" + string.Join(", ", names) + "]",
        };
    }

    private static string Index(int index) => index.ToString(CultureInfo.InvariantCulture);

    /// <summary>The writer side: values valid under every conjunct; <see cref="Label"/> names it in messages.</summary>
    private sealed record WriterView(List<SchemaNode> Conjuncts, string Label);

    /// <summary>A numeric bound; for integer-only values bounds are rounded to inclusive integers so "> 0" equals ">= 1".</summary>
    private readonly record struct Bound(decimal Value, bool Exclusive, string Keyword)
    {
        public static Bound? Of(SchemaNode node, bool lower, bool integersOnly)
        {
            var inclusiveKeyword = lower ? "minimum" : "maximum";
            var exclusiveKeyword = lower ? "exclusiveMinimum" : "exclusiveMaximum";
            Bound? result = null;
            if (node.TryGet(inclusiveKeyword, out var inclusive) && JsonNumbers.Read(inclusive) is { } value)
            {
                // Draft 4: a boolean exclusiveMinimum/Maximum makes minimum/maximum exclusive.
                var draft4Exclusive = node.TryGet(exclusiveKeyword, out var flag) && flag.ValueKind == JsonValueKind.True;
                result = new Bound(value, draft4Exclusive, inclusiveKeyword);
            }

            if (node.TryGet(exclusiveKeyword, out var exclusive) && JsonNumbers.Read(exclusive) is { } exclusiveValue)
            {
                var candidate = new Bound(exclusiveValue, true, exclusiveKeyword);
                if (result is null || candidate.IsTighterThan(result.Value, lower))
                {
                    result = candidate;
                }
            }

            if (result is { } bound && integersOnly)
            {
                var rounded = lower
                    ? (bound.Exclusive ? decimal.Floor(bound.Value) + 1 : decimal.Ceiling(bound.Value))
                    : (bound.Exclusive ? decimal.Ceiling(bound.Value) - 1 : decimal.Floor(bound.Value));
                result = bound with { Value = rounded, Exclusive = false };
            }

            return result;
        }

        public bool IsTighterThan(Bound other, bool lower)
        {
            if (Value != other.Value)
            {
                return lower ? Value > other.Value : Value < other.Value;
            }

            return Exclusive && !other.Exclusive;
        }

        public string Describe(bool lower) => (lower ? (Exclusive ? "> " : ">= ") : (Exclusive ? "< " : "<= ")) + JsonNumbers.Format(Value);
    }

    /// <summary>Positional item schemas (prefixItems, or items as an array) and the schema for the rest.</summary>
    private sealed record ItemsModel(IReadOnlyList<SchemaNode> Tuple, string TupleKeyword, SchemaNode? Rest, string RestKeyword)
    {
        public static ItemsModel Of(SchemaNode node)
        {
            if (node.TryGet("prefixItems", out var prefix))
            {
                return new ItemsModel(Children(node, prefix, "prefixItems"), "prefixItems", node.TryGet("items", out var items) ? node.Child(items, "items") : null, "items");
            }

            if (node.TryGet("items", out var itemsValue))
            {
                if (itemsValue.ValueKind == JsonValueKind.Array)
                {
                    SchemaNode? rest = node.TryGet("additionalItems", out var additional) ? node.Child(additional, "additionalItems") : null;
                    return new ItemsModel(Children(node, itemsValue, "items"), "items", rest, "additionalItems");
                }

                return new ItemsModel([], "items", node.Child(itemsValue, "items"), "items");
            }

            return new ItemsModel([], "items", null, "items");
        }

        public (string Suffix, SchemaNode? Node) At(int index) =>
            index < Tuple.Count ? ($"{TupleKeyword}/{Index(index)}", Tuple[index]) : (RestKeyword, Rest);

        private static List<SchemaNode> Children(SchemaNode node, JsonElement array, string keyword) =>
            array.EnumerateArray().Select((item, i) => node.Child(item, keyword, Index(i))).ToList();
    }
}

/// <summary>The kinds a JSON Schema <c>type</c> name stands for.</summary>
internal static class JsonValueKindNames
{
    public static JsonValueKinds Of(string typeName) => typeName switch
    {
        "null" => JsonValueKinds.Null,
        "boolean" => JsonValueKinds.Boolean,
        "object" => JsonValueKinds.Object,
        "array" => JsonValueKinds.Array,
        "string" => JsonValueKinds.String,
        "integer" => JsonValueKinds.Integer,
        "number" => JsonValueKinds.Number,
        _ => JsonValueKinds.None,
    };
}

/// <summary>Kinds of JSON values; "number" is Integer | Fraction so integer is a subset of number.</summary>
[Flags]
internal enum JsonValueKinds
{
    None = 0,
    Null = 1,
    Boolean = 2,
    Object = 4,
    Array = 8,
    String = 16,
    Integer = 32,
    Fraction = 64,
    Number = Integer | Fraction,
    All = Null | Boolean | Object | Array | String | Number,
}
