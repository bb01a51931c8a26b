using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.RegularExpressions;
using Json.Schema;
using Json.Schema.Keywords;
using SharedLog.Contracts.Model;
using SharedLog.Contracts.Registry;
using LibrarySchemaRegistry = Json.Schema.SchemaRegistry;

namespace SharedLog.Contracts.Formats.Json;

/// <summary>The JSON Schema draft applied to a schema that has no <c>$schema</c> keyword.</summary>
public enum JsonValidationDraft
{
    /// <summary>Draft 7: Confluent's default for JSON schemas without <c>$schema</c>.</summary>
    Draft7,
    Draft201909,
    Draft202012,
}

/// <summary>How instances are validated; one options object is shared by every validator built with it.</summary>
public sealed record JsonPayloadValidatorOptions
{
    public static JsonPayloadValidatorOptions Default { get; } = new();

    public JsonValidationDraft DefaultDraft { get; init; } = JsonValidationDraft.Draft7;

    /// <summary>Whether <c>format</c> rejects values (true) or is only an annotation (false, the drafts' default).</summary>
    public bool AssertFormat { get; init; }

    /// <summary>Most messages one record produces; the rest are summed up in one closing message.</summary>
    public int MaxErrors { get; init; } = 100;
}

/// <summary>
/// Validates JSON records against one registered JSON schema with JsonSchema.Net. The schema (with its
/// referenced documents) is built once; <see cref="Validate"/> is safe to call from many threads at
/// once, since an evaluation keeps its state in its own context and the built schema is not changed.
/// </summary>
public sealed class JsonPayloadValidator
{
    /// <summary>Where the root schema lives when it has no <c>$id</c>; references resolve relative to it.</summary>
    private static readonly Uri RootUri = new("sharedlog-schema:/");

    private readonly JsonSchema _schema;
    private readonly CompiledJsonValidator? _compiled;
    private readonly EvaluationOptions _flag;
    private readonly EvaluationOptions _list;
    private readonly int _maxErrors;

    private JsonPayloadValidator(JsonSchema schema, CompiledJsonValidator? compiled, JsonPayloadValidatorOptions options, int regexCount)
    {
        _schema = schema;
        _compiled = compiled;
        RegexCount = regexCount;
        _maxErrors = Math.Max(1, options.MaxErrors);

        // Flag output stops at the first failure; the detailed list is built only for rejected records.
        _flag = new EvaluationOptions { OutputFormat = OutputFormat.Flag, RequireFormatValidation = options.AssertFormat, Culture = CultureInfo.InvariantCulture };
        _flag.IgnoreAllAnnotations();
        _list = new EvaluationOptions { OutputFormat = OutputFormat.List, RequireFormatValidation = options.AssertFormat, Culture = CultureInfo.InvariantCulture };
    }

    /// <summary>
    /// Builds the validator for a schema parsed by <see cref="JsonSchemaFormat"/>, registering its referenced
    /// documents so that <c>$ref</c>s across them resolve. Throws <see cref="InvalidSchemaException"/> when the
    /// library cannot build it (for example a draft it does not support, or a pattern that is not a regex).
    /// </summary>
    public static JsonPayloadValidator Create(IParsedSchema schema, JsonPayloadValidatorOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(schema);
        if (schema is not ParsedJsonSchema parsed)
        {
            throw new ArgumentException("The schema must have been parsed by JsonSchemaFormat.", nameof(schema));
        }

        options ??= JsonPayloadValidatorOptions.Default;
        var registry = new LibrarySchemaRegistry
        {
            // Never download a schema: every document must come from the registry's references.
            Fetch = static (_, _) => null,
        };
        var build = new BuildOptions
        {
            SchemaRegistry = registry,
            DialectRegistry = BoundedDialects.Registry,
            Dialect = BoundedDialects.For(options.DefaultDraft),
        };

        try
        {
            // The library's schema and the compiled one match the same patterns: each is built once for both.
            BoundedRegex.BeginValidator();
            var set = parsed.Schemas;
            var rootBase = JsonSchemaSet.BaseOf(set.Root);
            foreach (var document in set.Documents.Skip(1))
            {
                var built = JsonSchema.Build(document.Root, build, document.RetrievalUri);
                registry.Register(document.RetrievalUri, built);

                // A reference name is also a URI relative to the root schema's $id.
                if (rootBase is not null && Uri.TryCreate(rootBase, document.Key, out var relative) && relative != document.RetrievalUri)
                {
                    registry.Register(relative, built);
                }
            }

            // A schema without references in the common subset is also compiled for decoded records.
            CompiledJsonValidator? compiled = set.Documents.Count == 1 ? CompiledJsonValidator.TryCompile(set.Root.Root, options.AssertFormat) : null;
            JsonSchema rootSchema = JsonSchema.Build(set.Root.Root, build, RootUri);
            return new JsonPayloadValidator(rootSchema, compiled, options, BoundedRegex.BuildingCount);
        }
        catch (Exception ex) when (ex is JsonSchemaException or ArgumentException or InvalidOperationException or KeyNotFoundException or FormatException or UriFormatException)
        {
            throw new InvalidSchemaException($"Invalid JSON schema: cannot build a validator: {ex.Message}", ex);
        }
        finally
        {
            BoundedRegex.EndValidator();
        }
    }

