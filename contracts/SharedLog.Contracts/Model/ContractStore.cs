using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace SharedLog.Contracts.Model;

/// <summary>One stored revision of a contract: every apply, rollback and delete is kept.</summary>
/// <param name="Audited">
/// False in a change stored by a build that marks its audit record written (with a separate entry, see
/// <see cref="ContractStore"/>); null in revisions stored before, taken as audited.
/// </param>
/// <param name="PriorLevels">
/// Per registry subject this version binds (<see cref="ContractRegistrySync.NamedSubjects"/>), the compatibility level the subject
/// had before the contract first bound it: a level's name, or null when it followed the registry's global level. A subject
/// the contract stops binding (a delete, or a version naming other subjects) gets it back.
/// </param>
public sealed record ContractRevision(string Name, int Version, string Action, string? Text, string Actor, DateTimeOffset At, int? FromVersion, bool? Audited = null, IReadOnlyDictionary<string, string?>? PriorLevels = null);

/// <summary>A registry subject and a compatibility level's name (null: the subject follows the registry's global level).</summary>
public sealed record SubjectLevel(string Subject, string? Level);

/// <summary>
/// What a change sets in the registry, run under the store's writer after the change is stored, so such settings follow the
/// changes in their order: <paramref name="SubjectLevel"/> reads a subject's own level (a name, or null) for the record of
/// what to give back later; <paramref name="Released"/> gives subjects the contract stops binding their earlier level back;
/// <paramref name="InForce"/> sets the levels of the definition now in force.
/// </summary>
/// <param name="Writable">Whether the registry lets a subject's level change (not read-only, by its own mode or the registry's).</param>
public sealed record RegistryLink(Func<string, string?> SubjectLevel, Func<string, bool> Writable, Func<IReadOnlyList<SubjectLevel>, Task> Released, Func<ContractDefinition, Task> InForce);

/// <summary>The contract in force for a topic, with the revision that set it.</summary>
public sealed record ActiveContract(ContractDefinition Definition, int Version);

/// <summary>The outcome of an apply, rollback or delete (or of a dry run: whether and how an apply would change it).</summary>
public sealed record ContractChange(string Name, int Version, bool Changed, IReadOnlyList<string> Diff)
{
    /// <summary>A dry run's: the registry levels the apply would set or give back ("subject: LEVEL", "subject: global level").</summary>
    public IReadOnlyList<string>? RegistryPreview { get; init; }
}

/// <summary>
/// Contracts by name, versioned, made durable in a journal (the <c>_contracts</c> topic) and replayed
/// on start; every change, and every dry run's diff, is also written to the audit journal
/// (<c>_contract_audit</c>) with who, when and the diff. Topic lookups (once per produced batch) read an immutable snapshot without locks.
/// <para>Once a change's audit record is written, a mark is stored in the journal under its own key (the revision's key
/// plus <c>"audited":true</c>) with the JSON value <c>null</c>: a start that finds a change without its mark writes the
/// record again. The mark's key keeps it apart from the revision under compaction, and its value is what earlier builds,
/// which read every value as a revision, skip.</para>
/// </summary>
public sealed partial class ContractStore(IJournal journal, IJournal audit, ILogger<ContractStore> logger) : IDisposable
{
    public const string ActionApply = "apply";
    public const string ActionRollback = "rollback";
    public const string ActionDelete = "delete";

    /// <summary>The action of a dry run's audit record: a diff against the version in force, which changed nothing.</summary>
    public const string ActionDiff = "diff";

    /// <summary>The <c>type</c> of an audit record of a change.</summary>
    public const string TypeChange = "contract-change";

    /// <summary>The <c>type</c> of an audit record of a dry run's diff.</summary>
    public const string TypeDiff = "contract-diff";

    private static readonly JsonSerializerOptions Json = ReadableJson.Web();

    private readonly SemaphoreSlim _writer = new(1, 1);
    private int _changesWaiting;

    /// <summary>Audit records not yet in the audit topic (it refused them, or they were lost with a broker), oldest first; under <see cref="_writer"/>.</summary>
    private readonly List<PendingAudit> _unwrittenAudit = [];

    /// <summary>At most this many audit records wait for the audit topic; past it the oldest are dropped (and logged).</summary>
    private const int MaxUnwrittenAudit = 10_000;

    /// <summary>Audit records written in one batch when several wait.</summary>
    private const int AuditBatchRecords = 16;

    /// <summary>
    /// Bytes of waiting audit records written in one batch, or the journal's own limit if lower (one record may be more): a
    /// record holds its diff as escaped JSON, several times a contract file's 256 KiB at worst, and a batch past the WAL's
    /// entry size would fail at every retry.
    /// </summary>
    private const int AuditBatchBytes = 1 << 20;
    private readonly Lock _sync = new();
    private readonly Dictionary<string, List<ContractRevision>> _history = new(StringComparer.Ordinal);
    private volatile Snapshot _snapshot = new([], new Dictionary<string, ActiveContract>(StringComparer.Ordinal), []);

    /// <summary>
    /// The contracts in force. Which pattern governs a topic is remembered in the snapshot it was worked out from, so
    /// a lookup racing a change can never leave an answer from the old contracts behind for the new ones.
    /// </summary>
    private sealed record Snapshot(IReadOnlyList<ContractRevision> Current, IReadOnlyDictionary<string, ActiveContract> Exact, IReadOnlyList<ActiveContract> Patterns)
    {
        public TopicAnswers<ActiveContract?> ByTopic { get; } = new();

        /// <summary>The contract of each revision of <see cref="Current"/>, in its order.</summary>
        public List<ActiveContract> CurrentContracts { get; init; } = [];

        /// <summary>Whether a contract of this snapshot names the topic as its quarantine topic, per topic asked about.</summary>
        public TopicAnswers<bool> QuarantineTopics { get; } = new();

        /// <summary>
        /// Versions of pattern contracts ever applied with <c>onFailure: quarantine</c>, one per pattern and quarantine template
        /// (see <see cref="QuarantinedIntoBefore"/>).
        /// </summary>
        public IReadOnlyList<ContractDefinition> EverQuarantiningPatterns { get; init; } = [];

        /// <summary>The same for contracts of one topic, found by name: the quarantine topics they named.</summary>
        public HashSet<string> EverQuarantinedByName { get; init; } = new(StringComparer.Ordinal);

        /// <summary>Whether a version that quarantined named the topic as its quarantine topic, per topic asked about.</summary>
        public TopicAnswers<bool> FormerQuarantineTopics { get; } = new();
    }

    // Revisions already read for the two below, so each is parsed once however often the contracts change.
    private readonly HashSet<(string Name, int Version)> _revisionsSeenForQuarantine = [];
    private readonly Dictionary<(string Topic, string Template), ContractDefinition> _everQuarantiningPatterns = [];
    private readonly HashSet<string> _everQuarantinedByName = new(StringComparer.Ordinal);

    /// <summary>
    /// Answers worked out per topic name and remembered, for at most <see cref="MaxRememberedTopics"/> names: more topics
    /// than a broker serves (Broker:MaxPartitions is 100,000 by default), so every real topic is remembered, while names
    /// clients only ask about (CreateTopics with validate_only, say) cannot grow it without bound between two contract
    /// changes. Past the bound, answers are worked out each time.
    /// </summary>
    private sealed class TopicAnswers<TValue>
    {
        private readonly ConcurrentDictionary<string, TValue> _answers = new(StringComparer.Ordinal);
        private int _count;

        public int Count => Volatile.Read(ref _count);

