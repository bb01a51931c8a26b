using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using SharedLog.Contracts.Model;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Formats.Json;

/// <summary>
/// The gate's fast path for JSON records: the subset of JSON Schema most record schemas are written in
/// (<c>type</c>, <c>properties</c>, <c>required</c>, <c>additionalProperties</c>, <c>enum</c> and
/// <c>const</c> of scalars, numeric bounds, string lengths, <c>pattern</c>, <c>items</c> as one schema,
/// array lengths, and annotations), compiled once and checked directly against the record already decoded
/// for the rules (<see cref="Model.RecordValue"/>), so a record is neither parsed a second time nor walked
/// by the general evaluator. <see cref="TryCompile"/> returns null for any other keyword (<c>$ref</c>,
/// combinators, conditionals, ...), and the gate then uses JsonSchema.Net. Every case of the official
/// test suite whose schema compiles must give the suite's answer (JsonSchemaValidationSuiteTests).
/// </summary>
internal sealed class CompiledJsonValidator
{
    private const int MaxErrors = 10;

    /// <summary>2^53: every integer up to here is exact as a double.</summary>
    private const double ExactIntegerLimit = 9_007_199_254_740_992;

    private static readonly HashSet<string> Annotations = new(StringComparer.Ordinal)
    {
        "$schema", "$id", "$comment", "$defs", "definitions", "title", "description", "default", "examples", "readOnly", "writeOnly", "deprecated",
    };

    private readonly Node _root;

    private CompiledJsonValidator(Node root) => _root = root;

    /// <summary>The compiled schema, or null when it uses anything outside the subset.</summary>
    public static CompiledJsonValidator? TryCompile(JsonElement schema, bool assertFormat) =>
        Compile(schema, assertFormat, 0) is { } root ? new CompiledJsonValidator(root) : null;

    /// <summary>
    /// Validates a decoded record; an empty list means valid, else one message per failed keyword ("/age:
    /// minimum: ..."). Null when a number of the record meets a numeric keyword but is beyond 2^53, or a fraction
    /// equals a bound or a numeric enum or const value, where a double comparison is not exact (the fraction's text
    /// may be beyond the bound and round onto it): the caller then validates the JSON text with the library.
    /// </summary>
    public IReadOnlyList<string>? Validate(object? value)
    {
        List<string>? errors = null;
        bool inexact = false;
        BoundedRegex.StartRecord();
        try
        {
            Check(_root, value, Location.Root, ref errors, ref inexact);
        }
        catch (PatternTimedOutException timedOut)
        {
            // One timed-out match judges the record: a record of many strings would otherwise pay the timeout for each.
            return [timedOut.Message];
        }
        finally
        {
            BoundedRegex.EndRecord();
        }

        return inexact ? null : errors ?? (IReadOnlyList<string>)[];
    }

    /// <summary>A backtracking pattern's match that ran out of time, which ends the record's validation.</summary>
    private sealed class PatternTimedOutException(string message) : Exception(message);

    /// <summary>
    /// As <see cref="Validate"/>, for a record valid before a privacy rewrite changed the values at <paramref name="changedPaths"/>
    /// (dotted field names; arrays element by element, as the rewriter walks them): only those values, and whether each
    /// dropped member was required, are checked again, since nothing else of the record changed.
    /// </summary>
    public IReadOnlyList<string>? ValidateChanged(object? value, IReadOnlyList<string[]> changedPaths)
    {
        List<string>? errors = null;
        bool inexact = false;
        BoundedRegex.StartRecord();
        try
        {
            for (int i = 0; i < changedPaths.Count; i++) // not foreach: an interface's enumerator is a box per record
            {
                CheckPath(_root, value, changedPaths[i], 0, Location.Root, ref errors, ref inexact);
            }
        }
        catch (PatternTimedOutException timedOut)
        {
            return [timedOut.Message];
        }
        finally
        {
            BoundedRegex.EndRecord();
        }

        return inexact ? null : errors ?? (IReadOnlyList<string>)[];
    }