    /// <summary>The distinct regular expressions it holds (its patterns): most of its memory, 0.1-0.5 MB each.</summary>
    public int RegexCount { get; }

    /// <summary>Whether <see cref="ValidateDecoded"/> can check records in their decoded form (the schema is in the compiled subset).</summary>
    public bool ValidatesDecoded => _compiled is not null;

    /// <summary>
    /// Validates a record already decoded by <see cref="JsonPayloadCodec"/> without parsing it again; only
    /// when <see cref="ValidatesDecoded"/>. An empty list means valid; null means this record has a number
    /// beyond 2^53 under a numeric keyword and must be validated as JSON (<see cref="Validate"/>).
    /// </summary>
    public IReadOnlyList<string>? ValidateDecoded(object? value) =>
        (_compiled ?? throw new InvalidOperationException("This schema is outside the compiled subset; validate the JSON instead.")).Validate(value);

    /// <summary>
    /// As <see cref="ValidateDecoded"/>, for a record that was valid before a privacy rewrite changed the values at
    /// <paramref name="changedPaths"/>: only those are checked again.
    /// </summary>
    public IReadOnlyList<string>? ValidateChanged(object? value, IReadOnlyList<string[]> changedPaths) =>
        (_compiled ?? throw new InvalidOperationException("This schema is outside the compiled subset; validate the JSON instead.")).ValidateChanged(value, changedPaths);

    /// <summary>Validates one record; an empty list means valid, else one message per failed keyword ("/age: minimum: ...").</summary>
    public IReadOnlyList<string> Validate(JsonElement instance)
    {
        try
        {
            EvaluationBudget.Start();
            BoundedRegex.StartRecord();
            if (_schema.Evaluate(instance, _flag).IsValid)
            {
                return [];
            }

            // The pass that lists the errors starts a fresh step budget (its output costs more steps) but not a fresh pattern
            // allowance: the record's matches in both passes share it, or a record just under it would cost twice the bound.
            EvaluationBudget.Start();
            return Messages(_schema.Evaluate(instance, _list));
        }
        catch (EvaluationBudget.ExceededException exceeded)
        {
            return [exceeded.Message];
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // The gate fails closed: a $ref the library resolves only while evaluating, or a library fault
            // on an odd value (8.0.5 throws FormatException checking some formats), rejects the record
            // with the reason instead of failing the produce request.
            return [$"(schema): the validator failed on this record: {ex.GetType().Name}: {ex.Message}"];
        }
        finally
        {
            EvaluationBudget.Stop();
            BoundedRegex.EndRecord();
        }
    }

    private List<string> Messages(EvaluationResults results)
    {
        var messages = new List<string>();
        var skipped = 0;
        Add(results);
        foreach (var detail in results.Details ?? [])
        {
            Add(detail);
        }

        if (skipped > 0)
        {
            messages.Add($"... and {skipped} more errors");
        }
        else if (messages.Count == 0)
        {
            // A failure whose keyword gave no message (for example a false schema nested in an applicator).
            messages.Add("(root): the instance does not match the schema");
        }

        return messages;

        void Add(EvaluationResults node)
        {
            if (node.IsValid || node.Errors is null)
            {
                return;
            }

            foreach (var (keyword, error) in node.Errors)
            {
                if (messages.Count >= _maxErrors)
                {
                    skipped++;
                    continue;
                }

                var location = node.InstanceLocation.ToString();
                messages.Add($"{(location.Length == 0 ? "(root)" : location)}: {keyword}: {error}");
            }
        }
    }
}

