using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using SharedLog.Contracts.Formats.Json;
using SharedLog.Contracts.Model;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Tests;

public class JsonPayloadValidatorTests
{
    private static readonly JsonSchemaFormat Format = new();

    private const string PersonSchema = """
        {
          "type": "object",
          "properties": {
            "name": { "type": "string", "minLength": 1 },
            "age": { "type": "integer", "minimum": 18 },
            "tags": { "type": "array", "items": { "type": "string" } }
          },
          "required": ["name"],
          "additionalProperties": false
        }
        """;

    private static JsonPayloadValidator Build(string schema, IReadOnlyList<ResolvedReference>? references = null, JsonPayloadValidatorOptions? options = null) =>
        JsonPayloadValidator.Create(Format.Parse(schema, references ?? [], normalize: false), options);

    /// <summary>A record as the gate decodes it, for the compiled subset's <see cref="JsonPayloadValidator.ValidateDecoded"/>.</summary>
    private static object? Decoded(string json) =>
        new JsonPayloadCodec().Decode(Format.Parse("{}", [], normalize: false), System.Text.Encoding.UTF8.GetBytes(json).AsMemory()).Value;

    private static IReadOnlyList<string> Validate(JsonPayloadValidator validator, string instance)
    {
        using var document = JsonDocument.Parse(instance);
        return validator.Validate(document.RootElement);
    }