    /// <summary>
    /// Why masking the field at <paramref name="path"/> with <paramref name="action"/> would make every record that has it
    /// break this schema, judged from the schema alone (at contract apply): the masked value of the declared type (a redacted
    /// <c>"****"</c>, <c>0</c> or <c>false</c>; a 64-character hash) against the field's constraints, or a dropped member the
    /// schema requires. Null when masking keeps such records valid, or when the schema does not tell.
    /// </summary>
    public string? MaskingProblem(IReadOnlyList<string> path, Model.PrivacyAction action)
    {
        Node node = _root;
        Node? parent = null;
        for (int index = 0; index < path.Count; index++)
        {
            // Arrays are walked element by element under the same name, as the rewriter does.
            for (int guard = 0; node.Items is { } items && node.Properties?.ContainsKey(path[index]) != true && guard < SchemaLimits.MaxDepth; guard++)
            {
                node = items;
            }

            parent = node;
            if (node.Properties is not null && node.Properties.TryGetValue(path[index], out Node? property))
            {
                node = property;
            }
            else if (node.AdditionalProperties is { } additional)
            {
                node = additional;
            }
            else
            {
                return null;
            }
        }

        if (action == Model.PrivacyAction.Drop)
        {
            return parent?.Required is { } required && Array.IndexOf(required, path[^1]) >= 0 ? "drop removes a member the schema requires" : null;
        }

        for (int guard = 0; node.Items is { } elements && guard < SchemaLimits.MaxDepth; guard++)
        {
            node = elements;
        }

        // Without "type", an enum or const still says what the value is ({"enum": ["x", "y"]} holds strings).
        JsonValueKinds kinds = node.Types != JsonValueKinds.None ? node.Types : EnumeratedKinds(node);
        object? masked = action == Model.PrivacyAction.Hash
            ? ((kinds & JsonValueKinds.String) != 0 ? string.Concat(Enumerable.Repeat("0123456789abcdef", 4)) : null)
            : (kinds & JsonValueKinds.String) != 0 ? Policy.PrivacyRewriter.RedactedText
            : (kinds & JsonValueKinds.Integer) != 0 ? 0L
            : (kinds & JsonValueKinds.Fraction) != 0 ? 0.0
            : (kinds & JsonValueKinds.Boolean) != 0 ? false
            : null;
        if (masked is null)
        {
            return null; // no declared type to mask as (or not a string to hash): the gate tells per record
        }

        List<string>? errors = null;
        bool inexact = false;
        try
        {
            Check(node, masked, Location.Root, ref errors, ref inexact);
        }
        catch (Exception ex) when (ex is PatternTimedOutException or global::Json.Schema.JsonSchemaException)
        {
            return null; // a pattern that cannot be matched in time, or built: the schema does not tell here, the gate tells per record
        }

        return errors is { Count: > 0 } ? $"the {(action == Model.PrivacyAction.Hash ? "hashed" : "redacted")} value breaks it ({string.Join("; ", errors.Take(3))})" : null;
    }

    private static JsonValueKinds EnumeratedKinds(Node node)
    {
        JsonValueKinds kinds = JsonValueKinds.None;
        foreach (object? allowed in node.HasConst ? [node.Const] : node.Enum ?? [])
        {
            kinds |= allowed switch
            {
                null => JsonValueKinds.Null,
                bool => JsonValueKinds.Boolean,
                double => JsonValueKinds.Number,
                _ => JsonValueKinds.String,
            };
        }

        return kinds;
    }

    private static void CheckPath(Node node, object? value, string[] path, int index, Location location, ref List<string>? errors, ref bool inexact)
    {
        if (index == path.Length)
        {
            Check(node, value, location, ref errors, ref inexact);
            return;
        }

        switch (value)
        {
            case List<object?> items when node.Items is { } itemNode:
                string parent = location.ToString();
                for (int i = 0; i < items.Count; i++)
                {
                    CheckPath(itemNode, items[i], path, index, new Location(parent, null, i), ref errors, ref inexact);
                }

                break;
            case Dictionary<string, object?> members:
                string name = path[index];
                if (!members.TryGetValue(name, out object? member))
                {
                    // Dropped (or never there: then it was not required either, as the record was valid).
                    if (node.Required is { } required && Array.IndexOf(required, name) >= 0)
                    {
                        Fail(ref errors, location, "required", $"'{name}' is missing");
                    }

                    break;
                }

                Node? memberNode = node.Properties is not null && node.Properties.TryGetValue(name, out Node? property) ? property : node.AdditionalProperties;
                if (memberNode is not null)
                {
                    CheckPath(memberNode, member, path, index + 1, new Location(location.ToString(), name), ref errors, ref inexact);
                }

                break;
        }
    }

