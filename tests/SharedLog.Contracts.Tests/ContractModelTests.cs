using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using SharedLog.Contracts.Gate;
using SharedLog.Contracts.Model;
using SharedLog.Contracts.Policy;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Tests;

public class ContractModelTests
{
    private const string Payments = """
        topic: payments
        class: certified
        owner: team-payments
        value:
          strategy: TopicNameStrategy
          versions: 2-4
        rules:
          - name: positive
            expr: value.amount > 0
        privacy:
          - field: card.number
            action: hash
        """;

    [Fact]
    public void ClassDefaultsApplyAndCanBeOverridden()
    {
        ContractDefinition certified = ContractParser.Parse(Payments);
        Assert.Equal((TopicClass.Certified, FailureAction.Reject, CompatibilityLevel.FullTransitive), (certified.Class, certified.OnFailure, certified.Compatibility));
        Assert.Equal(("payments", 2, 4), (certified.Name, certified.Value!.MinVersion, certified.Value.MaxVersion));
        Assert.Equal("payments-value", certified.Value.SubjectFor("payments", isKey: false, recordName: null));
        Assert.Equal("payments.quarantine", certified.QuarantineTopicFor("payments"));

        ContractDefinition raw = ContractParser.Parse("topic: clicks\n");
        Assert.Equal((TopicClass.Raw, FailureAction.Observe), (raw.Class, raw.OnFailure));
        ContractDefinition overridden = ContractParser.Parse("topic: clicks\nonFailure: quarantine\ncompatibility: none\n");
        Assert.Equal((FailureAction.Quarantine, CompatibilityLevel.None), (overridden.OnFailure, overridden.Compatibility));
    }

    [Theory]
    [InlineData("topic: orders.*", "orders.eu", true)]
    [InlineData("topic: orders.*", "orders", false)]
    [InlineData("topic: '*'", "_schemas", true)] // the pattern matches; the store keeps internal topics out
    [InlineData("topic: orders", "orders.eu", false)]
    public void PatternsMatchWholeNames(string yaml, string topic, bool matches) =>
        Assert.Equal(matches, ContractParser.Parse(yaml).Matches(topic));

    [Theory]
    [InlineData("a*b*a", "aba", true)] // the pieces may not overlap: "a" then "b" then the last "a"
    [InlineData("a*b*a", "ab", false)]
    [InlineData("a*a", "a", false)]
    [InlineData("*.*.*", "a..b", true)]
    [InlineData("*.*.*", "a.b", false)]
    [InlineData("x*yy*y", "xyyy", true)]
    [InlineData("x*yy*y", "xyy", false)]
    public void PatternPiecesMatchInOrderWithoutOverlapping(string pattern, string topic, bool matches) =>
        Assert.Equal(matches, ContractParser.Parse($"topic: '{pattern}'\n").Matches(topic));

    [Fact]
    public void PatternsMatchAsTheRegexOfTheirStarsDoes()
    {
        // Patterns and names over a small alphabet, so pieces repeat and overlap: the matcher answers as "^piece.*piece\z" does.
        var random = new Random(20261207);
        const string letters = "ab.";
        for (int round = 0; round < 20_000; round++)
        {
            string pattern = RandomText(random, "ab.*", random.Next(1, 8));
            if (!pattern.Contains('*', StringComparison.Ordinal))
            {
                pattern += "*";
            }

            string topic = RandomText(random, letters, random.Next(1, 10));
            var regex = new System.Text.RegularExpressions.Regex("^" + System.Text.RegularExpressions.Regex.Escape(pattern).Replace("\\*", ".*", StringComparison.Ordinal) + "\\z");
            ContractDefinition definition = ContractParser.Parse($"topic: '{pattern}'\n");
            Assert.True(regex.IsMatch(topic) == definition.Matches(topic), $"pattern '{pattern}', topic '{topic}': regex says {regex.IsMatch(topic)}");
        }

        static string RandomText(Random random, string alphabet, int length)
        {
            var text = new StringBuilder(length);
            for (int i = 0; i < length; i++)
            {
                text.Append(alphabet[random.Next(alphabet.Length)]);
            }

            return text.ToString();
        }
    }

