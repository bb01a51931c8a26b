using System.Globalization;
using System.Text.RegularExpressions;
using SharedLog.Contracts.Registry;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace SharedLog.Contracts.Model;

/// <summary>The registry subject (and versions) a key or value must be written with.</summary>
/// <param name="References">What <paramref name="SchemaFile"/> refers to in the registry; empty when it refers to nothing.</param>
/// <param name="DeclaredSchemaType">The contract's <c>schemaType</c>: records whose schema is of another type fail. Null when not
/// given: any type passes.</param>
public sealed record SchemaRequirement(string? Subject, SubjectNameStrategy Strategy, int MinVersion, int MaxVersion, string? SchemaFile = null, SchemaType? DeclaredSchemaType = null, IReadOnlyList<SchemaReference>? References = null)
{
    /// <summary>The type <see cref="SchemaFile"/> is read as: the declared one, else Avro.</summary>
    public SchemaType SchemaType => DeclaredSchemaType ?? SchemaType.Avro;

    /// <summary>The versions admitted, as a contract file writes them (<c>&gt;=1</c>, <c>2-4</c>).</summary>
    public string VersionsText => MaxVersion == int.MaxValue ? $">={MinVersion}" : MinVersion == MaxVersion ? $"{MinVersion}" : $"{MinVersion}-{MaxVersion}";

    /// <summary>Whether <paramref name="version"/> of the subject is one the contract admits.</summary>
    public bool Admits(int version) => version >= MinVersion && version <= MaxVersion;

    /// <summary>The subject a record's schema must be registered under, per the naming strategy.</summary>
    public string SubjectFor(string topic, bool isKey, string? recordName) => Subject ?? Strategy switch
    {
        SubjectNameStrategy.TopicNameStrategy => $"{topic}-{(isKey ? "key" : "value")}",
        SubjectNameStrategy.RecordNameStrategy => recordName ?? "",
        _ => $"{topic}-{recordName}",
    };
}

public sealed record FieldRuleDefinition(string Name, string Expression, string? Message);

public sealed record PrivacyRuleDefinition(string? FieldPath, string? Tag, PrivacyAction Action)
{
    /// <summary>
    /// What the rule masks, as problems and diffs name it: a field's path, or <c>tag:</c> and the tag. A field path may be
    /// any JSON member name, "tag:PII" too, so one that begins with <c>tag:</c> or <c>field:</c> is written after
    /// <c>field:</c>: otherwise a field rule and a tag rule would be one diff entry, and switching between them "no change".
    /// </summary>
    public string Target => FieldPath is null ? $"tag:{Tag}"
        : FieldPath.StartsWith("tag:", StringComparison.Ordinal) || FieldPath.StartsWith("field:", StringComparison.Ordinal) ? $"field:{FieldPath}"
        : FieldPath;
}

/// <summary>A contract file parsed and checked: every default applied, every name resolved to an enum.</summary>
public sealed record ContractDefinition(
    string Name,
    string Topic,
    TopicClass Class,
    string? Owner,
    string? Description,
    SchemaRequirement? Key,
    SchemaRequirement? Value,
    IReadOnlyList<FieldRuleDefinition> Rules,
    IReadOnlyList<PrivacyRuleDefinition> Privacy,
    FailureAction OnFailure,
    string QuarantineTopicTemplate,
    bool RejectTombstones,
    CompatibilityLevel Compatibility,
    long RetentionMs = ContractParser.WeekMs,
    AuditLevel Audit = AuditLevel.Summary,
    long? RetentionBytes = null)
{
    /// <summary>Whether the file wrote <see cref="Name"/> out; without one, a contract is named after its topic.</summary>
    public bool NameGiven { get; init; }

    // The literal pieces between a pattern's stars: matched in order, each at its leftmost place, which decides a match
    // of stars alone in linear time (a regex built per contract cost most of a contract change: the store builds every
    // contract in force again).
    private readonly string[]? _patternPieces = Topic.Contains('*', StringComparison.Ordinal) ? Topic.Split('*') : null;

    public bool IsPattern => _patternPieces is not null;

    /// <summary>The topic class as a contract file writes it (<c>certified</c>), for messages and listings.</summary>
    public string ClassName => Class.ToString().ToLowerInvariant();

    public bool Matches(string topic) => _patternPieces is { } pieces ? MatchesPieces(pieces, topic) : string.Equals(Topic, topic, StringComparison.Ordinal);

    private static bool MatchesPieces(string[] pieces, string topic)
    {
        string first = pieces[0];
        string last = pieces[^1];
        if (topic.Length < first.Length + last.Length || !topic.StartsWith(first, StringComparison.Ordinal) || !topic.EndsWith(last, StringComparison.Ordinal))
        {
            return false;
        }

        // The middle pieces lie between the first and the last, in order, without overlapping either.
        int position = first.Length;
        int end = topic.Length - last.Length;
        for (int i = 1; i < pieces.Length - 1; i++)
        {
            int found = topic.AsSpan(position, end - position).IndexOf(pieces[i], StringComparison.Ordinal);
            if (found < 0)
            {
                return false;
            }

            position += found + pieces[i].Length;
        }

        return true;
    }

    /// <summary>Where this contract quarantines records of <paramref name="topic"/>.</summary>
    public string QuarantineTopicFor(string topic) => QuarantineTopicTemplate.Replace("{topic}", topic, StringComparison.Ordinal);

    /// <summary>
    /// Whether <paramref name="topic"/> is a name this contract's quarantine template makes: then <paramref name="source"/>
    /// is the topic it would be the quarantine of, or null for a fixed name. A template naming "{topic}" twice is not
    /// recognised (topic names cannot hold braces, so only its own template makes such names).
    /// </summary>
    public bool IsQuarantineName(string topic, out string? source)
    {
        source = null;
        int at = QuarantineTopicTemplate.IndexOf("{topic}", StringComparison.Ordinal);
        if (at < 0)
        {
            return string.Equals(QuarantineTopicTemplate, topic, StringComparison.Ordinal);
        }

        string prefix = QuarantineTopicTemplate[..at];
        string suffix = QuarantineTopicTemplate[(at + "{topic}".Length)..];
        if (topic.Length > prefix.Length + suffix.Length && topic.StartsWith(prefix, StringComparison.Ordinal) && topic.EndsWith(suffix, StringComparison.Ordinal))
        {
            source = topic[prefix.Length..^suffix.Length];
            return true;
        }

        return false;
    }

    /// <summary>
    /// Whether this contract governs <paramref name="topic"/>: it matches it, and it is not the contract's own quarantine
    /// topic for a topic it matches (a pattern such as "orders.*" matches "orders.eu.quarantine" too: gating that
    /// would quarantine into "orders.eu.quarantine.quarantine", or into the quarantine topic itself).
    /// </summary>
    public bool Governs(string topic) =>
        Matches(topic) && !(IsPattern && IsQuarantineName(topic, out string? source) && (source is null || Matches(source)));
}