/// <summary>
/// Validators by schema id, each tied to the parsed schema it was built from. A registry id names one schema
/// while it lives, but IMPORT mode can register another schema under an id that was hard-deleted; the registry
/// then hands out a different parsed schema, and the validator is rebuilt. Concurrent first uses of an id build
/// it only once. At most <paramref name="capacity"/> are kept, holding at most <paramref name="regexCapacity"/> regexes
/// together (the least recently used go first): a validator's patterns can take megabytes, and whoever can register
/// schemas and produce can make new ones.
/// </summary>
public sealed class JsonPayloadValidatorCache(JsonPayloadValidatorOptions? options = null, int capacity = JsonPayloadValidatorCache.DefaultCapacity, int regexCapacity = JsonPayloadValidatorCache.DefaultRegexCapacity)
{
    public const int DefaultCapacity = 1000;

    /// <summary>Regexes kept at most, about 0.4-2 GB at 0.1-0.5 MB each: 15 schemas of the registry's 256 patterns, or 400 of 10.</summary>
    public const int DefaultRegexCapacity = 4000;

    private sealed class Entry(IParsedSchema schema, Lazy<JsonPayloadValidator> validator)
    {
        public IParsedSchema Schema { get; } = schema;

        public Lazy<JsonPayloadValidator> Validator { get; } = validator;

        /// <summary>When it was last asked for (<see cref="System.Diagnostics.Stopwatch.GetTimestamp"/>).</summary>
        public long LastUsed;
    }

    private readonly ConcurrentDictionary<int, Entry> _validators = new();
    private readonly JsonPayloadValidatorOptions _options = options ?? JsonPayloadValidatorOptions.Default;

    public int Count => _validators.Count;

    /// <summary>The validator for <paramref name="schemaId"/>, built from <paramref name="schema"/> on first use.</summary>
    public JsonPayloadValidator GetOrCreate(int schemaId, IParsedSchema schema)
    {
        ArgumentNullException.ThrowIfNull(schema);
        bool added = false;
        if (!_validators.TryGetValue(schemaId, out Entry? entry) || !ReferenceEquals(entry.Schema, schema))
        {
            entry = _validators.AddOrUpdate(
                schemaId,
                static (_, state) => state.Cache.NewEntry(state.Schema),
                static (_, existing, state) => ReferenceEquals(existing.Schema, state.Schema) ? existing : state.Cache.NewEntry(state.Schema),
                (Cache: this, Schema: schema));
            added = true;
        }

        JsonPayloadValidator validator;
        try
        {
            validator = entry.Validator.Value;
            // Once built: a build can take seconds, and an entry is created used (NewEntry), so it is not the one evicted meanwhile.
            entry.LastUsed = System.Diagnostics.Stopwatch.GetTimestamp();
        }
        catch (InvalidSchemaException)
        {
            // Do not keep the failure: the next call reports it again (and a fixed library could build it).
            _validators.TryRemove(new KeyValuePair<int, Entry>(schemaId, entry));
            throw;
        }

        if (added)
        {
            EvictOverCapacity(schemaId);
        }

        return validator;
    }

    private Entry NewEntry(IParsedSchema schema) =>
        new(schema, new Lazy<JsonPayloadValidator>(() => JsonPayloadValidator.Create(schema, _options), LazyThreadSafetyMode.ExecutionAndPublication))
        {
            LastUsed = System.Diagnostics.Stopwatch.GetTimestamp(),
        };

    /// <summary>Forgets a validator, for a schema id that was hard-deleted.</summary>
    public bool Remove(int schemaId) => _validators.TryRemove(schemaId, out _);

    /// <summary>
    /// Forgets the validators whose schema id no longer names the schema they were built from (<paramref name="current"/>
    /// answers what it names now, null when nothing: hard-deleted). Returns how many went.
    /// </summary>
    public int RemoveStale(Func<int, IParsedSchema?> current)
    {
        ArgumentNullException.ThrowIfNull(current);
        int removed = 0;
        foreach (KeyValuePair<int, Entry> pair in _validators)
        {
            if (!ReferenceEquals(current(pair.Key), pair.Value.Schema) && _validators.TryRemove(pair))
            {
                removed++;
            }
        }

        return removed;
    }

    /// <summary>The regexes the built validators hold together.</summary>
    public int RegexCount
    {
        get
        {
            int regexes = 0;
            foreach (KeyValuePair<int, Entry> pair in _validators)
            {
                regexes += RegexesOf(pair.Value);
            }

            return regexes;
        }
    }

