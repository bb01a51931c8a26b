using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using SharedLog.Contracts;

namespace SharedLog.Contracts.Registry;

/// <summary>One version of a subject, as the API shows it.</summary>
public sealed record RegisteredSchema(string Subject, int Version, int Id, SchemaType Type, string Schema, IReadOnlyList<SchemaReference> References, SchemaMetadata? Metadata, bool Deleted, string? RuleSet = null);

/// <summary>A schema by its global id.</summary>
public sealed record SchemaById(int Id, SchemaType Type, string Schema, IReadOnlyList<SchemaReference> References, SchemaMetadata? Metadata, string? RuleSet = null);

/// <summary>A registration, lookup or compatibility request body.</summary>
public sealed record SchemaRequest(string Schema, SchemaType Type, IReadOnlyList<SchemaReference> References, SchemaMetadata? Metadata = null, int? Id = null, int? Version = null, bool Normalize = false, string? RuleSet = null);

public sealed record CompatibilityResult(bool IsCompatible, IReadOnlyList<string> Messages);

/// <summary>
/// The schema registry: subjects, versions, global ids, compatibility and mode settings, kept in
/// memory and made durable as records of an <see cref="IJournal"/>. Every change is written
/// to the journal first and applied to memory by the same code that replays the journal on start,
/// so memory is always what a restart would rebuild. Writers are serialized; readers take a short lock.
/// Ids are global and never reused: the highest id ever handed out survives permanent deletes.
/// </summary>
public sealed partial class SchemaRegistry : IDisposable
{
    public const CompatibilityLevel DefaultCompatibility = CompatibilityLevel.Backward;
    private const int MaxSubjectLength = 1024;

    private readonly Dictionary<SchemaType, ISchemaFormat> _formats;
    private readonly IJournal _journal;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _writer = new(1, 1);
    private readonly Lock _sync = new();

    private readonly Dictionary<string, SortedDictionary<int, SubjectVersion>> _subjects = new(StringComparer.Ordinal);
    private readonly Dictionary<int, SchemaEntry> _byId = [];
    private readonly Dictionary<string, int> _idByIdentity = new(StringComparer.Ordinal);

    /// <summary>How many ids hold each content (more than one only after imports).</summary>
    private readonly Dictionary<string, int> _idCountByIdentity = new(StringComparer.Ordinal);
    private readonly Dictionary<string, CompatibilityLevel> _subjectCompatibility = new(StringComparer.Ordinal);
    private readonly Dictionary<string, RegistryMode> _subjectModes = new(StringComparer.Ordinal);
    private CompatibilityLevel? _globalCompatibility;
    private RegistryMode? _globalMode;
    private int _maxId;
    private long _generation;

    /// <summary>True while the journal is replayed: new entries are indexed afterwards, in the background.</summary>
    private bool _deferIdentities;

    /// <summary>
    /// While the journal is replayed: each id's entry as it was added, and as it was released (deleted for good), in journal
    /// order. Which id a content maps to depends on that order (the first keeps it; when it goes, the lowest left takes it),
    /// so the index replays it once the identities are known.
    /// </summary>
    private readonly List<(SchemaEntry Entry, bool Released)> _replayed = [];

    /// <summary>Completes once every stored schema's identity is known; changes and lookups by content wait for it.</summary>
    private Task _indexed = Task.CompletedTask;
    private readonly CancellationTokenSource _disposed = new();

    public SchemaRegistry(IEnumerable<ISchemaFormat> formats, IJournal journal, ILogger<SchemaRegistry> logger)
    {
        _formats = formats.ToDictionary(f => f.Type);
        _journal = journal;
        _logger = logger;
    }

    public IReadOnlyCollection<SchemaType> SupportedTypes => _formats.Keys;

    /// <summary>Bumped on every applied change; callers key their caches of registry answers on it.</summary>
    public long Generation => Interlocked.Read(ref _generation);

    /// <summary>The parsed schema of a registered id, or null when the id is unknown.</summary>
    public IParsedSchema? ParsedById(int id)
    {
        // Parsed outside the lock: the first use of a stored schema after a start (the gate's, say) does not hold up
        // every other registry read while a large schema parses. A failure is kept, so ParsedOf reports it without parsing.
        ParseAhead(() => [id]);
        lock (_sync)
        {
            return _byId.TryGetValue(id, out SchemaEntry? entry) ? ParsedOf(entry) : null;
        }
    }

    /// <summary>The newest live version of <paramref name="subject"/> registered with schema <paramref name="id"/>, or null.</summary>
    public int? VersionUnder(int id, string subject) => VersionUnder(id, subject, deleted: false);

    /// <summary>The newest soft-deleted version of <paramref name="subject"/> registered with schema <paramref name="id"/>, or null.</summary>
    public int? DeletedVersionUnder(int id, string subject) => VersionUnder(id, subject, deleted: true);

    private int? VersionUnder(int id, string subject, bool deleted)
    {
        lock (_sync)
        {
            return _subjects.TryGetValue(subject, out SortedDictionary<int, SubjectVersion>? versions)
                ? versions.Values.LastOrDefault(v => v.Id == id && v.Deleted == deleted)?.Version
                : null;
        }
    }

    public void Dispose()
    {
        _disposed.Cancel();
        _writer.Dispose();
    }

    /// <summary>
    /// Rebuilds the state from the journal; call once before serving. Stored schemas are not parsed here: reads by
    /// subject, version and id answer at once (a schema is parsed when first used), while the content identities that
    /// registrations and lookups by content need are computed in the background (<see cref="WhenIndexedAsync"/>), so a
    /// registry of many (or costly) schemas does not hold the broker's start.
    /// </summary>
    public async Task LoadAsync(CancellationToken cancellationToken)
    {
        int count = 0;
        lock (_sync)
        {
            _deferIdentities = true;
        }

        try
        {
            await foreach (JournalEntry entry in _journal.ReadAllAsync(cancellationToken))
            {
                lock (_sync)
                {
                    Apply(entry, null);
                }

                count++;
            }
        }
        finally
        {
            lock (_sync)
            {
                _deferIdentities = false;
            }
        }

        List<(SchemaEntry Entry, bool Released)> replayed;
        lock (_sync)
        {
            replayed = [.. _replayed];
            _replayed.Clear();
        }

        LogLoaded(count, _subjects.Count, _maxId);
        _indexed = replayed.Count == 0 ? Task.CompletedTask : Task.Run(() => IndexStored(replayed, _disposed.Token), CancellationToken.None);
    }

    /// <summary>Completes once the schemas read from the journal are indexed by content.</summary>
    public Task WhenIndexedAsync(CancellationToken cancellationToken) => _indexed.WaitAsync(cancellationToken);

    /// <summary>
    /// Computes the content identity of each schema the journal held (those deleted for good later in it too: they decided
    /// which id a content went to), parsing it outside the state lock, then indexes them as the replay went. Parsed schemas
    /// are not kept: one is parsed again when first used, so memory holds only the schemas in use.
    /// </summary>
    private void IndexStored(List<(SchemaEntry Entry, bool Released)> replayed, CancellationToken cancellationToken)
    {
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        int indexed = 0;
        foreach ((SchemaEntry entry, bool released) in replayed)
        {
            if (released)
            {
                continue;
            }

            cancellationToken.ThrowIfCancellationRequested();
            // References as the replay found them when it reached this schema, as when it was written: a version it
            // references may be deleted for good later in the journal (its referrer soft-deleted first).
            List<ResolvedReference>? references = entry.References.Count == 0 ? [] : entry.ReferencesAtLoad;
            string? problem = null;
            if (references is null)
            {
                lock (_sync)
                {
                    try
                    {
                        references = ResolveStored(entry);
                    }
                    catch (SchemaRegistryException e)
                    {
                        problem = e.Message;
                    }
                }
            }

            string schemaIdentity = RawIdentity(entry.Type, entry.Text, entry.References);
            if (references is not null && _formats.ContainsKey(entry.Type))
            {
                try
                {
                    schemaIdentity = SchemaIdentity(ParseStored(entry, references), entry.References);
                }
                catch (SchemaRegistryException e)
                {
                    // The schema is matched by its text: indexing goes on, or every later registration would wait on it for ever.
                    problem = e.Message;
                }
            }
            else
            {
                problem ??= $"Stored schema {entry.Id} cannot be parsed: schema type {RegistryNames.Name(entry.Type)} is not supported";
            }

            if (problem is not null)
            {
                LogUnparsable(problem);
            }

            lock (_sync)
            {
                SetIdentity(entry, schemaIdentity);
            }

            indexed++;
        }

        lock (_sync)
        {
            IndexAsReplayed(replayed);
        }

        double milliseconds = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        LogIndexed(indexed, milliseconds);
    }