/// <summary>
/// A contract change that was stored (durable, in force and audited as <see cref="Version"/>), or an unchanged contract
/// applied again, while setting its subjects' compatibility levels in the registry failed; <see cref="Exception.InnerException"/>
/// is the registry's first failure.
/// </summary>
/// <param name="storedNow">False for a contract applied again unchanged: nothing new was stored.</param>
public sealed class ContractRegistrySyncException(string name, int version, Exception failure, bool storedNow = true)
    : Exception($"Contract '{name}' {(storedNow ? "is stored as" : "is unchanged at")} version {version}, but setting its subjects' compatibility failed: {failure.Message}", failure)
{
    public string Name { get; } = name;

    public int Version { get; } = version;
}

/// <summary>A contract file that cannot be used; <see cref="Problems"/> lists every problem found, with line and column where known.</summary>
public sealed class ContractValidationException(IReadOnlyList<string> problems)
    : Exception("Invalid contract: " + string.Join("; ", Listed(problems)))
{
    /// <summary>Problems listed at most: a file of a hundred thousand empty rules is told about its first ones, not answered in megabytes.</summary>
    public const int MaxListed = 100;

    public IReadOnlyList<string> Problems { get; } = Listed(problems);

    private static IReadOnlyList<string> Listed(IReadOnlyList<string> problems) =>
        problems.Count <= MaxListed ? problems : [.. problems.Take(MaxListed), $"and {problems.Count - MaxListed} more problems."];
}

/// <summary>
/// Reads contract files: YAML (JSON is YAML too), bounded in size and depth, without anchors or
/// aliases (no alias bombs), unknown keys refused so typos are caught; then applies class defaults and
/// checks every field. Rule expressions are compiled later by the gate, which reports their errors.
/// </summary>
public static class ContractParser
{
    public const int MaxRules = 1000;

    /// <summary>A character that would forge or garble a line of a terminal or a log: a control character or a Unicode line or paragraph separator.</summary>
    public static bool IsUnprintable(char c) => char.IsControl(c) || c is '\u2028' or '\u2029';

    public const int MaxDocumentChars = 256 * 1024;

    /// <summary>Kafka's default <c>retention.ms</c>, the retention of every class but quarantine.</summary>
    public const long WeekMs = 7L * 24 * 60 * 60 * 1000;

    /// <summary>The quarantine class keeps records 30 days: time to find why they failed and replay them.</summary>
    public const long QuarantineRetentionMs = 30L * 24 * 60 * 60 * 1000;
    private const int MaxNesting = 16;

    /// <summary>A topic name, a topic pattern or a contract name: letters, digits, '.', '_', '-' and '*'.</summary>
    private const string NameOrPattern = "^[A-Za-z0-9._*-]{1,249}\\z";