    private static Node? Compile(JsonElement schema, bool assertFormat, int depth)
    {
        if (depth > SchemaLimits.MaxDepth)
        {
            return null;
        }

        if (schema.ValueKind is JsonValueKind.True or JsonValueKind.False)
        {
            return new Node { Constant = schema.ValueKind == JsonValueKind.True };
        }

        if (schema.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        var node = new Node();
        foreach (JsonProperty keyword in schema.EnumerateObject())
        {
            JsonElement value = keyword.Value;
            bool understood = keyword.Name switch
            {
                "type" => TryTypes(value, out node.Types),
                "properties" => TryProperties(value, assertFormat, depth, node),
                "required" => TryStrings(value, out node.Required),
                "additionalProperties" => (node.AdditionalProperties = Compile(value, assertFormat, depth + 1)) is not null,
                "items" => value.ValueKind is JsonValueKind.Object or JsonValueKind.True or JsonValueKind.False
                    && (node.Items = Compile(value, assertFormat, depth + 1)) is not null,
                "enum" => TryScalars(value, out node.Enum) && node.IndexEnum(),
                "const" => TryScalar(value, out node.Const) && (node.HasConst = true),
                "minimum" => TryNumber(value, out node.Minimum),
                "maximum" => TryNumber(value, out node.Maximum),
                "exclusiveMinimum" => TryNumber(value, out node.ExclusiveMinimum),
                "exclusiveMaximum" => TryNumber(value, out node.ExclusiveMaximum),
                "minLength" => TryCount(value, out node.MinLength),
                "maxLength" => TryCount(value, out node.MaxLength),
                "minItems" => TryCount(value, out node.MinItems),
                "maxItems" => TryCount(value, out node.MaxItems),
                "pattern" => TryPattern(value, node),
                "format" => !assertFormat,
                // Confluent's own keywords (confluent:tags, confluent:index...) annotate: they constrain nothing.
                _ => Annotations.Contains(keyword.Name) || keyword.Name.StartsWith("confluent:", StringComparison.Ordinal),
            };
            if (!understood)
            {
                return null;
            }
        }

        MarkRequiredProperties(node);

        return node;
    }

    private static bool TryTypes(JsonElement value, out JsonValueKinds kinds)
    {
        kinds = JsonValueKinds.None;
        if (value.ValueKind == JsonValueKind.String)
        {
            return TryKind(value.GetString()!, ref kinds);
        }

        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() == 0)
        {
            return false;
        }

        foreach (JsonElement item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String || !TryKind(item.GetString()!, ref kinds))
            {
                return false;
            }
        }