    /// <summary>
    /// Builds the content index from the replay's adds and releases, as <see cref="Index"/> and <see cref="Release"/> did
    /// when they were written: the first id with a content keeps it; when that id goes for good, the lowest id still holding
    /// the content takes it. Under the state lock.
    /// </summary>
    private void IndexAsReplayed(List<(SchemaEntry Entry, bool Released)> replayed)
    {
        var holders = new Dictionary<string, SortedSet<int>>(StringComparer.Ordinal);
        foreach ((SchemaEntry entry, bool released) in replayed)
        {
            string identity = entry.Identity!;
            if (!released)
            {
                _idByIdentity.TryAdd(identity, entry.Id);
                ref SortedSet<int>? ids = ref CollectionsMarshal.GetValueRefOrAddDefault(holders, identity, out _);
                (ids ??= []).Add(entry.Id);
                continue;
            }

            SortedSet<int> left = holders[identity];
            left.Remove(entry.Id);
            if (_idByIdentity.TryGetValue(identity, out int mapped) && mapped == entry.Id)
            {
                if (left.Count == 0)
                {
                    _idByIdentity.Remove(identity);
                }
                else
                {
                    _idByIdentity[identity] = left.Min;
                }
            }

            if (left.Count == 0)
            {
                holders.Remove(identity);
            }
        }

        foreach ((string identity, SortedSet<int> ids) in holders)
        {
            _idCountByIdentity[identity] = ids.Count;
        }
    }

    /// <summary>Gives an entry its identities (schema and references; with metadata and rules).</summary>
    private static void SetIdentity(SchemaEntry entry, string schemaIdentity)
    {
        entry.SchemaIdentity = schemaIdentity;
        entry.Identity = FullIdentity(schemaIdentity, entry.Metadata, entry.RuleSet);
    }

    /// <summary>Indexes a new entry by content: the first id with a content keeps it; one imported under another id later does not take it over.</summary>
    private void Index(SchemaEntry entry)
    {
        _idByIdentity.TryAdd(entry.Identity!, entry.Id);
        CollectionsMarshal.GetValueRefOrAddDefault(_idCountByIdentity, entry.Identity!, out _)++;
    }

    /// <summary>What a stored schema this build cannot parse matches: only its exact text.</summary>
    private static string RawIdentity(SchemaType type, string text, IReadOnlyList<SchemaReference> references) =>
        $"raw:{RegistryNames.Name(type)}:{text}:{ReferencesIdentity(references)}";

    // ---------------------------------------------------------------- reads

    /// <summary>Subjects by name; <paramref name="deletedOnly"/> (Confluent's <c>deletedOnly</c>): only those whose every version is soft-deleted.</summary>
    public IReadOnlyList<string> Subjects(bool includeDeleted, string? prefix, bool deletedOnly = false)
    {
        lock (_sync)
        {
            return [.. _subjects
                .Where(s => (prefix is null || s.Key.StartsWith(prefix, StringComparison.Ordinal))
                    && (deletedOnly ? s.Value.Values.All(v => v.Deleted) : includeDeleted || s.Value.Values.Any(v => !v.Deleted)))
                .Select(s => s.Key)
                .Order(StringComparer.Ordinal)];
        }
    }

    /// <summary>A subject's versions; <paramref name="deletedOnly"/>: only its soft-deleted ones (possibly none).</summary>
    public IReadOnlyList<int> Versions(string subject, bool includeDeleted, bool deletedOnly = false)
    {
        lock (_sync)
        {
            SortedDictionary<int, SubjectVersion> all = VersionsOf(subject);
            if (deletedOnly)
            {
                return all.Count == 0 ? throw SchemaRegistryException.SubjectNotFound(subject) : [.. all.Values.Where(v => v.Deleted).Select(v => v.Version)];
            }

            List<int> versions = [.. all.Values.Where(v => includeDeleted || !v.Deleted).Select(v => v.Version)];
            return versions.Count == 0 ? throw SchemaRegistryException.SubjectNotFound(subject) : versions;
        }
    }

    public RegisteredSchema GetVersion(string subject, string versionText, bool includeDeleted)
    {
        lock (_sync)
        {
            return Describe(subject, FindVersion(subject, versionText, includeDeleted));
        }
    }

    public SchemaById GetById(int id)
    {
        lock (_sync)
        {
            SchemaEntry entry = _byId.GetValueOrDefault(id) ?? throw SchemaRegistryException.SchemaNotFound($"with id {id}");
            return new SchemaById(entry.Id, entry.Type, entry.Text, entry.References, entry.Metadata, entry.RuleSet);
        }
    }

    /// <summary>The (subject, version) pairs registered with an id.</summary>
    public IReadOnlyList<(string Subject, int Version)> UsagesOf(int id, bool includeDeleted)
    {
        lock (_sync)
        {
            if (!_byId.ContainsKey(id))
            {
                throw SchemaRegistryException.SchemaNotFound($"with id {id}");
            }

            return [.. _subjects
                .OrderBy(s => s.Key, StringComparer.Ordinal)
                .SelectMany(s => s.Value.Values.Where(v => v.Id == id && (includeDeleted || !v.Deleted)).Select(v => (s.Key, v.Version)))];
        }
    }

    public IReadOnlyList<RegisteredSchema> List(string? subjectPrefix, bool includeDeleted, bool latestOnly)
    {
        lock (_sync)
        {
            var result = new List<RegisteredSchema>();
            foreach ((string subject, SortedDictionary<int, SubjectVersion> versions) in _subjects.OrderBy(s => s.Key, StringComparer.Ordinal))
            {
                if (subjectPrefix is not null && !subject.StartsWith(subjectPrefix, StringComparison.Ordinal))
                {
                    continue;
                }

                List<SubjectVersion> visible = [.. versions.Values.Where(v => includeDeleted || !v.Deleted)];
                foreach (SubjectVersion version in latestOnly ? visible.TakeLast(1) : visible)
                {
                    result.Add(Describe(subject, version));
                }
            }

            return result;
        }
    }

    /// <summary>Ids of live schemas whose references name this subject version.</summary>
    public IReadOnlyList<int> ReferencedBy(string subject, string versionText)
    {
        lock (_sync)
        {
            SubjectVersion version = FindVersion(subject, versionText, includeDeleted: true);
            return ReferrersOf(subject, version.Version);
        }
    }

    /// <summary>The version of <paramref name="subject"/> holding this schema (POST /subjects/{subject}).</summary>
    public async Task<RegisteredSchema> LookupAsync(string subject, SchemaRequest request, bool includeDeleted, CancellationToken cancellationToken)
    {
        await WhenIndexedAsync(cancellationToken);
        lock (_sync)
        {
            // As Confluent: a subject whose versions are all soft-deleted is not found, unless deleted ones are asked for.
            if (!_subjects.TryGetValue(subject, out SortedDictionary<int, SubjectVersion>? versions) || (!includeDeleted && versions.Values.All(v => v.Deleted)))
            {
                throw SchemaRegistryException.SubjectNotFound(subject);
            }
        }

        (IParsedSchema parsed, _) = Parse(request);
        string schemaIdentity = SchemaIdentity(parsed, ConcreteReferences(request.References));
        lock (_sync)
        {
            SubjectVersion? match = VersionsOf(subject).Values
                .Where(v => (includeDeleted || !v.Deleted) && _byId.TryGetValue(v.Id, out SchemaEntry? entry) && entry.SchemaIdentity == schemaIdentity
                    && (request.Metadata is null || entry.Metadata?.IdentityText() == request.Metadata.IdentityText())
                    && (request.RuleSet is null || entry.RuleSet == request.RuleSet))
                .LastOrDefault();
            return match is null ? throw SchemaRegistryException.SchemaNotFound("for this subject") : Describe(subject, match);
        }
    }

    /// <summary>
    /// The newest version of <paramref name="subject"/> whose metadata properties hold every pair asked for
    /// (Confluent's <c>GET /subjects/{subject}/metadata</c>, used by serializers with <c>use.latest.with.metadata</c>).
    /// </summary>
    public RegisteredSchema LatestWithMetadata(string subject, IReadOnlyList<(string Key, string Value)> properties, bool includeDeleted)
    {
        lock (_sync)
        {
            if (!_subjects.TryGetValue(subject, out SortedDictionary<int, SubjectVersion>? versions) || (!includeDeleted && versions.Values.All(v => v.Deleted)))
            {
                throw SchemaRegistryException.SubjectNotFound(subject);
            }

            foreach (SubjectVersion version in versions.Values.Reverse())
            {
                if ((includeDeleted || !version.Deleted) && HasProperties(_byId[version.Id].Metadata, properties))
                {
                    return Describe(subject, version);
                }
            }

            throw SchemaRegistryException.SchemaNotFound($"in subject '{subject}' with metadata {string.Join(", ", properties.Select(p => $"{p.Key}={p.Value}"))}");
        }
    }