    // A key given twice is refused, not resolved by the last one: a second onFailure or privacy block further down a
    // file would otherwise silently replace the first.
    /// <summary>
    /// Whether all of <paramref name="value"/> matches <paramref name="pattern"/> (which ends in <c>\z</c>). For a stored
    /// revision the end may also be before a final line break, as '$' allowed when earlier builds checked it.
    /// </summary>
    private static bool Anchored(string value, string pattern, bool stored) =>
        Regex.IsMatch(stored && value.EndsWith('\n') ? value[..^1] : value, pattern, RegexOptions.CultureInvariant);

    private static readonly IDeserializer Yaml = new DeserializerBuilder()
        .WithNamingConvention(CamelCaseNamingConvention.Instance)
        .WithDuplicateKeyChecking()
        .Build();

    // Reads a file with an unknown key once more, so its other problems are listed with that key, not one round trip later.
    private static readonly IDeserializer YamlIgnoringUnknownKeys = new DeserializerBuilder()
        .WithNamingConvention(CamelCaseNamingConvention.Instance)
        .WithDuplicateKeyChecking()
        .IgnoreUnmatchedProperties()
        .Build();

    /// <param name="text">The contract file.</param>
    /// <param name="stored">
    /// The text is a revision already stored (replayed at start, shown, diffed): the checks added after a build could have
    /// stored it (<see cref="Anchored"/>'s end of text, the '.' and '..' names, the quarantine topic's length) are not made
    /// again, so a contract in force stays in force after an upgrade instead of its topic going ungated. A change (apply,
    /// rollback, validate) gets them all.
    /// </param>
    public static ContractDefinition Parse(string text, bool stored = false)
    {
        var problems = new List<string>();
        ContractDocument document = Read(text, problems);
        string topic = Required(document.Topic, "topic", problems);
        if (topic.Length > 0 && (!Anchored(topic, NameOrPattern, stored) || (!stored && topic is "." or "..")))
        {
            problems.Add($"topic '{topic}' must be a topic name or a pattern of letters, digits, '.', '_', '-' and '*'.");
        }
        else if (!stored && InternalTopics.IsInternal(topic))
        {
            // Never enforced (the broker's own writes to its journals pass no gate), while applying it would still set a
            // compatibility level on the subjects it names.
            problems.Add($"topic '{topic}' is one of the broker's internal topics, which contracts do not govern.");
        }
        else if (!stored && topic.StartsWith('_') && topic.Contains('*', StringComparison.Ordinal))
        {
            // Topics starting with '_' match no pattern (they are the broker's own), so such a pattern would govern nothing.
            problems.Add($"pattern '{topic}' starts with '_': topics starting with '_' match no pattern, so it would govern nothing; name such a topic exactly.");
        }

        if (document.Name is { } contractName && (!Anchored(contractName, NameOrPattern, stored) || (!stored && contractName is "." or "..")))
        {
            // The name is a path segment of /contracts/{name}: one with '/' (or one of the dot segments, which HTTP servers
            // resolve away) could be applied but never shown, rolled back or deleted.
            problems.Add($"name '{contractName}' must be 1 to 249 letters, digits, '.', '_', '-' or '*'.");
        }

        // Printed by the CLI and shown by the API: a control character (an escape sequence, a line break in the owner)
        // would forge or garble what a terminal shows. A description may span lines.
        if (!stored && document.Owner is { } owner && owner.Any(IsUnprintable))
        {
            problems.Add("owner must not hold control characters or line breaks.");
        }

        if (!stored && document.Description is { } description && description.Any(c => char.IsControl(c) && c is not '\n' and not '\t' and not '\r'))
        {
            problems.Add("description must not hold control characters other than line breaks and tabs.");
        }

        TopicClass topicClass = ParseEnum(document.Class ?? "raw", "class", TopicClass.Raw, problems);
        (FailureAction defaultAction, CompatibilityLevel defaultCompatibility, long defaultRetention, AuditLevel defaultAudit) = topicClass switch
        {
            TopicClass.Certified => (FailureAction.Reject, CompatibilityLevel.FullTransitive, WeekMs, AuditLevel.Summary),
            TopicClass.Sensitive => (FailureAction.Reject, CompatibilityLevel.FullTransitive, WeekMs, AuditLevel.Violations),
            TopicClass.Remediation => (FailureAction.Reject, CompatibilityLevel.Backward, WeekMs, AuditLevel.Violations),
            TopicClass.Quarantine => (FailureAction.Observe, CompatibilityLevel.None, QuarantineRetentionMs, AuditLevel.Changes),
            _ => (FailureAction.Observe, CompatibilityLevel.Backward, WeekMs, AuditLevel.Summary),
        };
        long retentionMs = document.Retention is null ? defaultRetention : ParseRetention(document.Retention, problems);
        long? retentionBytes = document.RetentionBytes is null ? null : ParseRetentionBytes(document.RetentionBytes, problems);
        AuditLevel audit = document.Audit is null ? defaultAudit : ParseEnum(document.Audit, "audit", defaultAudit, problems);
        FailureAction onFailure = document.OnFailure is null ? defaultAction : ParseEnum(document.OnFailure, "onFailure", defaultAction, problems);
        CompatibilityLevel compatibility = defaultCompatibility;
        if (document.Compatibility is not null && !RegistryNames.TryParseLevel(document.Compatibility, out compatibility))
        {
            problems.Add($"compatibility '{document.Compatibility}' is not a level (NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE).");
        }

        bool rejectTombstones = (document.Tombstones ?? "allow").ToLowerInvariant() switch
        {
            "allow" => false,
            "reject" => true,
            var other => Problem(problems, $"tombstones '{other}' must be allow or reject."),
        };

        var rules = new List<FieldRuleDefinition>();
        if (!stored && document.Rules is { Count: > MaxRules } many)
        {
            // Each rule is compiled and run on every record: thousands of them (a 240 KB file holds 24,000) took seconds to
            // apply and would take as long per batch.
            problems.Add($"rules: a contract holds at most {MaxRules} rules, not {many.Count}.");
        }

        foreach ((RuleDocument? rule, int index) in (document.Rules ?? []).Select((r, i) => (r, i)))
        {
            // A bare "-" in the list is an entry with nothing in it.
            if (rule is null)
            {
                problems.Add($"rules[{index}] is empty: a rule needs an expr.");
                continue;
            }

            string name = rule.Name ?? $"rule-{index + 1}";
            if (string.IsNullOrWhiteSpace(rule.Expr))
            {
                problems.Add($"rules[{index}] ({name}) needs an expr.");
                continue;
            }

            if (rules.Any(r => r.Name == name))
            {
                problems.Add($"rules[{index}]: the name '{name}' is used twice");
            }
            else if (!stored && (string.IsNullOrWhiteSpace(name) || name.Any(IsUnprintable)))
            {
                // The name goes into metrics, quarantine headers and record errors: a blank one names no rule there.
                problems.Add($"rules[{index}]: a rule's name must not be blank or hold control characters");
            }

            if (!stored && rule.Message is { } message && message.Any(IsUnprintable))
            {
                // As the name: the message goes into record errors, quarantine headers and what the CLI prints.
                problems.Add($"rules[{index}] ({name}): a rule's message must not hold control characters or line breaks");
            }

            rules.Add(new FieldRuleDefinition(name, rule.Expr, rule.Message));
        }

        var privacy = new List<PrivacyRuleDefinition>();
        foreach ((PrivacyDocument? rule, int index) in (document.Privacy ?? []).Select((r, i) => (r, i)))
        {
            if (rule is null || (rule.Field is null) == (rule.Tag is null))
            {
                problems.Add($"privacy[{index}] needs exactly one of field or tag.");
                continue;
            }

            // Segments are field names, or map keys by their text (counts.7, byId.-3): anything but a dot or a control
            // character, as JSON property names are (a tag finds such fields; a path must be able to name them too).
            if (rule.Field is not null && !Anchored(rule.Field, "^[^.\\p{Cc}]+(\\.[^.\\p{Cc}]+)*\\z", stored))
            {
                problems.Add($"privacy[{index}]: field '{rule.Field}' must be a dotted path of field names (a map entry by its key), with no empty name.");
            }

            if (!stored && rule.Tag is not null && (string.IsNullOrWhiteSpace(rule.Tag) || rule.Tag.Any(IsUnprintable)))
            {
                problems.Add($"privacy[{index}]: tag must be a tag name such as PII, not blank or holding control characters.");
            }

            privacy.Add(new PrivacyRuleDefinition(rule.Field, rule.Tag, ParseEnum(rule.Action, $"privacy[{index}].action", PrivacyAction.Redact, problems)));
        }

        if (topicClass == TopicClass.Sensitive && privacy.Count == 0)
        {
            problems.Add("class sensitive needs at least one privacy rule (redact, hash or drop).");
        }

        if (topicClass == TopicClass.Sensitive && onFailure == FailureAction.Observe)
        {
            // observe stores records byte for byte, privacy rewrite included: personal data would be stored in clear.
            problems.Add("class sensitive cannot use onFailure: observe, which stores records as sent, without its privacy rules; roll it out with flag instead.");
        }

        if ((rules.Count > 0 || privacy.Count > 0) && document.Value is null && document.Key is null)
        {
            problems.Add("rules and privacy rules read decoded records: bind a value (or key) schema.");
        }

        SchemaRequirement? key = Binding(document.Key, "key", problems);
        SchemaRequirement? value = Binding(document.Value, "value", problems);
        string quarantine = document.QuarantineTopic ?? "{topic}.quarantine";
        // For an exact topic its quarantine topic's name is known now; a pattern's is known per topic only.
        string? exactQuarantine = topic.Contains('*', StringComparison.Ordinal) ? null : quarantine.Replace("{topic}", topic, StringComparison.Ordinal);
        if (!Anchored(quarantine.Replace("{topic}", "t", StringComparison.Ordinal), "^[A-Za-z0-9._-]{1,249}\\z", stored) || (!stored && quarantine is "." or ".."))
        {
            problems.Add($"quarantineTopic '{quarantine}' must be a topic name of letters, digits, '.', '_' and '-', where {{topic}} stands for the source topic.");
        }
        else if (!stored && onFailure == FailureAction.Quarantine && exactQuarantine is { Length: > 249 } tooLong)
        {
            // Kafka's limit: a topic this long could never be created, and every batch with a bad record would fail.
            problems.Add($"quarantineTopic '{quarantine}' is {tooLong.Length} characters long for topic '{topic}'; a topic name has at most 249.");
        }
        else if (quarantine == "{topic}" || quarantine == topic)
        {
            // Bad records would go back into the very topic they were kept out of, past the gate.
            problems.Add($"quarantineTopic '{quarantine}' names the source topic itself; quarantined records need a topic of their own.");
        }
        else if (InternalTopics.IsInternal(quarantine) || (!stored && exactQuarantine is not null && InternalTopics.IsInternal(exactQuarantine)))
        {
            // The journals are replayed at start: producer data in them would change or stop the broker. ("_{topic}" for
            // topic "schemas" names _schemas; for a pattern, and a contract stored before this check, the quarantine writer
            // refuses such a name when it comes.)
            problems.Add($"quarantineTopic '{quarantine}' is one of the broker's internal topics.");
        }
        else if (!stored && quarantine.IndexOf("{topic}", StringComparison.Ordinal) is >= 0 and int first && quarantine.IndexOf("{topic}", first + 1, StringComparison.Ordinal) >= 0)
        {
            // Only one {topic} is recognised when a pattern's own quarantine topics are told apart from the topics it gates.
            problems.Add($"quarantineTopic '{quarantine}' names {{topic}} more than once; name it once.");
        }

        if (onFailure == FailureAction.Quarantine && topicClass == TopicClass.Quarantine)
        {
            problems.Add("a quarantine-class topic cannot quarantine into another topic.");
        }

        if (problems.Count > 0)
        {
            // Told with the file's other problems, not only once those are mended.
            problems.AddRange(RuleCompileProblems(rules));
            throw new ContractValidationException(problems);
        }

        return new ContractDefinition(document.Name ?? topic, topic, topicClass, document.Owner, document.Description, key, value, rules, privacy, onFailure, quarantine, rejectTombstones, compatibility, retentionMs, audit, retentionBytes)
        {
            NameGiven = document.Name is not null,
        };
    }