    private static int RegexesOf(Entry entry) => entry.Validator.IsValueCreated ? entry.Validator.Value.RegexCount : 0;

    private void EvictOverCapacity(int added)
    {
        // Scans, on a miss only: the cache is small, and misses are rare once producers' schemas are in it. The validator
        // just added stays, whatever it holds: it is the one in use.
        // Counted once, then less each eviction: other threads' changes meanwhile are met at their own misses.
        int regexes = RegexCount;
        while (_validators.Count > capacity || regexes > regexCapacity)
        {
            KeyValuePair<int, Entry>? oldest = null;
            foreach (KeyValuePair<int, Entry> pair in _validators)
            {
                if (pair.Key != added && (oldest is null || pair.Value.LastUsed < oldest.Value.Value.LastUsed))
                {
                    oldest = pair;
                }
            }

            if (oldest is not { } evicted || !_validators.TryRemove(evicted))
            {
                return; // another thread evicted meanwhile, or nothing but the new one is left
            }

            regexes -= RegexesOf(evicted.Value);
        }
    }
}

/// <summary>
/// The library's dialects with <c>pattern</c> and <c>patternProperties</c> replaced by handlers whose regexes
/// cannot backtrack catastrophically: the library itself compiles patterns as backtracking ECMAScript
/// regexes with no match timeout. Registered under the standard dialect ids so <c>$schema</c> picks them.
/// </summary>
internal static class BoundedDialects
{
    public static readonly Dialect Draft6 = Bounded(Dialect.Draft06);
    public static readonly Dialect Draft7 = Bounded(Dialect.Draft07);
    public static readonly Dialect Draft201909 = Bounded(Dialect.Draft201909);
    public static readonly Dialect Draft202012 = Bounded(Dialect.Draft202012);

    public static readonly DialectRegistry Registry = CreateRegistry();

    public static Dialect For(JsonValidationDraft draft) => draft switch
    {
        JsonValidationDraft.Draft201909 => Draft201909,
        JsonValidationDraft.Draft202012 => Draft202012,
        _ => Draft7,
    };

    private static Dialect Bounded(Dialect dialect)
    {
        List<IKeywordHandler> replaced = [new BoundedPatternKeyword(), new BoundedPatternPropertiesKeyword(), new CodePointMinLengthKeyword(), new CodePointMaxLengthKeyword(), new BudgetedRefKeyword(), new BudgetedAllOfKeyword(), new BudgetedAnyOfKeyword(), new BudgetedOneOfKeyword()];
        if (dialect.Id == Dialect.Draft201909.Id)
        {
            replaced.Add(new BudgetedRecursiveRefKeyword());
        }
        else if (dialect.Id == Dialect.Draft202012.Id)
        {
            replaced.Add(new BudgetedDynamicRefKeyword());
        }

        return dialect.With(replaced, dialect.Id, null, null);
    }

    private static DialectRegistry CreateRegistry()
    {
        var registry = new DialectRegistry();
        registry.Register(Draft6);
        registry.Register(Draft7);
        registry.Register(Draft201909);
        registry.Register(Draft202012);
        return registry;
    }
}

/// <summary>
/// A string's length as JSON Schema counts it (RFC 8259 characters): code points, not UTF-16 units, and not the grapheme
/// clusters the library counts (<c>"e\u0301"</c> is two, which the library took for one, so <c>maxLength: 1</c> passed it).
/// </summary>
internal static class CodePointLength
{
    /// <summary>A length keyword's verdict on a string instance; null for other instances (the library's handler judges them).</summary>
    public static KeywordEvaluation? Evaluate(string keyword, KeywordData data, EvaluationContext context, bool atLeast)
    {
        if (context.Instance.ValueKind != JsonValueKind.String)
        {
            return null;
        }

        long bound = Convert.ToInt64(data.Value, System.Globalization.CultureInfo.InvariantCulture);
        long length = TextLength.CodePoints(context.Instance.GetString()!);
        return atLeast
            ? (length >= bound ? new KeywordEvaluation { Keyword = keyword, IsValid = true } : new KeywordEvaluation { Keyword = keyword, IsValid = false, Error = $"Value should be at least {bound} characters" })
            : (length <= bound ? new KeywordEvaluation { Keyword = keyword, IsValid = true } : new KeywordEvaluation { Keyword = keyword, IsValid = false, Error = $"Value should be at most {bound} characters" });
    }
}