    private static bool HasProperties(SchemaMetadata? metadata, IReadOnlyList<(string Key, string Value)> wanted)
    {
        foreach ((string key, string value) in wanted)
        {
            if (metadata?.Properties is null || !metadata.Properties.TryGetValue(key, out string? held) || held != value)
            {
                return false;
            }
        }

        return true;
    }

    public CompatibilityLevel GlobalCompatibility
    {
        get
        {
            lock (_sync)
            {
                return _globalCompatibility ?? DefaultCompatibility;
            }
        }
    }

    /// <summary>The subject's own level, or null when it follows the global one.</summary>
    public CompatibilityLevel? SubjectCompatibility(string subject)
    {
        lock (_sync)
        {
            return _subjectCompatibility.TryGetValue(subject, out CompatibilityLevel level) ? level : null;
        }
    }

    public RegistryMode GlobalMode
    {
        get
        {
            lock (_sync)
            {
                return _globalMode ?? RegistryMode.ReadWrite;
            }
        }
    }

    public RegistryMode? SubjectMode(string subject)
    {
        lock (_sync)
        {
            return _subjectModes.TryGetValue(subject, out RegistryMode mode) ? mode : null;
        }
    }

    /// <summary>Whether the mode in force for <paramref name="subject"/> (its own, else the registry's) lets its settings change: not read-only.</summary>
    public bool IsWritable(string subject)
    {
        lock (_sync)
        {
            return !IsReadOnly(EffectiveMode(subject));
        }
    }

    /// <summary>
    /// Checks a schema against a subject: against one version when <paramref name="versionText"/> is
    /// given, else against the versions the subject's level names (latest, or all when transitive).
    /// </summary>
    public CompatibilityResult CheckCompatibility(string subject, string? versionText, SchemaRequest request)
    {
        (IParsedSchema parsed, _) = Parse(request);
        ParseAhead(() => versionText is null ? ComparedForLevel(subject, EffectiveCompatibility(subject)).Select(v => v.Id)
            : FindVersionOrLatestOfNone(subject, versionText) is { } version ? [version.Id] : []);
        List<(int Version, IParsedSchema Schema)> previous;
        CompatibilityLevel level;
        lock (_sync)
        {
            level = EffectiveCompatibility(subject);
            if (versionText is null)
            {
                previous = PreviousForLevel(subject, level);
            }
            else if (FindVersionOrLatestOfNone(subject, versionText) is { } version)
            {
                previous = [(version.Version, ParsedOf(_byId[version.Id]))];
            }
            else
            {
                previous = []; // "latest" of a subject with no versions: compatible, as Confluent answers
            }
        }

        List<string> messages = Check(parsed, previous, level);
        return new CompatibilityResult(messages.Count == 0, messages);
    }

    // ---------------------------------------------------------------- writes

    /// <summary>Registers a schema under a subject (POST /subjects/{subject}/versions); returns the version holding it.</summary>
    public async Task<RegisteredSchema> RegisterAsync(string subject, SchemaRequest request, CancellationToken cancellationToken)
    {
        ValidateSubject(subject);
        if (!string.IsNullOrWhiteSpace(request.Schema))
        {
            return await RegisterOnceAsync(subject, request, filledFrom: null, cancellationToken);
        }

        // No schema text: the latest version's is taken (Confluent's maybePopulateFromPrevious). It is read before the
        // writer lock, so the registration starts again if another one changed the latest version meanwhile.
        for (int attempt = 1; ; attempt++)
        {
            (SchemaRequest filled, SubjectVersion latest) = WithLatestSchema(subject, request);
            try
            {
                return await RegisterOnceAsync(subject, filled, latest, cancellationToken);
            }
            catch (LatestVersionChangedException) when (attempt < 5)
            {
            }
            catch (LatestVersionChangedException)
            {
                throw new SchemaRegistryException(RegistryErrorCodes.StoreError, $"Subject '{subject}' kept changing while its latest schema was being taken; retry.");
            }
        }
    }

    /// <summary>The latest version a schema-less registration was filled from is no longer the latest.</summary>
    private sealed class LatestVersionChangedException : Exception;

    private async Task<RegisteredSchema> RegisterOnceAsync(string subject, SchemaRequest request, SubjectVersion? filledFrom, CancellationToken cancellationToken)
    {
        (IParsedSchema parsed, ISchemaFormat _) = Parse(request);
        IReadOnlyList<SchemaReference> references = ConcreteReferences(request.References);
        string schemaIdentity = SchemaIdentity(parsed, references);
        ParseAhead(() => ComparedForLevel(subject, EffectiveCompatibility(subject)).Select(v => v.Id));

        await TakeWriterAsync(cancellationToken);
        try
        {
            SchemaVersionValue value;
            List<JournalEntry> replacedVersions;
            lock (_sync)
            {
                RegistryMode mode = EffectiveMode(subject);
                SortedDictionary<int, SubjectVersion> versions = VersionsOf(subject);
                if (filledFrom is not null && (LatestLive(versions) is not { } latestNow || latestNow.Version != filledFrom.Version || latestNow.Id != filledFrom.Id))
                {
                    throw new LatestVersionChangedException();
                }

                // As Confluent: a schema registered without metadata keeps the metadata of the subject's latest version,
                // so a serializer that only sends the schema neither drops an owner's properties nor makes a new version.
                // Not in IMPORT, where a version is copied as the source registry has it (Confluent's maybePopulateFromPrevious).
                SchemaEntry? latestEntry = mode != RegistryMode.Import && LatestLive(versions) is { } latest ? _byId[latest.Id] : null;
                SchemaMetadata? metadata = request.Metadata ?? latestEntry?.Metadata;
                string? ruleSet = request.RuleSet ?? latestEntry?.RuleSet; // data contract rules are kept the same way
                string identity = FullIdentity(schemaIdentity, metadata, ruleSet);
                SubjectVersion? existing = versions.Values.LastOrDefault(v => !v.Deleted && _byId[v.Id].Identity == identity);
                if (existing is not null && (request.Id is null or < 0 || request.Id == existing.Id))
                {
                    // A retried import (same schema, same id) is answered the same way, as Confluent's registerOrForward does.
                    // As Confluent: a schema already under the subject is answered with its id in any mode, READONLY
                    // included (serializers with auto.register.schemas register on every start).
                    return Describe(subject, existing);
                }

                if (IsReadOnly(mode))
                {
                    throw SchemaRegistryException.ReadOnly(subject);
                }

                if (mode != RegistryMode.Import && parsed is Formats.Protobuf.ProtobufParsedSchema protobuf)
                {
                    CheckNewProtobufSchema(protobuf, schemaIdentity);
                }

                // long: an imported version may be int.MaxValue, after which there is no next one (an int would wrap to a negative).
                long nextVersion = versions.Count == 0 ? 1 : versions.Keys.Max() + 1L;
                if (mode != RegistryMode.Import && request.Id is not null)
                {
                    throw new SchemaRegistryException(RegistryErrorCodes.OperationNotPermitted, $"Subject '{subject}' is not in import mode; ids cannot be chosen.");
                }

                if (mode == RegistryMode.Import && request.Id is null)
                {
                    // As Confluent: an import keeps the source registry's ids, so a new schema must say which. (One already
                    // under the subject was answered with its id above, for auto-registering serializers.)
                    throw new SchemaRegistryException(RegistryErrorCodes.OperationNotPermitted, $"Subject '{subject}' is in import mode; a new schema needs its id.");
                }

                int id;
                if (request.Id is { } chosen)
                {
                    if (chosen < 1)
                    {
                        throw new SchemaRegistryException(RegistryErrorCodes.InvalidSchema, $"Schema id {chosen} must be positive.");
                    }

                    if (_byId.TryGetValue(chosen, out SchemaEntry? holder) && holder.Identity != identity)
                    {
                        throw new SchemaRegistryException(RegistryErrorCodes.OperationNotPermitted, $"Overwrite new schema with id {chosen} is not permitted.");
                    }

                    id = chosen;
                }
                else
                {
                    if (_idByIdentity.TryGetValue(identity, out int known))
                    {
                        id = known;
                    }
                    else if (_maxId == int.MaxValue)
                    {
                        // Ids count up from the largest one; an import of id 2147483647 leaves none (it wrapped to a negative id
                        // that every new schema then shared).
                        throw new SchemaRegistryException(RegistryErrorCodes.OperationNotPermitted, $"No schema id is left for a new schema: the largest id is {int.MaxValue} (imported), and new ids count up from the largest.");
                    }
                    else
                    {
                        id = _maxId + 1;
                    }
                }

                // Outside IMPORT a version is not chosen (0 or less counts as not given, as in Confluent).
                int last = versions.Count == 0 ? 0 : versions.Keys.Max();
                int version = request.Version is > 0 ? request.Version.Value : last == int.MaxValue ? 0 : last + 1;
                if (version == 0 || (request.Version is > 0 && versions.ContainsKey(version)))
                {
                    throw new SchemaRegistryException(RegistryErrorCodes.InvalidVersion, version == 0
                        ? $"Subject '{subject}' has version {int.MaxValue}; no version is left after it."
                        : $"Version {version} is not available for subject '{subject}'.");
                }

                CompatibilityLevel level = EffectiveCompatibility(subject);
                if (mode != RegistryMode.Import)
                {
                    List<string> problems = Check(parsed, PreviousForLevel(subject, level), level);
                    if (problems.Count > 0)
                    {
                        throw new SchemaRegistryException(
                            RegistryErrorCodes.IncompatibleSchema,
                            $"Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{string.Join("; ", problems)}]");
                    }
                }

                if (mode != RegistryMode.Import && request.Version is > 0 && request.Version != nextVersion)
                {
                    // As Confluent: outside IMPORT a version may be given only as the one it would get anyway; checked
                    // after compatibility, and answered as an invalid schema (42201).
                    throw new SchemaRegistryException(RegistryErrorCodes.InvalidSchema, $"Version is not one more than previous version: {request.Version} given, subject '{subject}' is at {nextVersion - 1}.");
                }

                // As Confluent: the same schema registered again after its version was soft-deleted takes a new version,
                // and the deleted one goes for good (else the subject lists the schema twice with ?deleted=true); except a
                // version a live schema references, which stays (as a permanent delete of it is refused), or that schema
                // could no longer be resolved.
                replacedVersions = [.. versions.Values.Where(v => v.Deleted && v.Id == id && ReferrersOf(subject, v.Version).Count == 0).Select(v => RegistryRecords.SchemaVersionTombstone(subject, v.Version))];
                value = new SchemaVersionValue
                {
                    Subject = subject,
                    Version = version,
                    Id = id,
                    SchemaType = request.Type == SchemaType.Avro ? null : RegistryNames.Name(request.Type),
                    Schema = parsed.Text,
                    References = references.Count == 0 ? null : [.. references],
                    Metadata = metadata,
                    RuleSet = ruleSet is null ? null : JsonNode.Parse(ruleSet)!.AsObject(),
                    Deleted = false,
                };
            }

            await WriteAsync([.. replacedVersions, RegistryRecords.SchemaVersion(value)], parsed);
            LogRegistered(subject, value.Version, value.Id);
            lock (_sync)
            {
                return Describe(subject, VersionsOf(subject)[value.Version]);
            }
        }
        finally
        {
            _writer.Release();
        }
    }