    private static readonly Dictionary<string, long> DurationUnits = new() { [""] = 1, ["ms"] = 1, ["s"] = 1000, ["m"] = 60_000, ["h"] = 3_600_000, ["d"] = 86_400_000 };
    private static readonly Dictionary<string, long> SizeUnits = new() { [""] = 1, ["b"] = 1, ["kib"] = 1L << 10, ["mib"] = 1L << 20, ["gib"] = 1L << 30, ["tib"] = 1L << 40 };

    /// <summary>
    /// A retention: <c>infinite</c> (or -1), a whole number of milliseconds, or a whole number with a unit (ms, s, m, h, d),
    /// at least one second and at most 100 years: a contract that would empty its topics at once is a typo.
    /// </summary>
    private static long ParseRetention(string text, List<string> problems)
    {
        if (ParseQuantity(text, DurationUnits, 1000, 100L * 365 * 86_400_000) is { } ms)
        {
            return ms;
        }

        problems.Add($"retention '{text}' must be infinite, or a whole number of ms, s, m, h or d from 1s to 100 years (e.g. 7d).");
        return WeekMs;
    }

    /// <summary>A size limit per partition: <c>infinite</c> (or -1), a whole number of bytes, or one with a binary unit, from 1 MiB to 1 EiB.</summary>
    private static long ParseRetentionBytes(string text, List<string> problems)
    {
        if (ParseQuantity(text, SizeUnits, 1L << 20, 1L << 60) is { } bytes)
        {
            return bytes;
        }

        problems.Add($"retentionBytes '{text}' must be infinite, or a whole number of bytes, KiB, MiB, GiB or TiB from 1MiB to 1EiB (e.g. 10GiB).");
        return -1;
    }

