using System.Globalization;
using System.Text;
using SharedLog.Contracts.Rules;
using Xunit.Abstractions;

namespace SharedLog.Contracts.Tests.Cel;

/// <summary>
/// Runs the official CEL conformance cases (../shared/cel-conformance, SimpleTestFile text format)
/// of the files the rule language claims. Cases listed in known-failures.txt may fail; any other
/// failure is a regression, and a listed case that passes must be removed from the list.
/// </summary>
public class CelConformanceTests(ITestOutputHelper output)
{
    private static readonly Lazy<HashSet<string>> KnownFailures = new(LoadKnownFailures);

    [SharedDataTheory("cel-conformance")]
    [InlineData("basic")]
    [InlineData("comparisons")]
    [InlineData("logic")]
    [InlineData("string")]
    [InlineData("lists")]
    [InlineData("macros")]
    [InlineData("integer_math")]
    [InlineData("fp_math")]
    [InlineData("conversions")]
    [InlineData("timestamps")]
    [InlineData("plumbing")]
    [InlineData("macros2")]
    [InlineData("parse")]
    [InlineData("fields")]
    [InlineData("string_ext")]
    [InlineData("math_ext")]
    [InlineData("encoders_ext")]
    [InlineData("bindings_ext")]
    [InlineData("optionals")]
    public void Conformance_file_passes_except_known_failures(string file)
    {
        var folder = FindConformanceFolder();
        if (folder is null)
        {
            Assert.False(string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase), "the CEL conformance folder ../shared/cel-conformance is missing");
            output.WriteLine("CEL conformance data is missing (../shared/cel-conformance); not run.");
            return;
        }

        var results = Run(Path.Combine(folder, file + ".textproto"), file);
        var known = KnownFailures.Value;
        var regressions = results.Where(r => r.Failure is not null && !known.Contains(r.Id)).ToList();
        var fixedCases = results.Where(r => r.Failure is null && known.Contains(r.Id)).ToList();
        var passed = results.Count(r => r.Failure is null);
        output.WriteLine($"{file}: {passed}/{results.Count} passed");
        foreach (var failure in results.Where(r => r.Failure is not null))
        {
            output.WriteLine($"  fail {failure.Id}: {failure.Failure}");
        }

        var dump = Environment.GetEnvironmentVariable("CEL_FAILURES_OUT");
        if (!string.IsNullOrEmpty(dump))
        {
            File.AppendAllLines(dump, results.Where(r => r.Failure is not null).Select(r => $"{r.Id}  # {Shorten(r.Failure!)}"));
            File.AppendAllLines(dump + ".counts", [$"{file} {passed} {results.Count}"]);
        }