    /// <summary>Deletes every version of a subject: soft first, permanently once soft-deleted. Returns the versions deleted.</summary>
    public async Task<IReadOnlyList<int>> DeleteSubjectAsync(string subject, bool permanent, CancellationToken cancellationToken)
    {
        await TakeWriterAsync(cancellationToken);
        try
        {
            List<JournalEntry> entries = [];
            List<int> deleted;
            lock (_sync)
            {
                if (!_subjects.TryGetValue(subject, out SortedDictionary<int, SubjectVersion>? versions))
                {
                    throw SchemaRegistryException.SubjectNotFound(subject);
                }

                RequireWritable(subject);

                bool anyLive = versions.Values.Any(v => !v.Deleted);
                if (permanent && anyLive)
                {
                    throw new SchemaRegistryException(RegistryErrorCodes.SubjectNotSoftDeleted, $"Subject '{subject}' was not deleted first before being permanently deleted.");
                }

                if (!permanent && !anyLive)
                {
                    throw new SchemaRegistryException(RegistryErrorCodes.SubjectSoftDeleted, $"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently.");
                }

                foreach (SubjectVersion version in versions.Values)
                {
                    if (ReferrersOf(subject, version.Version).Count > 0)
                    {
                        throw new SchemaRegistryException(RegistryErrorCodes.ReferenceExists, $"Subject '{subject}' version {version.Version} is referenced by other schemas; delete those first.");
                    }
                }

                deleted = [.. versions.Values.Where(v => permanent || !v.Deleted).Select(v => v.Version)];
                foreach (int version in deleted)
                {
                    entries.Add(permanent ? RegistryRecords.SchemaVersionTombstone(subject, version) : RegistryRecords.SchemaVersion(ValueOf(subject, versions[version], deleted: true)));
                }

                if (permanent)
                {
                    entries.Add(RegistryRecords.IdHighWater(_maxId));
                }

                // As Confluent: a subject with no live version left loses its own compatibility level and mode, so a
                // subject made again under the name starts from the global ones.
                entries.AddRange(SubjectSettingsRemoval(subject));
            }

            await WriteAsync(entries, null);
            LogSubjectDeleted(subject, permanent, deleted.Count);
            return deleted;
        }
        finally
        {
            _writer.Release();
        }
    }

    /// <summary>Deletes one version: soft first, permanently once soft-deleted. Returns the version number.</summary>
    public async Task<int> DeleteVersionAsync(string subject, string versionText, bool permanent, CancellationToken cancellationToken)
    {
        await TakeWriterAsync(cancellationToken);
        try
        {
            JournalEntry[] entries;
            int number;
            lock (_sync)
            {
                RequireWritable(subject);
                // A numbered version is found even when soft-deleted, so that deleting it softly again says so (40406).
                SubjectVersion version = FindVersion(subject, versionText, includeDeleted: permanent || !IsLatest(versionText));
                number = version.Version;
                if (!permanent && version.Deleted)
                {
                    throw new SchemaRegistryException(RegistryErrorCodes.VersionSoftDeleted, $"Subject '{subject}' version {number} was soft deleted. Set permanent=true to delete permanently.");
                }

                if (permanent && !version.Deleted)
                {
                    throw new SchemaRegistryException(RegistryErrorCodes.VersionNotSoftDeleted, $"Subject '{subject}' version {number} was not deleted first before being permanently deleted.");
                }

                if (ReferrersOf(subject, number).Count > 0)
                {
                    throw new SchemaRegistryException(RegistryErrorCodes.ReferenceExists, $"Subject '{subject}' version {number} is referenced by other schemas; delete those first.");
                }

                entries = permanent
                    ? [RegistryRecords.SchemaVersionTombstone(subject, number), RegistryRecords.IdHighWater(_maxId)]
                    : [RegistryRecords.SchemaVersion(ValueOf(subject, version, deleted: true)),
                        .. VersionsOf(subject).Values.All(v => v.Deleted || v.Version == number) ? SubjectSettingsRemoval(subject) : []];
            }

            await WriteAsync(entries, null);
            return number;
        }
        finally
        {
            _writer.Release();
        }
    }

    public async Task SetCompatibilityAsync(string? subject, CompatibilityLevel level, CancellationToken cancellationToken)
    {
        if (subject is not null)
        {
            ValidateSubject(subject);
        }

        await WriteSerializedAsync(
            () =>
            {
                RequireWritableScope(subject); // as Confluent's updateConfig
                return [RegistryRecords.Config(subject, level)];
            },
            cancellationToken);
    }

    /// <summary>Removes a subject's level (or resets the global one); returns the level that was in force.</summary>
    public async Task<CompatibilityLevel> DeleteCompatibilityAsync(string? subject, CancellationToken cancellationToken)
    {
        CompatibilityLevel previous = default;
        await WriteSerializedAsync(
            () =>
            {
                RequireWritableScope(subject); // as Confluent's deleteSubjectConfig / deleteConfig
                if (subject is null)
                {
                    previous = _globalCompatibility ?? DefaultCompatibility;
                }
                else if (!_subjectCompatibility.TryGetValue(subject, out previous))
                {
                    throw SchemaRegistryException.SubjectNotFound(subject); // as Confluent's DELETE /config/{subject}
                }

                return [RegistryRecords.Config(subject, null)];
            },
            cancellationToken);
        return previous;
    }