        return true;
    }

    private static bool TryKind(string name, ref JsonValueKinds kinds)
    {
        JsonValueKinds kind = JsonValueKindNames.Of(name);
        kinds |= kind;
        return kind != JsonValueKinds.None;
    }

    private static bool TryProperties(JsonElement value, bool assertFormat, int depth, Node node)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            return false;
        }

        node.Properties = new Dictionary<string, Node>(StringComparer.Ordinal);
        foreach (JsonProperty property in value.EnumerateObject())
        {
            if (Compile(property.Value, assertFormat, depth + 1) is not { } child || !node.Properties.TryAdd(property.Name, child))
            {
                return false;
            }
        }

        return true;
    }

    private static bool TryStrings(JsonElement value, out string[]? strings)
    {
        strings = null;
        if (value.ValueKind != JsonValueKind.Array)
        {
            return false;
        }

        var list = new List<string>();
        foreach (JsonElement item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String)
            {
                return false;
            }

            list.Add(item.GetString()!);
        }

        strings = [.. list];
        return true;
    }

    private static bool TryScalars(JsonElement value, out object?[]? scalars)
    {
        scalars = null;
        if (value.ValueKind != JsonValueKind.Array)
        {
            return false;
        }

        var list = new List<object?>();
        foreach (JsonElement item in value.EnumerateArray())
        {
            if (!TryScalar(item, out object? scalar))
            {
                return false;
            }

            list.Add(scalar);
        }

        scalars = [.. list];
        return true;
    }

    /// <summary>A string, number (as double), boolean or null; objects and arrays are outside the subset.</summary>
    private static bool TryScalar(JsonElement value, out object? scalar)
    {
        scalar = null;
        switch (value.ValueKind)
        {
            case JsonValueKind.String:
                scalar = value.GetString();
                return true;
            case JsonValueKind.Number:
                bool exact = TryExactNumber(value, out double number);
                scalar = number;
                return exact;
            case JsonValueKind.True or JsonValueKind.False:
                scalar = value.GetBoolean();
                return true;
            case JsonValueKind.Null:
                return true;
            default:
                return false;
        }
    }

    private static bool TryNumber(JsonElement value, out double? number)
    {
        number = null;
        if (value.ValueKind == JsonValueKind.Number && TryExactNumber(value, out double parsed))
        {
            number = parsed;
        }

        return number is not null;
    }

    /// <summary>
    /// A schema number this validator compares exactly: at most 15 significant digits, so the double holds
    /// the written value (integers up to 2^53 included). Longer ones leave the schema to the library.
    /// </summary>
    private static bool TryExactNumber(JsonElement value, out double number)
    {
        number = 0;
        return value.TryGetDouble(out number)
            && double.IsFinite(number)
            && Math.Abs(number) <= ExactIntegerLimit
            && decimal.TryParse(value.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture, out decimal written)
            && (decimal)number == written;
    }

    private static bool TryCount(JsonElement value, out long? count)
    {
        count = null;
        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out long parsed) && parsed >= 0)
        {
            count = parsed;
        }

        return count is not null;
    }

    private static bool TryPattern(JsonElement value, Node node)
    {
        if (value.ValueKind != JsonValueKind.String)
        {
            return false;
        }

        try
        {
            node.PatternText = value.GetString()!;

            // Built with a validator, the regex is shared with the library's schema. Compiled for one look at the schema
            // (apply's masking check), a pattern is built only if a masked value is matched against it: each costs up to
            // half a megabyte and 12 ms, and a schema may hold 256.
            node.Pattern = BoundedRegex.SharesRegexes ? BoundedRegex.Create(node.PatternText) : null;
            node.PatternSize = BoundedRegex.SizeOf(node.PatternText);
            return true;
        }
        catch (global::Json.Schema.JsonSchemaException)
        {
            return false;
        }
    }

    private static void Check(Node node, object? value, Location location, ref List<string>? errors, ref bool inexact)
    {
        if (node.Constant is { } constant)
        {
            if (!constant)
            {
                Fail(ref errors, location, "false", "no value is allowed here");
            }

            return;
        }

        bool beyondExact = value switch
        {
            long whole => whole is > (long)ExactIntegerLimit or < -(long)ExactIntegerLimit,
            double fraction => Math.Abs(fraction) >= ExactIntegerLimit,
            _ => false,
        };
        // A fraction is the double nearest its text, which ties a bound or an enum or const value also when the written
        // number is beyond it (0.99999999999999999 is 1.0; 1e-400 is 0.0): a tie has no answer here. Schema numbers are exact.
        if ((beyondExact && node.HasNumericKeyword) || (value is double written && node.Ties(written)))
        {
            inexact = true;
            return;
        }

        if (value is Utf8Text lazy && node.PatternText is not null)
        {
            // Only a pattern needs the text as a string; lengths, enum and const read its UTF-8.
            value = lazy.ToString();
        }

        if (node.Types != JsonValueKinds.None && (node.Types & KindOf(value)) == 0)
        {
            Fail(ref errors, location, "type", $"expected {node.Types.ToString().ToLowerInvariant()}, got {KindName(value)}");
        }

        if (node.Enum is { } allowed && !EnumHolds(node, allowed, value))
        {
            Fail(ref errors, location, "enum", "value is not one of the allowed values");
        }

        if (node.HasConst && !ScalarEquals(node.Const, value))
        {
            Fail(ref errors, location, "const", "value is not the constant");
        }

        switch (value)
        {
            case long or double:
                CheckNumber(node, value is long l ? l : (double)value, location, ref errors);
                break;
            case string or Utf8Text:
                CheckString(node, value, location, ref errors);
                break;
            case Dictionary<string, object?> members:
                CheckObject(node, members, location, ref errors, ref inexact);
                break;
            case List<object?> items:
                CheckArray(node, items, location, ref errors, ref inexact);
                break;
        }
    }

    [System.Runtime.CompilerServices.SkipLocalsInit]
    private static bool EnumHolds(Node node, object?[] allowed, object? value)
    {
        // A long enum is looked up, not scanned: 30,000 values checked for each of 30,000 items took seconds.
        if (node.EnumStrings is { } strings)
        {
            switch (value)
            {
                case string text:
                    return strings.Contains(text);
                case Utf8Text utf8:
                    Span<char> scratch = stackalloc char[256];
                    return strings.GetAlternateLookup<ReadOnlySpan<char>>().Contains(utf8.Chars(scratch));
                case long integer:
                    return node.EnumNumbers!.Contains(integer);
                case double number:
                    return node.EnumNumbers!.Contains(number);
            }
        }

        foreach (object? candidate in allowed)
        {
            if (ScalarEquals(candidate, value))
            {
                return true;
            }
        }

        return false;
    }

    private static void CheckNumber(Node node, double number, Location location, ref List<string>? errors)
    {
        if (node.Minimum is { } minimum && number < minimum)
        {
            Fail(ref errors, location, "minimum", $"{Format(number)} is less than {Format(minimum)}");
        }

        if (node.Maximum is { } maximum && number > maximum)
        {
            Fail(ref errors, location, "maximum", $"{Format(number)} is greater than {Format(maximum)}");
        }

        if (node.ExclusiveMinimum is { } exclusiveMinimum && number <= exclusiveMinimum)
        {
            Fail(ref errors, location, "exclusiveMinimum", $"{Format(number)} is not greater than {Format(exclusiveMinimum)}");
        }

        if (node.ExclusiveMaximum is { } exclusiveMaximum && number >= exclusiveMaximum)
        {
            Fail(ref errors, location, "exclusiveMaximum", $"{Format(number)} is not less than {Format(exclusiveMaximum)}");
        }
    }

    /// <param name="text">A string, or a <see cref="Utf8Text"/> when the node has no pattern.</param>
    private static void CheckString(Node node, object text, Location location, ref List<string>? errors)
    {
        if (node.MinLength is not null || node.MaxLength is not null)
        {
            long length = TextLength.CodePoints(text);

            if (length < node.MinLength)
            {
                Fail(ref errors, location, "minLength", $"length {length} is less than {node.MinLength}");
            }

            if (length > node.MaxLength)
            {
                Fail(ref errors, location, "maxLength", $"length {length} is greater than {node.MaxLength}");
            }
        }

        if (node.PatternText is { } patternText)
        {
            Regex pattern = node.Pattern ??= BoundedRegex.Create(patternText);
            try
            {
                if (!BoundedRegex.IsMatch(pattern, node.PatternSize, (string)text))
                {
                    Fail(ref errors, location, "pattern", $"does not match '{node.PatternText}'");
                }
            }
            catch (RegexMatchTimeoutException timedOut)
            {
                string path = location.ToString();
                throw new PatternTimedOutException($"{(path.Length == 0 ? "/" : path)}: pattern: {BoundedRegex.TimedOut(timedOut)}");
            }
        }
    }

    /// <summary>
    /// When every name <c>required</c> lists is a distinct property, marks those properties, so that counting
    /// the marked members met while checking members proves them present without a lookup per required name.
    /// </summary>
    private static void MarkRequiredProperties(Node node)
    {
        if (node.Required is not { } required || node.Properties is not { } properties
            || required.Length != new HashSet<string>(required, StringComparer.Ordinal).Count)
        {
            return;
        }

        foreach (string name in required)
        {
            if (!properties.ContainsKey(name))
            {
                return;
            }
        }

        foreach (string name in required)
        {
            properties[name].RequiredByParent = true;
        }

        node.RequiredAreProperties = true;
    }

    private static void CheckObject(Node node, Dictionary<string, object?> members, Location location, ref List<string>? errors, ref bool inexact)
    {
        if (!node.RequiredAreProperties)
        {
            CheckRequired(node, members, location, ref errors);
        }

        if (node.Properties is null && node.AdditionalProperties is null)
        {
            return;
        }

        // The object's own pointer is built once, and only when a member is checked; members' pointers only on an error.
        string? path = null;
        int errorsBefore = errors?.Count ?? 0;
        int requiredSeen = 0;
        foreach ((string name, object? member) in members)
        {
            if (node.Properties is not null && node.Properties.TryGetValue(name, out Node? property))
            {
                requiredSeen += property.RequiredByParent ? 1 : 0;
                Check(property, member, new Location(path ??= location.ToString(), name), ref errors, ref inexact);
            }
            else if (node.AdditionalProperties is { } additional)
            {
                Check(additional, member, new Location(path ??= location.ToString(), name), ref errors, ref inexact);
            }
        }

        if (node.RequiredAreProperties && requiredSeen < node.Required!.Length)
        {
            // Some are missing: name them ahead of the members' errors, where the lookup per name would have put them.
            List<string>? missing = null;
            CheckRequired(node, members, location, ref missing);
            errors ??= [];
            errors.InsertRange(errorsBefore, missing!);
            if (errors.Count > MaxErrors)
            {
                errors.RemoveRange(MaxErrors, errors.Count - MaxErrors);
            }
        }
    }

    private static void CheckRequired(Node node, Dictionary<string, object?> members, Location location, ref List<string>? errors)
    {
        foreach (string name in node.Required ?? [])
        {
            if (!members.ContainsKey(name))
            {
                Fail(ref errors, location, "required", $"'{name}' is missing");
            }
        }
    }

    private static void CheckArray(Node node, List<object?> items, Location location, ref List<string>? errors, ref bool inexact)
    {
        if (items.Count < node.MinItems)
        {
            Fail(ref errors, location, "minItems", $"{items.Count} items are fewer than {node.MinItems}");
        }

        if (items.Count > node.MaxItems)
        {
            Fail(ref errors, location, "maxItems", $"{items.Count} items are more than {node.MaxItems}");
        }

        if (node.Items is { } itemSchema)
        {
            string path = location.ToString();
            for (int i = 0; i < items.Count; i++)
            {
                Check(itemSchema, items[i], new Location(path, null, i), ref errors, ref inexact);
            }
        }
    }

    private static JsonValueKinds KindOf(object? value) => value switch
    {
        null => JsonValueKinds.Null,
        bool => JsonValueKinds.Boolean,
        string or Utf8Text => JsonValueKinds.String,
        long => JsonValueKinds.Integer,
        double d => double.IsInteger(d) ? JsonValueKinds.Integer : JsonValueKinds.Fraction,
        Dictionary<string, object?> => JsonValueKinds.Object,
        List<object?> => JsonValueKinds.Array,
        _ => JsonValueKinds.None,
    };

    private static string KindName(object? value) => value switch
    {
        null => "null",
        bool => "boolean",
        string or Utf8Text => "string",
        long or double => "number",
        Dictionary<string, object?> => "object",
        List<object?> => "array",
        _ => value.GetType().Name,
    };

    /// <summary>JSON equality of a schema scalar (string, double, bool, null) and a decoded value; numbers compare by value.</summary>
    private static bool ScalarEquals(object? expected, object? value) => (expected, value) switch
    {
        (null, null) => true,
        (string a, string b) => string.Equals(a, b, StringComparison.Ordinal),
        (string a, Utf8Text b) => b.TextEquals(a),
        (bool a, bool b) => a == b,
        (double a, long b) => a == b,
        (double a, double b) => a == b,
        _ => false,
    };

    private static string Format(double number) => number.ToString("R", CultureInfo.InvariantCulture);

    private static void Fail(ref List<string>? errors, Location location, string keyword, string message)
    {
        errors ??= [];
        if (errors.Count < MaxErrors)
        {
            string path = location.ToString();
            errors.Add($"{(path.Length == 0 ? "/" : path)}: {keyword}: {message}");
        }
    }

    /// <summary>Where a value is: its parent's JSON pointer and its member name or item index; the pointer is built only when an error names it.</summary>
    private readonly record struct Location(string Parent, string? Member, int Index = -1)
    {
        public static readonly Location Root = new(string.Empty, null);

        public override string ToString() =>
            Member is not null ? $"{Parent}/{JsonPointer.Escape(Member)}"
            : Index >= 0 ? $"{Parent}/{Index.ToString(CultureInfo.InvariantCulture)}"
            : Parent;
    }

    private sealed class Node
    {
        public bool? Constant;
        public JsonValueKinds Types;
        public Dictionary<string, Node>? Properties;
        public string[]? Required;

        /// <summary>Every name in <see cref="Required"/> is a distinct entry of <see cref="Properties"/>.</summary>
        public bool RequiredAreProperties;

        /// <summary>This node is a property its parent object requires (set only when the parent's <see cref="RequiredAreProperties"/>).</summary>
        public bool RequiredByParent;

        public Node? AdditionalProperties;
        public Node? Items;
        public object?[]? Enum;

        /// <summary>A long <see cref="Enum"/>'s strings and numbers, for lookups; null for a short one, which is scanned.</summary>
        public HashSet<string>? EnumStrings;

        /// <inheritdoc cref="EnumStrings"/>
        public HashSet<double>? EnumNumbers;

        /// <summary>Indexes a long <see cref="Enum"/> (see <see cref="EnumStrings"/>); always true, so it chains after the enum is read.</summary>
        public bool IndexEnum()
        {
            if (Enum is { Length: > 16 } values)
            {
                EnumStrings = new HashSet<string>(StringComparer.Ordinal);
                EnumNumbers = [];
                foreach (object? allowed in values)
                {
                    if (allowed is string text)
                    {
                        EnumStrings.Add(text);
                    }
                    else if (allowed is double number)
                    {
                        EnumNumbers.Add(number);
                    }
                }
            }

            return true;
        }
        public bool HasConst;
        public object? Const;
        public double? Minimum;
        public double? Maximum;
        public double? ExclusiveMinimum;
        public double? ExclusiveMaximum;
        public long? MinLength;
        public long? MaxLength;
        public long? MinItems;
        public long? MaxItems;
        public Regex? Pattern;
        public string? PatternText;

        /// <summary>The pattern's size, which its matches are charged by (<see cref="BoundedRegex.ChargeWork"/>).</summary>
        public long PatternSize;

        /// <summary>Whether <paramref name="number"/> equals a bound, a numeric enum value or a numeric const here.</summary>
        public bool Ties(double number)
        {
            if (number == Minimum || number == Maximum || number == ExclusiveMinimum || number == ExclusiveMaximum || (HasConst && Const is double constant && constant == number))
            {
                return true;
            }

            if (EnumNumbers is not null)
            {
                return EnumNumbers.Contains(number);
            }

            foreach (object? allowed in Enum ?? [])
            {
                if (allowed is double candidate && candidate == number)
                {
                    return true;
                }
            }

            return false;
        }

        /// <summary>Whether a number meets a bound, a numeric enum value or a numeric const here.</summary>
        public bool HasNumericKeyword => Minimum is not null || Maximum is not null || ExclusiveMinimum is not null || ExclusiveMaximum is not null
            || (HasConst && Const is double) || (Enum is not null && Array.Exists(Enum, e => e is double));
    }
}