/// <summary><c>minLength</c> counting code points (see <see cref="CodePointLength"/>).</summary>
internal sealed class CodePointMinLengthKeyword : MinLengthKeyword
{
    public override KeywordEvaluation Evaluate(KeywordData keyword, EvaluationContext context) =>
        CodePointLength.Evaluate(Name, keyword, context, atLeast: true) ?? base.Evaluate(keyword, context);
}

/// <summary><c>maxLength</c> counting code points (see <see cref="CodePointLength"/>).</summary>
internal sealed class CodePointMaxLengthKeyword : MaxLengthKeyword
{
    public override KeywordEvaluation Evaluate(KeywordData keyword, EvaluationContext context) =>
        CodePointLength.Evaluate(Name, keyword, context, atLeast: false) ?? base.Evaluate(keyword, context);
}

/// <summary>Builds schema regexes that run in time linear in the input where .NET can, and bounded by a timeout otherwise.</summary>
internal static class BoundedRegex
{
    /// <summary>Longest a backtracking match may run (only patterns with backreferences or lookarounds backtrack).</summary>
    public static readonly TimeSpan FallbackTimeout = TimeSpan.FromMilliseconds(100);

    /// <summary>The regexes of the validator being built on this thread, by pattern: a pattern repeated in a schema is built once.</summary>
    [ThreadStatic]
    private static Dictionary<string, Regex>? _building;

    /// <summary>Shares each pattern's regex among the validators built until <see cref="EndValidator"/>.</summary>
    public static void BeginValidator() => _building = new Dictionary<string, Regex>(StringComparer.Ordinal);

    public static void EndValidator() => _building = null;

    /// <summary>The distinct regexes the validator being built on this thread holds so far.</summary>
    public static int BuildingCount => _building?.Count ?? 0;

    /// <summary>Whether a validator is being built on this thread (its patterns' regexes are shared).</summary>
    public static bool SharesRegexes => _building is not null;

    public static Regex Create(string pattern)
    {
        if (_building is { } building)
        {
            if (!building.TryGetValue(pattern, out Regex? regex))
            {
                regex = Build(pattern);
                building.Add(pattern, regex);
            }

            return regex;
        }

        return Build(pattern);
    }

    /// <summary>Regexes built on this thread so far (what the sharing saves shows here).</summary>
    [ThreadStatic]
    internal static int BuiltOnThisThread;

    private static Regex Build(string pattern)
    {
        BuiltOnThisThread++;
        try
        {
            // The non-backtracking engine matches in linear time; it lacks backreferences, lookarounds and atomic groups.
            var linear = new Regex(pattern, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant);
            PatternSizes.Add(linear, new StrongBox<long>(SizeOf(pattern)));
            return linear;
        }
        catch (NotSupportedException)
        {
            return Fallback(pattern);
        }
        catch (ArgumentException ex)
        {
            // The ECMAScript flavour accepts a few constructs (for example '\c') the default flavour rejects.
            try
            {
                return Fallback(pattern);
            }
            catch (ArgumentException)
            {
                throw new JsonSchemaException($"'{pattern}' is not a valid regular expression: {ex.Message}", ex);
            }
        }
    }

    private static Regex Fallback(string pattern) => new(pattern, RegexOptions.ECMAScript | RegexOptions.CultureInvariant, FallbackTimeout);

    /// <summary>
    /// Most CPU time (see <see cref="ThreadCpuClock"/>) the backtracking matches of one record may take together. Each match
    /// is bounded by <see cref="FallbackTimeout"/>, but a record of many strings or property names that each take just under
    /// it held a core for seconds (a review: 19.5 s for one record of 20,000 property names).
    /// </summary>
    public static readonly TimeSpan RecordAllowance = FallbackTimeout;

    private static readonly long RecordAllowanceNanoseconds = (long)(RecordAllowance.TotalMilliseconds * 1_000_000);

    [ThreadStatic]
    private static long _recordNanoseconds;

    [ThreadStatic]
    private static bool _recordActive;

    /// <summary>
    /// Starts a record's allowance; every validation pass over a record calls it first and <see cref="EndRecord"/> after.
    /// Outside a pass nothing is charged: a match there (apply's masking check) must not pay for the last record's.
    /// </summary>
    public static void StartRecord()
    {
        _recordNanoseconds = 0;
        _recordWork = 0;
        _recordActive = true;
    }