    public async Task SetModeAsync(string? subject, RegistryMode mode, bool force, CancellationToken cancellationToken)
    {
        if (subject is not null)
        {
            ValidateSubject(subject);
        }

        await WriteSerializedAsync(
            () =>
            {
                var entries = new List<JournalEntry>();
                RegistryMode current = ModeInScope(subject);
                if (mode == RegistryMode.Import && current != RegistryMode.Import && !force)
                {
                    // As Confluent's setMode: checked only when switching into IMPORT without force, and only live schemas
                    // count; the soft-deleted versions in scope are then removed for good, so imported versions do not
                    // collide with them (a referenced one refuses the switch). With force nothing is checked or removed.
                    List<string> inScope = subject is null ? [.. _subjects.Keys] : _subjects.ContainsKey(subject) ? [subject] : [];
                    if (inScope.Exists(s => _subjects[s].Values.Any(v => !v.Deleted)))
                    {
                        throw new SchemaRegistryException(RegistryErrorCodes.OperationNotPermitted, "Cannot import since found existing subjects; use force=true to switch to IMPORT anyway.");
                    }

                    foreach (string s in inScope)
                    {
                        foreach (SubjectVersion deleted in _subjects[s].Values)
                        {
                            if (ReferrersOf(s, deleted.Version).Count > 0)
                            {
                                throw new SchemaRegistryException(RegistryErrorCodes.ReferenceExists, $"Subject '{s}' version {deleted.Version} is referenced by other schemas; delete those first.");
                            }

                            entries.Add(RegistryRecords.SchemaVersionTombstone(s, deleted.Version));
                        }
                    }

                    if (entries.Count > 0)
                    {
                        entries.Add(RegistryRecords.IdHighWater(_maxId));
                    }
                }

                entries.Add(RegistryRecords.Mode(subject, mode));
                return entries;
            },
            cancellationToken);
    }

    public async Task<RegistryMode> DeleteModeAsync(string? subject, CancellationToken cancellationToken)
    {
        RegistryMode previous = default;
        await WriteSerializedAsync(
            () =>
            {
                if (subject is null)
                {
                    previous = _globalMode ?? RegistryMode.ReadWrite;
                }
                else if (!_subjectModes.TryGetValue(subject, out previous))
                {
                    throw SchemaRegistryException.SubjectNotFound(subject); // as Confluent's DELETE /mode/{subject}
                }

                return [RegistryRecords.Mode(subject, null)];
            },
            cancellationToken);
        return previous;
    }

    // ---------------------------------------------------------------- internals

    private sealed class SubjectVersion(int version, int id, bool deleted)
    {
        public int Version { get; } = version;

        public int Id { get; } = id;

        public bool Deleted { get; set; } = deleted;
    }

    private sealed class SchemaEntry
    {
        public required int Id { get; init; }

        public required SchemaType Type { get; init; }

        public required string Text { get; init; }

        public required IReadOnlyList<SchemaReference> References { get; init; }

        public required SchemaMetadata? Metadata { get; init; }

        /// <summary>The data contract rules (Confluent's ruleSet) as canonical JSON text, or null.</summary>
        public required string? RuleSet { get; init; }

        /// <summary>Schema and references only: what lookups match on. Null until indexed (<see cref="IndexStored"/>).</summary>
        public string? SchemaIdentity { get; set; }

        /// <summary>Schema, references, metadata and rules: what decides whether a registration is new. Null until indexed.</summary>
        public string? Identity { get; set; }

        public IParsedSchema? Parsed { get; set; }

        /// <summary>
        /// The references as resolved when the journal's replay reached this schema; used when they no longer resolve (a
        /// referenced version deleted for good after its referrers were soft-deleted), as the schema was parsed before.
        /// </summary>
        public List<ResolvedReference>? ReferencesAtLoad { get; set; }

        /// <summary>Why this stored schema does not parse, once a parse failed: a parse of the same text fails the same way, and may take long.</summary>
        public SchemaRegistryException? ParseFailure { get; set; }

        public int Usages { get; set; }
    }

    /// <summary>
    /// Takes the writer, then decides what to write under the state lock (<paramref name="decide"/> may refuse by throwing),
    /// then writes it: a check and the write it allows cannot be split by another change.
    /// </summary>
    private async Task WriteSerializedAsync(Func<IReadOnlyList<JournalEntry>> decide, CancellationToken cancellationToken)
    {
        await TakeWriterAsync(cancellationToken);
        try
        {
            IReadOnlyList<JournalEntry> entries;
            lock (_sync)
            {
                entries = decide();
            }

            await WriteAsync(entries, null);
        }
        finally
        {
            _writer.Release();
        }
    }

    /// <summary>Serializes changes; the first ones after a start also wait until the stored schemas are indexed by content.</summary>
    private async Task TakeWriterAsync(CancellationToken cancellationToken)
    {
        await WhenIndexedAsync(cancellationToken);
        await _writer.WaitAsync(cancellationToken);
    }

    /// <summary>Journal first, then memory: what is visible is always durable.</summary>
    private async Task WriteAsync(IReadOnlyList<JournalEntry> entries, IParsedSchema? parsed)
    {
        try
        {
            // Not cancellable once begun: an append the caller gave up on may still become durable, and memory must then
            // hold it too, or the next registration hands out its id (or version) again and a restart mixes the two up.
            await _journal.AppendAsync(entries, CancellationToken.None);
        }
        catch (Exception e)
        {
            LogStoreFailed(e);
            throw new SchemaRegistryException(RegistryErrorCodes.StoreError, $"Error while storing the change: {e.Message}");
        }

        lock (_sync)
        {
            foreach (JournalEntry entry in entries)
            {
                Apply(entry, parsed);
            }
        }
    }

    /// <summary>Applies one journal record to memory; the only place state changes.</summary>
    private void Apply(JournalEntry entry, IParsedSchema? parsed)
    {
        Interlocked.Increment(ref _generation);
        try
        {
            ApplyDecoded(RegistryRecords.DecodeKey(entry.Key), entry.Value, parsed);
        }
        catch (System.Text.Json.JsonException e)
        {
            LogBadRecord(e.Message);
        }
    }

    private void ApplyDecoded(RegistryRecords.Key key, byte[]? value, IParsedSchema? parsed)
    {
        switch (key.KeyType)
        {
            case RegistryRecords.SchemaKeyType when key.Subject is not null:
                ApplySchema(key.Subject, key.Version, RegistryRecords.DecodeValue<SchemaVersionValue>(value), parsed);
                break;
            case RegistryRecords.ConfigKeyType:
                ApplySetting(key.Subject, RegistryRecords.DecodeValue<RegistryRecords.ConfigValue>(value)?.CompatibilityLevel, _subjectCompatibility, RegistryNames.TryParseLevel, ref _globalCompatibility);
                break;
            case RegistryRecords.ModeKeyType:
                ApplySetting(key.Subject, RegistryRecords.DecodeValue<RegistryRecords.ModeValue>(value)?.Mode, _subjectModes, RegistryNames.TryParseMode, ref _globalMode);
                break;
            case RegistryRecords.IdHighWaterKeyType:
                _maxId = Math.Max(_maxId, RegistryRecords.DecodeValue<RegistryRecords.IdHighWaterValue>(value)?.Id ?? 0);
                break;
            default:
                LogBadRecord($"unknown key type '{key.KeyType}'");
                break;
        }
    }

    private delegate bool NameParser<T>(string? text, out T value);

    private static void ApplySetting<T>(string? subject, string? text, Dictionary<string, T> perSubject, NameParser<T> parse, ref T? global)
        where T : struct
    {
        T? value = text is not null && parse(text, out T parsed) ? parsed : null;
        if (subject is null)
        {
            global = value;
        }
        else if (value is { } set)
        {
            perSubject[subject] = set;
        }
        else
        {
            perSubject.Remove(subject);
        }
    }

    private void ApplySchema(string subject, int version, SchemaVersionValue? value, IParsedSchema? parsed)
    {
        SortedDictionary<int, SubjectVersion> versions = VersionsOf(subject);
        versions.TryGetValue(version, out SubjectVersion? old);
        if (value is null)
        {
            if (old is not null)
            {
                versions.Remove(version);
                Release(old.Id);
            }

            if (versions.Count == 0)
            {
                _subjects.Remove(subject);
            }

            return;
        }

        _subjects[subject] = versions;
        _maxId = Math.Max(_maxId, value.Id);
        if (!_byId.TryGetValue(value.Id, out SchemaEntry? entry))
        {
            entry = NewEntry(value);
            _byId[value.Id] = entry;
            if (_deferIdentities && parsed is null)
            {
                _replayed.Add((entry, Released: false));
                if (entry.References.Count > 0)
                {
                    try
                    {
                        entry.ReferencesAtLoad = Resolve(entry.References, 0);
                    }
                    catch (SchemaRegistryException)
                    {
                        // Left to the index, which reports it.
                    }
                }
            }
            else
            {
                SetIdentity(entry, IdentityOf(entry, parsed));
                Index(entry);
            }
        }

        entry.Usages++;
        versions[version] = new SubjectVersion(version, value.Id, value.Deleted);
        if (old is not null)
        {
            // Released after the new use is counted: a version rewritten with its own id (a soft delete) keeps its entry,
            // parsed schema and hold on the content.
            Release(old.Id);
        }
    }