    public static TheoryData<string, string, string[]> Cases => new()
    {
        { "valid record", """{"name":"ann","age":30,"tags":["a"]}""", [] },
        { "minimum names location and keyword", """{"name":"ann","age":7}""", ["/age: minimum:"] },
        { "missing required property", """{"age":20}""", ["(root): required:"] },
        { "wrong type", """{"name":42}""", ["/name: type:"] },
        { "array item location", """{"name":"ann","tags":["a",3]}""", ["/tags/1: type:"] },
        { "additional property", """{"name":"ann","extra":1}""", ["/extra:"] },
        { "two errors are both reported", """{"name":"","age":1}""", ["/name: minLength:", "/age: minimum:"] },
        { "not an object", "[1,2]", ["(root): type:"] },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Records_are_checked_with_messages_naming_location_and_keyword(string description, string instance, string[] expectedPrefixes)
    {
        var errors = Validate(Build(PersonSchema), instance);

        if (expectedPrefixes.Length == 0)
        {
            Assert.True(errors.Count == 0, $"{description}: {string.Join("; ", errors)}");
            return;
        }

        foreach (var prefix in expectedPrefixes)
        {
            Assert.True(errors.Any(e => e.StartsWith(prefix, StringComparison.Ordinal)), $"{description}: no message starts with '{prefix}' in: {string.Join("; ", errors)}");
        }
    }

    [Fact]
    public void The_compiled_subset_hands_numbers_it_cannot_compare_exactly_to_the_library()
    {
        // A bound with more than 15 significant digits is not compiled at all.
        Assert.False(Build("""{"type":"integer","maximum":9007199254740992}""").ValidatesDecoded);
        Assert.False(Build("""{"enum":[9007199254740993]}""").ValidatesDecoded);

        var validator = Build("""{"type":"object","properties":{"n":{"type":"integer","maximum":100}}}""");
        Assert.True(validator.ValidatesDecoded);
        Assert.Empty(validator.ValidateDecoded(Decoded("""{"n":5}"""))!);
        Assert.Contains("maximum", Assert.Single(validator.ValidateDecoded(Decoded("""{"n":101}"""))!), StringComparison.Ordinal);

        // Beyond 2^53 the decoded number may not be the written one: no answer, the gate validates the JSON.
        Assert.Null(validator.ValidateDecoded(Decoded("""{"n":9007199254740993}""")));
        Assert.Null(validator.ValidateDecoded(Decoded("""{"n":1e300}""")));
        Assert.NotEmpty(Validate(validator, """{"n":9007199254740993}"""));

        // A fraction is the double nearest its text: one that ties a bound, an enum or a const value may be written beyond
        // it (found by a differential fuzz against JsonSchema.Net, which compares the written numbers).
        foreach ((string schema, string instance, bool valid) in new[]
        {
            ("""{"minimum":1}""", "0.99999999999999999", false),
            ("""{"exclusiveMaximum":1}""", "0.99999999999999999", true),
            ("""{"maximum":0}""", "1e-400", false),
            ("""{"exclusiveMinimum":0}""", "1e-400", true),
            ("""{"enum":[1]}""", "1.0000000000000001", false),
            ("""{"const":2}""", "1.9999999999999999999", false),
            ("""{"maximum":0.1}""", "0.1000000000000000055511151231257827", false),
            ("""{"minimum":0.5}""", "0.5", true),
        })
        {
            var tied = Build(schema);
            Assert.True(tied.ValidatesDecoded, schema);
            Assert.Null(tied.ValidateDecoded(Decoded(instance)));
            Assert.Equal(valid, Validate(tied, instance).Count == 0);
        }

        // Integers are exact, and a fraction off the bound is judged here.
        var bounded = Build("""{"minimum":1,"enum":[1,2.5]}""");
        Assert.Empty(bounded.ValidateDecoded(Decoded("1"))!);
        Assert.Contains(bounded.ValidateDecoded(Decoded("0.999"))!, error => error.Contains("minimum", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("\"e\\u0301\"", 2)] // e and a combining accent: one grapheme, two characters
    [InlineData("\"\\r\\n\"", 2)]
    [InlineData("\"\\ud83c\\uddeb\\ud83c\\uddf7\"", 2)] // a flag: two regional indicators, four UTF-16 units
    [InlineData("\"\\ud83d\\ude00\"", 1)] // one code point in two UTF-16 units
    [InlineData("\"\u00e9\"", 1)]
    public void String_lengths_count_code_points_in_the_compiled_subset_and_the_library_alike(string instance, int characters)
    {
        // The library counted grapheme clusters: a schema outside the compiled subset (here through allOf) let "e\u0301"
        // pass maxLength 1, which the compiled subset, and the JSON Schema specification, refuse.
        foreach (string schema in new[] { """{"maxLength":1}""", """{"allOf":[{"maxLength":1}]}""", """{"minLength":2}""", """{"allOf":[{"minLength":2}]}""" })
        {
            bool valid = schema.Contains("maxLength", StringComparison.Ordinal) ? characters <= 1 : characters >= 2;
            Assert.Equal(valid, Validate(Build(schema), instance).Count == 0);
        }

        Assert.True(Build("""{"maxLength":1}""").ValidatesDecoded);
        Assert.False(Build("""{"allOf":[{"maxLength":1}]}""").ValidatesDecoded);
    }

    [Fact]
    public void The_compiled_subset_points_at_nested_members_and_items()
    {
        // Each error names its place as a JSON pointer (escaped), through nested objects and array items, and nothing of one
        // record's places is left in the next one's pointers.
        var validator = Build("""
            {"type":"object","properties":{"customer":{"type":"object","properties":{"a/b~c":{"type":"string","maxLength":2}}},
             "lines":{"type":"array","items":{"type":"object","required":["sku"],"properties":{"quantity":{"type":"integer","minimum":1},
             "tags":{"type":"array","items":{"type":"string"}}}}}}}
            """);
        Assert.True(validator.ValidatesDecoded);
        Assert.Equal(
            ["/customer/a~1b~0c: maxLength: length 3 is greater than 2", "/lines/1: required: 'sku' is missing", "/lines/1/quantity: minimum: 0 is less than 1", "/lines/2/tags/1: type: expected string, got number"],
            validator.ValidateDecoded(Decoded("""{"customer":{"a/b~c":"DEU"},"lines":[{"sku":"a","quantity":1},{"quantity":0},{"sku":"c","tags":["x",5]}]}"""))!);
        Assert.Equal(["/: type: expected object, got string"], validator.ValidateDecoded(Decoded("\"not an order\""))!);
        Assert.Equal(["/lines/0/quantity: type: expected integer, got string"], validator.ValidateDecoded(Decoded("""{"lines":[{"sku":"a","quantity":"one"}]}"""))!);

        // After a privacy rewrite only the changed paths are checked again, arrays item by item.
        var masked = (Dictionary<string, object?>)Decoded("""{"customer":{"a/b~c":"****"},"lines":[{"sku":"a","quantity":2},{"quantity":3}]}""")!;
        ((Dictionary<string, object?>)((List<object?>)masked["lines"]!)[0]!).Remove("sku"); // as a drop of lines.sku leaves it
        Assert.Equal(
            ["/customer/a~1b~0c: maxLength: length 4 is greater than 2", "/lines/0: required: 'sku' is missing", "/lines/1: required: 'sku' is missing"],
            validator.ValidateChanged(masked, [["customer", "a/b~c"], ["lines", "sku"]])!);
    }

    [Fact]
    public void The_compiled_subset_names_missing_required_members_first_whether_or_not_they_are_properties()
    {

        // Every required name is a property: presence is counted while members are checked.
        var counted = Build("""{"type":"object","required":["a","b","c"],"properties":{"a":{"type":"string"},"b":{"type":"string"},"c":{"type":"integer"},"d":{"type":"integer"}}}""");
        // "z" is required but not a property, and "a" is listed twice: names are looked up one by one.
        var looked = Build("""{"type":"object","required":["a","a","z"],"properties":{"a":{"type":"string"},"d":{"type":"integer"}}}""");
        Assert.True(counted.ValidatesDecoded && looked.ValidatesDecoded);

        Assert.Empty(counted.ValidateDecoded(Decoded("""{"c":1,"b":"x","a":"y","d":2}"""))!);
        Assert.Equal(
            ["/: required: 'b' is missing", "/: required: 'c' is missing", "/d: type: expected integer, got string"],
            counted.ValidateDecoded(Decoded("""{"d":"no","a":"y"}"""))!);

        // A required member present with a wrong type is a type error, not a missing one.
        Assert.Equal(["/a: type: expected string, got number"], counted.ValidateDecoded(Decoded("""{"a":1,"b":"x","c":3}"""))!);

        Assert.Equal(
            ["/: required: 'z' is missing", "/d: type: expected integer, got string"],
            looked.ValidateDecoded(Decoded("""{"d":"no","a":"y"}"""))!);

        // Nested objects count their own required members.
        var nested = Build("""{"type":"object","required":["inner"],"properties":{"inner":{"type":"object","required":["x"],"properties":{"x":{"type":"integer"}}}}}""");
        Assert.Equal(["/inner: required: 'x' is missing"], nested.ValidateDecoded(Decoded("""{"inner":{"y":1}}"""))!);
        Assert.Equal(["/: required: 'inner' is missing"], nested.ValidateDecoded(Decoded("""{"x":1}"""))!);
    }

    [Fact]
    public void A_long_enum_is_looked_up_with_the_same_answers_as_a_short_one()
    {
        // Long enums are indexed (a review's 30,000 values against 30,000 items took 12 s scanned); the answers must not change.
        string values = string.Join(",", Enumerable.Range(0, 100).Select(i => $"\"v{i}\"")) + ",1,2.5,true,null,\"\u00e9t\u00e9\"";
        foreach (int count in new[] { 100, 3 })
        {
            string listed = count == 3 ? "\"v7\",1,2.5,true,null,\"\u00e9t\u00e9\"" : values;
            var validator = Build("""{"type":"array","items":{"enum":[""" + listed + "]}}");
            Assert.True(validator.ValidatesDecoded);
            Assert.Empty(validator.ValidateDecoded(Decoded("""["v7",1,true,null,"été"]"""))!);
            Assert.Equal(5, validator.ValidateDecoded(Decoded("""["v1000",2,false,"V7","ete"]"""))!.Count);
        }
    }

    [Fact]
    public void Work_that_multiplies_through_references_and_combinators_is_bounded_per_record()
    {
        // From a hostile-schema review: twenty levels of oneOf over two $refs to the next level is a 1.5 KB schema whose
        // evaluation of the record `1` doubles per level (20 levels ran the broker out of memory; 18 took 12 s and 1.1 GB).
        string chain = string.Join(",", Enumerable.Range(0, 20).Select(i => $$"""
            "d{{i}}":{"oneOf":[{"$ref":"#/definitions/d{{i + 1}}"},{"$ref":"#/definitions/d{{i + 1}}"}]}
            """));
        var exponential = Build("""{"definitions":{""" + chain + ""","d20":{"type":"string"}},"$ref":"#/definitions/d0"}""");
        var watch = System.Diagnostics.Stopwatch.StartNew();
        string refused = Assert.Single(Validate(exponential, "1"));
        Assert.Contains($"more than {EvaluationBudget.MaxSteps} applications of $ref, allOf, anyOf or oneOf", refused, StringComparison.Ordinal);
        Console.WriteLine($"exponential schema refused after {watch.Elapsed.TotalMilliseconds:0} ms");

        // The same through the record's depth: a 2020-12 schema applying itself twice per level, through $dynamicRef.
        var doubling = Build("""
            {"$schema":"https://json-schema.org/draft/2020-12/schema","$dynamicAnchor":"node","type":"object",
             "properties":{"x":{"$dynamicRef":"#node"}},"patternProperties":{"^x$":{"$dynamicRef":"#node"}}}
            """);
        string deep = string.Concat(Enumerable.Repeat("{\"x\":", 40)) + "{}" + new string('}', 40);
        Assert.Contains("more than", Assert.Single(Validate(doubling, deep)), StringComparison.Ordinal);
        Assert.Empty(Validate(doubling, """{"x":{"x":{}}}"""));

        // A large record of a recursive schema with combinators stays well within it.
        var tree = Build("""
            {"$defs":{"item":{"oneOf":[{"type":"string"},{"type":"integer"},{"type":"array","items":{"$ref":"#/$defs/item"}}]}},
             "type":"array","items":{"$ref":"#/$defs/item"}}
            """);
        string items = string.Join(",", Enumerable.Range(0, 5_000).Select(i => i % 2 == 0 ? $"{i}" : $"[\"s{i}\",[{i}]]"));
        Assert.Empty(Validate(tree, $"[{items}]"));
    }

    [Fact]
    public void Pattern_properties_matches_are_charged_to_the_record_budget()
    {
        // From a hostile-schema review: every property is matched against every pattern, which no budget counted (3,000
        // patterns and a record of 50,000 properties: 7-13 s, accepted). 500 patterns x 4,000 properties is 2,000,000
        // matches, past the budget; 50 patterns x 4,000 properties (200,000) stays within it.
        string properties = string.Join(",", Enumerable.Range(0, 4_000).Select(i => $"\"q{i}\":1"));
        foreach ((int patterns, bool refused) in new[] { (500, true), (50, false) })
        {
            string patternList = string.Join(",", Enumerable.Range(0, patterns).Select(i => $"\"^p{i}_[a-z]+$\":{{\"type\":\"string\"}}"));
            var validator = Build($"{{\"type\":\"object\",\"patternProperties\":{{{patternList}}}}}");
            IReadOnlyList<string> errors = Validate(validator, $"{{{properties}}}");
            Assert.Equal(refused, errors.Count > 0);
            if (refused)
            {
                Assert.Contains("patternProperties matches", Assert.Single(errors), StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public void Minimum_message_gives_the_value_and_the_bound()
    {
        var errors = Validate(Build(PersonSchema), """{"name":"ann","age":7}""");

        var message = Assert.Single(errors);
        Assert.StartsWith("/age: minimum: ", message, StringComparison.Ordinal);
        Assert.Contains("7", message, StringComparison.Ordinal);
        Assert.Contains("18", message, StringComparison.Ordinal);
    }

    [Fact]
    public void Ref_into_a_referenced_document_is_followed()
    {
        const string address = """
            {"$id":"address.json","type":"object","properties":{"zip":{"type":"string","pattern":"^[0-9]{5}$"}},"required":["zip"]}
            """;
        const string order = """
            {"type":"object","properties":{"shipTo":{"$ref":"address.json"}},"required":["shipTo"]}
            """;
        var validator = Build(order, [new ResolvedReference("address.json", "address-value", 1, address, [])]);

        Assert.Empty(Validate(validator, """{"shipTo":{"zip":"12345"}}"""));
        var errors = Validate(validator, """{"shipTo":{"zip":"12a45"}}""");
        Assert.Contains(errors, e => e.StartsWith("/shipTo/zip: pattern:", StringComparison.Ordinal));
        Assert.DoesNotContain(errors, e => e.StartsWith("/shipTo: required:", StringComparison.Ordinal));
        Assert.Contains(Validate(validator, """{"shipTo":{}}"""), e => e.StartsWith("/shipTo: required:", StringComparison.Ordinal));
    }

    [Fact]
    public void Ref_to_a_definition_inside_a_referenced_document_is_followed()
    {
        const string common = """{"$defs":{"positive":{"type":"integer","exclusiveMinimum":0}}}""";
        const string schema = """
            {"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","properties":{"count":{"$ref":"common.json#/$defs/positive"}}}
            """;
        var validator = Build(schema, [new ResolvedReference("common.json", "common-value", 1, common, [])]);

        Assert.Empty(Validate(validator, """{"count":3}"""));
        Assert.Contains(Validate(validator, """{"count":0}"""), e => e.StartsWith("/count: exclusiveMinimum:", StringComparison.Ordinal));
    }

    [Fact]
    public void Catastrophic_backtracking_pattern_returns_a_correct_answer()
    {
        var validator = Build("""{"type":"string","pattern":"^(a+)+$"}""");
        var attack = new string('a', 5000) + "!";

        var errors = Validate(validator, JsonSerializer.Serialize(attack));

        Assert.Contains(errors, e => e.StartsWith("(root): pattern:", StringComparison.Ordinal));
        Assert.Empty(Validate(validator, JsonSerializer.Serialize(new string('a', 5000))));
    }

    [Fact]
    public void Catastrophic_backtracking_in_pattern_properties_returns_a_correct_answer()
    {
        var validator = Build("""{"type":"object","patternProperties":{"^(a+)+$":{"type":"integer"}}}""");
        var name = new string('a', 5000);

        Assert.Empty(Validate(validator, $$"""{"{{name}}!":"not checked","{{name}}":1}"""));
        Assert.Contains(Validate(validator, $$"""{"{{name}}":"text"}"""), e => e.StartsWith($"/{name}: type:", StringComparison.Ordinal));
    }

    [Fact]
    public void Backtracking_matches_of_one_record_are_bounded_together_on_the_compiled_path()
    {
        // From a hostile-schema review: each match was bounded by its 100 ms timeout, but a record of many strings that each
        // take just under it held a core for their sum. The lookahead keeps the pattern on the backtracking fallback.
        const string pattern = "^(?=a)(a+)+$";
        var validator = Build($$$"""{"type":"array","items":{"type":"string","pattern":"{{{pattern}}}"}}""");
        Assert.True(validator.ValidatesDecoded);
        string slow = SlowPatternInput.For(pattern);
        string record = JsonSerializer.Serialize(Enumerable.Range(0, 400).Select(i => slow).ToArray());

        string error = Assert.Single(validator.ValidateDecoded(Decoded(record))!);

        Assert.Contains("and this record's other patterns that backtrack took longer than 100 ms in all", error, StringComparison.Ordinal);
        // The allowance is per record: the next record starts afresh, and matching strings are still accepted.
        Assert.Empty(validator.ValidateDecoded(Decoded(JsonSerializer.Serialize(Enumerable.Repeat("aaaa", 400).ToArray())))!);
    }

    [Fact]
    public void A_record_refused_for_its_backtracking_time_leaves_no_charge_behind_for_the_next_match_on_its_thread()
    {
        // From a review: the record's total stayed on the thread, and apply's masking check (which matched the redacted
        // value against a lookahead pattern on the same thread) then failed at once: HTTP 500 on 7 of 12 applies.
        const string pattern = "^(?=a)(a+)+$";
        var validator = Build($$$"""{"type":"array","items":{"type":"string","pattern":"{{{pattern}}}"}}""");
        string record = JsonSerializer.Serialize(Enumerable.Repeat(SlowPatternInput.For(pattern), 400).ToArray());
        Assert.Contains("in all", Assert.Single(validator.ValidateDecoded(Decoded(record))!), StringComparison.Ordinal);

        using var masked = JsonDocument.Parse("""{"type":"object","properties":{"s":{"type":"string","pattern":"^(?!x).*$"}}}""");
        Assert.Null(CompiledJsonValidator.TryCompile(masked.RootElement, assertFormat: false)!.MaskingProblem(["s"], PrivacyAction.Redact));
        using var hashed = JsonDocument.Parse("""{"type":"object","properties":{"s":{"type":"string","pattern":"^(?!0).*$"}}}""");
        Assert.Contains("the hashed value breaks it", CompiledJsonValidator.TryCompile(hashed.RootElement, assertFormat: false)!.MaskingProblem(["s"], PrivacyAction.Hash), StringComparison.Ordinal);
    }

    [Fact]
    public void The_backtracking_allowance_counts_the_threads_cpu_time_not_time_spent_waiting()
    {
        // From a review: counted in wall-clock time, a valid record (70 ms of matching) was refused with eight validations at
        // once on two cores. On Linux the allowance reads the thread's CPU clock, which does not run while the thread waits.
        Assert.Equal(OperatingSystem.IsLinux() && Environment.Is64BitProcess, ThreadCpuClock.MeasuresCpu);
        long workerCpu = 0;
        using var done = new ManualResetEventSlim();
        var worker = new Thread(() =>
        {
            // Busy for 200 ms of its own clock while this thread waits for it.
            long began = ThreadCpuClock.Now();
            while (ThreadCpuClock.Now() - began < 200_000_000)
            {
            }

            workerCpu = ThreadCpuClock.Now() - began;
            done.Set();
        });
        long started = ThreadCpuClock.Now();
        worker.Start();
        Assert.True(done.Wait(TimeSpan.FromSeconds(60)));
        long waiting = ThreadCpuClock.Now() - started;

        Assert.InRange(waiting, 0, ThreadCpuClock.MeasuresCpu ? workerCpu / 2 : long.MaxValue);
    }

    [Theory]
    [InlineData("""{"type":"array","items":{"type":"string","pattern":"[ab]*a[ab]{1000}c"}}""", true)]
    [InlineData("""{"$defs":{"s":{"type":"string","pattern":"[ab]*a[ab]{1000}c"}},"type":"array","items":{"$ref":"#/$defs/s"}}""", false)]
    [InlineData("""{"type":"array","items":{"type":"object","patternProperties":{"[ab]*a[ab]{1000}c":{"type":"integer"}}}}""", false)]
    public void Linear_time_matches_of_one_record_are_bounded_together_by_their_work(string schema, bool compiled)
    {
        // From a review: linear in the input, but a pattern of large counted repeats takes microseconds a character: one
        // 950 KB record held a core for 4 s. Each 60 KB string costs about 240,000 units of work against it.
        var validator = Build(schema);
        Assert.Equal(compiled, validator.ValidatesDecoded);
        string text = string.Concat(Enumerable.Repeat("ab", 30_000));
        string record = schema.Contains("patternProperties", StringComparison.Ordinal)
            ? JsonSerializer.Serialize(new[] { new Dictionary<string, int> { [text] = 1 }, new Dictionary<string, int> { [text + "b"] = 2 } })
            : JsonSerializer.Serialize(new[] { text, text + "b" });

        string error = Assert.Single(compiled ? validator.ValidateDecoded(Decoded(record))! : Validate(validator, record));

        Assert.Contains("and this record's other patterns takes more than 200,000 units of work in all", error, StringComparison.Ordinal);
        // Small patterns are charged by the text's length alone: a megabyte of it is well within the work.
        var small = Build("""{"type":"array","items":{"type":"string","pattern":"^[ab]+$"}}""");
        Assert.Empty(small.ValidateDecoded(Decoded(JsonSerializer.Serialize(new[] { string.Concat(Enumerable.Repeat("ab", 500_000)) })))!);
    }

    [Fact]
    public void The_pass_that_lists_a_bad_records_errors_shares_the_records_pattern_allowance()
    {
        // From a review: the library path validates a bad record twice (a quick pass, then one listing the errors), and the
        // second pass started a fresh allowance, so a record just under it cost twice the bound (443-502 ms). Charged by
        // work (deterministic): the string costs about 116,000 units a pass, under the 200,000 of one record, not of two.
        var validator = Build("""{"$defs":{"s":{"type":"string","pattern":"[ab]*a[ab]{1000}"}},"type":"array","items":{"anyOf":[{"$ref":"#/$defs/s"},{"type":"boolean"}]}}""");
        Assert.False(validator.ValidatesDecoded);
        string text = string.Concat(Enumerable.Repeat("ab", 15_000));
        Assert.Empty(Validate(validator, JsonSerializer.Serialize(new object[] { text, true })));

        IReadOnlyList<string> errors = Validate(validator, JsonSerializer.Serialize(new object[] { text, 5 }));

        Assert.Contains(errors, e => e.Contains("and this record's other patterns takes more than 200,000 units of work in all", StringComparison.Ordinal));
    }

    [Fact]
    public void Backtracking_matches_of_one_record_are_bounded_together_in_pattern_properties()
    {
        // The review's case: one record of 20,000 property names took 19.5 s against a lookahead pattern.
        const string pattern = "^(?=a)(a+)+$";
        var validator = Build("""{"type":"object","patternProperties":{""" + $"\"{pattern}\"" + """:{"type":"integer"}}}""");
        Assert.False(validator.ValidatesDecoded);
        string slow = SlowPatternInput.For(pattern);
        string record = JsonSerializer.Serialize(Enumerable.Range(0, 400).ToDictionary(i => slow + i, i => i));

        string error = Assert.Single(Validate(validator, record));

        Assert.StartsWith("(schema): pattern: matching the pattern '^(?=a)(a+)+$' and this record's other patterns", error, StringComparison.Ordinal);
        Assert.Empty(Validate(validator, """{"aaa":1,"b!":"not matched"}"""));
        Assert.Contains(Validate(validator, """{"aaa":"text"}"""), e => e.StartsWith("/aaa: type:", StringComparison.Ordinal));
    }

    [Fact]
    public void A_pattern_repeated_in_a_schema_is_built_once_for_both_validation_paths()
    {
        // Each pattern is a linear-time regex of 0.1-0.5 MB: a schema with an email pattern on 300 fields built 600 of them
        // (the library's schema and the compiled one each had their own).
        string fields = string.Join(',', Enumerable.Range(0, 300).Select(i => $$$"""
            "f{{{i}}}":{"type":"string","pattern":"^\\w+@\\w+\\.com$"}
            """));
        string schema = """{"type":"object","properties":{""" + fields + ""","a":{"type":"string","pattern":"^a+$"},"b":{"pattern":"^b+$"}}}""";
        int before = BoundedRegex.BuiltOnThisThread;

        var validator = Build(schema);

        Assert.True(validator.ValidatesDecoded);
        Assert.Equal(3, BoundedRegex.BuiltOnThisThread - before);
        Assert.Empty(validator.ValidateDecoded(Decoded("""{"f0":"ann@mail.com","f299":"bo@x.com","a":"aa","b":"bbb"}"""))!);
        Assert.Equal(2, validator.ValidateDecoded(Decoded("""{"f7":"not an email","b":"c"}"""))!.Count);
        Assert.Equal(2, Validate(validator, """{"f7":"not an email","b":"c"}""").Count);
    }

    [Fact]
    public void Pattern_with_a_backreference_still_works_on_the_backtracking_fallback()
    {
        var validator = Build("""{"type":"string","pattern":"^(ab)\\1$"}""");

        Assert.Empty(Validate(validator, "\"abab\""));
        Assert.NotEmpty(Validate(validator, "\"abba\""));
    }

    [Fact]
    public void Pattern_dotnet_cannot_compile_is_an_invalid_schema()
    {
        // The registry's parser lets it through; .NET knows only short Unicode property names (\p{L}).
        var parsed = Format.Parse("""{"type":"string","pattern":"^\\p{Letter}+$"}""", [], normalize: false);

        var ex = Assert.Throws<InvalidSchemaException>(() => JsonPayloadValidator.Create(parsed));
        Assert.Contains("not a valid regular expression", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unsupported_draft_is_an_invalid_schema()
    {
        var parsed = Format.Parse("""{"$schema":"http://json-schema.org/draft-04/schema#","type":"string"}""", [], normalize: false);

        var ex = Assert.Throws<InvalidSchemaException>(() => JsonPayloadValidator.Create(parsed));
        Assert.Contains("draft-04", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Draft_is_taken_from_dollar_schema_over_the_default()
    {
        // prefixItems is a 2020-12 keyword: draft 7 ignores it as unknown.
        const string schema = """{"$schema":"https://json-schema.org/draft/2020-12/schema","prefixItems":[{"type":"integer"}]}""";
        var validator = Build(schema, options: new JsonPayloadValidatorOptions { DefaultDraft = JsonValidationDraft.Draft7 });
        Assert.NotEmpty(Validate(validator, """["x"]"""));

        var draft7 = Build("""{"prefixItems":[{"type":"integer"}]}""", options: new JsonPayloadValidatorOptions { DefaultDraft = JsonValidationDraft.Draft7 });
        Assert.Empty(Validate(draft7, """["x"]"""));
    }

    [Fact]
    public void Format_is_an_annotation_unless_assertion_is_asked_for()
    {
        const string schema = """{"type":"string","format":"email"}""";

        Assert.Empty(Validate(Build(schema), "\"not an email\""));
        var asserting = Build(schema, options: new JsonPayloadValidatorOptions { AssertFormat = true });
        Assert.Contains(Validate(asserting, "\"not an email\""), e => e.StartsWith("(root): format:", StringComparison.Ordinal));
        Assert.Empty(Validate(asserting, "\"ann@example.com\""));
    }

    [Fact]
    public void Messages_are_capped()
    {
        var validator = Build("""{"type":"array","items":{"type":"string"}}""", options: new JsonPayloadValidatorOptions { MaxErrors = 3 });

        var errors = Validate(validator, "[" + string.Join(",", Enumerable.Range(0, 50)) + "]");

        Assert.Equal(4, errors.Count);
        Assert.StartsWith("... and ", errors[3], StringComparison.Ordinal);
    }

    [Fact]
    public void One_validator_serves_many_records_and_threads()
    {
        var validator = Build(PersonSchema);
        using var valid = JsonDocument.Parse("""{"name":"ann","age":30}""");
        using var invalid = JsonDocument.Parse("""{"name":"ann","age":7}""");

        var outcomes = new int[2000];
        Parallel.For(0, outcomes.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            var errors = validator.Validate(i % 2 == 0 ? valid.RootElement : invalid.RootElement);
            outcomes[i] = errors.Count == 0 ? 0 : errors[0].StartsWith("/age: minimum:", StringComparison.Ordinal) ? 1 : -1;
        });

        for (var i = 0; i < outcomes.Length; i++)
        {
            Assert.Equal(i % 2, outcomes[i]);
        }
    }

    [Fact]
    public void Cache_builds_one_validator_per_schema_id()
    {
        var cache = new JsonPayloadValidatorCache();
        var person = Format.Parse(PersonSchema, [], normalize: false);
        var other = Format.Parse("""{"type":"integer"}""", [], normalize: false);

        var first = cache.GetOrCreate(7, person);
        var again = cache.GetOrCreate(7, person);
        var different = cache.GetOrCreate(8, other);

        Assert.Same(first, again);
        Assert.NotSame(first, different);
        Assert.Equal(2, cache.Count);
        Assert.True(cache.Remove(7));
        Assert.NotSame(first, cache.GetOrCreate(7, person));
    }

    [Fact]
    public void Cache_keeps_its_capacity_dropping_the_least_recently_used()
    {
        var cache = new JsonPayloadValidatorCache(capacity: 2);
        var person = Format.Parse(PersonSchema, [], normalize: false);
        var integer = Format.Parse("""{"type":"integer"}""", [], normalize: false);
        var text = Format.Parse("""{"type":"string"}""", [], normalize: false);

        var first = cache.GetOrCreate(1, person);
        NextTick();
        var second = cache.GetOrCreate(2, integer);
        NextTick();
        Assert.Same(first, cache.GetOrCreate(1, person)); // 1 is now the more recently used
        NextTick();
        cache.GetOrCreate(3, text);

        Assert.Equal(2, cache.Count);
        Assert.Same(first, cache.GetOrCreate(1, person));
        Assert.NotSame(second, cache.GetOrCreate(2, integer)); // evicted, built again

        // Uses are ordered by Stopwatch ticks: wait (bounded) until the next reading differs from this one.
        static void NextTick()
        {
            long now = System.Diagnostics.Stopwatch.GetTimestamp();
            for (int spin = 0; spin < 10_000_000 && System.Diagnostics.Stopwatch.GetTimestamp() == now; spin++)
            {
                Thread.SpinWait(1);
            }
        }
    }

    [Fact]
    public void Cache_keeps_the_regexes_it_holds_under_its_capacity()
    {
        // A validator's patterns are most of its memory (a review's 50 counted patterns took 7.5 MB): the bound counts them.
        var cache = new JsonPayloadValidatorCache(regexCapacity: 3);
        var twoPatterns = Format.Parse("""{"properties":{"a":{"pattern":"^a+$"},"b":{"pattern":"^b+$"},"c":{"pattern":"^a+$"}}}""", [], normalize: false);
        var otherTwo = Format.Parse("""{"properties":{"x":{"pattern":"^x+$"},"y":{"pattern":"^y+$"}}}""", [], normalize: false);
        var five = Format.Parse("""{"properties":{"p":{"pattern":"^1$"},"q":{"pattern":"^2$"},"r":{"pattern":"^3$"},"s":{"pattern":"^4$"},"t":{"pattern":"^5$"}}}""", [], normalize: false);

        Assert.Equal(2, cache.GetOrCreate(1, twoPatterns).RegexCount); // a repeated pattern is one regex
        cache.GetOrCreate(2, otherTwo);
        Assert.Equal((1, 2), (cache.Count, cache.RegexCount)); // 4 > 3: the older went

        // One validator past the bound alone is kept: it is the one in use.
        cache.GetOrCreate(3, five);
        Assert.Equal((1, 5), (cache.Count, cache.RegexCount));
    }

    [Fact]
    public void Cache_forgets_validators_whose_id_no_longer_names_their_schema()
    {
        var cache = new JsonPayloadValidatorCache();
        var person = Format.Parse(PersonSchema, [], normalize: false);
        var integer = Format.Parse("""{"type":"integer"}""", [], normalize: false);
        cache.GetOrCreate(1, person);
        cache.GetOrCreate(2, integer);
        cache.GetOrCreate(3, integer);

        // Id 1 was deleted for good; id 3 names another schema now (IMPORT mode); id 2 is as it was.
        int removed = cache.RemoveStale(id => id switch { 2 => integer, 3 => person, _ => null });

        Assert.Equal(2, removed);
        Assert.Equal(1, cache.Count);
    }

    [Fact]
    public void Cache_builds_again_when_an_id_names_another_schema()
    {
        // IMPORT mode may register a new schema under an id that was hard-deleted: records must meet the new one.
        var cache = new JsonPayloadValidatorCache();
        var person = Format.Parse(PersonSchema, [], normalize: false);
        var integer = Format.Parse("""{"type":"integer"}""", [], normalize: false);

        var before = cache.GetOrCreate(7, person);
        var after = cache.GetOrCreate(7, integer);

        Assert.NotSame(before, after);
        Assert.Empty(Validate(after, "42"));
        Assert.NotEmpty(Validate(after, "\"not a number\""));
        Assert.Equal(1, cache.Count);
    }

    [Fact]
    public void Cache_does_not_keep_a_schema_that_cannot_be_built()
    {
        var cache = new JsonPayloadValidatorCache();
        var broken = Format.Parse("""{"pattern":"^\\p{Letter}+$"}""", [], normalize: false);

        Assert.Throws<InvalidSchemaException>(() => cache.GetOrCreate(1, broken));
        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public void Library_faults_on_odd_values_reject_the_record_instead_of_throwing()
    {
        // JsonSchema.Net 8.0.5 throws FormatException checking this relative JSON pointer (an Arabic-Indic digit).
        var validator = Build("""{"format":"relative-json-pointer"}""", options: new JsonPayloadValidatorOptions { AssertFormat = true });

        var errors = Validate(validator, "\"\u0661\"");

        Assert.Contains(errors, e => e.StartsWith("(schema): the validator failed", StringComparison.Ordinal));
    }

    [Fact]
    public void Only_schemas_of_the_json_format_are_accepted()
    {
        Assert.Throws<ArgumentException>(() => JsonPayloadValidator.Create(new OtherSchema()));
    }

    private sealed class OtherSchema : IParsedSchema
    {
        public SchemaType Type => SchemaType.Avro;

        public string Text => "\"string\"";

        public string Canonical => "\"string\"";

        public IReadOnlyList<ResolvedReference> References => [];
    }
}