    /// <summary>A store over fresh in-memory journals, loaded.</summary>
    private static async Task<ContractStore> LoadedStoreAsync()
    {
        var store = new ContractStore(new InMemoryJournal(), new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        await store.LoadAsync(CancellationToken.None);
        return store;
    }

    [Fact]
    public async Task AChangeKeepsTheParsedDefinitionsOfTheContractsItDidNotChange()
    {
        // Each change used to parse every contract in force again (tens of milliseconds with fifty pattern contracts).
        using ContractStore store = await LoadedStoreAsync();
        await store.ApplyAsync("topic: 'orders.*'\n", "a", false, _ => [], CancellationToken.None);
        await store.ApplyAsync("topic: payments\n", "a", false, _ => [], CancellationToken.None);
        ActiveContract orders = store.ForTopic("orders.eu")!;
        ActiveContract payments = store.ForTopic("payments")!;

        await store.ApplyAsync("topic: clicks\n", "a", false, _ => [], CancellationToken.None);
        Assert.Same(orders.Definition, store.ForTopic("orders.eu")!.Definition);
        Assert.Same(payments.Definition, store.ForTopic("payments")!.Definition);

        // The contract changed is parsed again: its new version is in force.
        await store.ApplyAsync("topic: 'orders.*'\nclass: certified\n", "a", false, _ => [], CancellationToken.None);
        ActiveContract changed = store.ForTopic("orders.eu")!;
        Assert.Equal((2, TopicClass.Certified), (changed.Version, changed.Definition.Class));
        Assert.Same(payments.Definition, store.ForTopic("payments")!.Definition);

        // The listing (GET /contracts) pairs each revision in force with that same parsed contract.
        Assert.Equal(["clicks:1", "orders.*:2", "payments:1"], store.CurrentContracts.Select(c => $"{c.Revision.Name}:{c.Revision.Version}").Order(StringComparer.Ordinal));
        Assert.All(store.CurrentContracts, c => Assert.Equal((c.Revision.Name, c.Revision.Version), (c.Contract.Definition.Name, c.Contract.Version)));
        Assert.Same(changed.Definition, store.CurrentContracts.Single(c => c.Revision.Name == "orders.*").Contract.Definition);
    }

    [Theory]
    [InlineData("class: certified\n", "topic is required")]
    [InlineData("topic: t\nclass: golden\n", "class 'golden'")]
    [InlineData("topic: t\nonFailure: explode\n", "onFailure 'explode'")]
    [InlineData("topic: t\nclass: sensitive\nvalue: {}\n", "at least one privacy rule")]
    [InlineData("topic: t\nrules:\n  - name: r\n    expr: x\n", "bind a value")]
    [InlineData("topic: t\nvalue: { versions: '5-2' }\n", "value.versions '5-2' is an empty range: write the lower version first (2-5).")]
    [InlineData("topic: t\nvalue: { versions: '0-3' }\n", "names version 0: registry versions are numbered from 1")] // was "is an empty range"
    [InlineData("topic: t\nkey: { versions: '>=0' }\n", "key.versions '>=0' names version 0")]
    [InlineData("topic: t\nvalue: { versions: 'latest' }\n", "must be N, N-M or >=N")]
    [InlineData("topic: t\nvalue: { versions: '99999999999999999999' }\n", "with versions from 1 to 2147483647")] // was "is an empty range"
    [InlineData("topic: t\nprivacy:\n  - field: a\n    tag: PII\n    action: hash\n", "exactly one of field or tag")]
    [InlineData("topic: t\nprivacy:\n  - field: 'a..b'\n    action: hash\n", "dotted path")]
    [InlineData("topic: t\n\tclass: raw\n", "line 2, column 1: YAML is indented with spaces, not tabs")] // was placed at line 1, column 8
    [InlineData("topic: t\ndescription: |\n  Orders.\n  \tindented text\nvalue:\n\tversions: '1'\n", "line 6, column 1: YAML is indented with spaces, not tabs")] // not the block scalar's valid tab
    [InlineData("topic: t\nvalue:\n  subject: s\n \tversions: '1'\nkey: {\n\tsubject: k\n}\n", "line 4, column 2: YAML is indented with spaces, not tabs")] // not the flow mapping's valid tab after it
    [InlineData("topic: t\ncolour: red\n", "line 2, column 1: unknown key 'colour'")] // named in the contract's terms, not a .NET type's
    [InlineData("topic: t\nvalue: {subjct: s}\n", "unknown key 'subjct' (did you mean 'subject'?)")]
    [InlineData("topic: t\nownr: team\n", "line 2, column 1: unknown key 'ownr' (did you mean 'owner'?)")] // from a user's review: no hint
    [InlineData("topic: t\nrules:\n  - name: a\n    exrp: 'true'\n", "unknown key 'exrp' (did you mean 'expr'?)")]
    [InlineData("topic: t\nonfailure: reject\n", "unknown key 'onfailure' (did you mean 'onFailure'?)")]
    [InlineData("topic: t\nclass: certifed\n", "class 'certifed' must be one of raw, certified, sensitive, quarantine, remediation (did you mean 'certified'?).")]
    [InlineData("topic: t\nonFailure: quarantin\n", "(did you mean 'quarantine'?)")]
    [InlineData("topic: t\nvalue: {}\nprivacy:\n  - field: a\n    action: hsh\n", "privacy[0].action 'hsh' must be one of redact, hash, drop (did you mean 'hash'?)")]
    [InlineData("hello\n", "a value of the wrong kind")] // was "Invalid cast from 'System.String' to '...ContractDocument'"
    [InlineData("topic: a\n---\ntopic: b\n", "a contract file holds one YAML document")]
    [InlineData("topic: t\nclass: [raw]\n", "line 2, column 8: a value of the wrong kind")] // named System.String, System.Private.CoreLib, Version=...
    [InlineData("topic: t\nrules: {a: 1}\n", "line 2, column 8: a value of the wrong kind")] // was "Expected 'SequenceStart', got 'MappingStart'"
    [InlineData("- topic: t\n", "a value of the wrong kind")]
    [InlineData("topic: {a: 1}\n", "line 1, column 8: a value of the wrong kind")] // was "Failed to create an instance of type 'System.String'"
    [InlineData("topic: a\nretention: {a: 1}\n", "a value of the wrong kind")]
    [InlineData("topic: a\nvalue: {schemaFile: f.avsc, references: [{name: x}, {name: y, subject: s}]}\n", "value.references[1] needs a name")] // both were named references[0]
    [InlineData("topic: t\nrules:\n  - name: ''\n    expr: 'true'\n", "rules[0]: a rule's name must not be blank")]
    [InlineData("topic: t\nclass: [unclosed\n", "line ")]
    [InlineData("a: &x [1]\nb: *x\n", "anchors are not allowed")]
    [InlineData("topic: t\nowner: !!map {a: b}\n", "line 2, column 8: YAML tags (tag:yaml.org,2002:map) are not allowed")] // was stored as owner "(Collection)"
    [InlineData("topic: t\ndescription: !!float 1e99999\n", "YAML tags")] // was "Infinity"
    [InlineData("topic: t\nvalue: {}\nrules:\n  -\n  - expr: 'true'\n", "rules[0] is empty")] // null list entries, found by fuzzing
    [InlineData("topic: t\nvalue: {}\nprivacy:\n  -\n", "privacy[0] needs exactly one of field or tag")]
    [InlineData("topic: t\nprivacy:\n  - field: id\n    action: {hash\nonFailure: quarantine\n", "line 4, column 13: the YAML is malformed after this point")] // YamlDotNet throws InvalidOperationException here
    [InlineData("topic: 'bad topic!'\n", "must be a topic name or a pattern")]
    [InlineData("topic: t\nquarantineTopic: 'q q'\n", "quarantineTopic 'q q'")]
    [InlineData("topic: t\nname: a/b\n", "name 'a/b' must be")]
    [InlineData("topic: t\nname: ''\n", "name '' must be")]
    [InlineData("topic: t\nname: '..'\n", "name '..' must be")]
    [InlineData("topic: t\nonFailure: quarantine\nquarantineTopic: '..'\n", "quarantineTopic '..' must be")]
    [InlineData("topic: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nonFailure: quarantine\n", "is 250 characters long")]
    [InlineData("topic: '.'\n", "must be a topic name or a pattern")]
    // A final line break passed the checks ('$' matches before one), and a privacy field "ssn\n" then masked nothing.
    [InlineData("topic: t\nclass: sensitive\nvalue: {subject: s}\nprivacy:\n  - field: \"ssn\\n\"\n    action: redact\n", "dotted path")]
    [InlineData("topic: \"payments\\n\"\n", "must be a topic name or a pattern")]
    [InlineData("topic: t\nname: \"x\\n\"\n", "must be 1 to 249")]
    [InlineData("topic: t\nquarantineTopic: \"{topic}.q\\n\"\n", "quarantineTopic")]
    [InlineData("topic: t\nvalue:\n  subject: ' '\n", "value.subject must not be blank")]
    [InlineData("topic: t\nkey:\n  subject: \"a\\u0001b\"\n", "key.subject must not be blank")]
    [InlineData("topic: t\nclass: sensitive\nvalue: {}\nprivacy:\n  - tag: ''\n    action: redact\n", "tag must be a tag name")] // was accepted, masking nothing
    [InlineData("topic: t\nvalue: {references: [{name: a, subject: s, version: 1}]}\n", "value.references are the references of value.schemaFile")]
    // From an end-to-end review: "_{topic}" for topic "schemas" quarantined producer records into the registry's journal.
    [InlineData("topic: schemas\nonFailure: quarantine\nquarantineTopic: '_{topic}'\n", "is one of the broker's internal topics")]
    // A second {topic} made a pattern gate its own quarantine topics (they were not recognised as such).
    [InlineData("topic: 'dd.*'\nonFailure: quarantine\nquarantineTopic: '{topic}.q.{topic}'\n", "names {topic} more than once")]
    // From a hostile-input review: control characters in owner or description reached terminals raw through the CLI, and
    // "1 0" was read as version 10.
    [InlineData("topic: t\nowner: \"team\\e[2J\"\n", "owner must not hold control characters")]
    [InlineData("topic: t\nowner: \"a\\nfake row\"\n", "owner must not hold control characters")]
    [InlineData("topic: t\ndescription: \"x\\u0085y\"\n", "description must not hold control characters")]
    // From a lifecycle review: a rule's message went raw into the CLI's diff, record errors and quarantine headers.
    [InlineData("topic: t\nvalue: {}\nrules:\n  - name: a\n    expr: 'true'\n    message: \"\\e[31mred\"\n", "a rule's message must not hold control characters")]
    [InlineData("topic: t\nvalue: {}\nrules:\n  - name: a\n    expr: 'true'\n    message: \"x\\u2028forged\"\n", "a rule's message must not hold control characters")]
    [InlineData("topic: t\nowner: \"a\\u2029b\"\n", "owner must not hold control characters")]
    [InlineData("topic: t\nvalue: {references: [{name: a, subject: s, version: abc}]}\n", "a whole number was expected here")]
    [InlineData("topic: t\nvalue: {references: [{name: a, subject: s, version: 99999999999999999999}]}\n", "a whole number was expected here")]
    // From a lifecycle review: internal topics match no pattern, so this one could govern nothing.
    [InlineData("topic: '_*'\n", "starts with '_'")]
    [InlineData("topic: '_orders.*'\n", "starts with '_'")]
    [InlineData("topic: t\nvalue: { versions: '1 0' }\n", "must be N, N-M or >=N")]
    [InlineData("topic: t\nvalue: { versions: \"1\\n\" }\n", "must be N, N-M or >=N")]
    public void InvalidContractsListTheirProblems(string yaml, string expected)
    {
        ContractValidationException error = Assert.Throws<ContractValidationException>(() => ContractParser.Parse(yaml));
        Assert.Contains(error.Problems, p => p.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void AnUnknownKeyIsListedWithTheFilesOtherProblems()
    {
        // From a CLI review: a misspelt key hid every other mistake of the file until it was fixed.
        ContractValidationException error = Assert.Throws<ContractValidationException>(() => ContractParser.Parse("topic: t\nclass: golden\nownr: me\nonFailure: explode\n"));
        Assert.Equal(3, error.Problems.Count);
        Assert.StartsWith("line 3, column 1: unknown key 'ownr'", error.Problems[0], StringComparison.Ordinal);
        Assert.Contains(error.Problems, p => p.Contains("class 'golden'", StringComparison.Ordinal));
        Assert.Contains(error.Problems, p => p.Contains("onFailure 'explode'", StringComparison.Ordinal));
        Assert.DoesNotContain(error.Problems, p => p.Contains("did you mean", StringComparison.Ordinal) && !p.Contains("'ownr'", StringComparison.Ordinal));

        // A rule that does not compile is told with them too, not once they are mended.
        error = Assert.Throws<ContractValidationException>(() => ContractParser.Parse("topic: t\nclass: certifed\nvalue: {}\nrules:\n  - name: r1\n    expr: value.amount > (\n"));
        Assert.Equal(2, error.Problems.Count);
        Assert.Contains(error.Problems, p => p.StartsWith("rules[r1]: unexpected end of expression", StringComparison.Ordinal));

        // Alone, it is the only problem; with a YAML mistake after it, it is still named.
        Assert.Equal(["line 2, column 1: unknown key 'colour'"], Assert.Throws<ContractValidationException>(() => ContractParser.Parse("topic: t\ncolour: red\n")).Problems);
        Assert.Contains("unknown key 'colour'", Assert.Throws<ContractValidationException>(() => ContractParser.Parse("topic: t\ncolour: red\nrules: {a: 1}\n")).Problems[0], StringComparison.Ordinal);
    }

    [Fact]
    public void AContractHoldsAtMostAThousandRules()
    {
        string Rules(int count) => "topic: t\nvalue: {}\nrules:\n" + string.Concat(Enumerable.Range(0, count).Select(i => $"  - name: r{i}\n    expr: 'true'\n"));
        Assert.Equal(ContractParser.MaxRules, ContractParser.Parse(Rules(ContractParser.MaxRules)).Rules.Count);
        ContractValidationException error = Assert.Throws<ContractValidationException>(() => ContractParser.Parse(Rules(ContractParser.MaxRules + 1)));
        Assert.Equal(["rules: a contract holds at most 1000 rules, not 1001."], error.Problems);
    }

    [Fact]
    public void ADescriptionSpansLinesAndVersionRangesMayHoldSpaces()
    {
        ContractDefinition parsed = ContractParser.Parse("topic: t\ndescription: |\n  Orders.\n  Owned by\tpayments.\nvalue: { versions: '3 - 5' }\nkey: { versions: '>= 2' }\n");
        Assert.Equal("Orders.\nOwned by\tpayments.\n", parsed.Description);
        Assert.Equal((3, 5), (parsed.Value!.MinVersion, parsed.Value.MaxVersion));
        Assert.Equal(2, parsed.Key!.MinVersion);
    }

    [Fact]
    public void AFileWithThousandsOfProblemsListsTheFirstHundred()
    {
        // 130,000 empty rules made a 12 MB answer and log line.
        ContractValidationException error = Assert.Throws<ContractValidationException>(() => ContractParser.Parse("topic: t\nvalue: {}\nrules:\n" + string.Concat(Enumerable.Repeat("-\n", 900))));
        Assert.Equal(ContractValidationException.MaxListed + 1, error.Problems.Count);
        Assert.Equal("and 800 more problems.", error.Problems[^1]);
        Assert.True(error.Message.Length < 20_000, $"{error.Message.Length} characters");
    }

    [Fact]
    public void AStoredContractWhoseQuarantineTemplateNamesAnInternalTopicStaysInForce()
    {
        // Refused when applied now; one an older build stored is read as before (its topic is not left ungated), and the
        // quarantine writer refuses to copy into the internal topic.
        const string yaml = "topic: schemas\nclass: certified\nonFailure: quarantine\nquarantineTopic: '_{topic}'\n";
        Assert.Throws<ContractValidationException>(() => ContractParser.Parse(yaml));
        Assert.Equal("_schemas", ContractParser.Parse(yaml, stored: true).QuarantineTopicFor("schemas"));
    }

    /// <summary>Rules every record would fail (from an end-to-end review: each was applied, and then every record refused).</summary>
    [Theory]
    [InlineData("value.s.matches('(abc')", "invalid regular expression '(abc'")]
    [InlineData("matches(value.s, '[z-a]')", "invalid regular expression '[z-a]'")]
    [InlineData("foo(value)", "unbound function: no such overload for 'foo'")]
    [InlineData("1 / 0 == 1", "division by zero")]
    [InlineData("{'a': 1, 'a': 2}.size() == 2", "whatever the record")]
    [InlineData("1 + 1", "always evaluates to int, not a boolean")]
    [InlineData("'x'", "always evaluates to string")]
    public void RulesThatFailWhateverTheRecordAreProblems(string expression, string expected)
    {
        ContractDefinition definition = ContractParser.Parse($"topic: t\nvalue: {{}}\nrules:\n  - name: r\n    expr: \"{expression}\"\n");
        Assert.Contains(ContractGate.CompileProblems(definition), p => p.StartsWith("rules[r]: ", StringComparison.Ordinal) && p.Contains(expected, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("value.s.matches('^a+$')")]
    [InlineData("value.s.matches(value.pattern)")] // a pattern from the record is checked per record
    [InlineData("true")]
    [InlineData("value.n / 0 == 1 || true")]
    [InlineData("size(['EUR', 'USD']) == 2 && value.currency in ['EUR', 'USD']")]
    public void RulesThatCanHoldAreNotProblems(string expression)
    {
        ContractDefinition definition = ContractParser.Parse($"topic: t\nvalue: {{}}\nrules:\n  - name: r\n    expr: \"{expression}\"\n");
        Assert.Empty(ContractGate.CompileProblems(definition));
    }

    [Fact]
    public void DeepOrHugeFilesAreRefused()
    {
        string deep = "topic: t\ndescription: " + new string('[', 100) + new string(']', 100) + "\n";
        Assert.Contains("deeper", Assert.Throws<ContractValidationException>(() => ContractParser.Parse(deep)).Message, StringComparison.Ordinal);
        string huge = "topic: t\ndescription: " + new string('x', ContractParser.MaxDocumentChars) + "\n";
        Assert.Contains("larger", Assert.Throws<ContractValidationException>(() => ContractParser.Parse(huge)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ChangesToTheSchemaFileItsLanguageOrASecondPrivacyRuleOnOneFieldAreNewVersions()
    {
        using ContractStore store = await LoadedStoreAsync();
        const string avro = "topic: files\nvalue:\n  schemaFile: payment.avsc\n";
        Assert.True((await store.ApplyAsync(avro, "a", false, _ => [], CancellationToken.None)).Changed);
        ContractChange json = await store.ApplyAsync("topic: files\nvalue:\n  schemaFile: payment.json\n  schemaType: JSON\n", "a", false, _ => [], CancellationToken.None);
        Assert.Equal((2, true), (json.Version, json.Changed));
        Assert.Contains("+ value.schemaType: JSON", json.Diff);
        // An explicit AVRO is a change too: it admits Avro schemas only, where none admitted any type.
        ContractChange avroOnly = await store.ApplyAsync("topic: files\nvalue:\n  schemaFile: payment.json\n  schemaType: AVRO\n", "a", false, _ => [], CancellationToken.None);
        Assert.Contains("~ value.schemaType: JSON -> AVRO", avroOnly.Diff);
        ContractChange anyType = await store.ApplyAsync("topic: files\nvalue:\n  schemaFile: payment.json\n", "a", false, _ => [], CancellationToken.None);
        Assert.Equal((4, true), (anyType.Version, anyType.Changed));
        Assert.Contains("- value.schemaType: AVRO", anyType.Diff);

        // Without a schemaFile too: schemaType says which schemas records may use, so changing it is a new version.
        Assert.True((await store.ApplyAsync("topic: kinds\nvalue: {}\n", "a", false, _ => [], CancellationToken.None)).Changed);
        ContractChange typed = await store.ApplyAsync("topic: kinds\nvalue:\n  schemaType: PROTOBUF\n", "a", false, _ => [], CancellationToken.None);
        Assert.Equal((2, true), (typed.Version, typed.Changed));
        Assert.Contains("+ value.schemaType: PROTOBUF", typed.Diff);

        const string oneRule = "topic: files\nclass: sensitive\nvalue: {}\nprivacy:\n  - field: email\n    action: hash\n";
        Assert.True((await store.ApplyAsync(oneRule, "a", false, _ => [], CancellationToken.None)).Changed);
        ContractChange twoRules = await store.ApplyAsync(oneRule + "  - field: email\n    action: redact\n", "a", false, _ => [], CancellationToken.None);
        Assert.Equal((6, true), (twoRules.Version, twoRules.Changed));
    }

    [Fact]
    public async Task ARegistryLevelChangesBeforeTheContractChangeIsSeenAndIsSetAgainAfter()
    {
        // From a review: the revision was visible before the levels changed, so a registration that saw the contract in
        // force was still checked at the old level, and a PUT /config accepted after a delete was undone by the level
        // given back late. Here each call into the registry notes whether the store already showed the change.
        using ContractStore store = await LoadedStoreAsync();
        var calls = new List<string>();
        var levels = new Dictionary<string, string?>();
        var link = new RegistryLink(
            subject => levels.GetValueOrDefault(subject),
            _ => true,
            released =>
            {
                calls.Add($"released, contract seen: {store.ForTopic("orders") is not null}");
                return Task.CompletedTask;
            },
            inForce =>
            {
                calls.Add($"in force, contract seen: {store.ForTopic("orders") is not null}");
                return Task.CompletedTask;
            });

        await store.ApplyAsync("topic: orders\nclass: raw\ncompatibility: FULL\nvalue: {}\n", "a", false, _ => [], CancellationToken.None, link);
        Assert.Equal(["in force, contract seen: False", "in force, contract seen: True"], calls);

        calls.Clear();
        await store.DeleteAsync("orders", "a", CancellationToken.None, link);
        Assert.Equal(["released, contract seen: True"], calls);
    }

    [Fact]
    public async Task WorkBetweenChangesWaitsForAChangeSettingItsLevels()
    {
        // The registry API repairs a bound subject's level after a subject delete through this: interleaved with a contract
        // delete (review 12), it wrote the deleted contract's level after the delete had given the earlier one back.
        using ContractStore store = await LoadedStoreAsync();
        var inForceRunning = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var releaseInForce = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task<ContractChange> change = store.ApplyAsync("topic: t\nowner: a\n", "a", dryRun: false, _ => [], CancellationToken.None, Link(async _ =>
        {
            inForceRunning.TrySetResult();
            await releaseInForce.Task;
        }));
        await inForceRunning.Task.WaitAsync(TimeSpan.FromSeconds(10));

        Task<bool> between = store.BetweenChangesAsync(() => Task.FromResult(store.ForTopic("t") is not null));
        Assert.NotSame(between, await Task.WhenAny(between, Task.Delay(TimeSpan.FromMilliseconds(300)))); // a bounded wait for what must not happen
        releaseInForce.SetResult();
        await change.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(await between.WaitAsync(TimeSpan.FromSeconds(10))); // it ran after the change, which it saw
    }

    [Fact]
    public async Task ARegistryFailureOfAnyKindLeavesTheStoredChangeAppliedAndItsVersionUsed()
    {
        // From a review: with the levels set before the change is seen, an exception other than the registry's own (its
        // semaphore disposed at shutdown) left a revision durable in the journal but not in memory.
        using ContractStore store = await LoadedStoreAsync();
        var link = new RegistryLink(_ => null, _ => true, _ => Task.CompletedTask, _ => throw new ObjectDisposedException("SchemaRegistry"));
        var stored = await Assert.ThrowsAsync<ContractRegistrySyncException>(() => store.ApplyAsync("topic: orders\nclass: raw\ncompatibility: FULL\nvalue: {}\n", "a", false, _ => [], CancellationToken.None, link));
        Assert.IsType<ObjectDisposedException>(stored.InnerException);
        Assert.Equal(1, stored.Version);
        Assert.NotNull(store.ForTopic("orders"));
        ContractChange next = await store.ApplyAsync("topic: orders\nclass: raw\ncompatibility: BACKWARD\nvalue: {}\n", "b", false, _ => [], CancellationToken.None);
        Assert.Equal(2, next.Version);
    }

    [Fact]
    public async Task ApplyingTheSameContractAgainAfterAFailedLevelChangeFailsTheSameWay()
    {
        // From a review: the retry the answer asks for (apply the same file again) threw the registry's own exception,
        // which the API no longer answered as a problem.
        using ContractStore store = await LoadedStoreAsync();
        var failing = new RegistryLink(_ => null, _ => true, _ => Task.CompletedTask, _ => throw new SchemaRegistryException(RegistryErrorCodes.StoreError, "disk gone"));
        const string text = "topic: orders\nclass: raw\ncompatibility: FULL\nvalue: {}\n";
        Assert.Equal(1, (await Assert.ThrowsAsync<ContractRegistrySyncException>(() => store.ApplyAsync(text, "a", false, _ => [], CancellationToken.None, failing))).Version);

        var again = await Assert.ThrowsAsync<ContractRegistrySyncException>(() => store.ApplyAsync(text, "a", false, _ => [], CancellationToken.None, failing));
        Assert.Equal(1, again.Version);
        Assert.IsType<SchemaRegistryException>(again.InnerException);
    }

    [Fact]
    public async Task ASubjectWhoseLevelCannotBeSetDoesNotStopTheContractsOtherSubjects()
    {
        // The key subject became read-only after the contract was checked: its value subject still gets the contract's level.
        using var registry = new SchemaRegistry([], new InMemoryJournal(), NullLogger<SchemaRegistry>.Instance);
        await registry.LoadAsync(CancellationToken.None);
        await registry.SetModeAsync("orders-key", RegistryMode.ReadOnly, force: false, CancellationToken.None);
        ContractDefinition contract = ContractParser.Parse("topic: orders\nclass: raw\ncompatibility: FULL\nkey: {}\nvalue: {}\n");

        var refused = await Assert.ThrowsAsync<SchemaRegistryException>(() => ContractRegistrySync.ApplyAsync(contract, registry, CancellationToken.None));
        Assert.Equal(RegistryErrorCodes.OperationNotPermitted, refused.ErrorCode);
        Assert.Null(registry.SubjectCompatibility("orders-key"));
        Assert.Equal(CompatibilityLevel.Full, registry.SubjectCompatibility("orders-value"));
    }

    [Fact]
    public async Task TheMostSpecificPatternGovernsATopicAndAnExactNameBeatsEveryPattern()
    {
        using ContractStore store = await LoadedStoreAsync();
        // The broad raw pattern's name sorts first: it must still not govern the sensitive topics.
        await store.ApplyAsync("name: aaa-everything\ntopic: \"*\"\nclass: raw\n", "a", false, _ => [], CancellationToken.None);
        await store.ApplyAsync("name: pii\ntopic: customers.*\nclass: sensitive\nvalue: {}\nprivacy:\n  - field: email\n    action: hash\n", "a", false, _ => [], CancellationToken.None);
        await store.ApplyAsync("name: eu\ntopic: customers.eu.*\nclass: sensitive\nvalue: {}\nprivacy:\n  - field: email\n    action: drop\n", "a", false, _ => [], CancellationToken.None);
        await store.ApplyAsync("name: one\ntopic: customers.eu.fr\nclass: certified\n", "a", false, _ => [], CancellationToken.None);

        Assert.Equal("pii", store.ForTopic("customers.us")!.Definition.Name);
        Assert.Equal("eu", store.ForTopic("customers.eu.de")!.Definition.Name);
        Assert.Equal("one", store.ForTopic("customers.eu.fr")!.Definition.Name);
        Assert.Equal("aaa-everything", store.ForTopic("orders")!.Definition.Name);
        Assert.Null(store.ForTopic("_schemas"));
    }

    [Fact]
    public async Task AStoredContractThisBuildNoLongerTakesIsNotInForceAndCanStillBeFixedOrDeleted()
    {
        // A revision as an older, laxer build stored it: a key given twice, which this build refuses.
        var older = new InMemoryJournal();
        using (var store = new ContractStore(older, new InMemoryJournal(), NullLogger<ContractStore>.Instance))
        {
            await store.LoadAsync(CancellationToken.None);
            await store.ApplyAsync("name: lax\ntopic: lax\nonFailure: reject\n", "a", false, _ => [], CancellationToken.None);
        }

        var journal = new InMemoryJournal();
        // The change, then the mark that its audit record is written.
        Assert.Equal(2, older.Entries.Count);
        JournalEntry stored = older.Entries[0];
        byte[] lax = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(stored.Value!).Replace("onFailure: reject\\n", "onFailure: reject\\nonFailure: observe\\n", StringComparison.Ordinal));
        Assert.NotEqual(stored.Value, lax);
        await journal.AppendAsync([new JournalEntry(stored.Key, lax)], CancellationToken.None);
        // Changes to other contracts stored after it: the contracts in force are worked out once at load, not after each
        // stored change, so the unusable one is reported once (it was once per change read after it).
        using (var others = new ContractStore(journal, new InMemoryJournal(), NullLogger<ContractStore>.Instance))
        {
            await others.LoadAsync(CancellationToken.None);
            for (int owner = 0; owner < 3; owner++)
            {
                await others.ApplyAsync($"name: other\ntopic: other\nowner: team-{owner}\n", "a", false, _ => [], CancellationToken.None);
            }
        }

        var log = new SharedLog.Tests.Shared.ListLogger<ContractStore>();
        using var reopened = new ContractStore(journal, new InMemoryJournal(), log);
        await reopened.LoadAsync(CancellationToken.None);
        Assert.Single(log.Entries, e => e.Message.Contains("cannot be used", StringComparison.Ordinal));
        Assert.Equal("team-2", reopened.ForTopic("other")!.Definition.Owner);
        Assert.Null(reopened.ForTopic("lax"));
        ContractChange fixedUp = await reopened.ApplyAsync("name: lax\ntopic: lax\nonFailure: observe\n", "a", false, _ => [], CancellationToken.None);
        Assert.Equal((2, true), (fixedUp.Version, fixedUp.Changed));
        Assert.Equal(FailureAction.Observe, reopened.ForTopic("lax")!.Definition.OnFailure);
        await reopened.DeleteAsync("lax", "a", CancellationToken.None);
        Assert.Null(reopened.ForTopic("lax"));
    }

    [Fact]
    public async Task ChecksAddedByLaterBuildsRefuseChangesButKeepStoredContractsInForce()
    {
        // The quarantine topic's length matters only where records are quarantined.
        string longTopic = new string('a', 240);
        Assert.Equal(longTopic, ContractParser.Parse($"topic: {longTopic}\nonFailure: reject\n").Topic);

        const string newline = "topic: t\nclass: sensitive\nvalue: {}\nprivacy:\n  - field: \"ssn\\n\"\n    action: redact\n  - field: card\n    action: redact\n";
        Assert.Throws<ContractValidationException>(() => ContractParser.Parse(newline));
        Assert.Equal(2, ContractParser.Parse(newline, stored: true).Privacy.Count);

        // A contract an earlier build stored with a field path ending in a line break stays in force after an upgrade:
        // dropped, its topic would go ungated, its other privacy rules with it.
        var older = new InMemoryJournal();
        using (var store = new ContractStore(older, new InMemoryJournal(), NullLogger<ContractStore>.Instance))
        {
            await store.LoadAsync(CancellationToken.None);
            await store.ApplyAsync("topic: t\nclass: sensitive\nvalue: {}\nprivacy:\n  - field: ssnx\n    action: redact\n  - field: card\n    action: redact\n", "a", false, _ => [], CancellationToken.None);
        }

        var journal = new InMemoryJournal();
        JournalEntry stored = older.Entries[0];
        byte[] earlier = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(stored.Value!).Replace("ssnx", "\\\"ssn\\\\n\\\"", StringComparison.Ordinal));
        Assert.NotEqual(stored.Value, earlier);
        await journal.AppendAsync([new JournalEntry(stored.Key, earlier)], CancellationToken.None);
        using var reopened = new ContractStore(journal, new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        await reopened.LoadAsync(CancellationToken.None);
        Assert.Equal(["ssn\n", "card"], reopened.ForTopic("t")!.Definition.Privacy.Select(p => p.FieldPath));
    }

    [Fact]
    public void ASensitiveContractCannotObserveSinceObserveSkipsItsPrivacyRules()
    {
        var refused = Assert.Throws<ContractValidationException>(() => ContractParser.Parse("topic: t\nclass: sensitive\nonFailure: observe\nvalue: {}\nprivacy:\n  - field: email\n    action: hash\n"));
        Assert.Contains(refused.Problems, p => p.Contains("cannot use onFailure: observe", StringComparison.Ordinal));
        Assert.Equal(FailureAction.Flag, ContractParser.Parse("topic: t\nclass: sensitive\nonFailure: flag\nvalue: {}\nprivacy:\n  - field: email\n    action: hash\n").OnFailure);
    }

    [Fact]
    public void AKeyGivenTwiceIsRefused()
    {
        var refused = Assert.Throws<ContractValidationException>(() => ContractParser.Parse("topic: t\nonFailure: reject\nonFailure: observe\n"));
        Assert.Contains("uplicate", string.Join(" ", refused.Problems), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ADryRunsAuditRecordKeepsABoundedPartOfALargeDiff()
    {
        // From a review: the admin port takes dry runs from anyone, and each wrote its whole diff (up to the 256 KiB document
        // limit) to _contract_audit: 1,600 dry runs took 812 MB.
        var audit = new InMemoryJournal();
        using var store = new ContractStore(new InMemoryJournal(), audit, NullLogger<ContractStore>.Instance);
        await store.LoadAsync(CancellationToken.None);
        var rules = new System.Text.StringBuilder("topic: big\nvalue: {}\nrules:\n");
        for (int i = 0; i < 1_000; i++)
        {
            rules.Append(System.Globalization.CultureInfo.InvariantCulture, $"  - name: r{i}\n    expr: value.amount > {i}\n    message: amount must be over {i}, which is a long message for a rule to give\n");
        }

        ContractChange dry = await store.ApplyAsync(rules.ToString(), "mallory", dryRun: true, _ => [], CancellationToken.None);
        ContractChange applied = await store.ApplyAsync(rules.ToString(), "alice", dryRun: false, _ => [], CancellationToken.None);

        Assert.True(dry.Diff.Sum(d => d.Length) > 100_000); // the answer has it all
        Assert.Equal(dry.Diff, applied.Diff);
        JournalEntry[] records = [.. audit.Entries];
        Assert.Equal(2, records.Length);
        Assert.InRange(records[0].Value!.Length, 1, ContractStore.MaxDryRunDiffChars + 2_000);
        string last = (string)System.Text.Json.Nodes.JsonNode.Parse(records[0].Value!)!["diff"]!.AsArray()[^1]!;
        Assert.Matches(@"^\.\.\. and \d+ more line\(s\): a dry run's record keeps 16384 characters of its diff$", last);
        Assert.True(records[1].Value!.Length > 100_000); // a change's record keeps all of it
    }

    [Fact]
    public async Task StoreVersionsDiffsRollsBackAndReplays()
    {
        var journal = new InMemoryJournal();
        var audit = new InMemoryJournal();
        using var store = new ContractStore(journal, audit, NullLogger<ContractStore>.Instance);
        await store.LoadAsync(CancellationToken.None);
        ContractChange first = await store.ApplyAsync(Payments, "alice", dryRun: false, _ => [], CancellationToken.None);
        ContractChange unchanged = await store.ApplyAsync(Payments, "alice", dryRun: false, _ => [], CancellationToken.None);
        ContractChange dry = await store.ApplyAsync(Payments.Replace("class: certified", "class: raw", StringComparison.Ordinal), "bob", dryRun: true, _ => [], CancellationToken.None);
        ContractChange second = await store.ApplyAsync(Payments.Replace("value.amount > 0", "value.amount >= 1", StringComparison.Ordinal), "bob", dryRun: false, _ => [], CancellationToken.None);

        Assert.Equal((1, true), (first.Version, first.Changed));
        Assert.Equal((1, false), (unchanged.Version, unchanged.Changed));
        Assert.Equal((2, true), (dry.Version, dry.Changed)); // what the apply would make: nothing stored (second is version 2)
        Assert.Contains("~ class: certified -> raw", dry.Diff);
        Assert.Contains("~ onFailure: reject -> observe", dry.Diff);
        Assert.Equal(["~ rules[positive].expr: value.amount > 0 -> value.amount >= 1"], second.Diff);
        Assert.Equal(2, store.ForTopic("payments")!.Version);

        // A rollback's target is checked as an apply is (its rules may not compile in this build): refused, nothing stored.
        var refused = await Assert.ThrowsAsync<ContractValidationException>(() => store.RollbackAsync("payments", 1, "carol", _ => ["rules[positive]: no longer compiles"], CancellationToken.None));
        Assert.Contains("rules[positive]: no longer compiles", refused.Problems);
        Assert.Equal(2, store.ForTopic("payments")!.Version);

        ContractChange rolledBack = await store.RollbackAsync("payments", 1, "carol", _ => [], CancellationToken.None);
        Assert.Equal(3, rolledBack.Version);
        Assert.Equal("value.amount > 0", store.ForTopic("payments")!.Definition.Rules[0].Expression);
        // Rolling back again to what is in force is no change, as an unchanged apply (it made version 4 with an empty diff).
        ContractChange again = await store.RollbackAsync("payments", 1, "carol", _ => [], CancellationToken.None);
        Assert.Equal((3, false), (again.Version, again.Changed));
        Assert.Empty(again.Diff);
        // Every change is audited, and the dry run's diff too (against version 1, the one in force then).
        List<System.Text.Json.Nodes.JsonNode> audited = [.. audit.Entries.Select(e => System.Text.Json.Nodes.JsonNode.Parse(e.Value!)!)];
        Assert.Equal(["apply", "diff", "apply", "rollback"], audited.Select(a => (string)a["action"]!));
        Assert.Equal([1, 1, 2, 3], audited.Select(a => (int)a["version"]!));
        Assert.Equal(("contract-diff", "bob"), ((string)audited[1]["type"]!, (string)audited[1]["actor"]!));
        Assert.Contains("~ class: certified -> raw", audited[1]["diff"]!.AsArray().Select(d => (string)d!));

        await store.DeleteAsync("payments", "dave", CancellationToken.None);
        Assert.Null(store.ForTopic("payments"));
        // The delete's own version is there but has no text: the refusal says so and names the version to give instead.
        var toDelete = await Assert.ThrowsAsync<KeyNotFoundException>(() => store.RollbackAsync("payments", 4, "dave", _ => [], CancellationToken.None, dryRun: true));
        Assert.Equal("Contract 'payments' version 4 is its delete, which has no contract text to roll back to; roll back to version 3 for the contract as it was before.", toDelete.Message);
        Assert.Contains("has no version 9 ", (await Assert.ThrowsAsync<KeyNotFoundException>(() => store.RollbackAsync("payments", 9, "dave", _ => [], CancellationToken.None))).Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<ContractValidationException>(() => store.ApplyAsync("topic: x\nclass: bogus\n", "eve", false, _ => [], CancellationToken.None));
        await Assert.ThrowsAsync<ContractValidationException>(() => store.ApplyAsync("topic: x\n", "eve", false, _ => ["rule r: line 1, column 3: oops"], CancellationToken.None));

        using var replayed = new ContractStore(journal, new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        await replayed.LoadAsync(CancellationToken.None);
        Assert.Null(replayed.ForTopic("payments"));
        Assert.Equal(["apply", "apply", "rollback", "delete"], replayed.History("payments").Select(r => r.Action));
    }

    /// <summary>
    /// What a change sets outside the store (the registry's compatibility levels) runs before the next change can start:
    /// else two applies at once could leave the first one's level with the second one in force.
    /// </summary>
    [Fact]
    public async Task WhatAChangeSetsElsewhereFollowsTheChangesInTheirOrder()
    {
        using ContractStore store = await LoadedStoreAsync();
        var seen = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var firstRunning = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var releaseFirst = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task<ContractChange> first = store.ApplyAsync("topic: t\nowner: a\n", "a", dryRun: false, _ => [], CancellationToken.None, Link(async inForce =>
        {
            seen.Enqueue(inForce.Owner!);
            firstRunning.TrySetResult();
            await releaseFirst.Task;
            seen.Enqueue("a done");
        }));
        await firstRunning.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Task<ContractChange> second = Task.Run(() => store.ApplyAsync("topic: t\nowner: b\n", "b", dryRun: false, _ => [], CancellationToken.None, Link(inForce =>
        {
            seen.Enqueue(inForce.Owner!);
            return Task.CompletedTask;
        })));

        // The second change waits for the first one's follow-up (a bounded wait for what must not happen).
        Assert.NotSame(second, await Task.WhenAny(second, Task.Delay(TimeSpan.FromMilliseconds(300))));
        releaseFirst.SetResult();
        Assert.Equal((1, 2), ((await first).Version, (await second.WaitAsync(TimeSpan.FromSeconds(10))).Version));
        // Each change sets its levels before it is seen and again after (see ARegistryLevelChangesBefore...).
        Assert.Equal(["a", "a done", "a", "a done", "b", "b"], seen);

        // A dry run changes nothing elsewhere either; an unchanged apply sets it again (a retry after a registry failure).
        await store.ApplyAsync("topic: t\nowner: c\n", "c", dryRun: true, _ => [], CancellationToken.None, Link(_ => throw new InvalidOperationException("a dry run has nothing in force")));
        await store.ApplyAsync("topic: t\nowner: b\n", "b", dryRun: false, _ => [], CancellationToken.None, Link(inForce =>
        {
            seen.Enqueue("again " + inForce.Owner);
            return Task.CompletedTask;
        }));
        Assert.Equal("again b", seen.Last());
    }

    private static RegistryLink Link(Func<ContractDefinition, Task> inForce) => new(_ => null, _ => true, _ => Task.CompletedTask, inForce);

    /// <summary>
    /// A subject's level before a contract first bound it is kept with each version (also across a restart), and given
    /// back when the contract stops binding the subject: on delete, or when a version names another subject.
    /// </summary>
    [Fact]
    public async Task ASubjectGetsBackTheLevelItHadBeforeTheContractThatBoundIt()
    {
        var journal = new InMemoryJournal();
        var levels = new Dictionary<string, string?> { ["t-value"] = "FORWARD" };
        var released = new List<SubjectLevel>();
        RegistryLink link = new(
            subject => levels.GetValueOrDefault(subject),
            _ => true,
            gone =>
            {
                released.AddRange(gone);
                return Task.CompletedTask;
            },
            inForce =>
            {
                foreach (string subject in ContractRegistrySync.NamedSubjects(inForce))
                {
                    levels[subject] = "FULL_TRANSITIVE"; // as the registry sync sets it
                }

                return Task.CompletedTask;
            });
        using (var store = new ContractStore(journal, new InMemoryJournal(), NullLogger<ContractStore>.Instance))
        {
            await store.LoadAsync(CancellationToken.None);
            await store.ApplyAsync("name: c\ntopic: t\nclass: certified\nvalue: {}\n", "a", dryRun: false, _ => [], CancellationToken.None, link);
            // A second version binds t-value still (its recorded level stays FORWARD, not the contract's own) and binds u-value anew.
            await store.ApplyAsync("name: c\ntopic: t\nclass: certified\nvalue: {}\nkey:\n  subject: u-value\n", "a", dryRun: false, _ => [], CancellationToken.None, link);
            Assert.Equal(new Dictionary<string, string?> { ["t-value"] = "FORWARD", ["u-value"] = null }, store.History("c")[^1].PriorLevels);
            Assert.Empty(released);
            // The third stops binding u-value: it follows the global level again.
            await store.ApplyAsync("name: c\ntopic: t\nclass: certified\nvalue: {}\n", "a", dryRun: false, _ => [], CancellationToken.None, link);
            Assert.Equal([new SubjectLevel("u-value", null)], released);
        }

        released.Clear();
        using var restarted = new ContractStore(journal, new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        await restarted.LoadAsync(CancellationToken.None);
        await restarted.DeleteAsync("c", "a", CancellationToken.None, link);
        Assert.Equal([new SubjectLevel("t-value", "FORWARD")], released);
    }

    [Fact]
    public async Task APatternLookupRacingContractChangesNeverKeepsAnAnswerFromOldContracts()
    {
        using var store = new ContractStore(new InMemoryJournal(), new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        using var stop = new CancellationTokenSource();
        // What produces to a topic do: ask which contract governs it, all the time, from several threads.
        Task[] readers = [.. Enumerable.Range(0, 3).Select(_ => Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                store.ForTopic("orders.eu");
            }
        }))];

        try
        {
            for (int round = 0; round < 300; round++)
            {
                await store.ApplyAsync("name: orders-all\ntopic: 'orders.*'\n", "a", false, _ => [], CancellationToken.None);
                Assert.Equal("orders-all", store.ForTopic("orders.eu")?.Definition.Name);
                await store.DeleteAsync("orders-all", "a", CancellationToken.None);
                Assert.True(store.ForTopic("orders.eu") is null, $"round {round}: a deleted pattern contract still governs the topic");
            }
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(readers);
        }
    }

    [Theory]
    [InlineData("topic: orders\nonFailure: quarantine\nquarantineTopic: '{topic}'\n")]
    [InlineData("topic: orders\nonFailure: quarantine\nquarantineTopic: orders\n")]
    [InlineData("topic: 'orders.*'\nonFailure: quarantine\nquarantineTopic: '{topic}'\n")]
    public async Task AQuarantineTopicThatIsTheSourceTopicIsRefused(string contract)
    {
        using var store = new ContractStore(new InMemoryJournal(), new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        var refused = await Assert.ThrowsAsync<ContractValidationException>(() => store.ApplyAsync(contract, "a", false, _ => [], CancellationToken.None));
        Assert.Contains(refused.Problems, p => p.Contains("names the source topic itself", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("_contracts")]
    [InlineData("_schemas")]
    [InlineData("_contract_audit")]
    public async Task AQuarantineTopicThatIsAnInternalJournalIsRefused(string journal)
    {
        using var store = new ContractStore(new InMemoryJournal(), new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        var refused = await Assert.ThrowsAsync<ContractValidationException>(() => store.ApplyAsync($"topic: orders\nonFailure: quarantine\nquarantineTopic: {journal}\n", "a", false, _ => [], CancellationToken.None));
        Assert.Contains(refused.Problems, p => p.Contains("internal topics", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AFileWithoutANameDoesNotMoveTheContractNamedAfterItsTopic()
    {
        // From a review: "topic: x" applied while a contract named x governs topic y became x's next version, moving it
        // from y (left ungoverned) to x; the diff showed it, but the file meant a new contract.
        using var store = new ContractStore(new InMemoryJournal(), new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        await store.ApplyAsync("name: orders.eu\ntopic: orders\n", "a", false, _ => [], CancellationToken.None);

        var refused = await Assert.ThrowsAsync<ContractValidationException>(() => store.ApplyAsync("topic: orders.eu\n", "b", false, _ => [], CancellationToken.None));
        Assert.Equal(["contract 'orders.eu' governs topic 'orders'; this file has no name, so it is named after its topic 'orders.eu' and would move that contract there: give it a name of its own (name: ...) for a new contract, or write name: orders.eu to move contract 'orders.eu'."], refused.Problems);
        Assert.Equal("orders.eu", store.ForTopic("orders")!.Definition.Name);
        Assert.Null(store.ForTopic("orders.eu"));

        // With the name written out it moves; a file without a name keeps changing its own topic's contract as before.
        Assert.True((await store.ApplyAsync("name: orders.eu\ntopic: orders.eu\n", "a", false, _ => [], CancellationToken.None)).Changed);
        Assert.Null(store.ForTopic("orders"));
        Assert.True((await store.ApplyAsync("topic: orders.eu\nowner: team-eu\n", "a", false, _ => [], CancellationToken.None)).Changed);
        Assert.Equal("team-eu", store.ForTopic("orders.eu")!.Definition.Owner);
    }

    [Fact]
    public async Task ASecondContractOnATopicAlreadyGovernedIsRefused()
    {
        using var store = new ContractStore(new InMemoryJournal(), new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        await store.ApplyAsync("name: payments\ntopic: orders\nowner: team-a\n", "a", false, _ => [], CancellationToken.None);

        // "a-test" sorts first: accepted, it would have governed the topic in place of "payments".
        var refused = await Assert.ThrowsAsync<ContractValidationException>(() => store.ApplyAsync("name: a-test\ntopic: orders\nowner: tester\n", "b", false, _ => [], CancellationToken.None));
        Assert.Contains(refused.Problems, p => p.Contains("already governed by contract 'payments'", StringComparison.Ordinal));
        Assert.Equal("payments", store.ForTopic("orders")!.Definition.Name);

        // The governing contract itself changes as before; once it is deleted, another may take the topic.
        Assert.True((await store.ApplyAsync("name: payments\ntopic: orders\nowner: team-b\n", "a", false, _ => [], CancellationToken.None)).Changed);
        await store.DeleteAsync("payments", "a", CancellationToken.None);
        await store.ApplyAsync("name: a-test\ntopic: orders\nowner: tester\n", "b", false, _ => [], CancellationToken.None);
        Assert.Equal("a-test", store.ForTopic("orders")!.Definition.Name);
    }

    [Fact]
    public async Task AQuarantineTopicGovernedByAContractThatPromisesSomethingIsRefusedEitherWayRound()
    {
        // Review: quarantine copies are written unchecked, so orders' bad records landed in certified "payments" (named as
        // orders' quarantineTopic), or in certified "inv.quarantine" (a contract put on inv's default quarantine topic).
        using var store = new ContractStore(new InMemoryJournal(), new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        await store.ApplyAsync("topic: payments\nclass: certified\nvalue: {}\n", "a", false, _ => [], CancellationToken.None);
        var intoCertified = await Assert.ThrowsAsync<ContractValidationException>(() => store.ApplyAsync(
            "topic: orders\nvalue: {}\nonFailure: quarantine\nquarantineTopic: payments\n", "b", false, _ => [], CancellationToken.None));
        Assert.Contains(intoCertified.Problems, p => p.Contains("contract 'orders' quarantines into 'payments', which contract 'payments' (class certified) governs", StringComparison.Ordinal));
        Assert.Null(store.ForTopic("orders"));

        await store.ApplyAsync("topic: inv\nvalue: {}\nonFailure: quarantine\n", "a", false, _ => [], CancellationToken.None);
        var onQuarantine = await Assert.ThrowsAsync<ContractValidationException>(() => store.ApplyAsync(
            "topic: inv.quarantine\nclass: certified\nvalue: {}\n", "b", false, _ => [], CancellationToken.None));
        Assert.Contains(onQuarantine.Problems, p => p.Contains("contract 'inv' quarantines into 'inv.quarantine', which contract 'inv.quarantine' (class certified) would govern", StringComparison.Ordinal));

        // What the docs suggest is still taken: a contract of class quarantine on a quarantine topic (its own retention),
        // a quarantine topic under a raw catch-all pattern, and a contract that does not quarantine.
        await store.ApplyAsync("topic: inv.quarantine\nclass: quarantine\nretention: 90d\n", "a", false, _ => [], CancellationToken.None);
        await store.ApplyAsync("topic: '*'\nclass: raw\n", "a", false, _ => [], CancellationToken.None);
        await store.ApplyAsync("topic: shipments\nvalue: {}\nonFailure: quarantine\n", "a", false, _ => [], CancellationToken.None);
        await store.ApplyAsync("topic: refunds\nvalue: {}\nonFailure: reject\nquarantineTopic: payments\n", "a", false, _ => [], CancellationToken.None);
        Assert.Null(store.RefusesQuarantineCopies("shipments.quarantine"));
        Assert.Equal("payments", store.RefusesQuarantineCopies("payments")!.Definition.Name);

        // A certified pattern is a promise too.
        await store.ApplyAsync("topic: 'ledger.*'\nclass: certified\nvalue: {}\n", "a", false, _ => [], CancellationToken.None);
        await Assert.ThrowsAsync<ContractValidationException>(() => store.ApplyAsync(
            "topic: fees\nvalue: {}\nonFailure: quarantine\nquarantineTopic: ledger.bad\n", "b", false, _ => [], CancellationToken.None));
    }

    [Fact]
    public async Task APatternPutOverAnotherContractsQuarantineTopicOrTheDeleteThatUncoversItIsRefused()
    {
        // Review of the check above: it skipped patterns applied afterwards and deletes, so "orders" silently went from
        // quarantining to refusing its bad batches.
        using var store = new ContractStore(new InMemoryJournal(), new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        await store.ApplyAsync("topic: orders\nvalue: {}\nonFailure: quarantine\n", "a", false, _ => [], CancellationToken.None);
        var pattern = await Assert.ThrowsAsync<ContractValidationException>(() => store.ApplyAsync(
            "topic: 'orders.*'\nclass: certified\nvalue: {}\n", "b", false, _ => [], CancellationToken.None));
        Assert.Contains(pattern.Problems, p => p.Contains("contract 'orders' quarantines into 'orders.quarantine', which contract 'orders.*' (class certified) would govern", StringComparison.Ordinal));
        Assert.Null(store.RefusesQuarantineCopies("orders.quarantine"));

        // With a contract of class quarantine on that topic first, the pattern is fine; deleting that contract then is not.
        await store.ApplyAsync("topic: orders.quarantine\nclass: quarantine\n", "a", false, _ => [], CancellationToken.None);
        await store.ApplyAsync("topic: 'orders.*'\nclass: certified\nvalue: {}\n", "b", false, _ => [], CancellationToken.None);
        var delete = await Assert.ThrowsAsync<ContractValidationException>(() => store.DeleteAsync("orders.quarantine", "a", CancellationToken.None));
        Assert.Contains(delete.Problems, p => p.Contains("would govern once this one is deleted", StringComparison.Ordinal));
        Assert.Null(store.RefusesQuarantineCopies("orders.quarantine"));

        // Deleting the quarantining contract first leaves no clash, and then the other may go.
        await store.DeleteAsync("orders", "a", CancellationToken.None);
        await store.DeleteAsync("orders.quarantine", "a", CancellationToken.None);
    }

    [Theory]
    [InlineData("payments.*")]
    [InlineData("payments.**")]
    public async Task ASecondContractOnAPatternAlreadyGovernedIsRefused(string samePattern)
    {
        using var store = new ContractStore(new InMemoryJournal(), new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        await store.ApplyAsync("name: payments\ntopic: 'payments.*'\nclass: sensitive\nvalue: {}\nprivacy:\n  - field: card\n    action: redact\n", "a", false, _ => [], CancellationToken.None);

        // "a-test" sorts first among equally specific patterns: accepted, it would have lifted the masking of every payments topic.
        var refused = await Assert.ThrowsAsync<ContractValidationException>(() => store.ApplyAsync($"name: a-test\ntopic: '{samePattern}'\nclass: raw\n", "b", false, _ => [], CancellationToken.None));
        Assert.Contains(refused.Problems, p => p.Contains("already governed by contract 'payments'", StringComparison.Ordinal));
        Assert.Equal("payments", store.ForTopic("payments.eu")!.Definition.Name);

        // A narrower pattern is another promise, and governs what it names.
        await store.ApplyAsync("name: a-test\ntopic: 'payments.test*'\nclass: raw\n", "b", false, _ => [], CancellationToken.None);
        Assert.Equal("a-test", store.ForTopic("payments.test1")!.Definition.Name);
        Assert.Equal("payments", store.ForTopic("payments.eu")!.Definition.Name);
    }

    [Theory]
    [InlineData("payments.*", "*.eu", null)] // 9 literals against 3: the more specific governs, nothing to refuse here
    [InlineData("pay*", "*-eu", "pay-eu")]
    [InlineData("*.orders", "orders.*", "orders.orders")]
    [InlineData("a*b", "b*a", null)]
    [InlineData("*x*", "*y*", "xy")]
    [InlineData("*_q", "*_q*", "a_q")]
    public async Task AnEquallySpecificPatternThatMatchesATopicWithAnotherIsRefused(string first, string second, string? example)
    {
        using var store = new ContractStore(new InMemoryJournal(), new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        await store.ApplyAsync($"name: sensitive\ntopic: '{first}'\nclass: sensitive\nvalue: {{}}\nprivacy:\n  - field: card\n    action: redact\n", "a", false, _ => [], CancellationToken.None);
        Task<ContractChange> applying = store.ApplyAsync($"name: a-raw\ntopic: '{second}'\nclass: raw\n", "b", false, _ => [], CancellationToken.None);
        if (example is null)
        {
            await applying;
            return;
        }

        var refused = await Assert.ThrowsAsync<ContractValidationException>(() => applying);
        Assert.Contains(refused.Problems, p => p.Contains($"both match topics such as '{example}'", StringComparison.Ordinal) && p.Contains("contract 'sensitive'", StringComparison.Ordinal));
        Assert.Equal("sensitive", store.ForTopic(example)!.Definition.Name);
    }

    [Fact]
    public async Task AnOverlappingPairAnOlderBuildStoredMayBeAppliedAgainUnchangedButNotChanged()
    {
        const string sensitive = "name: sensitive\ntopic: 'pay*'\nclass: sensitive\nvalue: {}\nprivacy:\n  - field: card\n    action: redact\n";
        const string raw = "name: a-raw\ntopic: '*-eu'\nclass: raw\n";
        var journal = new InMemoryJournal();
        foreach (string contract in new[] { sensitive, raw })
        {
            // Each stored alone, as a build without the overlap check could have stored both.
            var alone = new InMemoryJournal();
            using var store = new ContractStore(alone, new InMemoryJournal(), NullLogger<ContractStore>.Instance);
            await store.LoadAsync(CancellationToken.None);
            await store.ApplyAsync(contract, "a", false, _ => [], CancellationToken.None);
            await journal.AppendAsync([.. alone.Entries], CancellationToken.None);
        }

        using var reopened = new ContractStore(journal, new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        await reopened.LoadAsync(CancellationToken.None);
        Assert.Equal("a-raw", reopened.ForTopic("pay-eu")!.Definition.Name); // equally specific: the first by name, as before

        // A pipeline applying every contract again must not fail on the pair; a change to either is checked.
        Assert.False((await reopened.ApplyAsync(raw, "ci", false, _ => [], CancellationToken.None)).Changed);
        Assert.False((await reopened.ApplyAsync(sensitive, "ci", false, _ => [], CancellationToken.None)).Changed);
        var refused = await Assert.ThrowsAsync<ContractValidationException>(() => reopened.ApplyAsync(raw + "owner: team\n", "ci", false, _ => [], CancellationToken.None));
        Assert.Contains(refused.Problems, p => p.Contains("both match topics such as 'pay-eu'", StringComparison.Ordinal));
    }

    [Fact]
    public void PatternsThatMeetOnlyPastTheLongestTopicNameHaveNoCommonMatch()
    {
        // Every string both match is over 249 characters: no topic can be governed by both.
        Assert.Null(ContractStore.CommonMatch(new string('x', 130) + "*", "*" + new string('y', 130)));
        // Every topic both match starts with '_', which no pattern governs (a contract an older build stored; such a
        // pattern is refused when applied now).
        Assert.Null(ContractStore.CommonMatch("*_q", "_*q"));
        Assert.Equal(249, ContractStore.CommonMatch(new string('x', 125) + "*", "*" + new string('y', 124))!.Length);
    }

    [Theory]
    [InlineData("a*", "*b", "ab")]
    [InlineData("*", "orders", "orders")]
    [InlineData("orders", "orders.*", null)]
    [InlineData("o*s.*", "*rs.eu", "ors.eu")] // the shortest topic both match
    [InlineData("*a*", "*ba", "ba")]
    [InlineData("*.", ".*", null)] // only "." and "..": no topic names
    [InlineData("**a", "a", "a")]
    public void CommonMatchFindsATopicBothPatternsMatchOrSaysThereIsNone(string a, string b, string? expected)
    {
        string? found = ContractStore.CommonMatch(a, b);
        Assert.Equal(expected, found);
        if (found is not null)
        {
            Assert.Matches("^" + System.Text.RegularExpressions.Regex.Escape(a).Replace("\\*", ".*", StringComparison.Ordinal) + "$", found);
            Assert.Matches("^" + System.Text.RegularExpressions.Regex.Escape(b).Replace("\\*", ".*", StringComparison.Ordinal) + "$", found);
        }
    }

    [Fact]
    public async Task TopicNamesOnlyAskedAboutDoNotGrowTheRememberedAnswersWithoutBound()
    {
        using var store = new ContractStore(new InMemoryJournal(), new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        await store.ApplyAsync("topic: 'orders.*'\nclass: quarantine\n", "a", false, _ => [], CancellationToken.None);
        for (int i = 0; i < ContractStore.MaxRememberedTopics + 1_000; i++)
        {
            Assert.Null(store.RetentionMsFor($"asked-{i}"));
        }

        Assert.True(store.RememberedTopics <= 3 * ContractStore.MaxRememberedTopics, $"{store.RememberedTopics} topic answers remembered");
        // Past the bound, answers are worked out each time, and still right.
        Assert.Equal(ContractParser.QuarantineRetentionMs, store.RetentionMsFor("orders.new"));
    }

    /// <summary>A journal whose appends wait for <see cref="Release"/> once <see cref="Hold"/> is set.</summary>
    private sealed class HeldJournal : IJournal
    {
        private readonly InMemoryJournal _inner = new();
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public bool Hold { get; set; }

        public TaskCompletionSource Reached { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Release() => _released.TrySetResult();

        public async ValueTask AppendAsync(IReadOnlyList<JournalEntry> entries, CancellationToken cancellationToken)
        {
            if (Hold)
            {
                Reached.TrySetResult();
                await _released.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
            }

            await _inner.AppendAsync(entries, cancellationToken);
        }

        public IAsyncEnumerable<JournalEntry> ReadAllAsync(CancellationToken cancellationToken) => _inner.ReadAllAsync(cancellationToken);
    }

    [Fact]
    public async Task TwoDeletesAtOnceAreOneDeleteAndOneNotFound()
    {
        var journal = new HeldJournal();
        using var store = new ContractStore(journal, new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        await store.ApplyAsync("name: payments\ntopic: payments\n", "a", false, _ => [], CancellationToken.None);

        journal.Hold = true;
        Task<ContractChange> first = store.DeleteAsync("payments", "a", CancellationToken.None);
        await journal.Reached.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Task<ContractChange> second = store.DeleteAsync("payments", "b", CancellationToken.None);
        journal.Release();

        Assert.True((await first.WaitAsync(TimeSpan.FromSeconds(30))).Changed);
        await Assert.ThrowsAsync<KeyNotFoundException>(() => second.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(["apply", "delete"], store.History("payments").Select(r => r.Action));
    }

    [Fact]
    public async Task ASecondContractNamingASubjectAlreadyBoundIsRefused()
    {
        using var store = new ContractStore(new InMemoryJournal(), new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        await store.ApplyAsync("name: payments\ntopic: payments\nclass: certified\nvalue:\n  strategy: TopicNameStrategy\n", "a", false, _ => [], CancellationToken.None);

        // Each contract sets its subjects' compatibility level: a raw contract naming "payments-value" would have lowered
        // the certified one's FULL_TRANSITIVE (explicitly here; the certified one names it by TopicNameStrategy).
        var refused = await Assert.ThrowsAsync<ContractValidationException>(() => store.ApplyAsync("name: copy\ntopic: payments-copy\nclass: raw\nvalue:\n  subject: payments-value\n", "b", false, _ => [], CancellationToken.None));
        Assert.Contains(refused.Problems, p => p.Contains("subject 'payments-value' is already bound by contract 'payments'", StringComparison.Ordinal));
        Assert.Null(store.ForTopic("payments-copy"));

        // Another subject is free; the binding contract itself changes as before.
        await store.ApplyAsync("name: copy\ntopic: payments-copy\nclass: raw\nvalue:\n  subject: payments-copy-value\n", "b", false, _ => [], CancellationToken.None);
        Assert.True((await store.ApplyAsync("name: payments\ntopic: payments\nclass: certified\nowner: team-b\nvalue:\n  strategy: TopicNameStrategy\n", "a", false, _ => [], CancellationToken.None)).Changed);
    }

    [Fact]
    public async Task ExactTopicsWinOverPatternsAndInternalTopicsMatchNoPattern()
    {
        using var store = new ContractStore(new InMemoryJournal(), new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        await store.ApplyAsync("name: all\ntopic: '*'\n", "a", false, _ => [], CancellationToken.None);
        await store.ApplyAsync("topic: orders\nclass: certified\n", "a", false, _ => [], CancellationToken.None);
        Assert.Equal("orders", store.ForTopic("orders")!.Definition.Name);
        Assert.Equal("all", store.ForTopic("clicks")!.Definition.Name);
        Assert.Null(store.ForTopic("_schemas"));
    }

    [Theory]
    [InlineData("raw", ContractParser.WeekMs, AuditLevel.Summary)]
    [InlineData("certified", ContractParser.WeekMs, AuditLevel.Summary)]
    [InlineData("sensitive", ContractParser.WeekMs, AuditLevel.Violations)]
    [InlineData("quarantine", ContractParser.QuarantineRetentionMs, AuditLevel.Changes)]
    [InlineData("remediation", ContractParser.WeekMs, AuditLevel.Violations)]
    public void RetentionAndAuditDefaultByClass(string topicClass, long retentionMs, AuditLevel audit)
    {
        string privacy = topicClass == "sensitive" ? "value: {}\nprivacy:\n  - field: email\n    action: hash\n" : "";
        ContractDefinition definition = ContractParser.Parse($"topic: t\nclass: {topicClass}\n{privacy}");
        Assert.Equal((retentionMs, audit), (definition.RetentionMs, definition.Audit));
    }

    [Theory]
    [InlineData("30d", 30L * 86_400_000)]
    [InlineData("12h", 12L * 3_600_000)]
    [InlineData("90m", 90L * 60_000)]
    [InlineData("45s", 45_000)]
    [InlineData("1500ms", 1_500)]
    [InlineData("86400000", 86_400_000)]
    [InlineData("infinite", -1)]
    [InlineData("INFINITE", -1)]
    [InlineData("7D", 7L * 86_400_000)]
    [InlineData("-1", -1)]
    public void ARetentionOverridesTheClassDefault(string retention, long expectedMs) =>
        Assert.Equal(expectedMs, ContractParser.Parse($"topic: t\nclass: quarantine\nretention: '{retention}'\n").RetentionMs);

    [Theory]
    [InlineData("0s")]
    [InlineData("999ms")]
    [InlineData("7 days")]
    [InlineData("7w")]
    [InlineData("-5")]
    [InlineData("1.5h")]
    [InlineData("99999999999999d")]
    public void ARetentionThatIsNotADurationOrEmptiesTheTopicIsRefused(string retention)
    {
        ContractValidationException error = Assert.Throws<ContractValidationException>(() => ContractParser.Parse($"topic: t\nretention: '{retention}'\n"));
        Assert.Contains(error.Problems, p => p.StartsWith($"retention '{retention}' must be", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("1GiB", 1L << 30)]
    [InlineData("500mib", 500L << 20)]
    [InlineData("2TiB", 2L << 40)]
    [InlineData("1048576", 1L << 20)]
    [InlineData("4096KiB", 4L << 20)]
    [InlineData("infinite", -1)]
    [InlineData("-1", -1)]
    public void ARetentionBytesIsASizeOrInfinite(string retentionBytes, long expected) =>
        Assert.Equal(expected, ContractParser.Parse($"topic: t\nretentionBytes: '{retentionBytes}'\n").RetentionBytes);

    [Theory]
    [InlineData("0")]
    [InlineData("1000")]
    [InlineData("1023KiB")]
    [InlineData("10GB")]
    [InlineData("1.5GiB")]
    [InlineData("-5")]
    [InlineData("99999999999999999999")]
    [InlineData("9999999999999999999")]
    [InlineData("2000000TiB")]
    public void ARetentionBytesThatIsNotASizeOrEmptiesTheTopicIsRefused(string retentionBytes)
    {
        ContractValidationException error = Assert.Throws<ContractValidationException>(() => ContractParser.Parse($"topic: t\nretentionBytes: '{retentionBytes}'\n"));
        Assert.Contains(error.Problems, p => p.StartsWith($"retentionBytes '{retentionBytes}' must be", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ARetentionBytesIsTheContractsOnlyWhenItSetsOneAndIsPartOfItsDiff()
    {
        using var store = new ContractStore(new InMemoryJournal(), new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        await store.ApplyAsync("topic: orders\nclass: certified\n", "a", false, _ => [], CancellationToken.None);
        Assert.Null(store.RetentionBytesFor("orders"));

        ContractChange sized = await store.ApplyAsync("topic: orders\nclass: certified\nretentionBytes: 10GiB\n", "a", false, _ => [], CancellationToken.None);
        Assert.True(sized.Changed);
        Assert.Contains(sized.Diff, line => line.Contains("retentionBytes", StringComparison.Ordinal) && line.Contains("10737418240", StringComparison.Ordinal));
        Assert.Equal(10L << 30, store.RetentionBytesFor("orders"));
        Assert.Null(store.RetentionBytesFor("payments"));

        // A contract on every topic sizes none of the broker's internal ones (the audit topic keeps everything).
        await store.ApplyAsync("topic: '*'\nretention: 1d\nretentionBytes: 1GiB\n", "a", false, _ => [], CancellationToken.None);
        Assert.Equal(1L << 30, store.RetentionBytesFor("payments"));
        Assert.Equal(86_400_000, store.RetentionMsFor("payments"));
        foreach (string internalTopic in InternalTopics.All)
        {
            Assert.Null(store.RetentionBytesFor(internalTopic));
            Assert.Null(store.RetentionMsFor(internalTopic));
        }
    }

    [Theory]
    [InlineData("everything")]
    [InlineData("' 1'")]
    [InlineData("'+1'")]
    [InlineData("'changes,summary'")]
    public void AnAuditLevelThatIsNotOneIsRefused(string audit) =>
        Assert.Contains(Assert.Throws<ContractValidationException>(() => ContractParser.Parse($"topic: t\naudit: {audit}\n")).Problems, p => p.StartsWith("audit '", StringComparison.Ordinal));

    [Fact]
    public async Task ReorderingRulesOrPrivacyRulesIsANewVersionWithItsDiff()
    {
        using var store = new ContractStore(new InMemoryJournal(), new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        const string Rules = "rules:\n  - name: a\n    expr: value.x > 0\n  - name: b\n    expr: value.y > 0\n";
        const string Swapped = "rules:\n  - name: b\n    expr: value.y > 0\n  - name: a\n    expr: value.x > 0\n";
        const string Privacy = "privacy:\n  - field: email\n    action: hash\n  - tag: PII\n    action: redact\n";
        const string PrivacySwapped = "privacy:\n  - tag: PII\n    action: redact\n  - field: email\n    action: hash\n";
        await store.ApplyAsync($"topic: orders\nvalue: {{}}\n{Rules}{Privacy}", "a", false, _ => [], CancellationToken.None);

        ContractChange privacy = await store.ApplyAsync($"topic: orders\nvalue: {{}}\n{Rules}{PrivacySwapped}", "a", false, _ => [], CancellationToken.None);
        Assert.True(privacy.Changed);
        Assert.Equal(2, privacy.Version);
        Assert.Contains(privacy.Diff, line => line.Contains("privacy.order", StringComparison.Ordinal) && line.Contains("tag:PII, email", StringComparison.Ordinal));
        Assert.Equal([PrivacyAction.Redact, PrivacyAction.Hash], store.ForTopic("orders")!.Definition.Privacy.Select(p => p.Action));

        ContractChange rules = await store.ApplyAsync($"topic: orders\nvalue: {{}}\n{Swapped}{PrivacySwapped}", "a", false, _ => [], CancellationToken.None);
        Assert.True(rules.Changed);
        Assert.Equal(3, rules.Version);
        Assert.Contains(rules.Diff, line => line.Contains("rules.order", StringComparison.Ordinal) && line.Contains("b, a", StringComparison.Ordinal));

        // The same file again changes nothing.
        Assert.False((await store.ApplyAsync($"topic: orders\nvalue: {{}}\n{Swapped}{PrivacySwapped}", "a", false, _ => [], CancellationToken.None)).Changed);
    }

    [Fact]
    public async Task ReorderingNamesThatHoldCommasIsANewVersion()
    {
        // Joined with ", ", the orders [a, "a, a"] and ["a, a", a] would read the same.
        using var store = new ContractStore(new InMemoryJournal(), new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        const string Ordered = "rules:\n  - name: a\n    expr: value.x > 0\n  - name: 'a, a'\n    expr: value.y > 0\n";
        const string Swapped = "rules:\n  - name: 'a, a'\n    expr: value.y > 0\n  - name: a\n    expr: value.x > 0\n";
        await store.ApplyAsync($"topic: t\nvalue: {{}}\n{Ordered}", "a", false, _ => [], CancellationToken.None);

        ContractChange change = await store.ApplyAsync($"topic: t\nvalue: {{}}\n{Swapped}", "a", false, _ => [], CancellationToken.None);

        Assert.True(change.Changed);
        Assert.Contains(change.Diff, line => line.Contains("rules.order", StringComparison.Ordinal) && line.Contains("[\"a, a\",\"a\"]", StringComparison.Ordinal));
        Assert.Equal(["a, a", "a"], store.ForTopic("t")!.Definition.Rules.Select(r => r.Name));
    }

    [Fact]
    public async Task ReferencesWhoseNamesHoldTheSeparatorsAreANewVersion()
    {
        // Written as name=subject@version joined by ", ", these two lists of references read the same.
        using var store = new ContractStore(new InMemoryJournal(), new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        const string Two = "references: [{name: com.acme.A, subject: cards-value, version: 1}, {name: com.acme.B, subject: other-value, version: 2}]";
        const string One = "references: [{name: 'com.acme.A=cards-value@1, com.acme.B', subject: other-value, version: 2}]";
        await store.ApplyAsync($"topic: refs\nvalue: {{schemaFile: a.avsc, {Two}}}\n", "a", false, _ => [], CancellationToken.None);

        ContractChange change = await store.ApplyAsync($"topic: refs\nvalue: {{schemaFile: a.avsc, {One}}}\n", "a", false, _ => [], CancellationToken.None);

        Assert.True(change.Changed);
        Assert.Equal(2, change.Version);
        Assert.Contains(change.Diff, line => line.Contains("value.references: com.acme.A=cards-value@1, com.acme.B=other-value@2", StringComparison.Ordinal));
        Assert.Equal("com.acme.A=cards-value@1, com.acme.B", Assert.Single(store.ForTopic("refs")!.Definition.Value!.References!).Name);
    }

    [Theory]
    [InlineData("tag: PII", "field: 'tag:PII'")]
    [InlineData("field: 'tag:PII'", "tag: PII")]
    [InlineData("field: 'field:tag:PII'", "field: 'tag:PII'")]
    public async Task AFieldNamedLikeATagRuleIsNotThatTagRule(string before, string after)
    {
        // A JSON member may be called "tag:PII": switching between it and the tag rule PII changes what is masked.
        using var store = new ContractStore(new InMemoryJournal(), new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        await store.ApplyAsync($"topic: t\nvalue: {{}}\nprivacy:\n  - {before}\n    action: redact\n", "a", false, _ => [], CancellationToken.None);

        ContractChange change = await store.ApplyAsync($"topic: t\nvalue: {{}}\nprivacy:\n  - {after}\n    action: redact\n", "a", false, _ => [], CancellationToken.None);

        Assert.True(change.Changed);
        Assert.Equal(2, change.Version);
        Assert.Equal(2, change.Diff.Count(line => line.Contains("privacy[", StringComparison.Ordinal)));
        PrivacyRuleDefinition inForce = Assert.Single(store.ForTopic("t")!.Definition.Privacy);
        Assert.Equal(after.StartsWith("tag:", StringComparison.Ordinal) ? null : after[8..^1], inForce.FieldPath);
    }

    [Fact]
    public async Task AChangeOfRetentionOrAuditAloneIsANewVersionWithItsDiff()
    {
        using var store = new ContractStore(new InMemoryJournal(), new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        await store.ApplyAsync("topic: orders\nclass: certified\n", "a", false, _ => [], CancellationToken.None);

        ContractChange retention = await store.ApplyAsync("topic: orders\nclass: certified\nretention: 90d\n", "a", false, _ => [], CancellationToken.None);
        Assert.True(retention.Changed);
        Assert.Equal(2, retention.Version);
        Assert.Contains(retention.Diff, line => line.Contains("retention", StringComparison.Ordinal) && line.Contains("7776000000ms", StringComparison.Ordinal));
        Assert.Equal(90L * 86_400_000, store.RetentionMsFor("orders"));

        ContractChange audit = await store.ApplyAsync("topic: orders\nclass: certified\nretention: 90d\naudit: violations\n", "a", false, _ => [], CancellationToken.None);
        Assert.True(audit.Changed);
        Assert.Contains(audit.Diff, line => line.Contains("audit", StringComparison.Ordinal) && line.Contains("violations", StringComparison.Ordinal));
        Assert.Equal(AuditLevel.Violations, store.ForTopic("orders")!.Definition.Audit);
    }

    [Fact]
    public async Task APatternContractDoesNotGovernItsOwnQuarantineTopics()
    {
        using var store = new ContractStore(new InMemoryJournal(), new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        await store.ApplyAsync("name: orders\ntopic: 'orders.*'\nclass: certified\nonFailure: quarantine\n", "a", false, _ => [], CancellationToken.None);
        await store.ApplyAsync("name: events\ntopic: 'events.*'\nclass: certified\nonFailure: quarantine\nquarantineTopic: events.bad\n", "a", false, _ => [], CancellationToken.None);

        // "orders.*" matches "orders.eu.quarantine", where it quarantines orders.eu's records: that topic is the quarantine
        // class's (30 days, ungated), not certified, and not quarantined in turn into "orders.eu.quarantine.quarantine".
        Assert.Equal("orders", store.ForTopic("orders.eu")?.Definition.Name);
        Assert.Null(store.ForTopic("orders.eu.quarantine"));
        Assert.Equal(ContractParser.QuarantineRetentionMs, store.RetentionMsFor("orders.eu.quarantine"));
        Assert.Equal(ContractParser.WeekMs, store.RetentionMsFor("orders.eu"));

        // A fixed quarantine name the pattern matches: records failing there would be quarantined into the same topic.
        Assert.Equal("events", store.ForTopic("events.eu")?.Definition.Name);
        Assert.Null(store.ForTopic("events.bad"));
        Assert.Equal(ContractParser.QuarantineRetentionMs, store.RetentionMsFor("events.bad"));
    }

    [Fact]
    public async Task AQuarantineTopicKeepsTheQuarantineRetentionAfterItsContractQuarantinesElsewhereOrIsDeleted()
    {
        var journal = new InMemoryJournal();
        var audit = new InMemoryJournal();
        using (var store = new ContractStore(journal, audit, NullLogger<ContractStore>.Instance))
        {
            await store.ApplyAsync("name: orders\ntopic: 'orders.*'\nclass: certified\nonFailure: quarantine\n", "a", false, _ => [], CancellationToken.None);
            await store.ApplyAsync("topic: payments\nclass: certified\nonFailure: quarantine\nquarantineTopic: payments.bad\n", "a", false, _ => [], CancellationToken.None);
            await store.ApplyAsync("topic: views\nclass: certified\nonFailure: reject\nquarantineTopic: views.never\n", "a", false, _ => [], CancellationToken.None);
            Assert.Equal(ContractParser.QuarantineRetentionMs, store.RetentionMsFor("orders.eu.quarantine"));

            // The pattern moves its quarantine topics, payments' contract is deleted, views' never quarantined anything.
            await store.ApplyAsync("name: orders\ntopic: 'orders.*'\nclass: certified\nonFailure: quarantine\nquarantineTopic: '{topic}.dlq'\n", "a", false, _ => [], CancellationToken.None);
            await store.DeleteAsync("payments", "a", CancellationToken.None);
            await store.ApplyAsync("topic: views\nclass: certified\nonFailure: reject\nquarantineTopic: views.other\n", "a", false, _ => [], CancellationToken.None);
            AssertRetentions(store);
        }

        // Read back from the journal by a new broker: the history says the same.
        using var restarted = new ContractStore(journal, audit, NullLogger<ContractStore>.Instance);
        await restarted.LoadAsync(CancellationToken.None);
        AssertRetentions(restarted);

        // A raw catch-all governs the quarantine topics too (ungated there, see QuarantineClashes), but does not shorten them.
        await restarted.ApplyAsync("name: all\ntopic: '*'\nclass: raw\n", "a", false, _ => [], CancellationToken.None);
        Assert.Equal("all", restarted.ForTopic("orders.eu.dlq")?.Definition.Name);
        Assert.Equal(ContractParser.QuarantineRetentionMs, restarted.RetentionMsFor("orders.eu.dlq"));
        Assert.Equal(ContractParser.QuarantineRetentionMs, restarted.RetentionMsFor("payments.bad"));
        Assert.Equal(ContractParser.WeekMs, restarted.RetentionMsFor("clicks.other")); // raw's own week where nothing was quarantined

        // Its own contract of class quarantine chooses, shorter too.
        await restarted.ApplyAsync("topic: payments.bad\nclass: quarantine\nretention: 2d\n", "a", false, _ => [], CancellationToken.None);
        Assert.Equal(2L * 86_400_000, restarted.RetentionMsFor("payments.bad"));

        static void AssertRetentions(ContractStore store)
        {
            Assert.Equal(ContractParser.QuarantineRetentionMs, store.RetentionMsFor("orders.eu.quarantine")); // quarantined into before
            Assert.Equal(ContractParser.QuarantineRetentionMs, store.RetentionMsFor("orders.eu.dlq"));
            Assert.Equal(ContractParser.QuarantineRetentionMs, store.RetentionMsFor("payments.bad"));
            Assert.False(store.IsQuarantineTopic("orders.eu.quarantine")); // no contract in force writes there
            Assert.Null(store.RetentionMsFor("clicks.quarantine")); // orders.* never matched clicks
            Assert.Null(store.RetentionMsFor("views.never")); // a version that rejected wrote nothing there
            Assert.Null(store.RetentionMsFor("payments"));
        }
    }

    [Fact]
    public async Task InfiniteRetentionOfAContractGoverningAQuarantineTopicIsNotShortenedTo30Days()
    {
        using var store = new ContractStore(new InMemoryJournal(), new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        // A raw catch-all that keeps everything forever, and a contract quarantining into a name the catch-all governs.
        await store.ApplyAsync("name: all\ntopic: '*'\nclass: raw\nretention: infinite\n", "a", false, _ => [], CancellationToken.None);
        await store.ApplyAsync("topic: orders\nclass: certified\nonFailure: quarantine\nquarantineTopic: '{topic}.dlq'\n", "a", false, _ => [], CancellationToken.None);
        Assert.Equal("all", store.ForTopic("orders.dlq")?.Definition.Name);

        // "At least 30 days" must not turn "forever" (-1, never deleted) into 30 days.
        Assert.Equal(-1, store.RetentionMsFor("orders.dlq"));
    }

    [Fact]
    public async Task APatternNeverQuarantinesUnderscoreTopicsSoTheirQuarantineNamesGetNo30Days()
    {
        using var store = new ContractStore(new InMemoryJournal(), new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        await store.ApplyAsync("name: all\ntopic: '*'\nclass: certified\nonFailure: quarantine\n", "a", false, _ => [], CancellationToken.None);

        // Topics starting with '_' match no pattern, so '*' never gated (nor quarantined) "_tmp": its quarantine name holds nothing.
        Assert.Null(store.ForTopic("_tmp"));
        Assert.False(store.IsQuarantineTopic("_tmp.quarantine"));
        Assert.Null(store.RetentionMsFor("_tmp.quarantine"));
    }

    [Fact]
    public async Task ATopicsRetentionComesFromItsContractAndAQuarantineTopicsFromTheQuarantineClass()
    {
        using var store = new ContractStore(new InMemoryJournal(), new InMemoryJournal(), NullLogger<ContractStore>.Instance);
        await store.ApplyAsync("topic: orders\nclass: certified\nretention: 3d\n", "a", false, _ => [], CancellationToken.None);
        await store.ApplyAsync("topic: 'clicks.*'\nonFailure: quarantine\nquarantineTopic: 'bad-{topic}'\n", "a", false, _ => [], CancellationToken.None);
        await store.ApplyAsync("topic: fixed\nonFailure: quarantine\nquarantineTopic: 'all-bad'\n", "a", false, _ => [], CancellationToken.None);

        Assert.Equal(3L * 86_400_000, store.RetentionMsFor("orders"));
        Assert.Equal(ContractParser.WeekMs, store.RetentionMsFor("clicks.eu"));
        Assert.Equal(ContractParser.QuarantineRetentionMs, store.RetentionMsFor("orders.quarantine"));
        Assert.Equal(ContractParser.QuarantineRetentionMs, store.RetentionMsFor("bad-clicks.eu"));
        Assert.Equal(ContractParser.QuarantineRetentionMs, store.RetentionMsFor("all-bad"));
        Assert.Null(store.RetentionMsFor("bad-views")); // views has no contract, so nothing quarantines into bad-views
        Assert.Null(store.RetentionMsFor("payments"));

        // Answers are kept per snapshot: a new contract is seen at once.
        await store.ApplyAsync("topic: views\n", "a", false, _ => [], CancellationToken.None);
        Assert.Null(store.RetentionMsFor("bad-views")); // views' contract names views.quarantine, not bad-views
        Assert.Equal(ContractParser.QuarantineRetentionMs, store.RetentionMsFor("views.quarantine"));

        // A quarantine topic with a contract of its own takes that contract's retention.
        await store.ApplyAsync("topic: orders.quarantine\nclass: quarantine\nretention: 90d\n", "a", false, _ => [], CancellationToken.None);
        Assert.Equal(90L * 86_400_000, store.RetentionMsFor("orders.quarantine"));
    }

    [Fact]
    public void PrivacyRewriterRedactsHashesAndDropsAlongPathsAndLists()
    {
        var rewriter = new PrivacyRewriter("secret"u8.ToArray());
        var record = new Dictionary<string, object?>
        {
            ["email"] = "a@example.com",
            ["age"] = 42L,
            ["cards"] = new List<object?> { new Dictionary<string, object?> { ["number"] = "4111" }, new Dictionary<string, object?> { ["number"] = "5500" } },
        };
        Assert.True(rewriter.Apply(record, "email", PrivacyAction.Hash, out string? problem));
        Assert.Null(problem);
        Assert.Matches("^[0-9a-f]{64}$", (string)record["email"]!);
        var again = new Dictionary<string, object?> { ["email"] = "a@example.com" };
        rewriter.Apply(again, "email", PrivacyAction.Hash, out _);
        Assert.Equal(record["email"], again["email"]);

        Assert.True(rewriter.Apply(record, "cards.number", PrivacyAction.Redact, out _));
        Assert.All((List<object?>)record["cards"]!, c => Assert.Equal(PrivacyRewriter.RedactedText, ((Dictionary<string, object?>)c!)["number"]));
        Assert.True(rewriter.Apply(record, "age", PrivacyAction.Drop, out _));
        Assert.False(record.ContainsKey("age"));
        Assert.False(rewriter.Apply(record, "missing.path", PrivacyAction.Drop, out _));

        var numeric = new Dictionary<string, object?> { ["n"] = 5L };
        Assert.False(rewriter.Apply(numeric, "n", PrivacyAction.Hash, out string? refused));
        Assert.Equal("privacy: hash applies to string or bytes fields, not to this field's integer value", refused); // was "not Int64"
    }

    [Theory]
    [InlineData("a@example.com")]
    [InlineData("Grüße, 東京 🙂")]
    [InlineData(null)] // 2,000 characters: the long-value path
    public void HashedStringsAreTheKeyedHmacSha256OfTheirUtf8InLowercaseHex(string? text)
    {
        // The hash must stay the same across releases, or hashed values stop joining: pin it to the definition.
        text ??= new string('x', 1_000) + new string('é', 1_000);
        byte[] key = "secret"u8.ToArray();
        var record = new Dictionary<string, object?> { ["field"] = text };
        Assert.True(new PrivacyRewriter(key).Apply(record, "field", PrivacyAction.Hash, out _));
        string expected = Convert.ToHexStringLower(System.Security.Cryptography.HMACSHA256.HashData(key, System.Text.Encoding.UTF8.GetBytes(text)));
        Assert.Equal(expected, record["field"]);
    }

    /// <summary>
    /// A tab that is valid YAML (content of a block scalar, or whitespace inside a JSON document's flow mapping) must not
    /// replace the file's real problem with "YAML is indented with spaces, not tabs".
    /// </summary>
    [Theory]
    [InlineData("topic: t\ndescription: |\n  Orders.\n  \tindented line\nownr: x\n", "unknown key 'ownr'")]
    [InlineData("{\n\t\"topic\": \"t\",\n\t\"ownr\": \"x\"\n}\n", "unknown key 'ownr'")]
    [InlineData("{\n\t\"topic\": \"t\",\n\t\"owner\": [\"x\"]\n}\n", "a value of the wrong kind")]
    public void AValidTabDoesNotHideTheFilesRealProblem(string text, string expected)
    {
        // Without the mistake the same file (tabs and all) is a valid contract: the tab is not the problem.
        string fixedText = text.Replace("ownr: x\n", "owner: x\n", StringComparison.Ordinal)
            .Replace("\"ownr\"", "\"owner\"", StringComparison.Ordinal)
            .Replace("[\"x\"]", "\"x\"", StringComparison.Ordinal);
        Assert.Equal("t", ContractParser.Parse(fixedText).Topic);

        ContractValidationException error = Assert.Throws<ContractValidationException>(() => ContractParser.Parse(text));
        Assert.Contains(error.Problems, p => p.Contains(expected, StringComparison.Ordinal));
    }

    /// <summary>A reference version that is empty or a lone '-' is told in the contract's terms, not as a .NET exception's message.</summary>
    [Theory]
    [InlineData("''")]
    [InlineData("'-'")]
    public void ABlankReferenceVersionIsToldInTheContractsTerms(string version)
    {
        string text = $"topic: t\nvalue:\n  schemaFile: x.avsc\n  references:\n    - {{name: a, subject: s, version: {version}}}\n";
        ContractValidationException error = Assert.Throws<ContractValidationException>(() => ContractParser.Parse(text));
        Assert.DoesNotContain(error.Problems, p => p.Contains("Index was outside the bounds of the array", StringComparison.Ordinal));
        Assert.Contains(error.Problems, p => p.StartsWith("line 5, column 38: a whole number was expected here", StringComparison.Ordinal));
    }
}
