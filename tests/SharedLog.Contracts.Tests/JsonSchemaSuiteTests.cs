using System.Text.Json;
using System.Text.RegularExpressions;
using SharedLog.Contracts.Formats.Json;
using SharedLog.Contracts.Registry;
using Xunit.Abstractions;

namespace SharedLog.Contracts.Tests;

/// <summary>
/// Runs every schema of the official JSON Schema Test Suite (from ../shared) through the parser:
/// each must parse (with the suite's remote documents given as references), be compatible with
/// itself, and have a canonical form that is stable when parsed again.
/// </summary>
public class JsonSchemaSuiteTests(ITestOutputHelper output)
{
    private static readonly JsonSchemaFormat Format = new();

    /// <summary>Schemas that need a document the suite does not ship (the meta-schemas).</summary>
    private static bool NeedsMetaSchema(string schemaText) => Regex.IsMatch(schemaText, "\"\\$ref\"\\s*:\\s*\"https?://json-schema\\.org/");

    [SharedDataTheory("json-schema-test-suite")]
    [InlineData("draft7")]
    [InlineData("draft2020-12")]
    public void Every_suite_schema_parses_and_is_compatible_with_itself(string draft)
    {
        var suite = FindSuite();
        if (suite is null)
        {
            Assert.False(string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase), "the JSON Schema Test Suite folder ../shared/json-schema-test-suite is missing");
            output.WriteLine("JSON Schema Test Suite data is missing (../shared/json-schema-test-suite); not run.");
            return;
        }

        var remotes = Remotes(Path.Combine(suite, "remotes"), draft);
        var parsed = 0;
        var failures = new List<string>();
        foreach (var file in Directory.GetFiles(Path.Combine(suite, draft), "*.json").Order(StringComparer.Ordinal))
        {
            using var document = JsonDocument.Parse(File.ReadAllText(file));
            foreach (var group in document.RootElement.EnumerateArray())
            {
                var text = group.GetProperty("schema").GetRawText();
                var name = $"{Path.GetFileName(file)}: {group.GetProperty("description").GetString()}";
                try
                {
                    var schema = Format.Parse(text, remotes, normalize: false);
                    var self = Format.CheckCompatibility(schema, schema);
                    if (self.Count > 0)
                    {
                        failures.Add($"{name}: not compatible with itself: {self[0]}");
                    }

                    var again = Format.Parse(schema.Canonical, remotes, normalize: true);
                    if (!string.Equals(again.Canonical, schema.Canonical, StringComparison.Ordinal))
                    {
                        failures.Add($"{name}: canonical form changes when parsed again");
                    }

                    parsed++;
                }
                catch (InvalidSchemaException ex) when (NeedsMetaSchema(text))
                {
                    output.WriteLine($"skipped (meta-schema reference): {name}: {ex.Message}");
                }
                catch (InvalidSchemaException ex)
                {
                    failures.Add($"{name}: {ex.Message}");
                }
            }
        }

        output.WriteLine($"{draft}: {parsed} schemas parsed");
        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
        Assert.True(parsed > 200, $"only {parsed} schemas parsed");
    }

    private static List<ResolvedReference> Remotes(string root, string draft) =>
        Directory.GetFiles(root, "*.json", SearchOption.AllDirectories)
            .Select(path => (Path: path, Relative: Path.GetRelativePath(root, path).Replace('\\', '/')))
            .Where(f => !f.Relative.StartsWith("draft", StringComparison.Ordinal) || f.Relative.StartsWith(draft + "/", StringComparison.Ordinal))
            .Select(f => (f.Relative, Text: File.ReadAllText(f.Path)))
            .Where(f => !NeedsMetaSchema(f.Text))
            .Select(f => new ResolvedReference("http://localhost:1234/" + f.Relative, f.Relative, 1, f.Text, []))
            .ToList();

    private static string? FindSuite()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "SharedLogBroker.sln")))
            {
                var suite = Path.Combine(directory.FullName, "..", "shared", "json-schema-test-suite");
                return Directory.Exists(suite) ? Path.GetFullPath(suite) : null;
            }
        }

        return null;
    }
}
