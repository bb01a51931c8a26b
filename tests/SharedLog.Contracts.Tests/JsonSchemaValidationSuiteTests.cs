using System.Text.Json;
using System.Text.RegularExpressions;
using SharedLog.Contracts.Formats.Json;
using SharedLog.Contracts.Registry;
using Xunit.Abstractions;

namespace SharedLog.Contracts.Tests;

/// <summary>
/// Runs every test case of the official JSON Schema Test Suite (read from ../shared at test time) through
/// the registry's parser and <see cref="JsonPayloadValidator"/>. Cases known to fail are listed in
/// JsonSchemaSuite/known-failures-DRAFT.txt (one "file | group description | test description" a line):
/// a failure not in the list fails the test, and so does a listed case that now passes.
/// Set SHAREDLOG_WRITE_KNOWN_FAILURES=1 to rewrite the lists from a run instead of asserting.
/// </summary>
public class JsonSchemaValidationSuiteTests(ITestOutputHelper output)
{
    private static readonly JsonSchemaFormat Format = new();

    [SharedDataTheory("json-schema-test-suite")]
    [InlineData("draft7", JsonValidationDraft.Draft7)]
    [InlineData("draft2020-12", JsonValidationDraft.Draft202012)]
    public void Suite_results_match_the_known_failure_list(string draft, JsonValidationDraft defaultDraft)
    {
        if (FindRoots() is not var (repository, suite))
        {
            return;
        }

        var results = Run(suite, draft, defaultDraft, optional: false);
        Print(draft, results);

        var actual = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, reason) in results.SelectMany(r => r.Failures))
        {
            actual.TryAdd(key, reason);
        }

        var listPath = Path.Combine(repository, "tests", "SharedLog.Contracts.Tests", "JsonSchemaSuite", $"known-failures-{draft}.txt");
        if (string.Equals(Environment.GetEnvironmentVariable("SHAREDLOG_WRITE_KNOWN_FAILURES"), "1", StringComparison.Ordinal))
        {
            File.WriteAllLines(listPath, actual.Keys.Order(StringComparer.Ordinal));
            output.WriteLine($"wrote {actual.Count} known failures to {listPath}");
            foreach (var (key, reason) in actual)
            {
                output.WriteLine($"  {key}: {reason}");
            }

            return;
        }

        var known = File.ReadAllLines(listPath).Where(line => line.Length > 0 && !line.StartsWith('#')).ToHashSet(StringComparer.Ordinal);
        var regressions = actual.Where(f => !known.Contains(f.Key)).Select(f => $"new failure: {f.Key} ({f.Value})").ToList();
        var fixedCases = known.Where(k => !actual.ContainsKey(k)).Select(k => $"listed as failing but passes (remove it from {Path.GetFileName(listPath)}): {k}").ToList();
        Assert.True(regressions.Count == 0 && fixedCases.Count == 0, string.Join(Environment.NewLine, regressions.Concat(fixedCases)));
        Assert.True(results.Sum(r => r.Total) > 500, "the suite has too few cases; is the folder complete?");
    }

    /// <summary>
    /// The gate's compiled subset (<see cref="JsonPayloadValidator.ValidatesDecoded"/>) on every suite case whose
    /// schema compiles, with the instance decoded as the gate decodes records: no known failures allowed.
    /// </summary>
    [SharedDataTheory("json-schema-test-suite")]
    [InlineData("draft7", JsonValidationDraft.Draft7)]
    [InlineData("draft2020-12", JsonValidationDraft.Draft202012)]
    public void Compiled_subset_gives_the_suite_answer_on_decoded_records(string draft, JsonValidationDraft defaultDraft)
    {
        if (FindRoots() is not var (_, suite))
        {
            return;
        }

        var codec = new JsonPayloadCodec();
        var options = new JsonPayloadValidatorOptions { DefaultDraft = defaultDraft };
        int groups = 0;
        int cases = 0;
        var failures = new List<string>();
        foreach (var file in Directory.GetFiles(Path.Combine(suite, draft), "*.json").Order(StringComparer.Ordinal))
        {
            using var document = JsonDocument.Parse(File.ReadAllText(file));
            foreach (var group in document.RootElement.EnumerateArray())
            {
                IParsedSchema parsed;
                JsonPayloadValidator validator;
                try
                {
                    parsed = Format.Parse(group.GetProperty("schema").GetRawText(), [], normalize: false);
                    validator = JsonPayloadValidator.Create(parsed, options);
                }
                catch (InvalidSchemaException)
                {
                    continue;
                }

                if (!validator.ValidatesDecoded)
                {
                    continue;
                }

                groups++;
                foreach (var test in group.GetProperty("tests").EnumerateArray())
                {
                    object? decoded;
                    try
                    {
                        decoded = codec.Decode(parsed, System.Text.Encoding.UTF8.GetBytes(test.GetProperty("data").GetRawText())).Value;
                    }
                    catch (SharedLog.Contracts.Model.PayloadDecodeException)
                    {
                        continue; // e.g. duplicate keys: the gate refuses such records before validation
                    }

                    var errors = validator.ValidateDecoded(decoded);
                    if (errors is null)
                    {
                        continue; // a number beyond 2^53: the gate validates such a record as JSON with the library
                    }

                    cases++;
                    if ((errors.Count == 0) != test.GetProperty("valid").GetBoolean())
                    {
                        failures.Add($"{Path.GetFileName(file)} | {group.GetProperty("description").GetString()} | {test.GetProperty("description").GetString()}: {(errors.Count == 0 ? "accepted an invalid instance" : string.Join("; ", errors))}");
                    }
                }
            }
        }

        output.WriteLine($"{draft}: {groups} schema groups compiled, {cases} cases checked, {failures.Count} wrong");
        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
        Assert.True(cases > 200, $"only {cases} suite cases fall in the compiled subset");
    }

    /// <summary>The optional/ folder (formats, ECMAScript regex details, bignums): counted and printed, not asserted.</summary>
    [SharedDataTheory("json-schema-test-suite")]
    [InlineData("draft7", JsonValidationDraft.Draft7)]
    [InlineData("draft2020-12", JsonValidationDraft.Draft202012)]
    public void Optional_suite_results_are_reported(string draft, JsonValidationDraft defaultDraft)
    {
        if (FindRoots() is not var (_, suite))
        {
            return;
        }

        var results = Run(suite, draft, defaultDraft, optional: true);
        Print(draft + "/optional", results);
        foreach (var failure in results.SelectMany(r => r.Failures))
        {
            output.WriteLine($"  failing: {failure.Key} ({failure.Reason})");
        }

        Assert.NotEmpty(results);
    }

    private void Print(string title, List<FileResult> results)
    {
        foreach (var result in results)
        {
            output.WriteLine($"| {result.File} | {result.Total - result.Failures.Count}/{result.Total} |");
        }

        var total = results.Sum(r => r.Total);
        var passed = total - results.Sum(r => r.Failures.Count);
        output.WriteLine($"{title}: {passed}/{total} passed ({100.0 * passed / Math.Max(1, total):F1}%)");
    }

    private static List<FileResult> Run(string suite, string draft, JsonValidationDraft defaultDraft, bool optional)
    {
        var remotes = Remotes(Path.Combine(suite, "remotes"), draft);
        var root = Path.Combine(suite, draft);
        var folder = optional ? Path.Combine(root, "optional") : root;
        var files = Directory.GetFiles(folder, "*.json", optional ? SearchOption.AllDirectories : SearchOption.TopDirectoryOnly);
        var options = new JsonPayloadValidatorOptions { DefaultDraft = defaultDraft };
        var results = new List<FileResult>();
        foreach (var file in files.Order(StringComparer.Ordinal))
        {
            var name = Path.GetRelativePath(root, file).Replace('\\', '/');

            // Format tests assert formats; the other optional files run as the required ones do.
            var fileOptions = options with { AssertFormat = name.Contains("format/", StringComparison.Ordinal) };
            results.Add(RunFile(file, name, remotes, fileOptions));
        }

        return results;
    }

    private static FileResult RunFile(string path, string name, List<ResolvedReference> remotes, JsonPayloadValidatorOptions options)
    {
        var result = new FileResult(name);
        using var document = JsonDocument.Parse(File.ReadAllText(path));
        foreach (var group in document.RootElement.EnumerateArray())
        {
            var groupName = group.GetProperty("description").GetString();
            JsonPayloadValidator? validator = null;
            string? buildError = null;
            try
            {
                validator = JsonPayloadValidator.Create(Format.Parse(group.GetProperty("schema").GetRawText(), remotes, normalize: false), options);
            }
            catch (InvalidSchemaException ex)
            {
                buildError = "schema rejected: " + ex.Message;
            }

            foreach (var test in group.GetProperty("tests").EnumerateArray())
            {
                result.Total++;
                var key = $"{name} | {groupName} | {test.GetProperty("description").GetString()}";
                var expected = test.GetProperty("valid").GetBoolean();
                if (validator is null)
                {
                    result.Failures.Add((key, buildError!));
                    continue;
                }

                var errors = validator.Validate(test.GetProperty("data"));
                if ((errors.Count == 0) != expected)
                {
                    result.Failures.Add((key, expected ? "rejected: " + string.Join("; ", errors) : "accepted an invalid instance"));
                }
            }
        }

        return result;
    }

    /// <summary>The suite's remote documents, named by the URL the suite serves them under.</summary>
    private static List<ResolvedReference> Remotes(string root, string draft) =>
        Directory.GetFiles(root, "*.json", SearchOption.AllDirectories)
            .Select(path => (Path: path, Relative: Path.GetRelativePath(root, path).Replace('\\', '/')))
            .Where(f => !f.Relative.StartsWith("draft", StringComparison.Ordinal) || f.Relative.StartsWith(draft + "/", StringComparison.Ordinal))
            .Select(f => (f.Relative, Text: File.ReadAllText(f.Path)))

            // The registry's parser cannot resolve references to the meta-schemas, which the suite does not ship.
            .Where(f => !Regex.IsMatch(f.Text, "\"\\$ref\"\\s*:\\s*\"https?://json-schema\\.org/"))
            .Select(f => new ResolvedReference("http://localhost:1234/" + f.Relative, f.Relative, 1, f.Text, []))
            .ToList();

    /// <summary>The repository root and the suite folder; null (after a note, or a failure on CI) when the suite is missing.</summary>
    private (string Repository, string Suite)? FindRoots()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "SharedLogBroker.sln")))
            {
                var suite = Path.GetFullPath(Path.Combine(directory.FullName, "..", "shared", "json-schema-test-suite"));
                if (Directory.Exists(suite))
                {
                    return (directory.FullName, suite);
                }

                break;
            }
        }

        Assert.False(string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase), "the JSON Schema Test Suite folder ../shared/json-schema-test-suite is missing");
        output.WriteLine("JSON Schema Test Suite data is missing (../shared/json-schema-test-suite); not run.");
        return null;
    }

    private sealed class FileResult(string file)
    {
        public string File { get; } = file;

        public int Total { get; set; }

        public List<(string Key, string Reason)> Failures { get; } = [];
    }
}