    public static void EndRecord() => _recordActive = false;

    /// <summary>
    /// Most work (<see cref="Rules.RuleRegex.MatchWork"/>) the linear-time matches of one record may take together: linear
    /// in the input, but a pattern with large counted repeats costs microseconds a character (a review: 4 s for one record of
    /// 950 KB against <c>[ab]*a[ab]{1000}c</c>). About half a second of such a pattern on the development VM, or 3 MB of text
    /// against small patterns.
    /// </summary>
    public const long MaxRecordWork = 200_000;

    [ThreadStatic]
    private static long _recordWork;

    /// <summary>The size of each linear-time regex's pattern (<see cref="Rules.RuleRegex.ExpandedSize"/>), for the library's keywords.</summary>
    private static readonly ConditionalWeakTable<Regex, StrongBox<long>> PatternSizes = new();

    /// <summary>The size a match against <paramref name="regex"/> is charged by (1 for a regex this class did not build).</summary>
    public static long SizeOf(Regex regex) => PatternSizes.TryGetValue(regex, out StrongBox<long>? size) ? size.Value : 1;

    /// <summary>The size of a pattern's automaton, for <see cref="Rules.RuleRegex.MatchWork"/>.</summary>
    public static long SizeOf(string pattern) => Rules.RuleRegex.ExpandedSize(pattern);

    /// <summary>
    /// Charges a linear-time match of <paramref name="textLength"/> characters to the record's work; past
    /// <see cref="MaxRecordWork"/>, the match counts as timed out.
    /// </summary>
    public static void ChargeWork(Regex regex, long patternSize, int textLength)
    {
        if (_recordActive && (_recordWork += Rules.RuleRegex.MatchWork(textLength, patternSize)) > MaxRecordWork)
        {
            throw new RecordWorkExceededException(regex.ToString());
        }
    }

    /// <summary>Whether <paramref name="input"/> matches; the match is charged to the record's allowance (time) or work (linear-time engine).</summary>
    public static bool IsMatch(Regex regex, long patternSize, string input)
    {
        if (!Backtracks(regex))
        {
            ChargeWork(regex, patternSize, input.Length);
            return regex.IsMatch(input);
        }

        long started = ThreadCpuClock.Now();
        bool matched = regex.IsMatch(input);
        ChargeSince(started, regex);
        return matched;
    }

    /// <summary>Only fallback patterns have a timeout; the non-backtracking engine's time is linear in the input.</summary>
    public static bool Backtracks(Regex regex) => regex.MatchTimeout != Regex.InfiniteMatchTimeout;

    /// <summary>Charges the time since <paramref name="started"/> (<see cref="ThreadCpuClock.Now"/>) to the record's allowance; past it, the match counts as timed out.</summary>
    public static void ChargeSince(long started, Regex regex)
    {
        if (_recordActive && (_recordNanoseconds += ThreadCpuClock.Now() - started) > RecordAllowanceNanoseconds)
        {
            throw new RecordAllowanceExceededException(regex.ToString());
        }
    }

    public static string TimedOut(RegexMatchTimeoutException timedOut) => timedOut switch
    {
        RecordAllowanceExceededException => $"matching the pattern '{timedOut.Pattern}' and this record's other patterns that backtrack took longer than {RecordAllowance.TotalMilliseconds} ms in all, so the record is rejected",
        RecordWorkExceededException => $"matching the pattern '{timedOut.Pattern}' and this record's other patterns takes more than {MaxRecordWork:N0} units of work in all (a unit is 16 characters against a small pattern; counted repeats multiply it), so the record is rejected",
        _ => $"matching the pattern '{timedOut.Pattern}' took longer than {FallbackTimeout.TotalMilliseconds} ms, so the value is rejected",
    };

    /// <summary>A record's backtracking matches together ran past <see cref="RecordAllowance"/>.</summary>
    private sealed class RecordAllowanceExceededException(string pattern) : RegexMatchTimeoutException(string.Empty, pattern, RecordAllowance);

    /// <summary>A record's linear-time matches together ran past <see cref="MaxRecordWork"/>.</summary>
    private sealed class RecordWorkExceededException(string pattern) : RegexMatchTimeoutException(string.Empty, pattern, RecordAllowance);
}

/// <summary><c>pattern</c> with a bounded regex; a timed-out match fails the keyword.</summary>
internal sealed class BoundedPatternKeyword : PatternKeyword
{
    public override object? ValidateKeywordValue(JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.String)
        {
            // The base class gives the library's own message for a wrong value.
            return base.ValidateKeywordValue(value);
        }