    /// <summary>-1 for <c>infinite</c> or -1; else a whole number with an optional unit of <paramref name="units"/> (any case), within [min, max]; null otherwise.</summary>
    private static long? ParseQuantity(string text, Dictionary<string, long> units, long min, long max)
    {
        string trimmed = text.Trim().ToLowerInvariant();
        if (trimmed is "infinite" or "-1")
        {
            return -1;
        }

        int digits = 0;
        while (digits < trimmed.Length && char.IsAsciiDigit(trimmed[digits]))
        {
            digits++;
        }

        return digits is > 0 and <= 19
            && units.TryGetValue(trimmed[digits..], out long unit)
            && long.TryParse(trimmed.AsSpan(0, digits), NumberStyles.None, CultureInfo.InvariantCulture, out long n)
            && n <= max / unit && n * unit >= min
            ? n * unit
            : null;
    }

    /// <summary>Bounded YAML reading: size, nesting, no anchors or aliases; errors carry line and column.</summary>
    /// <summary>The file's document; an unknown key is added to <paramref name="problems"/> (the rest is still read and checked), other YAML errors throw.</summary>
    private static ContractDocument Read(string text, List<string> problems)
    {
        if (text.Length > MaxDocumentChars)
        {
            throw new ContractValidationException([$"the contract is larger than {MaxDocumentChars} characters."]);
        }

        Mark readTo = Mark.Empty;
        try
        {
            var parser = new Parser(new StringReader(text));
            int depth = 0;
            while (NextEvent(parser, ref readTo))
            {
                switch (parser.Current)
                {
                    case AnchorAlias alias:
                        throw new ContractValidationException([$"line {alias.Start.Line}, column {alias.Start.Column}: YAML aliases are not allowed in contracts."]);
                    case NodeEvent { Anchor.IsEmpty: false } node:
                        throw new ContractValidationException([$"line {node.Start.Line}, column {node.Start.Column}: YAML anchors are not allowed in contracts."]);
                    case NodeEvent { Tag.IsEmpty: false } node:
                        // A tag makes the deserializer take a node as what it says (a !!map read into a text field became
                        // "(Collection)"): every value of a contract has one plain type, so none is needed.
                        throw new ContractValidationException([$"line {node.Start.Line}, column {node.Start.Column}: YAML tags ({node.Tag.Value}) are not allowed in contracts."]);
                    case MappingStart or SequenceStart:
                        if (++depth > MaxNesting)
                        {
                            throw new ContractValidationException([$"line {parser.Current.Start.Line}: the contract nests deeper than {MaxNesting} levels."]);
                        }

                        break;
                    case MappingEnd or SequenceEnd:
                        depth--;
                        break;
                }
            }

            return Yaml.Deserialize<ContractDocument?>(text) ?? throw new ContractValidationException(["the contract is empty."]);
        }
        catch (YamlException e)
        {
            // The YAML library places a tab's error at the token before it, or at the mapping holding it: name the tab
            // itself, and only for the library's tab error (a tab in a block scalar's text, or in JSON, is valid): the
            // first one indenting a line after the last event read, as the scanner stopped there.
            if (e is SyntaxErrorException && e.Message.Contains("tab", StringComparison.OrdinalIgnoreCase)
                && FirstTabIndent(text, after: readTo) is { } tab)
            {
                throw new ContractValidationException([$"line {tab.Line}, column {tab.Column}: YAML is indented with spaces, not tabs."]);
            }

            // .NET's own words for a version "abc" or 99999999999999999999 name .NET types, not the contract's terms (and
            // for '' or '-' the library's own failure to read a number).
            string reason = e.InnerException is FormatException or OverflowException or IndexOutOfRangeException
                ? "a whole number was expected here (at most 2147483647)"
                : (e.InnerException?.Message ?? e.Message).Split('\n')[0];
            string problem = $"line {e.Start.Line}, column {e.Start.Column}: {InContractTerms(reason)}";
            if (UnknownKey(reason) is not null)
            {
                try
                {
                    ContractDocument? lenient = YamlIgnoringUnknownKeys.Deserialize<ContractDocument?>(text);
                    if (lenient is not null)
                    {
                        problems.Add(problem);
                        return lenient;
                    }
                }
                catch (YamlException)
                {
                    // Another mistake after the key: the key is reported alone, as before.
                }
            }

            throw new ContractValidationException([problem]);
        }
    }