        Assert.True(regressions.Count == 0, "regressions (not in known-failures.txt):" + Environment.NewLine + string.Join(Environment.NewLine, regressions.Select(r => $"{r.Id}: {r.Failure}")));
        Assert.True(fixedCases.Count == 0, "now passing, remove from known-failures.txt:" + Environment.NewLine + string.Join(Environment.NewLine, fixedCases.Select(r => r.Id)));
        Assert.True(results.Count > 0, "no cases read");
    }

    private static string Shorten(string text)
    {
        text = text.Replace('\n', ' ').Replace('\r', ' ');
        return text.Length > 100 ? text[..100] : text;
    }

    private sealed record CaseResult(string Id, string? Failure);

    private static List<CaseResult> Run(string path, string file)
    {
        var root = TextProtoReader.Parse(File.ReadAllText(path));
        var results = new List<CaseResult>();
        foreach (var section in root.Messages("section"))
        {
            var sectionName = section.Scalar("name")?.Text ?? "";
            foreach (var test in section.Messages("test"))
            {
                var id = $"{file}/{sectionName}/{test.Scalar("name")?.Text}";
                results.Add(new CaseResult(id, RunCase(test)));
            }
        }

        return results;
    }

    /// <summary>Null when the case passes, otherwise why it failed.</summary>
    private static string? RunCase(TextProtoMessage test)
    {
        var expression = test.Scalar("expr")!.Text;
        Dictionary<string, object?> variables;
        RuleValue? expected = null;
        try
        {
            variables = test.Messages("bindings").ToDictionary(
                b => b.Scalar("key")!.Text,
                b => (object?)ToValue(b.Message("value")!.Message("value") ?? throw new NotSupportedException("binding without a value")),
                StringComparer.Ordinal);
            if (test.Message("value") is { } value)
            {
                expected = ToValue(value);
            }
            else if (test.Message("typed_result") is { } typedResult)
            {
                expected = ToValue(typedResult.Message("result") ?? throw new NotSupportedException("type deduction only (no type checker)"));
            }
            else if (test.Fields.FirstOrDefault(f => f.Key is "unknown" or "any_eval_errors" or "any_unknowns") is { Key: not null } other)
            {
                throw new NotSupportedException("expectation kind not supported: " + other.Key);
            }
            else if (!test.Has("eval_error"))
            {
                // without a result matcher the expected result is true
                expected = RuleValue.True;
            }
        }
        catch (NotSupportedException ex)
        {
            return "unsupported: " + ex.Message;
        }

        if (test.Has("container"))
        {
            return "unsupported: container";
        }

        RuleValue actual;
        try
        {
            actual = CelRule.Compile(expression).EvaluateValue(variables);
        }
        catch (RuleSyntaxException ex)
        {
            return expected is null ? null : "syntax error: " + ex.Message;
        }

        if (expected is null)
        {
            return actual.IsError ? null : $"expected an error, got {actual}";
        }

        if (actual.IsError)
        {
            return $"error: {actual.ErrorMessage}";
        }

        return SameValue(expected.Value, actual) ? null : $"expected {expected}, got {actual}";
    }

    /// <summary>Strict equality for test expectations: types must match exactly (1 is not 1u).</summary>
    private static bool SameValue(RuleValue expected, RuleValue actual)
    {
        if (expected.Kind != actual.Kind)
        {
            return false;
        }

        switch (expected.Kind)
        {
            case RuleValueKind.Double:
                return (double.IsNaN(expected.AsDouble) && double.IsNaN(actual.AsDouble)) || expected.AsDouble.Equals(actual.AsDouble);
            case RuleValueKind.List:
                var left = RuleCollections.ListItems(expected).ToList();
                var right = RuleCollections.ListItems(actual).ToList();
                return left.Count == right.Count && left.Zip(right).All(p => SameValue(p.First, p.Second));
            case RuleValueKind.Map:
                var expectedEntries = RuleCollections.MapEntries(expected).ToList();
                var actualEntries = RuleCollections.MapEntries(actual).ToList();
                return expectedEntries.Count == actualEntries.Count && expectedEntries.All(e =>
                    actualEntries.Any(a => a.Key.Kind == e.Key.Kind && RuleSemantics.Equal(a.Key, e.Key) && SameValue(e.Value, a.Value)));
            default:
                return RuleSemantics.Equal(expected, actual);
        }
    }

    private static RuleValue ToValue(TextProtoMessage value)
    {
        var field = value.Fields.Count == 1 ? value.Fields[0] : throw new NotSupportedException("value with " + value.Fields.Count + " fields");
        var scalar = field.Value as TextProtoScalar;
        var message = field.Value as TextProtoMessage;
        switch (field.Key)
        {
            case "null_value":
                return RuleValue.Null;
            case "bool_value":
                return RuleValue.Bool(string.Equals(scalar!.Text, "true", StringComparison.Ordinal));
            case "int64_value":
                return RuleValue.Int(long.Parse(scalar!.Text, CultureInfo.InvariantCulture));
            case "uint64_value":
                return RuleValue.Uint(ulong.Parse(scalar!.Text, CultureInfo.InvariantCulture));
            case "double_value":
                return RuleValue.Double(ParseDouble(scalar!.Text));
            case "string_value":
                return RuleValue.String(Encoding.UTF8.GetString(scalar!.Bytes!));
            case "bytes_value":
                return RuleValue.Bytes(scalar!.Bytes!);
            case "type_value":
                return RuleValue.Type(scalar!.Text);
            case "list_value":
                return RuleValue.List(message!.Messages("values").Select(ToValue).ToArray());
            case "map_value":
                var entries = message!.Messages("entries").ToList();
                var keys = entries.Select(e => ToValue(e.Message("key")!)).ToArray();
                var values = entries.Select(e => ToValue(e.Message("value")!)).ToArray();
                return RuleValue.Map(new RuleMap(keys, values));
            case "object_value":
                var any = message!.Fields.Single();
                var body = (TextProtoMessage)any.Value;
                var seconds = long.Parse(body.Scalar("seconds")?.Text ?? "0", CultureInfo.InvariantCulture);
                var nanos = int.Parse(body.Scalar("nanos")?.Text ?? "0", CultureInfo.InvariantCulture);
                return any.Key switch
                {
                    "[type.googleapis.com/google.protobuf.Duration]" => RuleValue.Duration(seconds, nanos),
                    "[type.googleapis.com/google.protobuf.Timestamp]" => RuleValue.Timestamp(seconds, nanos),
                    _ => throw new NotSupportedException("protobuf message values"),
                };
            default:
                throw new NotSupportedException(field.Key);
        }
    }

    private static double ParseDouble(string text) => text.ToLowerInvariant() switch
    {
        "inf" or "infinity" => double.PositiveInfinity,
        "-inf" or "-infinity" => double.NegativeInfinity,
        "nan" => double.NaN,
        _ => double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture),
    };

    private static HashSet<string> LoadKnownFailures()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "Cel", "known-failures.txt");
        if (!File.Exists(path))
        {
            return new HashSet<string>(StringComparer.Ordinal);
        }

        return File.ReadAllLines(path)
            .Select(line => line.Split('#', 2)[0].Trim())
            .Where(line => line.Length > 0)
            .ToHashSet(StringComparer.Ordinal);
    }

    private static string? FindConformanceFolder()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "SharedLogBroker.sln")))
            {
                var folder = Path.Combine(directory.FullName, "..", "shared", "cel-conformance");
                return Directory.Exists(folder) ? Path.GetFullPath(folder) : null;
            }
        }

        return null;
    }
}