        return BoundedRegex.Create(value.GetString()!);
    }

    public override KeywordEvaluation Evaluate(KeywordData keyword, EvaluationContext context)
    {
        try
        {
            if (keyword.Value is Regex linear && !BoundedRegex.Backtracks(linear) && context.Instance.ValueKind == JsonValueKind.String)
            {
                BoundedRegex.ChargeWork(linear, BoundedRegex.SizeOf(linear), context.Instance.GetString()!.Length);
            }
            else if (keyword.Value is Regex regex && BoundedRegex.Backtracks(regex))
            {
                // The library's evaluation of this keyword is the one match.
                long started = ThreadCpuClock.Now();
                KeywordEvaluation evaluation = base.Evaluate(keyword, context);
                BoundedRegex.ChargeSince(started, regex);
                return evaluation;
            }

            return base.Evaluate(keyword, context);
        }
        catch (RegexMatchTimeoutException ex)
        {
            EvaluationBudget.PatternTimedOut(ex);
            return new KeywordEvaluation { Keyword = Name, IsValid = false, Error = BoundedRegex.TimedOut(ex) };
        }
    }
}

/// <summary><c>patternProperties</c> with bounded regexes; a timed-out match fails the keyword.</summary>
internal sealed class BoundedPatternPropertiesKeyword : PatternPropertiesKeyword
{
    public override object? ValidateKeywordValue(JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            return base.ValidateKeywordValue(value);
        }

        // The same shape the library's handler produces, so its evaluation code runs unchanged.
        var regexes = new Dictionary<string, Regex>(StringComparer.Ordinal);
        foreach (var property in value.EnumerateObject())
        {
            if (property.Value.ValueKind is not (JsonValueKind.Object or JsonValueKind.True or JsonValueKind.False))
            {
                throw new JsonSchemaException($"'{Name}' values must be schemas; '{property.Name}' is {property.Value.ValueKind}");
            }

            regexes[property.Name] = BoundedRegex.Create(property.Name);
        }

        return regexes;
    }

    public override KeywordEvaluation Evaluate(KeywordData keyword, EvaluationContext context)
    {
        // Every property is matched against every pattern: a review's schema of 3,000 patterns held a core for 7-13 s on
        // one record of 50,000 properties. Charged as references and branches are, a step per MatchesPerStep matches.
        if (context.Instance.ValueKind == JsonValueKind.Object && keyword.Value is Dictionary<string, Regex> regexes)
        {
            long matches = (long)context.Instance.GetPropertyCount() * regexes.Count;
            EvaluationBudget.Charge((int)Math.Min(matches / MatchesPerStep, int.MaxValue));
        }

        try
        {
            if (context.Instance.ValueKind == JsonValueKind.Object && keyword.Value is Dictionary<string, Regex> patterns)
            {
                ChargePatternMatches(context.Instance, patterns);
            }

            return base.Evaluate(keyword, context);
        }
        catch (RegexMatchTimeoutException ex)
        {
            EvaluationBudget.PatternTimedOut(ex);
            return new KeywordEvaluation { Keyword = Name, IsValid = false, Error = BoundedRegex.TimedOut(ex) };
        }
    }

    /// <summary>
    /// The library matches every name against every pattern out of reach of the record's allowance and work, so they are
    /// charged here first: backtracking patterns are matched (timed), the library's own matches then repeating work that fit
    /// in the allowance; linear-time ones are charged their work without matching.
    /// </summary>
    private static void ChargePatternMatches(JsonElement instance, Dictionary<string, Regex> patterns)
    {
        foreach (Regex regex in patterns.Values)
        {
            long size = BoundedRegex.SizeOf(regex);
            foreach (JsonProperty property in instance.EnumerateObject())
            {
                if (BoundedRegex.Backtracks(regex))
                {
                    BoundedRegex.IsMatch(regex, size, property.Name);
                }
                else
                {
                    // The library's own match follows; only its work is charged here.
                    BoundedRegex.ChargeWork(regex, size, property.Name.Length);
                }
            }
        }
    }

    /// <summary>Pattern matches per budget step: a match of a property name costs a small part of a reference's work.</summary>
    public const int MatchesPerStep = 16;
}