    private void Release(int id)
    {
        if (!_byId.TryGetValue(id, out SchemaEntry? entry) || --entry.Usages > 0)
        {
            return;
        }

        _byId.Remove(id);
        if (entry.Identity is null)
        {
            _replayed.Add((entry, Released: true)); // during the replay: the index replays it (IndexAsReplayed)
            return;
        }

        ref int idsWithContent = ref CollectionsMarshal.GetValueRefOrNullRef(_idCountByIdentity, entry.Identity);
        if (Unsafe.IsNullRef(ref idsWithContent) || --idsWithContent == 0)
        {
            _idCountByIdentity.Remove(entry.Identity);
            _idByIdentity.Remove(entry.Identity);
            return;
        }

        if (_idByIdentity.TryGetValue(entry.Identity, out int mapped) && mapped == id)
        {
            // An import gave the same schema another id, still in use: the content finds that one now (the lowest if
            // several; a scan, only ever for content held under more than one id).
            int? other = null;
            foreach ((int otherId, SchemaEntry otherEntry) in _byId)
            {
                if (otherEntry.Identity == entry.Identity && (other is null || otherId < other))
                {
                    other = otherId;
                }
            }

            if (other is { } remaining)
            {
                _idByIdentity[entry.Identity] = remaining;
            }
            else
            {
                _idByIdentity.Remove(entry.Identity);
            }
        }
    }

    private static SchemaEntry NewEntry(SchemaVersionValue value)
    {
        _ = RegistryNames.TryParseType(value.SchemaType, out SchemaType type);
        IReadOnlyList<SchemaReference> references = value.References ?? [];
        return new SchemaEntry
        {
            Id = value.Id,
            Type = type,
            Text = value.Schema,
            References = references,
            Metadata = value.Metadata,
            RuleSet = RuleSets.Canonical(value.RuleSet),
        };
    }

    /// <summary>The content identity of a new entry written now (<paramref name="parsed"/> when the writer has it); under the state lock.</summary>
    private string IdentityOf(SchemaEntry entry, IParsedSchema? parsed)
    {
        try
        {
            parsed ??= ParsedOf(entry);
            entry.Parsed = parsed;
            return SchemaIdentity(parsed, entry.References);
        }
        catch (Exception e) when (e is SchemaRegistryException or KeyNotFoundException)
        {
            // A stored schema this build cannot parse still keeps its id; it matches only its exact text.
            LogUnparsable(e.Message);
            return RawIdentity(entry.Type, entry.Text, entry.References);
        }
    }

    /// <summary>
    /// Refuses a Protobuf schema protoc refuses (<see cref="Formats.Protobuf.ProtobufSchemaParser.CheckNewSchema"/>) unless the
    /// registry already stores its text (under any subject, with any metadata): one stored before the check is still
    /// registered again, as serializers do on every start. Lookups and compatibility checks are not held to it. Under the state lock.
    /// </summary>
    private void CheckNewProtobufSchema(Formats.Protobuf.ProtobufParsedSchema schema, string schemaIdentity)
    {
        try
        {
            Formats.Protobuf.ProtobufSchemaParser.CheckNewSchema(schema);
        }
        catch (InvalidSchemaException e)
        {
            foreach (SchemaEntry stored in _byId.Values)
            {
                if (stored.SchemaIdentity == schemaIdentity)
                {
                    return;
                }
            }

            throw new SchemaRegistryException(RegistryErrorCodes.InvalidSchema, $"Invalid schema: {e.Message}");
        }
    }

    private (IParsedSchema Parsed, ISchemaFormat Format) Parse(SchemaRequest request)
    {
        if (!_formats.TryGetValue(request.Type, out ISchemaFormat? format))
        {
            throw new SchemaRegistryException(RegistryErrorCodes.InvalidSchema, $"Schema type {RegistryNames.Name(request.Type)} is not supported.");
        }

        if (request.Schema.Length > SchemaLimits.MaxSchemaChars)
        {
            throw new SchemaRegistryException(RegistryErrorCodes.InvalidSchema, $"Schema is larger than {SchemaLimits.MaxSchemaChars} characters.");
        }

        IReadOnlyList<ResolvedReference> references;
        lock (_sync)
        {
            references = Resolve(request.References, 0);
        }

        if (ImportedChars(references, request.Type) is var imported && imported > SchemaLimits.MaxReferencedChars)
        {
            throw new SchemaRegistryException(RegistryErrorCodes.InvalidSchema, $"Invalid schema: the schemas its references import hold more than {SchemaLimits.MaxReferencedChars} characters in all, as its format reads them (Protobuf and JSON Schema once per import name, Avro once per schema).");
        }

        IParsedSchema parsed;
        try
        {
            parsed = format.Parse(request.Schema, references, request.Normalize);
        }
        catch (InvalidSchemaException e)
        {
            throw new SchemaRegistryException(RegistryErrorCodes.InvalidSchema, $"Invalid schema: {e.Message}");
        }
        catch (Exception e) when (Formats.Json.InvalidJsonText.Is(e))
        {
            throw new SchemaRegistryException(RegistryErrorCodes.InvalidSchema, $"Invalid schema: {e.Message}");
        }

        if (parsed is Formats.Json.ParsedJsonSchema { Schemas.Patterns.Count: > SchemaLimits.MaxJsonSchemaPatterns } patterned)
        {
            throw new SchemaRegistryException(
                RegistryErrorCodes.InvalidSchema,
                $"Invalid schema: it uses {patterned.Schemas.Patterns.Count} distinct regular expressions (pattern and patternProperties, references included); at most {SchemaLimits.MaxJsonSchemaPatterns} are accepted, since each costs the broker's validator up to half a megabyte.");
        }

        return (parsed, format);
    }

    /// <summary>
    /// The references with version -1 ("latest") replaced by the version that is latest now, as Confluent stores them:
    /// the schema then keeps meaning what it meant, and deleting the version it uses is refused while it does.
    /// </summary>
    private IReadOnlyList<SchemaReference> ConcreteReferences(IReadOnlyList<SchemaReference> references)
    {
        if (!references.Any(r => r.Version == -1))
        {
            return references;
        }

        lock (_sync)
        {
            return [.. references.Select(r => r.Version != -1 ? r
                : _subjects.TryGetValue(r.Subject, out SortedDictionary<int, SubjectVersion>? versions) && LatestLive(versions) is { } latest
                    ? r with { Version = latest.Version }
                    : r)];
        }
    }

    /// <summary>
    /// The characters the format reads through the references, as each format skips a repeat: Avro reads each schema
    /// (subject and version) once, Protobuf and JSON Schema each import name (JSON without its '#' fragment) once. A name
    /// bound to different schemas in different places counts its largest: the format keeps the first it meets, whatever
    /// order that is.
    /// </summary>
    private static long ImportedChars(IReadOnlyList<ResolvedReference> references, SchemaType type)
    {
        var largestByName = new Dictionary<string, long>(StringComparer.Ordinal);
        var schemas = new HashSet<(string Subject, int Version)>();
        long bySchema = 0;
        var pending = new Stack<IReadOnlyList<ResolvedReference>>();
        pending.Push(references);
        while (pending.Count > 0)
        {
            foreach (ResolvedReference reference in pending.Pop())
            {
                string name = type == SchemaType.Json && reference.Name.IndexOf('#', StringComparison.Ordinal) is >= 0 and var hash ? reference.Name[..hash] : reference.Name;
                largestByName[name] = Math.Max(largestByName.GetValueOrDefault(name), reference.SchemaText.Length);

                // A schema's own references are the same wherever it recurs: walked once.
                if (schemas.Add((reference.Subject, reference.Version)))
                {
                    bySchema += reference.SchemaText.Length;
                    pending.Push(reference.References);
                }
            }
        }

        if (type == SchemaType.Avro)
        {
            return bySchema;
        }

        long byName = 0;
        foreach (long chars in largestByName.Values)
        {
            byName += chars;
        }

        return byName;
    }

    /// <summary>Most distinct schemas (subject and version) one schema's references may reach, directly or through others.</summary>
    private const int MaxReferencedSchemas = 1000;

    private List<ResolvedReference> Resolve(IReadOnlyList<SchemaReference> references, int depth) =>
        Resolve(references, depth, new Dictionary<(string Subject, int Version), IReadOnlyList<ResolvedReference>>());