    /// <summary>The first tab in the leading whitespace of a line at or past <paramref name="after"/> (1-based line and column), if any.</summary>
    private static (int Line, int Column)? FirstTabIndent(string text, Mark after)
    {
        int line = 1;
        int column = 1;
        bool leading = true;
        foreach (char c in text)
        {
            if (c == '\n')
            {
                (line, column, leading) = (line + 1, 1, true);
                continue;
            }

            if (leading && c == '\t' && (line > after.Line || (line == after.Line && column >= after.Column)))
            {
                return (line, column);
            }

            leading &= c == ' ';
            column++;
        }

        return null;
    }

    /// <summary>The key the YAML library's error names when it is a key the contract format does not have.</summary>
    private static string? UnknownKey(string reason) =>
        Regex.Match(reason, "^Property '(?<key>.*)' not found on type '[^']*'", RegexOptions.None, TimeSpan.FromSeconds(1)) is { Success: true } unknown
            ? unknown.Groups["key"].Value
            : null;

    /// <summary>
    /// The key of the mapping the YAML library's error names (by its .NET type) nearest to a misspelt <paramref name="key"/>:
    /// at most two letters added, removed, changed or swapped (<c>ownr</c>, <c>subjct</c>), else null.
    /// </summary>
    private static string? ClosestKey(string reason, string key)
    {
        Match named = Regex.Match(reason, "not found on type '(?<type>[^']*)'", RegexOptions.None, TimeSpan.FromSeconds(1));
        if (!named.Success || key.Length > 64 || typeof(ContractParser).Assembly.GetType(named.Groups["type"].Value) is not { } type)
        {
            return null;
        }

        return Closest(key, type.GetProperties().Where(p => p.CanWrite).Select(p => CamelCaseNamingConvention.Instance.Apply(p.Name)));
    }