/// <summary>
/// Bounds one evaluation of a record by the library. Nested <c>oneOf</c>s of <c>$ref</c>s to shared definitions (or a
/// recursive schema applying itself twice per level) make the work exponential in the schema's size or the record's depth:
/// a one-byte record against a 2 KB schema held a core for minutes and ran the broker out of memory. Every keyword that can
/// multiply the work (a reference, or a combinator per branch) charges this per-thread budget, which
/// <see cref="JsonPayloadValidator.Validate"/> sets before each pass; past it, the record is rejected.
/// </summary>
internal sealed class EvaluationBudget : IStepLimit
{
    /// <summary>Most references and combinator branches one pass over one record applies.</summary>
    public const int MaxStepsPerPass = 100_000;

    public static int MaxSteps => MaxStepsPerPass;

    public static void Start() => ThreadStepBudget<EvaluationBudget>.Start();

    public static void Stop() => ThreadStepBudget<EvaluationBudget>.Stop();

    public static void Charge(int steps)
    {
        if (!ThreadStepBudget<EvaluationBudget>.TryCharge(steps))
        {
            throw new ExceededException($"(schema): validating this record against its schema takes more than {MaxStepsPerPass} applications of $ref, allOf, anyOf or oneOf (or {BoundedPatternPropertiesKeyword.MatchesPerStep} times as many patternProperties matches), so it is rejected");
        }
    }

    /// <summary>
    /// Ends the evaluation when a backtracking pattern's match ran out of time: a record of many strings would otherwise pay
    /// the timeout for each. Outside a budgeted evaluation, the keyword just fails.
    /// </summary>
    public static void PatternTimedOut(RegexMatchTimeoutException timedOut)
    {
        if (ThreadStepBudget<EvaluationBudget>.Active)
        {
            throw new ExceededException($"(schema): pattern: {BoundedRegex.TimedOut(timedOut)}");
        }
    }

    public sealed class ExceededException(string message) : Exception(message);
}

/// <summary><c>$ref</c>, charging <see cref="EvaluationBudget"/>.</summary>
internal sealed class BudgetedRefKeyword : RefKeyword
{
    public override KeywordEvaluation Evaluate(KeywordData keyword, EvaluationContext context)
    {
        EvaluationBudget.Charge(1);
        return base.Evaluate(keyword, context);
    }
}

/// <summary>Draft 2019-09's <c>$recursiveRef</c>, charging <see cref="EvaluationBudget"/>.</summary>
internal sealed class BudgetedRecursiveRefKeyword : global::Json.Schema.Keywords.Draft201909.RecursiveRefKeyword
{
    public override KeywordEvaluation Evaluate(KeywordData keyword, EvaluationContext context)
    {
        EvaluationBudget.Charge(1);
        return base.Evaluate(keyword, context);
    }
}

/// <summary>Draft 2020-12's <c>$dynamicRef</c>, charging <see cref="EvaluationBudget"/>.</summary>
internal sealed class BudgetedDynamicRefKeyword : global::Json.Schema.Keywords.Draft202012.DynamicRefKeyword
{
    public override KeywordEvaluation Evaluate(KeywordData keyword, EvaluationContext context)
    {
        EvaluationBudget.Charge(1);
        return base.Evaluate(keyword, context);
    }
}

/// <summary><c>allOf</c>, charging <see cref="EvaluationBudget"/> a step per branch.</summary>
internal sealed class BudgetedAllOfKeyword : AllOfKeyword
{
    public override KeywordEvaluation Evaluate(KeywordData keyword, EvaluationContext context)
    {
        EvaluationBudget.Charge(keyword.Subschemas.Length);
        return base.Evaluate(keyword, context);
    }
}

/// <summary><c>anyOf</c>, charging <see cref="EvaluationBudget"/> a step per branch.</summary>
internal sealed class BudgetedAnyOfKeyword : AnyOfKeyword
{
    public override KeywordEvaluation Evaluate(KeywordData keyword, EvaluationContext context)
    {
        EvaluationBudget.Charge(keyword.Subschemas.Length);
        return base.Evaluate(keyword, context);
    }
}

/// <summary><c>oneOf</c>, charging <see cref="EvaluationBudget"/> a step per branch.</summary>
internal sealed class BudgetedOneOfKeyword : OneOfKeyword
{
    public override KeywordEvaluation Evaluate(KeywordData keyword, EvaluationContext context)
    {
        EvaluationBudget.Charge(keyword.Subschemas.Length);
        return base.Evaluate(keyword, context);
    }
}