    /// <summary>
    /// The reference tree; each (subject, version) is resolved once and its subtree shared wherever it recurs, so
    /// schemas referring to the same schema many times over several levels cost their distinct count, not the
    /// product of their fan-outs.
    /// </summary>
    private List<ResolvedReference> Resolve(IReadOnlyList<SchemaReference> references, int depth, Dictionary<(string Subject, int Version), IReadOnlyList<ResolvedReference>> resolvedOnce)
    {
        if (depth > SchemaLimits.MaxDepth)
        {
            throw new SchemaRegistryException(RegistryErrorCodes.InvalidSchema, "Schema references are nested too deeply.");
        }

        var resolved = new List<ResolvedReference>(references.Count);
        foreach (SchemaReference reference in references)
        {
            if (string.IsNullOrEmpty(reference.Name) || string.IsNullOrEmpty(reference.Subject))
            {
                throw new SchemaRegistryException(RegistryErrorCodes.InvalidSchema, "A schema reference needs a name, a subject and a version.");
            }

            SubjectVersion? version = _subjects.TryGetValue(reference.Subject, out SortedDictionary<int, SubjectVersion>? versions)
                ? (reference.Version == -1 ? LatestLive(versions) : versions.GetValueOrDefault(reference.Version))
                : null;
            if (version is null)
            {
                throw new SchemaRegistryException(RegistryErrorCodes.InvalidSchema, $"Invalid schema: reference '{reference.Name}' names subject '{reference.Subject}' version {reference.Version}, which does not exist.");
            }

            SchemaEntry entry = _byId[version.Id];
            if (!resolvedOnce.TryGetValue((reference.Subject, version.Version), out IReadOnlyList<ResolvedReference>? nested))
            {
                if (resolvedOnce.Count >= MaxReferencedSchemas)
                {
                    throw new SchemaRegistryException(RegistryErrorCodes.InvalidSchema, $"Invalid schema: its references reach more than {MaxReferencedSchemas} schemas.");
                }

                resolvedOnce[(reference.Subject, version.Version)] = [];  // a cycle back here sees no further references
                nested = Resolve(entry.References, depth + 1, resolvedOnce);
                resolvedOnce[(reference.Subject, version.Version)] = nested;
            }

            resolved.Add(new ResolvedReference(reference.Name, reference.Subject, version.Version, entry.Text, nested));
        }

        return resolved;
    }

    /// <summary>A stored schema, parsed once and kept; under the state lock.</summary>
    private IParsedSchema ParsedOf(SchemaEntry entry) => entry.Parsed ??= ParseStored(entry, ResolveStored(entry));

    /// <summary>A stored schema's references as they stand now; under the state lock.</summary>
    private List<ResolvedReference> ResolveStored(SchemaEntry entry)
    {
        try
        {
            return Resolve(entry.References, 0);
        }
        catch (SchemaRegistryException) when (entry.ReferencesAtLoad is { } atLoad)
        {
            return atLoad;
        }
        catch (SchemaRegistryException e)
        {
            // A reference that cannot be resolved any more (a version deleted for good) is a stored schema's problem too.
            throw StoredSchemaProblem(entry, e);
        }
    }