    /// <summary>
    /// The candidate nearest to a misspelt <paramref name="text"/>: at most two letters added, removed, changed or swapped
    /// (and at most half its length), else null.
    /// </summary>
    private static string? Closest(string text, IEnumerable<string> candidates)
    {
        string? closest = null;
        int best = Math.Min(2, text.Length / 2);
        foreach (string candidate in candidates)
        {
            int distance = EditDistance(text, candidate);
            if (distance <= best && (closest is null || distance < best))
            {
                (closest, best) = (candidate, distance);
            }
        }

        return closest;
    }

    /// <summary>Letters added, removed, changed or two neighbours swapped to turn <paramref name="a"/> into <paramref name="b"/> (optimal string alignment).</summary>
    private static int EditDistance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }

        for (int j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }

        for (int i = 1; i <= a.Length; i++)
        {
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = char.ToLowerInvariant(a[i - 1]) == char.ToLowerInvariant(b[j - 1]) ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
                }
            }
        }

        return d[a.Length, b.Length];
    }

    /// <summary>The YAML library's words for the common mistakes, in the contract's own: its messages name .NET types.</summary>
    private static string InContractTerms(string reason)
    {
        if (UnknownKey(reason) is { } key)
        {
            return ClosestKey(reason, key) is { } meant ? $"unknown key '{key}' (did you mean '{meant}'?)" : $"unknown key '{key}'";
        }

        // "No node deserializer was able to deserialize the node into type System.String, ..." (a list where text goes), and
        // "Expected 'SequenceStart', got 'MappingStart'" (a mapping where a list goes) are the same mistake.
        if (reason.StartsWith("Invalid cast from", StringComparison.Ordinal)
            || reason.StartsWith("No node deserializer was able to deserialize the node", StringComparison.Ordinal)
            || reason.StartsWith("Failed to create an instance of type", StringComparison.Ordinal) // a mapping where text goes
            || (reason.StartsWith("Expected '", StringComparison.Ordinal) && !reason.StartsWith("Expected 'StreamEnd'", StringComparison.Ordinal)))
        {
            return "a value of the wrong kind (the format wants a mapping of keys, a list or a plain value here; see docs/contracts.md)";
        }

        return reason.StartsWith("Expected 'StreamEnd', got 'DocumentStart'", StringComparison.Ordinal) ? "a contract file holds one YAML document" : reason;
    }

    /// <summary>
    /// The parser's next event, noting where the text read so far ends. YamlDotNet's scanner throws
    /// <see cref="InvalidOperationException"/>, not a <see cref="YamlException"/>, on some malformed text (an unclosed
    /// flow mapping followed by block content, found by fuzzing): that is the author's mistake too, after that point.
    /// </summary>
    private static bool NextEvent(Parser parser, ref Mark readTo)
    {
        try
        {
            if (!parser.MoveNext())
            {
                return false;
            }
        }
        catch (InvalidOperationException)
        {
            throw new ContractValidationException([$"line {readTo.Line}, column {readTo.Column}: the YAML is malformed after this point."]);
        }

        readTo = parser.Current!.End;
        return true;
    }

    private static SchemaRequirement? Binding(SchemaBinding? binding, string side, List<string> problems)
    {
        if (binding is null)
        {
            return null;
        }

        SubjectNameStrategy strategy = ParseEnum(binding.Strategy ?? nameof(SubjectNameStrategy.TopicNameStrategy), $"{side}.strategy", SubjectNameStrategy.TopicNameStrategy, problems);
        (int min, int max) = (1, int.MaxValue);
        if (binding.Versions is { } versions)
        {
            // Spaces around the parts only ("3 - 5", ">= 2"): "1 0" is no version 10.
            Match match = Regex.Match(versions.Trim(' '), "^(?:(?<single>\\d+)|(?<from>\\d+) *- *(?<to>\\d+)|>= *(?<atleast>\\d+))\\z", RegexOptions.CultureInvariant);
            if (!match.Success)
            {
                problems.Add($"{side}.versions '{versions}' must be N, N-M or >=N.");
            }
            else if (match.Groups["single"].Success)
            {
                min = max = Number(match.Groups["single"].Value);
            }
            else if (match.Groups["atleast"].Success)
            {
                min = Number(match.Groups["atleast"].Value);
            }
            else
            {
                (min, max) = (Number(match.Groups["from"].Value), Number(match.Groups["to"].Value));
            }

            if (match.Success && (min < 0 || max < 0))
            {
                // Number() gives -1 for digits past int.MaxValue (or not ASCII): not a version number at all.
                problems.Add($"{side}.versions '{versions}' must be N, N-M or >=N, with versions from 1 to {int.MaxValue}.");
            }
            else if (min < 1)
            {
                problems.Add($"{side}.versions '{versions}' names version 0: registry versions are numbered from 1.");
            }
            else if (max < min)
            {
                problems.Add($"{side}.versions '{versions}' is an empty range: write the lower version first ({max}-{min}).");
            }
        }

        if (!RegistryNames.TryParseType(binding.SchemaType, out SchemaType schemaType))
        {
            problems.Add($"{side}.schemaType '{binding.SchemaType}' must be AVRO, JSON or PROTOBUF.");
        }

        if (binding.Subject is { } subject && !SchemaRegistry.IsValidSubject(subject))
        {
            // Checked before the contract is stored: applying it sets this subject's compatibility in the registry.
            problems.Add($"{side}.subject must not be blank, longer than 1024 characters or hold control characters.");
        }

        var references = new List<SchemaReference>();
        int index = -1;
        foreach (SchemaReferenceDocument? reference in binding.References ?? [])
        {
            index++;
            if (reference is not { Name: { Length: > 0 } name, Subject: { } referenced, Version: { } version } || !SchemaRegistry.IsValidSubject(referenced) || (version < 1 && version != -1))
            {
                problems.Add($"{side}.references[{index}] needs a name, a subject and a version (a number from 1, or -1 for the latest).");
                continue;
            }

            references.Add(new SchemaReference(name, referenced, version));
        }

        if (references.Count > 0 && binding.SchemaFile is null)
        {
            problems.Add($"{side}.references are the references of {side}.schemaFile, which is not set.");
        }

        return new SchemaRequirement(binding.Subject, strategy, min, max, binding.SchemaFile, string.IsNullOrEmpty(binding.SchemaType) ? null : schemaType, references);
    }

    private static int Number(string digits) => int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? n : -1;

    private static string Required(string? text, string name, List<string> problems)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            problems.Add($"{name} is required.");
            return "";
        }

        return text;
    }

    /// <summary>Compiles rules; returns one problem per rule that does not compile (line and column included).</summary>
    public static IReadOnlyList<string> RuleCompileProblems(IEnumerable<FieldRuleDefinition> rules)
    {
        var problems = new List<string>();
        foreach (FieldRuleDefinition rule in rules)
        {
            try
            {
                foreach (string mistake in Rules.CelRule.Compile(rule.Expression).Mistakes.Distinct(StringComparer.Ordinal))
                {
                    // Every record would fail it (a rule error): refused now, not at the first produce.
                    problems.Add($"rules[{rule.Name}]: fails whatever the record: {mistake}");
                }
            }
            catch (Rules.RuleSyntaxException e)
            {
                problems.Add($"rules[{rule.Name}]: {e.Message}");
            }
        }

        return problems;
    }

    private static T ParseEnum<T>(string? text, string name, T fallback, List<string> problems)
        where T : struct, Enum
    {
        // Names only: Enum.TryParse also takes numbers (" 1", "+1") and comma lists, which no contract means.
        if (text is not null && text.All(char.IsAsciiLetter) && Enum.TryParse(text, ignoreCase: true, out T value) && Enum.IsDefined(value))
        {
            return value;
        }

        string[] names = [.. Enum.GetNames<T>().Select(n => n.ToLowerInvariant())];
        string? meant = text is { Length: <= 64 } ? Closest(text, names) : null;
        problems.Add($"{name} '{text}' must be one of {string.Join(", ", names)}{(meant is null ? "" : $" (did you mean '{meant}'?)")}.");
        return fallback;
    }

    private static bool Problem(List<string> problems, string problem)
    {
        problems.Add(problem);
        return false;
    }
}

/// <summary>
/// The record name a schema carries, which RecordNameStrategy and TopicRecordNameStrategy make its subject from, as
/// Confluent's serializers do: an Avro named type's full name, a Protobuf file's first message, a JSON schema's title.
/// </summary>
public static class SchemaRecordNames
{
    public static string? Of(Registry.IParsedSchema parsed) => parsed switch
    {
        Formats.Avro.AvroParsedSchema avro => (avro.Schema as global::Avro.NamedSchema)?.Fullname,
        Formats.Protobuf.ProtobufParsedSchema protobuf => protobuf.FirstMessageFullName,
        _ => JsonTitle(parsed.Text),
    };

    private static string? JsonTitle(string schemaText)
    {
        try
        {
            using var document = System.Text.Json.JsonDocument.Parse(schemaText);
            return document.RootElement.ValueKind == System.Text.Json.JsonValueKind.Object && document.RootElement.TryGetProperty("title", out System.Text.Json.JsonElement title)
                && title.ValueKind == System.Text.Json.JsonValueKind.String ? title.GetString() : null;
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }
}