        public TValue Get<TState>(string topic, Func<string, TState, TValue> answer, TState state)
        {
            if (_answers.TryGetValue(topic, out TValue? known))
            {
                return known;
            }

            // Two callers may both work an answer out: the snapshot's contracts give both the same.
            TValue value = answer(topic, state);
            if (Count < MaxRememberedTopics && _answers.TryAdd(topic, value))
            {
                Interlocked.Increment(ref _count);
            }

            return value;
        }
    }

    private sealed class RevisionKey
    {
        public string Name { get; set; } = "";

        public int Version { get; set; }

        /// <summary>True in the key of the mark that the change's audit record is written; absent in a revision's key.</summary>
        [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)]
        public bool Audited { get; set; }
    }

    /// <summary>The value of an audited mark: JSON null, which earlier builds read as no revision.</summary>
    private static readonly byte[] AuditedMarkValue = "null"u8.ToArray();

    /// <summary>Bumped on every change; the gate keys its caches on it.</summary>
    public long Generation { get; private set; }

    public void Dispose() => _writer.Dispose();

    public async Task LoadAsync(CancellationToken cancellationToken)
    {
        // Changes stored before their audit record was known to be written, in the order they were made: a broker
        // stopped between the two (or while the audit topic refused records) left them without one.
        var unaudited = new List<ContractRevision>();
        await foreach (JournalEntry entry in journal.ReadAllAsync(cancellationToken))
        {
            if (entry.Value is null)
            {
                continue;
            }

            if (entry.Value.AsSpan().SequenceEqual(AuditedMarkValue))
            {
                if (JsonSerializer.Deserialize<RevisionKey>(entry.Key, Json) is { Audited: true } mark)
                {
                    unaudited.RemoveAll(r => r.Name == mark.Name && r.Version == mark.Version);
                }

                continue;
            }

            if (JsonSerializer.Deserialize<ContractRevision>(entry.Value, Json) is { } revision)
            {
                if (revision.Audited == false)
                {
                    unaudited.Add(revision);
                }

                lock (_sync)
                {
                    Remember(revision);
                }
            }
        }

        // Worked out once from every contract's last revision, not after each stored one (a parse of every contract each time).
        lock (_sync)
        {
            Rebuild();
        }

        LogLoaded(_snapshot.Current.Count);
        if (unaudited.Count == 0)
        {
            return;
        }

        await _writer.WaitAsync(cancellationToken);
        try
        {
            foreach (ContractRevision change in unaudited)
            {
                QueueAudit(ChangeRecord(change, Diff(TryParseRevision(PreviousRevision(change)), TryParseRevision(change))), change);
            }

            LogAuditRecovered(unaudited.Count);
            await WriteUnwrittenAuditAsync(null, 0);
        }
        finally
        {
            _writer.Release();
        }
    }

    /// <summary>
    /// The contract governing a topic: an exact topic match first, else the most specific matching pattern (most
    /// characters other than '*'; then by contract name). Internal topics (leading '_') match no pattern.
    /// </summary>
    public ActiveContract? ForTopic(string topic) => ForTopic(_snapshot, topic);

    private static ActiveContract? ForTopic(Snapshot snapshot, string topic)
    {
        if (snapshot.Exact.TryGetValue(topic, out ActiveContract? exact))
        {
            return exact;
        }

        if (snapshot.Patterns.Count == 0 || topic.StartsWith('_'))
        {
            return null;
        }

        return snapshot.ByTopic.Get(topic, static (name, patterns) => patterns.FirstOrDefault(p => p.Definition.Governs(name)), snapshot.Patterns);
    }

    /// <summary>Topic names a snapshot remembers answers for, at most (see <see cref="TopicAnswers{TValue}"/>).</summary>
    internal const int MaxRememberedTopics = 200_000;

    /// <summary>How many per-topic answers the contracts in force remember (all three caches).</summary>
    internal int RememberedTopics => _snapshot.ByTopic.Count + _snapshot.QuarantineTopics.Count + _snapshot.FormerQuarantineTopics.Count;


    /// <summary>
    /// The retention a topic has when it does not set <c>retention.ms</c> itself: its contract's (class default or the
    /// file's <c>retention</c>), or, for a quarantine topic, the quarantine class's (at least, when another class's contract
    /// governs it; a <c>quarantine</c> contract of its own chooses). Null when no contract speaks for the topic (the broker
    /// default applies). A quarantine topic is one a contract names for a topic it governs, whatever its onFailure now (a
    /// contract moved from quarantine to reject leaves its quarantined records their 30 days), or one a version that
    /// quarantined named before (the contract since moved its quarantine topics, or was deleted).
    /// </summary>
    public long? RetentionMsFor(string topic)
    {
        if (InternalTopics.IsInternal(topic))
        {
            // A contract on "*" must not shorten what the broker keeps for itself (the audit topic keeps everything).
            return null;
        }

        Snapshot snapshot = _snapshot;
        ActiveContract? governing = ForTopic(snapshot, topic);
        if (governing?.Definition.Class == TopicClass.Quarantine)
        {
            // The quarantine topic's own contract chooses its retention.
            return governing.Definition.RetentionMs;
        }

        bool holdsQuarantined = NamedAsQuarantineCached(snapshot, topic) || snapshot.FormerQuarantineTopics.Get(topic, static (name, s) => QuarantinedIntoBefore(s, name), snapshot);
        if (governing is null)
        {
            return holdsQuarantined ? ContractParser.QuarantineRetentionMs : null;
        }

        // A topic that holds quarantined records and that another contract governs (a raw catch-all, or a pattern whose
        // quarantine topic moved elsewhere, which now matches the old one) keeps them at least the quarantine class's time.
        return holdsQuarantined ? LongerRetention(governing.Definition.RetentionMs, ContractParser.QuarantineRetentionMs) : governing.Definition.RetentionMs;
    }

    /// <summary>The longer of two <c>retention.ms</c> values, where a negative one (<c>infinite</c>) is the longest.</summary>
    private static long LongerRetention(long a, long b) => a < 0 || b < 0 ? -1 : Math.Max(a, b);

    /// <summary>
    /// Whether a version of any contract, deleted ones included, that quarantined bad records named <paramref name="topic"/>
    /// as the quarantine topic of a topic it matched: its records keep the quarantine class's retention after the contract
    /// names another quarantine topic or is deleted, or a change of the contract would shorten what was already quarantined.
    /// </summary>
    private static bool QuarantinedIntoBefore(Snapshot snapshot, string topic)
    {
        // A contract of one topic governs it whatever else is in force, so what it quarantined went to its quarantine topic.
        if (snapshot.EverQuarantinedByName.Contains(topic))
        {
            return true;
        }

        // Which topics a pattern governed depended on the other contracts of the time, which are not kept: every topic it
        // matches counts (a longer retention, never a shorter one), save those starting with "_", which no pattern matches.
        foreach (ContractDefinition former in snapshot.EverQuarantiningPatterns)
        {
            if (former.IsQuarantineName(topic, out string? source)
                && (source is null || (!source.StartsWith('_') && former.Governs(source))))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Whether a contract in force names <paramref name="topic"/> as the quarantine topic of a topic it governs, whether
    /// that source topic exists or not (deleted, its bad records still wait there for a replay).
    /// </summary>
    public bool IsQuarantineTopic(string topic) => !InternalTopics.IsInternal(topic) && NamedAsQuarantineCached(_snapshot, topic);

    // Asked per topic by every cleanup round and DescribeConfigs: the scan of the contracts is kept with the snapshot.
    private static bool NamedAsQuarantineCached(Snapshot snapshot, string topic) =>
        snapshot.QuarantineTopics.Get(topic, static (name, s) => NamedAsQuarantine(s, name), snapshot);

    /// <summary>The <c>retention.bytes</c> a topic has when it does not set one itself: its contract's, when the contract sets one; else null (and for internal topics).</summary>
    public long? RetentionBytesFor(string topic) => InternalTopics.IsInternal(topic) ? null : ForTopic(_snapshot, topic)?.Definition.RetentionBytes;

    /// <summary>Whether a contract of <paramref name="snapshot"/> names <paramref name="topic"/> as the quarantine topic of a topic it governs.</summary>
    private static bool NamedAsQuarantine(Snapshot snapshot, string topic)
    {
        foreach (ActiveContract contract in snapshot.Exact.Values.Concat(snapshot.Patterns))
        {
            if (contract.Definition.IsQuarantineName(topic, out string? source) && (source is null || ReferenceEquals(ForTopic(snapshot, source), contract)))
            {
                return true;
            }
        }

        return false;
    }

    public IReadOnlyList<ContractRevision> Current => _snapshot.Current;

    /// <summary>The revisions in force with their parsed contracts (as <see cref="Current"/>, without parsing them again).</summary>
    public IReadOnlyList<(ContractRevision Revision, ActiveContract Contract)> CurrentContracts
    {
        get
        {
            Snapshot snapshot = _snapshot;
            var pairs = new List<(ContractRevision, ActiveContract)>(snapshot.Current.Count);
            for (int i = 0; i < snapshot.Current.Count; i++)
            {
                pairs.Add((snapshot.Current[i], snapshot.CurrentContracts[i]));
            }

            return pairs;
        }
    }

    /// <summary>
    /// The contract in force that names <paramref name="subject"/> and so sets its compatibility level in the registry
    /// (<see cref="ContractRegistrySync.NamedSubjects"/>), other than the contract named <paramref name="except"/>.
    /// </summary>
    public ContractDefinition? ContractBinding(string subject, string? except = null)
    {
        Snapshot snapshot = _snapshot;
        foreach (ActiveContract contract in snapshot.Exact.Values.Concat(snapshot.Patterns))
        {
            if (contract.Definition.Name != except && ContractRegistrySync.NamedSubjects(contract.Definition).Contains(subject, StringComparer.Ordinal))
            {
                return contract.Definition;
            }
        }

        return null;
    }

    public IReadOnlyList<ContractRevision> History(string name)
    {
        lock (_sync)
        {
            return _history.TryGetValue(name, out List<ContractRevision>? revisions) ? [.. revisions] : [];
        }
    }

    /// <summary>
    /// The rule names of every version of every contract (deleted ones included): a rule name outside them can be in no
    /// quarantine copy this broker wrote.
    /// </summary>
    public HashSet<string> RuleNamesOfEveryVersion()
    {
        List<string> texts = [];
        lock (_sync)
        {
            foreach (List<ContractRevision> revisions in _history.Values)
            {
                foreach (ContractRevision revision in revisions)
                {
                    if (revision.Text is { } text)
                    {
                        texts.Add(text);
                    }
                }
            }
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (string text in texts)
        {
            try
            {
                foreach (FieldRuleDefinition rule in ContractParser.Parse(text, stored: true).Rules)
                {
                    names.Add(rule.Name);
                }
            }
            catch (ContractValidationException)
            {
                // A stored text that no longer parses names nothing that can be checked here.
            }
        }

        return names;
    }

    /// <summary>
    /// Applies a contract file (validated first, <paramref name="validate"/> adding checks such as rule
    /// compilation); unchanged text is not a new version. A dry run only computes the diff.
    /// <paramref name="registry"/>, when given, runs after the change (an unchanged apply too, not a dry run) while no
    /// other change can start, with the definition now in force: what it sets elsewhere (the registry's compatibility
    /// levels) then follows the changes in their order, and two changes at once cannot leave the first one's setting.
    /// </summary>
    public async Task<ContractChange> ApplyAsync(string text, string actor, bool dryRun, Func<ContractDefinition, IReadOnlyList<string>> validate, CancellationToken cancellationToken, RegistryLink? registry = null)
    {
        ContractDefinition definition = ContractParser.Parse(text);
        return await ChangeAsync(definition.Name, ActionApply, text, actor, null, dryRun, registry, validate, cancellationToken);
    }

    /// <summary>
    /// Makes an earlier version current again, as a new version. The old text is checked again as an apply's is
    /// (<paramref name="validate"/>): it was stored by an earlier build, whose rules may not compile in this one.
    /// <paramref name="registry"/> runs as an apply's does; a dry run answers as an apply's does.
    /// </summary>
    public async Task<ContractChange> RollbackAsync(string name, int version, string actor, Func<ContractDefinition, IReadOnlyList<string>> validate, CancellationToken cancellationToken, RegistryLink? registry = null, bool dryRun = false)
    {
        IReadOnlyList<ContractRevision> history = History(name);
        ContractRevision? found = history.FirstOrDefault(r => r.Version == version);
        if (found is { Text: null })
        {
            // A delete's version has no text to make current again; the version before it has.
            ContractRevision? previous = history.LastOrDefault(r => r.Version < version && r.Text is not null);
            string before = previous is null ? "" : $"; roll back to version {previous.Version} for the contract as it was before";
            throw new KeyNotFoundException($"Contract '{name}' version {version} is its delete, which has no contract text to roll back to{before}.");
        }

        ContractRevision target = found ?? throw new KeyNotFoundException($"Contract '{name}' has no version {version} to roll back to.");
        return await ChangeAsync(name, ActionRollback, target.Text, actor, version, dryRun, registry, validate, cancellationToken);
    }

    /// <summary>
    /// Deletes a contract; <paramref name="registry"/>, when given, gives the subjects it bound their earlier levels back. A
    /// dry run answers what the delete would change and give back, and changes nothing.
    /// </summary>
    public Task<ContractChange> DeleteAsync(string name, string actor, CancellationToken cancellationToken, RegistryLink? registry = null, bool dryRun = false) =>
        ChangeAsync(name, ActionDelete, null, actor, null, dryRun, registry, validate: null, cancellationToken);

    /// <summary>A readable diff between two contracts: "+ path: value", "- path: value", "~ path: old -> new".</summary>
    public static IReadOnlyList<string> Diff(ContractDefinition? before, ContractDefinition? after)
    {
        Dictionary<string, string> old = Flatten(before);
        Dictionary<string, string> now = Flatten(after);
        var diff = new List<string>();
        foreach ((string path, string value) in now.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            if (!old.TryGetValue(path, out string? previous))
            {
                diff.Add($"+ {path}: {value}");
            }
            else if (previous != value)
            {
                diff.Add($"~ {path}: {previous} -> {value}");
            }
        }

        diff.AddRange(old.Where(p => !now.ContainsKey(p.Key)).OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"- {p.Key}: {p.Value}"));
        return diff;
    }

    /// <summary>
    /// The levels to record with a new version (<see cref="ContractRevision.PriorLevels"/>): a subject the contract bound
    /// already keeps what was recorded when it was first bound; one it binds anew records the subject's level now. Also
    /// the subjects the change stops binding, with their recorded levels, to give back. A subject bound by a version an older
    /// build stored has no record: its level is neither recorded nor given back.
    /// </summary>
    private static (IReadOnlyDictionary<string, string?>? Prior, List<SubjectLevel> Released) PriorLevels(ContractRevision? current, ContractDefinition? before, ContractDefinition? after, RegistryLink? registry)
    {
        var boundBefore = before is null ? [] : ContractRegistrySync.NamedSubjects(before).ToHashSet(StringComparer.Ordinal);
        var boundAfter = after is null ? [] : ContractRegistrySync.NamedSubjects(after).ToHashSet(StringComparer.Ordinal);
        Dictionary<string, string?>? prior = null;
        foreach (string subject in boundAfter)
        {
            if (current?.PriorLevels is { } recorded && recorded.TryGetValue(subject, out string? kept) && boundBefore.Contains(subject))
            {
                (prior ??= new(StringComparer.Ordinal))[subject] = kept;
            }
            else if (!boundBefore.Contains(subject) && registry is not null)
            {
                (prior ??= new(StringComparer.Ordinal))[subject] = registry.SubjectLevel(subject);
            }
        }

        var released = new List<SubjectLevel>();
        foreach (string subject in boundBefore)
        {
            if (!boundAfter.Contains(subject) && current?.PriorLevels is { } recorded && recorded.TryGetValue(subject, out string? level))
            {
                released.Add(new SubjectLevel(subject, level));
            }
        }

        return (prior, released);
    }

    /// <summary>What the registry part of a change would set, as <see cref="RegistryLink.Released"/> and <see cref="RegistryLink.InForce"/> report it.</summary>
    private static List<string> LevelsAnApplySets(List<SubjectLevel> released, ContractDefinition? after, RegistryLink registry)
    {
        var levels = new List<string>();
        foreach ((string subject, string? level) in released)
        {
            if (registry.SubjectLevel(subject) != level)
            {
                levels.Add($"{subject}: {level ?? "global level"}");
            }
        }

        if (after is not null)
        {
            string inForce = Registry.RegistryNames.Name(after.Compatibility);
            foreach (string subject in ContractRegistrySync.NamedSubjects(after))
            {
                if (registry.SubjectLevel(subject) != inForce)
                {
                    levels.Add($"{subject}: {inForce}");
                }
            }
        }

        return levels;
    }

    private static List<string> ReleaseProblems(List<SubjectLevel> released, RegistryLink registry)
    {
        var problems = new List<string>();
        foreach ((string subject, string? level) in released)
        {
            if (registry.SubjectLevel(subject) != level && !registry.Writable(subject))
            {
                problems.Add($"compatibility: subject '{subject}' is read-only in the registry, so the level it had before this contract ({level ?? "the global level"}) cannot be given back; change the subject's mode first");
            }
        }

        return problems;
    }

    private ContractRevision? CurrentRevision(string name)
    {
        lock (_sync)
        {
            return _history.TryGetValue(name, out List<ContractRevision>? revisions) && revisions[^1].Action != ActionDelete ? revisions[^1] : null;
        }
    }

    /// <param name="validate">Checks of the contract in force after the change beyond its file's (rule compilation, the registry's modes): run under the writer, since what they read of the registry (a subject's mode) is what the change then relies on.</param>
    private async Task<ContractChange> ChangeAsync(string name, string action, string? text, string actor, int? fromVersion, bool dryRun, RegistryLink? registry, Func<ContractDefinition, IReadOnlyList<string>>? validate, CancellationToken cancellationToken)
    {
        await EnterWriterAsync(cancellationToken);
        try
        {
            ContractRevision? current = CurrentRevision(name);
            if (action == ActionDelete && current is null)
            {
                // Checked under the writer: two deletes at once are one delete and one "does not exist".
                throw new KeyNotFoundException($"Contract '{name}' does not exist.");
            }

            // A stored revision this build no longer takes (stored by an older, laxer build) is not in force (see
            // Rebuild); it must not block its own fix, rollback or delete either, so it diffs as absent.
            ContractDefinition? before = TryParseRevision(current);
            ContractDefinition? after = text is null ? null : ContractParser.Parse(text);
            if (after is not null && validate?.Invoke(after) is { Count: > 0 } problems)
            {
                throw new ContractValidationException(problems);
            }

            // One contract per topic, and per pattern ("payments.*" and "payments.**" are one): a second one under another
            // name would silently govern it, or not, by the order of the names (a raw test contract could lift a
            // sensitive topic's masking). A contract applied again unchanged is no change: a pair an older build stored
            // stays as it is until one of them changes (a pipeline applying every contract again must not fail on it).
            IReadOnlyList<string> diff = Diff(before, after);
            // A rollback to what is in force already is no change either (it made a version whose diff was empty).
            bool unchanged = action is ActionApply or ActionRollback && before is not null && after is not null && diff.Count == 0;
            if (after is not null && !unchanged && OtherGoverning(after, name) is { } holder)
            {
                throw new ContractValidationException([$"{(after.IsPattern ? "pattern" : "topic")} '{after.Topic}' is already governed by contract '{holder.Definition.Name}': change that contract, or delete it first."]);
            }

            // A file without a name is named after its topic: applied where a contract of that name governs another topic, it
            // would move that contract there (a review: a new topic's file took over the contract of another); a move is
            // made with the name written out.
            if (action == ActionApply && before is not null && after is { NameGiven: false } && !string.Equals(before.Topic, after.Topic, StringComparison.Ordinal))
            {
                throw new ContractValidationException([$"contract '{name}' governs {(before.IsPattern ? "pattern" : "topic")} '{before.Topic}'; this file has no name, so it is named after its topic '{after.Topic}' and would move that contract there: give it a name of its own (name: ...) for a new contract, or write name: {name} to move contract '{name}'."]);
            }

            // Quarantine copies are written unchecked: a topic that takes them must not be one whose contract promises something
            // about every record it holds (a certified topic as another topic's quarantine topic, or the reverse).
            if (!unchanged && QuarantineClash(name, after) is { } clash)
            {
                throw new ContractValidationException([clash]);
            }

            // Two different patterns of one specificity that match a topic together would leave it to the contract names
            // which governs it; so would a raw contract named to sort first lift a sensitive one's masking there.
            if (after is { IsPattern: true } && !unchanged && EquallySpecificOverlap(after, name) is ({ } rival, { } example))
            {
                throw new ContractValidationException([$"pattern '{after.Topic}' and pattern '{rival.Definition.Topic}' of contract '{rival.Definition.Name}' are equally specific and both match topics such as '{example}', where the contract names alone would decide which governs: make one pattern more specific, or change that contract."]);
            }

            // One contract per named subject too: each sets the subject's compatibility level in the registry, so a second
            // would silently replace the first's (a raw contract lowering a certified one's FULL_TRANSITIVE).
            if (after is not null)
            {
                foreach (string subject in ContractRegistrySync.NamedSubjects(after))
                {
                    if (ContractBinding(subject, except: name) is { } other)
                    {
                        throw new ContractValidationException([$"subject '{subject}' is already bound by contract '{other.Name}': change that contract, or delete it first."]);
                    }
                }
            }

            int lastVersion = History(name) is { Count: > 0 } history ? history[^1].Version : 0;
            if (dryRun)
            {
                // Answers what the apply would: refused as it would be, else its version, whether it is one and the levels
                // it would set (a pipeline that applies only what a dry run calls changed must not be told "unchanged").
                (_, List<SubjectLevel> wouldRelease) = PriorLevels(current, before, after, registry);
                if (registry is not null && ReleaseProblems(wouldRelease, registry) is { Count: > 0 } wouldFail)
                {
                    throw new ContractValidationException(wouldFail);
                }

                // A diff changes nothing, but is kept as evidence: who compared what against which version, and when.
                await WriteAuditAsync(AuditRecord(TypeDiff, name, lastVersion, ActionDiff, null, actor, DateTimeOffset.UtcNow, DiffKeptForDryRun(diff)), name, lastVersion, change: null);
                return new ContractChange(name, lastVersion + (diff.Count > 0 ? 1 : 0), Changed: diff.Count > 0, diff)
                {
                    RegistryPreview = registry is null ? null : LevelsAnApplySets(wouldRelease, after, registry),
                };
            }

            if (unchanged)
            {
                // Applying the same file again is how a failed level change is retried: a failure again says the same.
                if (registry is not null)
                {
                    try
                    {
                        await registry.InForce(after!);
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        throw new ContractRegistrySyncException(name, lastVersion, e, storedNow: false);
                    }
                }

                return new ContractChange(name, lastVersion, Changed: false, diff);
            }

            (IReadOnlyDictionary<string, string?>? priorLevels, List<SubjectLevel> released) = PriorLevels(current, before, after, registry);
            // A level that cannot be given back is refused before anything is stored: stored first, the change would drop
            // the only record of the level, and a delete could not even be retried.
            if (registry is not null && ReleaseProblems(released, registry) is { Count: > 0 } releaseProblems)
            {
                throw new ContractValidationException(releaseProblems);
            }

            var revision = new ContractRevision(name, lastVersion + 1, action, text, actor, DateTimeOffset.UtcNow, fromVersion, Audited: false, priorLevels);
            // Not cancellable once begun: an append the caller gave up on may still become durable, and memory must
            // then hold it too, or the next change reuses its version and a restart brings the "failed" one back.
            await journal.AppendAsync([RevisionEntry(revision)], CancellationToken.None);

            // The registry's levels change before the revision is seen, so no one meets the new contract with the old levels:
            // a level given back while the guard still refuses other changes of it (a user's PUT /config accepted once the
            // binding is gone is not undone), and the new level in place before a registration can see the contract in
            // force. Set again once it is seen: a PUT the guard let through in between (no binding yet) is overruled.
            // The new version's levels are set even when giving one back failed, and the revision is applied and audited
            // whatever the registry does (its journal could not be written, or it is being disposed at shutdown): it is
            // durable already, and memory must hold it too; the first failure is thrown last, saying the change was stored.
            Exception? registryFailure = null;
            async Task SyncRegistryAsync(Func<Task> sync)
            {
                try
                {
                    await sync();
                }
                catch (Exception e)
                {
                    registryFailure ??= e;
                }
            }

            if (registry is not null && released.Count > 0)
            {
                await SyncRegistryAsync(() => registry.Released(released));
            }

            if (registry is not null && after is not null)
            {
                await SyncRegistryAsync(() => registry.InForce(after));
            }

            lock (_sync)
            {
                Apply(revision);
            }

            if (registry is not null && after is not null)
            {
                await SyncRegistryAsync(() => registry.InForce(after));
            }

            LogChanged(name, revision.Version, action, actor, diff.Count);
            await WriteAuditAsync(ChangeRecord(revision, diff), name, revision.Version, revision);
            if (registryFailure is not null)
            {
                throw new ContractRegistrySyncException(name, revision.Version, registryFailure);
            }

            return new ContractChange(name, revision.Version, Changed: true, diff);
        }
        finally
        {
            _writer.Release();
        }
    }

    /// <summary>
    /// Writes an audit record (of a change, already durable, or of a diff), so a failure here is not undone: the record
    /// waits, in order, for the next change or <see cref="RetryAuditAsync"/> (each minute, and at shutdown).
    /// </summary>
    /// <param name="change">The change the record is of (null for a diff); once the record is written its audited mark is stored.</param>
    private async Task WriteAuditAsync(Dictionary<string, object?> record, string name, int version, ContractRevision? change)
    {
        QueueAudit(record, change);
        await WriteUnwrittenAuditAsync(name, version);
    }

    private void QueueAudit(Dictionary<string, object?> record, ContractRevision? change)
    {
        _unwrittenAudit.Add(new PendingAudit(new JournalEntry(System.Text.Encoding.UTF8.GetBytes((string)record["contract"]!), JsonSerializer.SerializeToUtf8Bytes(record, Json)), change));
        if (_unwrittenAudit.Count > MaxUnwrittenAudit)
        {
            LogAuditDropped(_unwrittenAudit.Count - MaxUnwrittenAudit);
            _unwrittenAudit.RemoveRange(0, _unwrittenAudit.Count - MaxUnwrittenAudit);
        }
    }

    /// <summary>An audit record waiting for the audit topic, and the change it is of (null for a diff).</summary>
    private readonly record struct PendingAudit(JournalEntry Record, ContractRevision? Change);

    private static JournalEntry RevisionEntry(ContractRevision revision) => new(
        JsonSerializer.SerializeToUtf8Bytes(new RevisionKey { Name = revision.Name, Version = revision.Version }, Json),
        JsonSerializer.SerializeToUtf8Bytes(revision, Json));

    private static JournalEntry AuditedMark(ContractRevision revision) => new(
        JsonSerializer.SerializeToUtf8Bytes(new RevisionKey { Name = revision.Name, Version = revision.Version, Audited = true }, Json),
        AuditedMarkValue);

    private static Dictionary<string, object?> ChangeRecord(ContractRevision change, IReadOnlyList<string> diff) =>
        AuditRecord(TypeChange, change.Name, change.Version, change.Action, change.FromVersion, change.Actor, change.At, diff);

    /// <summary>The revision of the same contract before <paramref name="change"/>, if any.</summary>
    private ContractRevision? PreviousRevision(ContractRevision change)
    {
        lock (_sync)
        {
            return _history.TryGetValue(change.Name, out List<ContractRevision>? revisions) ? revisions.FindLast(r => r.Version < change.Version) : null;
        }
    }

    /// <summary>The contract a revision put in force; null for a delete, none, or a text this build no longer takes.</summary>
    private static ContractDefinition? TryParseRevision(ContractRevision? revision) =>
        revision is { Action: not ActionDelete, Text: { } text } ? TryParse(text) : null;

    /// <summary>Characters of its diff a dry run's audit record keeps (a change's record keeps all of it).</summary>
    public const int MaxDryRunDiffChars = 16 * 1024;

    /// <summary>
    /// A dry run's diff, cut to <see cref="MaxDryRunDiffChars"/> with a last line saying how many lines were left out: anyone
    /// who reaches the admin port can send dry runs, and each of a contract near the document limit wrote its 256 KiB
    /// diff to the audit topic, whose retention cannot be changed (a review: 812 MB for 1,600 dry runs).
    /// </summary>
    private static IReadOnlyList<string> DiffKeptForDryRun(IReadOnlyList<string> diff)
    {
        int chars = 0;
        for (int i = 0; i < diff.Count; i++)
        {
            chars += diff[i].Length;
            if (chars > MaxDryRunDiffChars)
            {
                return [.. diff.Take(i), $"... and {diff.Count - i} more line(s): a dry run's record keeps {MaxDryRunDiffChars} characters of its diff"];
            }
        }

        return diff;
    }

    /// <summary>
    /// An audit record: a change (<c>version</c> is the version it made) or a diff (<c>version</c> is the version it was
    /// compared against, 0 for a contract that does not exist yet).
    /// </summary>
    private static Dictionary<string, object?> AuditRecord(string type, string name, int version, string action, int? fromVersion, string actor, DateTimeOffset at, IReadOnlyList<string> diff) => new()
    {
        ["type"] = type,
        ["contract"] = name,
        ["version"] = version,
        ["action"] = action,
        ["fromVersion"] = fromVersion,
        ["actor"] = actor,
        ["at"] = at,
        ["diff"] = diff,
    };

    /// <summary>
    /// Runs <paramref name="work"/> while no contract change is under way: a change sets and gives back registry levels
    /// around the moment it is seen, and a repair of a bound subject's level (after a subject delete) must see the binding
    /// and write the level with no change in between, or it writes the level of a contract just replaced or deleted; and a
    /// user's change of a subject's level or mode must not land between a change's checks of them and its own writes.
    /// </summary>
    public async Task<T> BetweenChangesAsync<T>(Func<Task<T>> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        await EnterWriterAsync(CancellationToken.None);
        try
        {
            return await work();
        }
        finally
        {
            _writer.Release();
        }
    }

    /// <summary>Changes, and work run between them (<see cref="BetweenChangesAsync"/>), waiting for the one under way: lets a test queue one behind another.</summary>
    public int ChangesWaiting => Volatile.Read(ref _changesWaiting);

    private async Task EnterWriterAsync(CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _changesWaiting);
        try
        {
            await _writer.WaitAsync(cancellationToken);
        }
        finally
        {
            Interlocked.Decrement(ref _changesWaiting);
        }
    }

    /// <summary>Writes the audit records the audit topic refused before, if any; true when none is left waiting.</summary>
    public async Task<bool> RetryAuditAsync(CancellationToken cancellationToken)
    {
        await _writer.WaitAsync(cancellationToken);
        try
        {
            return _unwrittenAudit.Count == 0 || await WriteUnwrittenAuditAsync(null, 0);
        }
        finally
        {
            _writer.Release();
        }
    }

    private async Task<bool> WriteUnwrittenAuditAsync(string? name, int version)
    {
        try
        {
            // In order, oldest first, so the audit topic never shows a later change before an earlier one; in batches
            // small enough for one WAL entry each (a record alone if it is that large).
            while (_unwrittenAudit.Count > 0)
            {
                int take = 0;
                long bytes = 0;
                int maxBytes = Math.Min(AuditBatchBytes, audit.MaxAppendBytes);
                while (take < _unwrittenAudit.Count && take < AuditBatchRecords)
                {
                    bytes += EntryBytes(_unwrittenAudit[take].Record);
                    if (take > 0 && bytes > maxBytes)
                    {
                        break;
                    }

                    take++;
                }

                List<PendingAudit> batch = _unwrittenAudit.GetRange(0, take);
                await audit.AppendAsync(batch.ConvertAll(static p => p.Record), CancellationToken.None);
                _unwrittenAudit.RemoveRange(0, batch.Count);
                await MarkAuditedAsync(batch);
            }

            return true;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogAuditFailed(e, name ?? "(retry)", version, _unwrittenAudit.Count);
            return false;
        }
    }

    private static long EntryBytes(JournalEntry entry) => entry.Key.Length + (entry.Value?.Length ?? 0);

    /// <summary>
    /// Stores the marks that the changes of audit records just written are audited, so a restart does not write their
    /// records again. If this fails the records are written once more after a restart: at least once, never lost.
    /// </summary>
    private async Task MarkAuditedAsync(List<PendingAudit> written)
    {
        var marks = new List<JournalEntry>();
        foreach (PendingAudit pending in written)
        {
            if (pending.Change is { } change)
            {
                marks.Add(AuditedMark(change));
            }
        }

        if (marks.Count == 0)
        {
            return;
        }

        try
        {
            await journal.AppendAsync(marks, CancellationToken.None);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogAuditMarkFailed(e, marks.Count);
        }
    }

    /// <summary>A change made: kept in its contract's history, and the contracts in force worked out again.</summary>
    private void Apply(ContractRevision revision)
    {
        Remember(revision);
        Rebuild();
    }

    private void Remember(ContractRevision revision)
    {
        if (!_history.TryGetValue(revision.Name, out List<ContractRevision>? revisions))
        {
            _history[revision.Name] = revisions = [];
        }

        revisions.Add(revision);
    }

    /// <summary>The contracts in force, from the last revision of each contract's history.</summary>
    private void Rebuild()
    {
        var current = new List<ContractRevision>();
        var currentContracts = new List<ActiveContract>();
        var exact = new Dictionary<string, ActiveContract>(StringComparer.Ordinal);
        var patterns = new List<ActiveContract>();
        // A contract whose version in force is unchanged keeps its parsed definition: a change parses only what it changed
        // (parsing every contract in force again made each change cost about a millisecond per contract).
        var before = new Dictionary<(string Name, int Version), ActiveContract>();
        for (int i = 0; i < _snapshot.Current.Count; i++)
        {
            before.Add((_snapshot.Current[i].Name, _snapshot.Current[i].Version), _snapshot.CurrentContracts[i]);
        }

        foreach ((string name, List<ContractRevision> list) in _history.OrderBy(h => h.Key, StringComparer.Ordinal))
        {
            ContractRevision last = list[^1];
            if (last.Action == ActionDelete || last.Text is null)
            {
                continue;
            }

            if (!before.TryGetValue((name, last.Version), out ActiveContract? active))
            {
                try
                {
                    active = new ActiveContract(ContractParser.Parse(last.Text, stored: true), last.Version);
                }
                catch (ContractValidationException e)
                {
                    LogUnusable(name, last.Version, e.Message);
                    continue;
                }
            }

            current.Add(last);
            currentContracts.Add(active);
            ContractDefinition definition = active.Definition;
            if (definition.IsPattern)
            {
                patterns.Add(active);
            }
            else
            {
                exact.TryAdd(definition.Topic, active);
            }
        }

        // The most specific pattern governs a topic two patterns match (more literal characters: "customers.*" over
        // "*"), so a broad pattern cannot lift a narrower one's policy; equally specific ones go by contract name.
        patterns.Sort(BySpecificity);
        NoteQuarantiningVersions();
        _snapshot = new Snapshot(current, exact, patterns)
        {
            CurrentContracts = currentContracts,
            EverQuarantiningPatterns = [.. _everQuarantiningPatterns.Values],
            EverQuarantinedByName = new HashSet<string>(_everQuarantinedByName, StringComparer.Ordinal),
        };
        Generation++;
    }

    /// <summary>Adds the versions not seen before that quarantine to <see cref="_everQuarantiningPatterns"/> and <see cref="_everQuarantinedByName"/>.</summary>
    private void NoteQuarantiningVersions()
    {
        foreach ((string name, List<ContractRevision> list) in _history)
        {
            foreach (ContractRevision revision in list)
            {
                // A version quarantines only when its text says so (no class does by default): the others are not parsed,
                // as a parse of every version ever stored made a broker with a long history slow to start.
                if (revision.Text is null || !_revisionsSeenForQuarantine.Add((name, revision.Version))
                    || !revision.Text.Contains("quarantine", StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }

                try
                {
                    ContractDefinition definition = ContractParser.Parse(revision.Text, stored: true);
                    if (definition.OnFailure != FailureAction.Quarantine)
                    {
                        continue;
                    }

                    if (definition.IsPattern)
                    {
                        _everQuarantiningPatterns.TryAdd((definition.Topic, definition.QuarantineTopicTemplate), definition);
                    }
                    else
                    {
                        _everQuarantinedByName.Add(definition.QuarantineTopicFor(definition.Topic));
                    }
                }
                catch (ContractValidationException)
                {
                    // A version this build cannot read (logged when it is the one in force) names no quarantine topic it knows.
                }
            }
        }
    }

    private static int BySpecificity(ActiveContract a, ActiveContract b)
    {
        int bySpecificity = Literals(b.Definition.Topic).CompareTo(Literals(a.Definition.Topic));
        return bySpecificity != 0 ? bySpecificity : string.CompareOrdinal(a.Definition.Name, b.Definition.Name);
    }

    /// <summary>
    /// The contract governing <paramref name="quarantineTopic"/> that quarantine copies may not enter, if any: copies are the
    /// records some contract refused, written without a check, so they may go only where no contract is in force, or a
    /// contract of class <c>quarantine</c> (which observes) or a <c>raw</c> pattern (a catch-all like <c>*</c>; a topic
    /// named exactly with a contract of another class is governed on purpose).
    /// </summary>
    public ActiveContract? RefusesQuarantineCopies(string quarantineTopic) => RefusesQuarantineCopies(_snapshot, quarantineTopic);

    private static ActiveContract? RefusesQuarantineCopies(Snapshot snapshot, string quarantineTopic) =>
        ForTopic(snapshot, quarantineTopic) is { } governing && governing.Definition.Class != TopicClass.Quarantine
            && (!governing.Definition.IsPattern || governing.Definition.Class != TopicClass.Raw)
            ? governing
            : null;

    /// <summary>
    /// Why contract <paramref name="name"/> cannot become <paramref name="after"/> (null: be deleted): a quarantine topic
    /// known now (an exact contract's, or an exact topic a pattern's template names) would be governed by a contract that
    /// refuses quarantine copies. Worked out on the contracts as they would be, in both directions (a certified contract
    /// or pattern put over another's quarantine topic, a quarantine target moved under one, the class-quarantine contract
    /// that made it valid deleted), and only clashes the change adds count: ones stored by an older build do not block
    /// unrelated changes. A pattern's quarantine topics under another pattern are known per topic: refused when written.
    /// </summary>
    private string? QuarantineClash(string name, ContractDefinition? after)
    {
        var exact = new Dictionary<string, ActiveContract>(StringComparer.Ordinal);
        foreach ((string topic, ActiveContract active) in _snapshot.Exact)
        {
            if (active.Definition.Name != name)
            {
                exact[topic] = active;
            }
        }

        var patterns = _snapshot.Patterns.Where(p => p.Definition.Name != name).ToList();
        if (after is not null)
        {
            var active = new ActiveContract(after, 0);
            if (after.IsPattern)
            {
                patterns.Add(active);
                patterns.Sort(BySpecificity);
            }
            else
            {
                exact[after.Topic] = active;
            }
        }

        var before = QuarantineClashes(_snapshot).Select(c => (c.Quarantining.Definition.Name, c.Target, c.Holder.Definition.Name)).ToHashSet();
        foreach ((ActiveContract quarantining, string target, ActiveContract holder) in QuarantineClashes(new Snapshot([], exact, patterns)))
        {
            if (!before.Contains((quarantining.Definition.Name, target, holder.Definition.Name)))
            {
                return $"contract '{quarantining.Definition.Name}' quarantines into '{target}', which contract '{holder.Definition.Name}' (class {holder.Definition.ClassName}) {(ReferenceEquals(holder.Definition, after) ? "would govern" : after is null ? "would govern once this one is deleted" : "governs")}, and quarantined records are written there unchecked: choose another quarantineTopic, or give '{target}' a contract of class quarantine.";
            }
        }

        return null;
    }

    private static List<(ActiveContract Quarantining, string Target, ActiveContract Holder)> QuarantineClashes(Snapshot snapshot)
    {
        var clashes = new List<(ActiveContract, string, ActiveContract)>();
        foreach (ActiveContract contract in snapshot.Exact.Values)
        {
            if (contract.Definition.OnFailure == FailureAction.Quarantine
                && contract.Definition.QuarantineTopicFor(contract.Definition.Topic) is var target
                && RefusesQuarantineCopies(snapshot, target) is { } holder && !ReferenceEquals(holder, contract))
            {
                clashes.Add((contract, target, holder));
            }
        }

        // A named topic a pattern quarantines into (for a topic the pattern governs).
        foreach (ActiveContract named in snapshot.Exact.Values)
        {
            if (named.Definition.Class == TopicClass.Quarantine)
            {
                continue;
            }

            foreach (ActiveContract pattern in snapshot.Patterns)
            {
                if (pattern.Definition.OnFailure == FailureAction.Quarantine && pattern.Definition.IsQuarantineName(named.Definition.Topic, out string? source)
                    && source is not null && ReferenceEquals(ForTopic(snapshot, source), pattern))
                {
                    clashes.Add((pattern, named.Definition.Topic, named));
                }
            }
        }

        return clashes;
    }

    /// <summary>The contract other than <paramref name="name"/> in force on the same exact topic or the same pattern as <paramref name="definition"/>, if any.</summary>
    private ActiveContract? OtherGoverning(ContractDefinition definition, string name) =>
        !definition.IsPattern
            ? _snapshot.Exact.TryGetValue(definition.Topic, out ActiveContract? holder) && holder.Definition.Name != name ? holder : null
            : _snapshot.Patterns.FirstOrDefault(p => p.Definition.Name != name && SamePattern(p.Definition.Topic, definition.Topic));

    /// <summary>Another contract's pattern as specific as <paramref name="definition"/>'s that matches a topic with it, and such a topic; else nulls.</summary>
    private (ActiveContract? Rival, string? Example) EquallySpecificOverlap(ContractDefinition definition, string name)
    {
        foreach (ActiveContract other in _snapshot.Patterns)
        {
            if (other.Definition.Name != name && Literals(other.Definition.Topic) == Literals(definition.Topic)
                && CommonMatch(other.Definition.Topic, definition.Topic) is { } example)
            {
                return (other, example);
            }
        }

        return (null, null);
    }

    /// <summary>
    /// The shortest topic name both patterns match ('*' matching any run of characters), or null when there is none that
    /// is a valid topic name. shortest[i, j] is the length of the shortest string matching both rests a[i..] and b[j..]
    /// (or <see cref="NoMatch"/>): a '*' ends, or takes the other side's next literal; two literals must be equal. A topic
    /// starting with '_' (the broker's own) is matched by no pattern, so it is no example; one is made otherwise where
    /// both patterns start with '*'.
    /// </summary>
    internal static string? CommonMatch(string a, string b)
    {
        var shortest = new int[a.Length + 1, b.Length + 1];
        for (int i = a.Length; i >= 0; i--)
        {
            for (int j = b.Length; j >= 0; j--)
            {
                shortest[i, j] = i == a.Length && j == b.Length ? 0 : NoMatch;
                foreach ((int di, int dj, int adds) in CommonMatchSteps(a, b, i, j))
                {
                    if (shortest[i + di, j + dj] != NoMatch)
                    {
                        shortest[i, j] = Math.Min(shortest[i, j], shortest[i + di, j + dj] + adds);
                    }
                }
            }
        }

        if (shortest[0, 0] == NoMatch)
        {
            return null;
        }

        // Walk down the shortest way: every literal a step adds is a character of the example.
        var example = new StringBuilder(shortest[0, 0] + 1);
        (int x, int y) = (0, 0);
        while (x < a.Length || y < b.Length)
        {
            foreach ((int di, int dj, int adds) in CommonMatchSteps(a, b, x, y))
            {
                if (shortest[x + di, y + dj] != NoMatch && shortest[x + di, y + dj] + adds == shortest[x, y])
                {
                    if (adds > 0)
                    {
                        example.Append(di > 0 && a[x] != '*' ? a[x] : b[y]);
                    }

                    (x, y) = (x + di, y + dj);
                    break;
                }
            }
        }

        if (example.Length > 0 && example[0] == '_' && a[0] == '*' && b[0] == '*')
        {
            example.Insert(0, 'a'); // both leading stars take it
        }

        string found = example.ToString();
        return found.Length > 0 && found[0] != '_' && found is not ("." or "..") && found.Length <= MaxTopicNameLength ? found : null;
    }

    private const int NoMatch = int.MaxValue;

    private const int MaxTopicNameLength = 249;

    /// <summary>The ways on from a[i..] and b[j..]: how far each side moves, and how many characters the step adds (0 or 1).</summary>
    private static List<(int DI, int DJ, int Adds)> CommonMatchSteps(string a, string b, int i, int j)
    {
        bool aStar = i < a.Length && a[i] == '*';
        bool bStar = j < b.Length && b[j] == '*';
        var steps = new List<(int, int, int)>(3);
        if (aStar)
        {
            steps.Add((1, 0, 0)); // a's star ends
        }

        if (bStar)
        {
            steps.Add((0, 1, 0));
        }

        if (aStar && j < b.Length && !bStar)
        {
            steps.Add((0, 1, 1)); // a's star takes b's literal
        }

        if (bStar && i < a.Length && !aStar)
        {
            steps.Add((1, 0, 1));
        }

        if (i < a.Length && j < b.Length && !aStar && !bStar && a[i] == b[j])
        {
            steps.Add((1, 1, 1));
        }

        return steps;
    }

    /// <summary>Whether two topic patterns are one ('*' runs match what one '*' does).</summary>
    private static bool SamePattern(string a, string b) => string.Equals(CollapseStars(a), CollapseStars(b), StringComparison.Ordinal);

    private static string CollapseStars(string pattern)
    {
        while (pattern.Contains("**", StringComparison.Ordinal))
        {
            pattern = pattern.Replace("**", "*", StringComparison.Ordinal);
        }

        return pattern;
    }

    private static ContractDefinition? TryParse(string text)
    {
        try
        {
            return ContractParser.Parse(text, stored: true);
        }
        catch (ContractValidationException)
        {
            return null;
        }
    }

    private static int Literals(string pattern) => pattern.Length - pattern.AsSpan().Count('*');

    private static Dictionary<string, string> Flatten(ContractDefinition? contract)
    {
        var flat = new Dictionary<string, string>(StringComparer.Ordinal);
        if (contract is null)
        {
            return flat;
        }

        flat["topic"] = contract.Topic;
        flat["class"] = contract.ClassName;
        flat["onFailure"] = contract.OnFailure.ToString().ToLowerInvariant();
        flat["quarantineTopic"] = contract.QuarantineTopicTemplate;
        flat["tombstones"] = contract.RejectTombstones ? "reject" : "allow";
        flat["compatibility"] = Registry.RegistryNames.Name(contract.Compatibility);
        flat["retention"] = contract.RetentionMs == -1 ? "infinite" : $"{contract.RetentionMs.ToString(System.Globalization.CultureInfo.InvariantCulture)}ms";
        flat["audit"] = contract.Audit.ToString().ToLowerInvariant();
        if (contract.RetentionBytes is { } retentionBytes)
        {
            flat["retentionBytes"] = retentionBytes == -1 ? "infinite" : retentionBytes.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        AddIfSet(flat, "owner", contract.Owner);
        AddIfSet(flat, "description", contract.Description);
        foreach ((string side, SchemaRequirement? requirement) in new[] { ("key", contract.Key), ("value", contract.Value) })
        {
            if (requirement is not null)
            {
                flat[$"{side}.strategy"] = requirement.Strategy.ToString();
                flat[$"{side}.versions"] = requirement.VersionsText;
                AddIfSet(flat, $"{side}.subject", requirement.Subject);
                if (requirement.DeclaredSchemaType is { } declared)
                {
                    // As declared: an explicit AVRO admits Avro schemas only, where none admits any type (and reads a schemaFile as Avro).
                    flat[$"{side}.schemaType"] = Registry.RegistryNames.Name(declared);
                }

                if (requirement.SchemaFile is not null)
                {
                    flat[$"{side}.schemaFile"] = requirement.SchemaFile;
                    if (requirement.References is { Count: > 0 } references)
                    {
                        flat[$"{side}.references"] = ReferencesText(references);
                    }
                }
            }
        }

        foreach (FieldRuleDefinition rule in contract.Rules)
        {
            flat[$"rules[{rule.Name}].expr"] = rule.Expression;
            AddIfSet(flat, $"rules[{rule.Name}].message", rule.Message);
        }

        // Several rules may name one target (in order): all of them are the target's entry, so none hides another.
        foreach (PrivacyRuleDefinition rule in contract.Privacy)
        {
            string key = $"privacy[{rule.Target}]";
            string action = rule.Action.ToString().ToLowerInvariant();
            flat[key] = flat.TryGetValue(key, out string? earlier) ? $"{earlier}, {action}" : action;
        }

        // Order is meaning too: the first failing rule is the one reported, and privacy rules on one field compose in order
        // (hash then redact stores "****", redact then hash a hash of it). A reordered file is a new version.
        if (contract.Rules.Count > 1)
        {
            flat["rules.order"] = OrderText([.. contract.Rules.Select(r => r.Name)]);
        }

        if (contract.Privacy.Count > 1)
        {
            flat["privacy.order"] = OrderText([.. contract.Privacy.Select(r => r.Target)]);
        }

        return flat;
    }

    /// <summary>
    /// Names in order, joined by ", " as people read them; when a name holds a comma, as a JSON array instead, or two
    /// orders of the same names could read the same ("a" and "a, a"), and a reordering would apply as unchanged.
    /// </summary>
    private static string OrderText(string[] names) =>
        Array.Exists(names, n => n.Contains(',', StringComparison.Ordinal)) ? JsonSerializer.Serialize(names, ReadableJson.Options) : string.Join(", ", names);

    /// <summary>
    /// References as name=subject@version joined by ", "; as a JSON array when a name or subject holds one of those
    /// separators (or a name starts with '[', as the array does), or two different lists could read the same.
    /// </summary>
    private static string ReferencesText(IReadOnlyList<Registry.SchemaReference> references) =>
        references.Any(r => r.Name.AsSpan().IndexOfAny("=@,") >= 0 || r.Subject.AsSpan().IndexOfAny("=@,") >= 0 || r.Name.StartsWith('['))
            ? JsonSerializer.Serialize(references.Select(r => new { name = r.Name, subject = r.Subject, version = r.Version }), ReadableJson.Options)
            : string.Join(", ", references.Select(r => $"{r.Name}={r.Subject}@{r.Version}"));

    private static void AddIfSet(Dictionary<string, string> flat, string path, string? value)
    {
        if (value is not null)
        {
            flat[path] = value;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Contracts loaded: {Count} in force")]
    private partial void LogLoaded(int count);

    [LoggerMessage(Level = LogLevel.Information, Message = "Contract {Name} version {Version}: {Action} by {Actor}, {Changes} changes")]
    private partial void LogChanged(string name, int version, string action, string actor, int changes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Contract {Name} version {Version} is stored but cannot be used: {Reason}")]
    private partial void LogUnusable(string name, int version, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Writing the audit record of contract {Name} version {Version} failed; {Waiting} audit records wait for the next try")]
    private partial void LogAuditFailed(Exception error, string name, int version, int waiting);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Count} contract changes were stored without their audit record (the broker stopped first); writing them now")]
    private partial void LogAuditRecovered(int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The audit records of {Count} contract changes were written but the changes could not be marked audited; after a restart their records are written again")]
    private partial void LogAuditMarkFailed(Exception error, int count);

    [LoggerMessage(Level = LogLevel.Error, Message = "Dropped the {Dropped} oldest audit records the audit topic refused (at most 10000 wait)")]
    private partial void LogAuditDropped(int dropped);
}