    private IParsedSchema ParseStored(SchemaEntry entry, List<ResolvedReference> references)
    {
        if (entry.ParseFailure is { } failed)
        {
            throw failed;
        }

        try
        {
            return _formats[entry.Type].Parse(entry.Text, references, normalize: false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Whatever the parser throws (its own bugs too) on a text it once took is the stored schema's problem: the
            // caller (the gate, a compatibility check, the index) gets one kind of error for it. Kept, so a check that
            // must not parse under the state lock does not parse it there again (ParseAhead).
            SchemaRegistryException failure = StoredSchemaProblem(entry, e);
            entry.ParseFailure = failure;
            throw failure;
        }
    }

    private static SchemaRegistryException StoredSchemaProblem(SchemaEntry entry, Exception problem) =>
        new(RegistryErrorCodes.StoreError, $"Stored schema {entry.Id} cannot be parsed: {problem.Message}");

    private List<(int Version, IParsedSchema Schema)> PreviousForLevel(string subject, CompatibilityLevel level)
    {
        return [.. ComparedForLevel(subject, level).Select(v => (v.Version, ParsedOf(_byId[v.Id])))];
    }

    /// <summary>The versions a new schema of <paramref name="subject"/> is checked against at <paramref name="level"/>, newest first; under the state lock.</summary>
    private IEnumerable<SubjectVersion> ComparedForLevel(string subject, CompatibilityLevel level)
    {
        if (level == CompatibilityLevel.None || !_subjects.TryGetValue(subject, out SortedDictionary<int, SubjectVersion>? versions))
        {
            return [];
        }

        List<SubjectVersion> live = [.. versions.Values.Where(v => !v.Deleted)];
        bool transitive = level is CompatibilityLevel.BackwardTransitive or CompatibilityLevel.ForwardTransitive or CompatibilityLevel.FullTransitive;
        return transitive ? Enumerable.Reverse(live) : live.TakeLast(1);
    }

    /// <summary>
    /// Parses, outside the state lock, the stored schemas of the ids <paramref name="needed"/> names (chosen under the
    /// lock) that are not parsed yet, so the check that then uses them under the lock does not parse there: stored schemas
    /// are parsed on first use, and a large one would hold every registry read (the gate's too) while it parses. A schema
    /// that cannot be parsed is left to that check, which reports it.
    /// </summary>
    private void ParseAhead(Func<IEnumerable<int>> needed)
    {
        List<(SchemaEntry Entry, List<ResolvedReference> References)> unparsed = [];
        lock (_sync)
        {
            try
            {
                foreach (int id in needed())
                {
                    if (_byId.TryGetValue(id, out SchemaEntry? entry) && entry.Parsed is null && entry.ParseFailure is null)
                    {
                        unparsed.Add((entry, ResolveStored(entry)));
                    }
                }
            }
            catch (SchemaRegistryException)
            {
                // An unknown version or an unresolvable reference: the check answers it.
            }
        }

        foreach ((SchemaEntry entry, List<ResolvedReference> references) in unparsed)
        {
            try
            {
                IParsedSchema parsed = ParseStored(entry, references);
                lock (_sync)
                {
                    entry.Parsed ??= parsed;
                }
            }
            catch (SchemaRegistryException)
            {
            }
        }
    }

    /// <summary>Composes a level from the formats' directed reader/writer check.</summary>
    private List<string> Check(IParsedSchema candidate, List<(int Version, IParsedSchema Schema)> previous, CompatibilityLevel level)
    {
        var messages = new List<string>();
        if (level == CompatibilityLevel.None)
        {
            return messages;
        }

        bool backward = level is CompatibilityLevel.Backward or CompatibilityLevel.BackwardTransitive or CompatibilityLevel.Full or CompatibilityLevel.FullTransitive;
        bool forward = level is CompatibilityLevel.Forward or CompatibilityLevel.ForwardTransitive or CompatibilityLevel.Full or CompatibilityLevel.FullTransitive;
        ISchemaFormat format = _formats[candidate.Type];
        foreach ((int version, IParsedSchema old) in previous)
        {
            if (old.Type != candidate.Type)
            {
                messages.Add($"version {version}: schema type changed from {RegistryNames.Name(old.Type)} to {RegistryNames.Name(candidate.Type)}");
                continue;
            }

            if (backward)
            {
                messages.AddRange(format.CheckCompatibility(reader: candidate, writer: old).Select(m => $"version {version}: {m}"));
            }

            if (forward)
            {
                messages.AddRange(format.CheckCompatibility(reader: old, writer: candidate).Select(m => $"version {version} (forward): {m}"));
            }
        }

        if (messages.Count > 0)
        {
            messages.Add($"{{compatibility: '{RegistryNames.Name(level)}'}}");
        }

        return messages;
    }

    private CompatibilityLevel EffectiveCompatibility(string subject) =>
        _subjectCompatibility.TryGetValue(subject, out CompatibilityLevel level) ? level : _globalCompatibility ?? DefaultCompatibility;

    /// <summary>A subject's own mode, else the registry's; a registry-wide READONLY_OVERRIDE before any (Confluent's getModeInScope).</summary>
    private RegistryMode EffectiveMode(string subject) =>
        _globalMode is RegistryMode.ReadOnlyOverride ? RegistryMode.ReadOnlyOverride
        : _subjectModes.TryGetValue(subject, out RegistryMode mode) ? mode : _globalMode ?? RegistryMode.ReadWrite;

    private static bool IsReadOnly(RegistryMode mode) => mode is RegistryMode.ReadOnly or RegistryMode.ReadOnlyOverride;

    private void RequireWritable(string subject)
    {
        if (IsReadOnly(EffectiveMode(subject)))
        {
            throw SchemaRegistryException.ReadOnly(subject);
        }
    }

    /// <summary><see cref="RequireWritable"/> for a subject, or for the registry-wide settings when <paramref name="subject"/> is null.</summary>
    private void RequireWritableScope(string? subject)
    {
        if (IsReadOnly(ModeInScope(subject)))
        {
            throw subject is null ? new SchemaRegistryException(RegistryErrorCodes.OperationNotPermitted, "The registry is in read-only mode.") : SchemaRegistryException.ReadOnly(subject);
        }
    }

    /// <summary>The mode in force for a subject, or the registry-wide one when <paramref name="subject"/> is null.</summary>
    private RegistryMode ModeInScope(string? subject) => subject is null ? _globalMode ?? RegistryMode.ReadWrite : EffectiveMode(subject);

    /// <summary>The newest version not soft-deleted: what "latest" means everywhere, as in Confluent.</summary>
    private static SubjectVersion? LatestLive(SortedDictionary<int, SubjectVersion> versions) => versions.Values.LastOrDefault(v => !v.Deleted);

    private SortedDictionary<int, SubjectVersion> VersionsOf(string subject) =>
        _subjects.TryGetValue(subject, out SortedDictionary<int, SubjectVersion>? versions) ? versions : [];

    /// <summary>
    /// A registration without schema text (new metadata or rules only) takes the schema, type and references of the
    /// subject's latest live version, as Confluent's maybePopulateFromPrevious does; with no such version it is empty.
    /// </summary>
    private (SchemaRequest Filled, SubjectVersion Latest) WithLatestSchema(string subject, SchemaRequest request)
    {
        lock (_sync)
        {
            // Not in IMPORT, where a version is taken as sent, as Confluent does.
            if (EffectiveMode(subject) == RegistryMode.Import
                || !_subjects.TryGetValue(subject, out SortedDictionary<int, SubjectVersion>? versions)
                || LatestLive(versions) is not { } latest)
            {
                throw new SchemaRegistryException(RegistryErrorCodes.InvalidSchema, "Empty schema.");
            }

            SchemaEntry entry = _byId[latest.Id];
            return (request with { Schema = entry.Text, Type = entry.Type, References = entry.References }, latest);
        }
    }

    /// <summary>Resolves "latest", "-1" or a number to a version; errors as Confluent's API reports them.</summary>
    private SubjectVersion FindVersion(string subject, string versionText, bool includeDeleted)
    {
        // As Confluent: the version is read before the subject is looked for, so a malformed one is 42202 either way.
        bool latest = IsLatest(versionText);
        int number = 0;
        if (!latest && (!int.TryParse(versionText, NumberStyles.None, CultureInfo.InvariantCulture, out number) || number < 1))
        {
            throw new SchemaRegistryException(RegistryErrorCodes.InvalidVersion, $"The specified version '{versionText}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\".");
        }

        if (!_subjects.TryGetValue(subject, out SortedDictionary<int, SubjectVersion>? versions) || (!includeDeleted && versions.Values.All(v => v.Deleted)))
        {
            throw SchemaRegistryException.SubjectNotFound(subject);
        }

        if (latest)
        {
            // As Confluent: "latest" is the newest live version whether or not deleted ones are asked for, so a permanent
            // delete of "latest" meets a live version (40407) instead of removing a soft-deleted one behind it.
            return LatestLive(versions)
                ?? throw new SchemaRegistryException(RegistryErrorCodes.VersionNotFound, $"Version latest not found for subject '{subject}'.");
        }

        if (!versions.TryGetValue(number, out SubjectVersion? version) || (version.Deleted && !includeDeleted))
        {
            throw SchemaRegistryException.VersionNotFound(subject, number);
        }

        return version;
    }

    private static bool IsLatest(string versionText) => string.Equals(versionText, "latest", StringComparison.OrdinalIgnoreCase) || versionText == "-1";

    /// <summary>As <see cref="FindVersion"/> without deleted versions, but null for "latest" of a subject with no live version.</summary>
    /// <remarks>As Confluent's compatibility check: a numbered version of a subject with no live version is 40402, not 40401.</remarks>
    private SubjectVersion? FindVersionOrLatestOfNone(string subject, string versionText)
    {
        bool none = !_subjects.TryGetValue(subject, out SortedDictionary<int, SubjectVersion>? versions) || versions.Values.All(v => v.Deleted);
        if (!none || IsLatest(versionText))
        {
            return none ? null : FindVersion(subject, versionText, includeDeleted: false);
        }

        // The version is read first, so a malformed one is still 42202.
        return int.TryParse(versionText, NumberStyles.None, CultureInfo.InvariantCulture, out int number) && number >= 1
            ? throw SchemaRegistryException.VersionNotFound(subject, number)
            : FindVersion(subject, versionText, includeDeleted: false);
    }

    /// <summary>Records removing a subject's own compatibility level and mode, those it has.</summary>
    private List<JournalEntry> SubjectSettingsRemoval(string subject)
    {
        List<JournalEntry> entries = [];
        if (_subjectCompatibility.ContainsKey(subject))
        {
            entries.Add(RegistryRecords.Config(subject, null));
        }

        if (_subjectModes.ContainsKey(subject))
        {
            entries.Add(RegistryRecords.Mode(subject, null));
        }

        return entries;
    }

    private List<int> ReferrersOf(string subject, int version) =>
        [.. _subjects.Values
            .SelectMany(vs => vs.Values.Where(v => !v.Deleted))
            .Select(v => _byId[v.Id])
            .Where(e => e.References.Any(r => r.Subject == subject && r.Version == version))
            .Select(e => e.Id)
            .Distinct()
            .Order()];

    private RegisteredSchema Describe(string subject, SubjectVersion version)
    {
        SchemaEntry entry = _byId[version.Id];
        return new RegisteredSchema(subject, version.Version, entry.Id, entry.Type, entry.Text, entry.References, entry.Metadata, version.Deleted, entry.RuleSet);
    }

    private SchemaVersionValue ValueOf(string subject, SubjectVersion version, bool deleted)
    {
        SchemaEntry entry = _byId[version.Id];
        return new SchemaVersionValue
        {
            Subject = subject,
            Version = version.Version,
            Id = entry.Id,
            SchemaType = entry.Type == SchemaType.Avro ? null : RegistryNames.Name(entry.Type),
            Schema = entry.Text,
            References = entry.References.Count == 0 ? null : [.. entry.References],
            Metadata = entry.Metadata,
            RuleSet = entry.RuleSet is null ? null : JsonNode.Parse(entry.RuleSet)!.AsObject(),
            Deleted = deleted,
        };
    }

    private static void ValidateSubject(string subject)
    {
        if (!IsValidSubject(subject))
        {
            throw new SchemaRegistryException(RegistryErrorCodes.InvalidSubject, "The subject name is empty, too long or holds control characters.");
        }
    }

    /// <summary>Whether the registry takes <paramref name="subject"/> as a subject name: not blank, at most 1,024 characters, no control characters.</summary>
    public static bool IsValidSubject(string subject) =>
        !string.IsNullOrWhiteSpace(subject) && subject.Length <= MaxSubjectLength && !subject.Any(char.IsControl);

    private static string SchemaIdentity(IParsedSchema parsed, IReadOnlyList<SchemaReference> references) =>
        $"{RegistryNames.Name(parsed.Type)}\n{parsed.Canonical}\n{ReferencesIdentity(references)}";

    private static string ReferencesIdentity(IReadOnlyList<SchemaReference> references) =>
        string.Join('\n', references.Select(r => $"{r.Name}|{r.Subject}|{r.Version}"));

    private static string FullIdentity(string schemaIdentity, SchemaMetadata? metadata, string? ruleSet) =>
        $"{schemaIdentity}\n{metadata?.IdentityText()}\n{ruleSet}";

    [LoggerMessage(Level = LogLevel.Information, Message = "Schema registry loaded {Records} records: {Subjects} subjects, highest id {MaxId}")]
    private partial void LogLoaded(int records, int subjects, int maxId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Registered subject {Subject} version {Version} with schema id {Id}")]
    private partial void LogRegistered(string subject, int version, int id);

    [LoggerMessage(Level = LogLevel.Information, Message = "Deleted subject {Subject} (permanent: {Permanent}), {Count} versions")]
    private partial void LogSubjectDeleted(string subject, bool permanent, int count);

    [LoggerMessage(Level = LogLevel.Error, Message = "Storing a registry change failed")]
    private partial void LogStoreFailed(Exception error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Skipped an unreadable registry record: {Reason}")]
    private partial void LogBadRecord(string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Reason}; it matches only its exact text")]
    private partial void LogUnparsable(string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Schema registry indexed {Count} stored schemas by content in {Milliseconds:F0} ms")]
    private partial void LogIndexed(int count, double milliseconds);
}
