using Microsoft.Extensions.Logging.Abstractions;
using SharedLog.Contracts;
using SharedLog.Contracts.Formats.Json;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Tests;

/// <summary>
/// The registry's own rules (ids, versions, levels, deletes, modes, replay), independent of any
/// schema language: a field-set format stands in for Avro so each verdict is obvious from the test.
/// </summary>
public class SchemaRegistryTests
{
    /// <summary>"a,b?" = fields a (required) and b (optional). A reader can read a writer when every required reader field is written.</summary>
    private sealed class FieldSetFormat : ISchemaFormat
    {
        public SchemaType Type => SchemaType.Avro;

        /// <summary>Fault injection: a parse of exactly <see cref="HeldText"/> waits for this (a schema that takes long to parse).</summary>
        public ManualResetEventSlim? Hold { get; init; }

        public string? HeldText { get; set; }

        /// <summary>Fault injection: a parse of exactly this text fails as a parser's own bug would.</summary>
        public string? BrokenText { get; init; }

        /// <summary>Completes when a parse is waiting on <see cref="Hold"/>.</summary>
        public TaskCompletionSource Holding { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        private sealed record Parsed(string Text, string Canonical, IReadOnlyList<ResolvedReference> References, string[] Fields) : IParsedSchema
        {
            public SchemaType Type => SchemaType.Avro;
        }

        public IParsedSchema Parse(string schemaText, IReadOnlyList<ResolvedReference> references, bool normalize)
        {
            if (Hold is not null && schemaText == HeldText)
            {
                Holding.TrySetResult();
                Assert.True(Hold.Wait(TimeSpan.FromSeconds(60)), "the held parse was not released");
            }

            if (schemaText == BrokenText)
            {
                throw new InvalidOperationException("a parser bug");
            }

            if (schemaText.Contains('!', StringComparison.Ordinal))
            {
                throw new InvalidSchemaException("'!' is not allowed");
            }

            string[] fields = [.. schemaText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Order(StringComparer.Ordinal)];
            string canonical = string.Join(',', fields);
            return new Parsed(normalize ? canonical : schemaText, canonical, references, fields);
        }

        public IReadOnlyList<string> CheckCompatibility(IParsedSchema reader, IParsedSchema writer)
        {
            string[] written = [.. ((Parsed)writer).Fields.Select(f => f.TrimEnd('?'))];
            return [.. ((Parsed)reader).Fields.Where(f => !f.EndsWith('?') && !written.Contains(f)).Select(f => $"reader field '{f}' is missing from the writer and has no default")];
        }
    }

    /// <summary>An in-memory journal whose appends can be made to fail (fault injection).</summary>
    private sealed class MemoryJournal : IJournal
    {
        private readonly InMemoryJournal _inner = new();

        public bool Fail { get; set; }

        /// <summary>When set, an append is stored at once but reported durable only once this completes (a slow commit).</summary>
        public TaskCompletionSource? Commit { get; set; }

        /// <summary>Completes when an append is waiting for <see cref="Commit"/>.</summary>
        public TaskCompletionSource Committing { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async ValueTask AppendAsync(IReadOnlyList<JournalEntry> entries, CancellationToken cancellationToken)
        {
            if (Fail)
            {
                throw new IOException("disk gone");
            }

            await _inner.AppendAsync(entries, CancellationToken.None);
            if (Commit is { } commit)
            {
                Committing.TrySetResult();
                await commit.Task.WaitAsync(cancellationToken);
            }
        }

        public IAsyncEnumerable<JournalEntry> ReadAllAsync(CancellationToken cancellationToken) => _inner.ReadAllAsync(cancellationToken);
    }

    private static async Task<SchemaRegistry> OpenAsync(MemoryJournal journal)
    {
        var registry = new SchemaRegistry([new FieldSetFormat()], journal, NullLogger<SchemaRegistry>.Instance);
        await registry.LoadAsync(CancellationToken.None);
        return registry;
    }

    private static SchemaRequest Fields(string fields) => new(fields, SchemaType.Avro, []);

    private static async Task<int> ErrorOfAsync(Func<Task> action) =>
        (await Assert.ThrowsAsync<SchemaRegistryException>(action)).ErrorCode;

    [Fact]
    public async Task AStoredSchemaRecordKeepsTheSchemasQuotesShortAndReadsBack()
    {
        // From a review: the journal's JSON wrote each quote of a schema as \u0022, so a record took about twice the schema's
        // size in the WAL, the object store and the log cache.
        var journal = new InMemoryJournal();
        const string schema = "a b \"c\" <d> +e é";
        using (var registry = new SchemaRegistry([new FieldSetFormat()], journal, NullLogger<SchemaRegistry>.Instance))
        {
            await registry.LoadAsync(CancellationToken.None);
            await registry.RegisterAsync("quoted", Fields(schema), CancellationToken.None);
        }

        string record = System.Text.Encoding.UTF8.GetString(Assert.Single(journal.Entries, e => e.Value is not null && System.Text.Encoding.UTF8.GetString(e.Key).Contains("SCHEMA", StringComparison.Ordinal)).Value!);
        Assert.Contains("a b \\\"c\\\" <d> +e é", record, StringComparison.Ordinal);
        Assert.DoesNotContain("\\u00", record, StringComparison.Ordinal);

        using var reopened = new SchemaRegistry([new FieldSetFormat()], journal, NullLogger<SchemaRegistry>.Instance);
        await reopened.LoadAsync(CancellationToken.None);
        Assert.Equal(schema, reopened.ParsedById(1)!.Text);
    }

    [Fact]
    public async Task ARegistrationItsCallerGaveUpOnWhileItWasBeingStoredStillTakesItsIdInMemory()
    {
        // The record reached the journal before the caller went away: memory must hold it too, or the next schema is
        // handed the same id, and after a restart that id names the first schema for the second subject's records.
        var journal = new MemoryJournal { Commit = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        using SchemaRegistry registry = await OpenAsync(journal);
        using var givingUp = new CancellationTokenSource();
        Task<RegisteredSchema> first = registry.RegisterAsync("a", Fields("a1"), givingUp.Token);
        await journal.Committing.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await givingUp.CancelAsync();
        journal.Commit.SetResult();
        RegisteredSchema stored = await first.WaitAsync(TimeSpan.FromSeconds(30));

        journal.Commit = null;
        RegisteredSchema second = await registry.RegisterAsync("b", Fields("b1"), CancellationToken.None);
        Assert.NotEqual(stored.Id, second.Id);
        Assert.Equal(1, (await registry.RegisterAsync("a", Fields("a1"), CancellationToken.None)).Version);

        using SchemaRegistry restarted = await OpenAsync(journal);
        Assert.Equal("b1", restarted.ParsedById(second.Id)!.Canonical);
        Assert.Equal("a1", restarted.ParsedById(stored.Id)!.Canonical);
    }

    [Fact]
    public async Task SameSchemaGetsTheSameIdAndVersionAndIsSharedAcrossSubjects()
    {
        using SchemaRegistry registry = await OpenAsync(new MemoryJournal());
        RegisteredSchema first = await registry.RegisterAsync("s", Fields("a,b"), CancellationToken.None);
        RegisteredSchema again = await registry.RegisterAsync("s", Fields("b, a"), CancellationToken.None);
        RegisteredSchema elsewhere = await registry.RegisterAsync("t", Fields("a,b"), CancellationToken.None);

        Assert.Equal((1, 1), (first.Id, first.Version));
        Assert.Equal((1, 1), (again.Id, again.Version));
        Assert.Equal((1, 1), (elsewhere.Id, elsewhere.Version));
        Assert.Equal([("s", 1), ("t", 1)], registry.UsagesOf(1, includeDeleted: false));
    }

    [Fact]
    public async Task ASchemaRegisteredAgainAfterItsVersionWasSoftDeletedReplacesThatVersionForGood()
    {
        var journal = new MemoryJournal();
        using (SchemaRegistry registry = await OpenAsync(journal))
        {
            RegisteredSchema first = await registry.RegisterAsync("s", Fields("a"), CancellationToken.None);
            await registry.RegisterAsync("s", Fields("a,b?"), CancellationToken.None);
            await registry.DeleteVersionAsync("s", "1", permanent: false, CancellationToken.None);
            RegisteredSchema again = await registry.RegisterAsync("s", Fields("a"), CancellationToken.None);

            Assert.Equal((first.Id, 3), (again.Id, again.Version));
            Assert.Equal([2, 3], registry.Versions("s", true));
        }

        using SchemaRegistry reloaded = await OpenAsync(journal);
        Assert.Equal([2, 3], reloaded.Versions("s", true));
    }

    [Fact]
    public async Task RuleSetsSurviveAReloadFromTheJournalAndStayPartOfTheVersionsIdentity()
    {
        var journal = new MemoryJournal();
        string rules = RuleSets.Canonical(System.Text.Json.Nodes.JsonNode.Parse("""{"domainRules":[{"type":"CEL","name":"r","expr":"true"}]}""")!.AsObject())!;
        using (SchemaRegistry registry = await OpenAsync(journal))
        {
            await registry.RegisterAsync("s", Fields("a"), CancellationToken.None);
            Assert.Equal(2, (await registry.RegisterAsync("s", Fields("a") with { RuleSet = rules }, CancellationToken.None)).Version);
        }

        using SchemaRegistry reloaded = await OpenAsync(journal);
        Assert.Equal(rules, reloaded.GetVersion("s", "2", includeDeleted: false).RuleSet);
        Assert.Null(reloaded.GetVersion("s", "1", includeDeleted: false).RuleSet);
        Assert.Equal(2, (await reloaded.RegisterAsync("s", Fields("a"), CancellationToken.None)).Version); // carried over: same version
        Assert.Equal(2, (await reloaded.RegisterAsync("s", Fields("a") with { RuleSet = rules }, CancellationToken.None)).Version);
    }

    [Theory]
    // level, v1, v2, candidate, compatible
    [InlineData(CompatibilityLevel.Backward, "a", "a,b?", "b", true)] // only the latest (a,b?) is checked; it writes b
    [InlineData(CompatibilityLevel.BackwardTransitive, "a", "a,b?", "b", false)] // v1 does not write b
    [InlineData(CompatibilityLevel.Forward, "a", "a,b?", "b", false)] // v2 as reader needs a, which the candidate does not write
    [InlineData(CompatibilityLevel.Forward, "a", "a,b?", "a,c", true)]
    [InlineData(CompatibilityLevel.ForwardTransitive, "x?", "a", "b", false)] // v2 reader needs a
    [InlineData(CompatibilityLevel.Full, "a", "a,b?", "a,b?,c?", true)]
    [InlineData(CompatibilityLevel.Full, "a", "a,b?", "a,c", false)] // backward: reader c not written by v2
    [InlineData(CompatibilityLevel.FullTransitive, "a,b?", "a,b?,c?", "a,c?", true)]
    [InlineData(CompatibilityLevel.FullTransitive, "a", "a,b?", "a,b", false)] // v1 does not write b
    [InlineData(CompatibilityLevel.None, "a", "b", "c", true)]
    public async Task LevelsComposeTheDirectedCheck(CompatibilityLevel level, string v1, string v2, string candidate, bool compatible)
    {
        using SchemaRegistry registry = await OpenAsync(new MemoryJournal());
        await registry.SetCompatibilityAsync("s", CompatibilityLevel.None, CancellationToken.None);
        await registry.RegisterAsync("s", Fields(v1), CancellationToken.None);
        await registry.RegisterAsync("s", Fields(v2), CancellationToken.None);
        await registry.SetCompatibilityAsync("s", level, CancellationToken.None);

        CompatibilityResult result = registry.CheckCompatibility("s", null, Fields(candidate));
        Assert.Equal(compatible, result.IsCompatible);
        if (compatible)
        {
            Assert.Equal(3, (await registry.RegisterAsync("s", Fields(candidate), CancellationToken.None)).Version);
        }
        else
        {
            Assert.Contains(result.Messages, m => m.Contains("missing from the writer", StringComparison.Ordinal));
            Assert.Equal(RegistryErrorCodes.IncompatibleSchema, await ErrorOfAsync(() => registry.RegisterAsync("s", Fields(candidate), CancellationToken.None)));
            Assert.Equal([1, 2], registry.Versions("s", includeDeleted: false));
        }
    }

    [Fact]
    public async Task SoftDeletedVersionsAreNotCheckedAndIdsAreNeverReused()
    {
        var journal = new MemoryJournal();
        using SchemaRegistry registry = await OpenAsync(journal);
        await registry.SetCompatibilityAsync(null, CompatibilityLevel.BackwardTransitive, CancellationToken.None);
        await registry.RegisterAsync("s", Fields("a"), CancellationToken.None);
        await registry.RegisterAsync("s", Fields("a,b?"), CancellationToken.None);
        Assert.False(registry.CheckCompatibility("s", null, Fields("b")).IsCompatible);
        await registry.DeleteVersionAsync("s", "1", permanent: false, CancellationToken.None);
        Assert.True(registry.CheckCompatibility("s", null, Fields("b")).IsCompatible);

        await registry.DeleteSubjectAsync("s", permanent: false, CancellationToken.None);
        await registry.DeleteSubjectAsync("s", permanent: true, CancellationToken.None);
        Assert.Equal(RegistryErrorCodes.SchemaNotFound, Assert.Throws<SchemaRegistryException>(() => registry.GetById(2)).ErrorCode);

        // After a restart the highest id given out is still known.
        using SchemaRegistry reopened = await OpenAsync(journal);
        Assert.Equal(3, (await reopened.RegisterAsync("s", Fields("z"), CancellationToken.None)).Id);
        Assert.Equal(1, reopened.GetVersion("s", "latest", includeDeleted: false).Version);
    }

    [Fact]
    public async Task ReplayRebuildsSubjectsConfigsAndModes()
    {
        var journal = new MemoryJournal();
        using (SchemaRegistry registry = await OpenAsync(journal))
        {
            await registry.RegisterAsync("s", Fields("a"), CancellationToken.None);
            await registry.RegisterAsync("s", Fields("a,b?"), CancellationToken.None);
            await registry.RegisterAsync("t", Fields("c"), CancellationToken.None);
            await registry.DeleteVersionAsync("s", "1", permanent: false, CancellationToken.None);
            await registry.SetCompatibilityAsync("t", CompatibilityLevel.Full, CancellationToken.None);
            await registry.SetCompatibilityAsync(null, CompatibilityLevel.Forward, CancellationToken.None);
            await registry.SetModeAsync("t", RegistryMode.ReadOnly, force: false, CancellationToken.None);
        }

        using SchemaRegistry replayed = await OpenAsync(journal);
        Assert.Equal(["s", "t"], replayed.Subjects(includeDeleted: false, prefix: null));
        Assert.Equal([2], replayed.Versions("s", includeDeleted: false));
        Assert.Equal([1, 2], replayed.Versions("s", includeDeleted: true));
        Assert.Equal(CompatibilityLevel.Full, replayed.SubjectCompatibility("t"));
        Assert.Equal(CompatibilityLevel.Forward, replayed.GlobalCompatibility);
        Assert.Equal(RegistryMode.ReadOnly, replayed.SubjectMode("t"));
        Assert.Equal(RegistryErrorCodes.OperationNotPermitted, await ErrorOfAsync(() => replayed.RegisterAsync("t", Fields("c,d?"), CancellationToken.None)));
        Assert.Equal("c", replayed.GetById(3).Schema);
    }

    [Fact]
    public async Task AFailedJournalWriteChangesNothing()
    {
        var journal = new MemoryJournal();
        using SchemaRegistry registry = await OpenAsync(journal);
        await registry.RegisterAsync("s", Fields("a"), CancellationToken.None);
        journal.Fail = true;
        Assert.Equal(RegistryErrorCodes.StoreError, await ErrorOfAsync(() => registry.RegisterAsync("s", Fields("a,b?"), CancellationToken.None)));
        Assert.Equal(RegistryErrorCodes.StoreError, await ErrorOfAsync(() => registry.SetCompatibilityAsync(null, CompatibilityLevel.None, CancellationToken.None)));
        Assert.Equal([1], registry.Versions("s", includeDeleted: false));
        Assert.Equal(CompatibilityLevel.Backward, registry.GlobalCompatibility);

        journal.Fail = false;
        Assert.Equal(2, (await registry.RegisterAsync("s", Fields("a,b?"), CancellationToken.None)).Id);
    }

    [Fact]
    public async Task ImportModeTakesGivenIdsAndVersionsWithoutChecks()
    {
        using SchemaRegistry registry = await OpenAsync(new MemoryJournal());
        Assert.Equal(RegistryErrorCodes.OperationNotPermitted, await ErrorOfAsync(() => registry.RegisterAsync("s", Fields("a") with { Id = 40 }, CancellationToken.None)));
        await registry.SetModeAsync(null, RegistryMode.Import, force: false, CancellationToken.None);
        await registry.RegisterAsync("s", Fields("a") with { Id = 40, Version = 5 }, CancellationToken.None);
        await registry.RegisterAsync("s", Fields("z") with { Id = 41, Version = 6 }, CancellationToken.None);
        Assert.Equal(RegistryErrorCodes.OperationNotPermitted, await ErrorOfAsync(() => registry.RegisterAsync("t", Fields("q") with { Id = 40 }, CancellationToken.None)));

        // As Confluent: a new schema without its id is refused in IMPORT; one already under the subject gets its id.
        Assert.Equal(RegistryErrorCodes.OperationNotPermitted, await ErrorOfAsync(() => registry.RegisterAsync("s", Fields("n"), CancellationToken.None)));
        Assert.Equal(41, (await registry.RegisterAsync("s", Fields("z"), CancellationToken.None)).Id);

        await registry.SetModeAsync(null, RegistryMode.ReadWrite, force: false, CancellationToken.None);
        Assert.Equal((42, 7), ((await registry.RegisterAsync("s", Fields("z,y?"), CancellationToken.None)) is var r ? (r.Id, r.Version) : default));
        Assert.Equal(RegistryErrorCodes.OperationNotPermitted, await ErrorOfAsync(() => registry.SetModeAsync(null, RegistryMode.Import, force: false, CancellationToken.None)));
    }

    [Fact]
    public async Task AnImportOfTheLargestIdOrVersionLeavesNewSchemasRefusedNotGivenANegativeIdOrVersion()
    {
        using SchemaRegistry registry = await OpenAsync(new MemoryJournal());
        await registry.SetModeAsync(null, RegistryMode.Import, force: false, CancellationToken.None);
        await registry.RegisterAsync("imp", Fields("a") with { Id = int.MaxValue, Version = int.MaxValue }, CancellationToken.None);
        await registry.SetModeAsync(null, RegistryMode.ReadWrite, force: false, CancellationToken.None);

        // New ids count up from the largest: none is left, which is said rather than wrapping to -2147483648 for every schema.
        var noId = await Assert.ThrowsAsync<SchemaRegistryException>(() => registry.RegisterAsync("x2", Fields("b"), CancellationToken.None));
        Assert.Equal(RegistryErrorCodes.OperationNotPermitted, noId.ErrorCode);
        Assert.Contains("No schema id is left", noId.Message, StringComparison.Ordinal);
        Assert.Equal(40401, Assert.Throws<SchemaRegistryException>(() => registry.Versions("x2", includeDeleted: true)).ErrorCode);

        // A schema that has an id is still registered under another subject; under "imp", after version 2147483647, no
        // version is left (the next one wrapped to a negative number).
        Assert.Equal(int.MaxValue, (await registry.RegisterAsync("other", Fields("a"), CancellationToken.None)).Id);
        await registry.SetModeAsync(null, RegistryMode.Import, force: true, CancellationToken.None);
        await registry.RegisterAsync("side", Fields("q") with { Id = 6, Version = 1 }, CancellationToken.None);
        await registry.SetModeAsync(null, RegistryMode.ReadWrite, force: false, CancellationToken.None);
        await registry.SetCompatibilityAsync("imp", CompatibilityLevel.None, CancellationToken.None);
        var lastVersion = await Assert.ThrowsAsync<SchemaRegistryException>(() => registry.RegisterAsync("imp", Fields("q"), CancellationToken.None));
        Assert.Equal(RegistryErrorCodes.InvalidVersion, lastVersion.ErrorCode);
        Assert.Contains("no version is left", lastVersion.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ARetriedImportIsAnsweredWithTheImportedSchema()
    {
        using SchemaRegistry registry = await OpenAsync(new MemoryJournal());
        await registry.SetModeAsync(null, RegistryMode.Import, force: false, CancellationToken.None);
        await registry.RegisterAsync("s", Fields("a") with { Id = 7, Version = 1 }, CancellationToken.None);

        // As Confluent's registerOrForward: the same schema with the same id (a migration tool's retry) is answered, with
        // or without its version, and makes no new version; in READWRITE too.
        Assert.Equal((7, 1), (await registry.RegisterAsync("s", Fields("a") with { Id = 7, Version = 1 }, CancellationToken.None)) is var r1 ? (r1.Id, r1.Version) : default);
        Assert.Equal((7, 1), (await registry.RegisterAsync("s", Fields("a") with { Id = 7 }, CancellationToken.None)) is var r2 ? (r2.Id, r2.Version) : default);
        Assert.Equal([1], registry.Versions("s", includeDeleted: true));
        await registry.SetModeAsync(null, RegistryMode.ReadWrite, force: false, CancellationToken.None);
        Assert.Equal(7, (await registry.RegisterAsync("s", Fields("a") with { Id = 7 }, CancellationToken.None)).Id);
        Assert.Equal(RegistryErrorCodes.OperationNotPermitted, await ErrorOfAsync(() => registry.RegisterAsync("s", Fields("a") with { Id = 8 }, CancellationToken.None)));
    }

    [Fact]
    public async Task AnImportedVersionDoesNotTakeThePreviousVersionsMetadataOrRules()
    {
        using SchemaRegistry registry = await OpenAsync(new MemoryJournal());
        await registry.SetModeAsync(null, RegistryMode.Import, force: false, CancellationToken.None);
        var owned = new SchemaMetadata { Properties = new() { ["owner"] = "x" } };
        await registry.RegisterAsync("s", Fields("a") with { Id = 1, Version = 1, Metadata = owned, RuleSet = "{\"domainRules\":[]}" }, CancellationToken.None);
        await registry.RegisterAsync("s", Fields("a,b?") with { Id = 2, Version = 2 }, CancellationToken.None);

        RegisteredSchema second = registry.GetVersion("s", "2", includeDeleted: false);
        Assert.Null(second.Metadata);
        Assert.Null(second.RuleSet);

        // An id another subject holds is imported under this one when the schema is the same.
        await registry.RegisterAsync("t", Fields("c") with { Id = 3, Version = 1 }, CancellationToken.None);
        Assert.Equal(3, (await registry.RegisterAsync("s", Fields("c") with { Id = 3, Version = 4 }, CancellationToken.None)).Id);
    }

    [Fact]
    public async Task ImportModeIsCheckedOnlyWhenSwitchingIntoItAndSoftDeletedSubjectsDoNotCount()
    {
        using SchemaRegistry registry = await OpenAsync(new MemoryJournal());
        await registry.RegisterAsync("s", Fields("a"), CancellationToken.None);
        await registry.DeleteSubjectAsync("s", permanent: false, CancellationToken.None);

        // As Confluent's setMode: only live schemas stop the switch, and the soft-deleted ones are then removed for good,
        // so an import may take their version numbers.
        await registry.SetModeAsync(null, RegistryMode.Import, force: false, CancellationToken.None);
        Assert.Equal(RegistryErrorCodes.SubjectNotFound, Assert.Throws<SchemaRegistryException>(() => registry.Versions("s", includeDeleted: true)).ErrorCode);
        await registry.RegisterAsync("s", Fields("z") with { Id = 20, Version = 1 }, CancellationToken.None);

        // Saying IMPORT again (a resumed migration) is not a switch.
        await registry.SetModeAsync(null, RegistryMode.Import, force: false, CancellationToken.None);
        Assert.Equal(1, registry.GetVersion("s", "1", includeDeleted: false).Version);
    }

    [Fact]
    public async Task ForcingImportModeRemovesNothing()
    {
        using SchemaRegistry registry = await OpenAsync(new MemoryJournal());
        await registry.RegisterAsync("s", Fields("a"), CancellationToken.None);
        await registry.RegisterAsync("s", Fields("a,b?"), CancellationToken.None);
        await registry.DeleteVersionAsync("s", "2", permanent: false, CancellationToken.None);

        // As Confluent's setMode: with force the switch neither checks nor removes anything; a soft-deleted version (and
        // its schema id, which old records still carry) stays.
        await registry.SetModeAsync(null, RegistryMode.Import, force: true, CancellationToken.None);
        Assert.Equal([1, 2], registry.Versions("s", includeDeleted: true));
        Assert.True(registry.GetVersion("s", "2", includeDeleted: true).Deleted);

        // And in IMPORT a version is taken as sent: one without schema text is not filled from the latest.
        Assert.Equal(RegistryErrorCodes.InvalidSchema, await ErrorOfAsync(() => registry.RegisterAsync("s", new SchemaRequest(string.Empty, SchemaType.Avro, []) with { Id = 9, Version = 3, RuleSet = "{\"domainRules\":[]}" }, CancellationToken.None)));
    }

    [Fact]
    public async Task LatestIsTheNewestLiveVersionEvenWhenDeletedOnesAreAskedFor()
    {
        using SchemaRegistry registry = await OpenAsync(new MemoryJournal());
        await registry.RegisterAsync("s", Fields("a"), CancellationToken.None);
        await registry.RegisterAsync("s", Fields("a,b?"), CancellationToken.None);
        Assert.Equal(2, await registry.DeleteVersionAsync("s", "latest", permanent: false, CancellationToken.None));

        // As Confluent: "latest" is version 1 now, live, so a permanent delete of it is refused (40407) instead of
        // removing the soft-deleted version 2 behind it.
        Assert.Equal(RegistryErrorCodes.VersionNotSoftDeleted, await ErrorOfAsync(() => registry.DeleteVersionAsync("s", "latest", permanent: true, CancellationToken.None)));
        Assert.Equal([1, 2], registry.Versions("s", includeDeleted: true));
        Assert.Equal(1, registry.GetVersion("s", "latest", includeDeleted: true).Version);
        Assert.Equal(2, await registry.DeleteVersionAsync("s", "2", permanent: true, CancellationToken.None));
    }

    [Fact]
    public async Task ReadOnlyModeRefusesCompatibilityChanges()
    {
        using SchemaRegistry registry = await OpenAsync(new MemoryJournal());
        await registry.SetCompatibilityAsync("s", CompatibilityLevel.Full, CancellationToken.None);
        await registry.SetModeAsync(null, RegistryMode.ReadOnly, force: false, CancellationToken.None);

        // As Confluent's updateConfig and deleteSubjectConfig: a frozen registry keeps its compatibility settings too.
        Assert.Equal(RegistryErrorCodes.OperationNotPermitted, await ErrorOfAsync(() => registry.SetCompatibilityAsync("s", CompatibilityLevel.None, CancellationToken.None)));
        Assert.Equal(RegistryErrorCodes.OperationNotPermitted, await ErrorOfAsync(() => registry.SetCompatibilityAsync(null, CompatibilityLevel.None, CancellationToken.None)));
        Assert.Equal(RegistryErrorCodes.OperationNotPermitted, await ErrorOfAsync(() => registry.DeleteCompatibilityAsync("s", CancellationToken.None)));
        Assert.Equal(RegistryErrorCodes.OperationNotPermitted, await ErrorOfAsync(() => registry.DeleteCompatibilityAsync(null, CancellationToken.None)));

        await registry.SetModeAsync(null, RegistryMode.ReadWrite, force: false, CancellationToken.None);
        await registry.SetCompatibilityAsync("s", CompatibilityLevel.None, CancellationToken.None);
    }

    [Fact]
    public async Task ErrorsUseConfluentsCodes()
    {
        using SchemaRegistry registry = await OpenAsync(new MemoryJournal());
        Assert.Equal(RegistryErrorCodes.InvalidSchema, await ErrorOfAsync(() => registry.RegisterAsync("s", Fields("a!"), CancellationToken.None)));
        Assert.Equal(RegistryErrorCodes.InvalidSubject, await ErrorOfAsync(() => registry.RegisterAsync("bad\u0001", Fields("a"), CancellationToken.None)));
        Assert.Equal(RegistryErrorCodes.SubjectNotFound, Assert.Throws<SchemaRegistryException>(() => registry.Versions("s", false)).ErrorCode);
        await registry.RegisterAsync("s", Fields("a"), CancellationToken.None);
        Assert.Equal(RegistryErrorCodes.InvalidVersion, Assert.Throws<SchemaRegistryException>(() => registry.GetVersion("s", "x", false)).ErrorCode);
        Assert.Equal(RegistryErrorCodes.VersionNotFound, Assert.Throws<SchemaRegistryException>(() => registry.GetVersion("s", "9", false)).ErrorCode);
        Assert.Equal(RegistryErrorCodes.SchemaNotFound, (await Assert.ThrowsAsync<SchemaRegistryException>(() => registry.LookupAsync("s", Fields("q"), false, CancellationToken.None))).ErrorCode);
        Assert.Equal(RegistryErrorCodes.SubjectNotSoftDeleted, await ErrorOfAsync(() => registry.DeleteSubjectAsync("s", permanent: true, CancellationToken.None)));
        Assert.Equal(RegistryErrorCodes.SubjectNotFound, await ErrorOfAsync(() => registry.DeleteCompatibilityAsync("s", CancellationToken.None))); // as Confluent: DELETE /config/{subject} of an unset level
        Assert.Equal(RegistryErrorCodes.InvalidSchema, await ErrorOfAsync(() => registry.RegisterAsync("r", Fields("b") with { References = [new SchemaReference("x", "nowhere", 1)] }, CancellationToken.None)));
    }
    /// <summary>A JSON schema of <paramref name="fields"/> string properties, field i matching the pattern <paramref name="pattern"/>(i).</summary>
    private static SchemaRequest JsonWithPatterns(int fields, Func<int, string> pattern) => new(
        "{\"type\":\"object\",\"properties\":{" + string.Join(',', Enumerable.Range(0, fields).Select(i => $"\"f{i}\":{{\"type\":\"string\",\"pattern\":\"{pattern(i)}\"}}")) + "}}",
        SchemaType.Json,
        []);

    [Fact]
    public async Task AStartDoesNotParseStoredSchemasAndChangesWaitUntilTheyAreIndexedByContent()
    {
        // A review stored ~170 hostile schemas: the next start parsed them all before the broker listened (87.6 s, 1.96 GB).
        var journal = new MemoryJournal();
        using (SchemaRegistry first = await OpenAsync(journal))
        {
            await first.RegisterAsync("s", Fields("a,slow?"), CancellationToken.None);
            await first.RegisterAsync("t", Fields("b"), CancellationToken.None);
        }

        using var held = new ManualResetEventSlim(false);
        var format = new FieldSetFormat { Hold = held, HeldText = "a,slow?" };
        using var registry = new SchemaRegistry([format], journal, NullLogger<SchemaRegistry>.Instance);
        await registry.LoadAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(20)); // the old load parsed inside, so never returned here
        Assert.Equal("a,slow?", registry.GetById(1).Schema);
        Assert.Equal([1], registry.Versions("s", includeDeleted: false));
        Assert.Equal("b", registry.GetVersion("t", "latest", includeDeleted: false).Schema);

        // Registering the same content under another subject must find its id, so it waits for the index (held here).
        Task<RegisteredSchema> sameContent = registry.RegisterAsync("u", Fields("slow?,a"), CancellationToken.None);
        Task<RegisteredSchema> lookup = registry.LookupAsync("t", Fields("b"), includeDeleted: false, CancellationToken.None);
        await format.Holding.Task.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.False(sameContent.IsCompleted);
        Assert.False(lookup.IsCompleted);
        Assert.False(registry.WhenIndexedAsync(CancellationToken.None).IsCompleted);

        held.Set();
        Assert.Equal(1, (await sameContent.WaitAsync(TimeSpan.FromSeconds(20))).Id);
        Assert.Equal(1, (await lookup.WaitAsync(TimeSpan.FromSeconds(20))).Version);
        Assert.Equal(3, (await registry.RegisterAsync("v", Fields("c"), CancellationToken.None)).Id); // new content: the next id
    }

    [Fact]
    public async Task AContentImportedUnderThreeIdsKeepsItsIdAcrossARestartAfterTheFirstIdIsDeletedForGood()
    {
        // From a review of the background index: deletes during the replay skipped the rule that the lowest id left takes
        // the content, so the restarted registry answered 7 where it had answered 5.
        var journal = new MemoryJournal();
        int before;
        using (SchemaRegistry live = await OpenAsync(journal))
        {
            await live.SetModeAsync(null, RegistryMode.Import, force: false, CancellationToken.None);
            await live.RegisterAsync("a", Fields("x") with { Id = 10, Version = 1 }, CancellationToken.None);
            await live.RegisterAsync("b", Fields("x") with { Id = 7, Version = 1 }, CancellationToken.None);
            await live.RegisterAsync("c", Fields("x") with { Id = 5, Version = 1 }, CancellationToken.None);
            await live.SetModeAsync(null, RegistryMode.ReadWrite, force: false, CancellationToken.None);
            await live.DeleteSubjectAsync("a", permanent: false, CancellationToken.None);
            await live.DeleteSubjectAsync("a", permanent: true, CancellationToken.None);
            before = (await live.RegisterAsync("d", Fields("x"), CancellationToken.None)).Id;
        }

        Assert.Equal(5, before);
        using SchemaRegistry restarted = await OpenAsync(journal);
        Assert.Equal(before, (await restarted.RegisterAsync("e", Fields("x"), CancellationToken.None)).Id);

        // And once more after deleting id 5 for good: the content goes to 7, before and after a restart.
        await restarted.DeleteSubjectAsync("c", permanent: false, CancellationToken.None);
        await restarted.DeleteSubjectAsync("c", permanent: true, CancellationToken.None);
        await restarted.DeleteSubjectAsync("d", permanent: false, CancellationToken.None);
        await restarted.DeleteSubjectAsync("d", permanent: true, CancellationToken.None);
        await restarted.DeleteSubjectAsync("e", permanent: false, CancellationToken.None);
        await restarted.DeleteSubjectAsync("e", permanent: true, CancellationToken.None);
        Assert.Equal(7, (await restarted.RegisterAsync("f", Fields("x"), CancellationToken.None)).Id);
        using SchemaRegistry again = await OpenAsync(journal);
        Assert.Equal(7, (await again.RegisterAsync("g", Fields("x"), CancellationToken.None)).Id);
    }

    [Fact]
    public async Task AStoredSchemaParsedForItsFirstCompatibilityCheckDoesNotHoldOtherReads()
    {
        // From a review: stored schemas are parsed on first use, and a compatibility check parsed them under the state lock,
        // so every read (the gate's ParsedById of a schema parsed long before too) waited for that parse.
        var journal = new MemoryJournal();
        using (SchemaRegistry first = await OpenAsync(journal))
        {
            await first.RegisterAsync("s", Fields("a,big?"), CancellationToken.None);
            await first.RegisterAsync("t", Fields("b"), CancellationToken.None);
        }

        using var held = new ManualResetEventSlim(false);
        var format = new FieldSetFormat { Hold = held };
        using var registry = new SchemaRegistry([format], journal, NullLogger<SchemaRegistry>.Instance);
        await registry.LoadAsync(CancellationToken.None);
        await registry.WhenIndexedAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.NotNull(registry.ParsedById(2));

        format.HeldText = "a,big?";
        Task<CompatibilityResult> check = Task.Run(() => registry.CheckCompatibility("s", null, Fields("a")));
        await format.Holding.Task.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.NotNull(await Task.Run(() => registry.ParsedById(2)).WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(1, await Task.Run(() => registry.VersionUnder(2, "t")).WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.False(check.IsCompleted);

        held.Set();
        Assert.True((await check.WaitAsync(TimeSpan.FromSeconds(20))).IsCompatible);
    }

    private static async Task<SchemaRegistry> SoftDeletedReferrerWithItsReferenceGoneAsync(MemoryJournal journal)
    {
        SchemaRegistry registry = await OpenAsync(journal);
        await registry.RegisterAsync("r", Fields("x"), CancellationToken.None); // id 1
        await registry.RegisterAsync("a", Fields("y") with { References = [new SchemaReference("R", "r", 1)] }, CancellationToken.None); // id 2
        await registry.DeleteVersionAsync("a", "1", permanent: false, CancellationToken.None);
        await registry.DeleteVersionAsync("r", "1", permanent: false, CancellationToken.None);
        await registry.DeleteVersionAsync("r", "1", permanent: true, CancellationToken.None); // allowed: only live referrers count
        return registry;
    }

    [Fact]
    public async Task ASoftDeletedReferrerWhoseReferenceWasDeletedForGoodKeepsItsIdentityAcrossARestart()
    {
        // From a review of the background index: it resolved references against the state at the end of the replay, so
        // this referrer was indexed by its text only after a restart, and its content took a new id.
        SchemaRequest referrer = Fields("y") with { References = [new SchemaReference("R", "r", 1)] };
        using SchemaRegistry live = await SoftDeletedReferrerWithItsReferenceGoneAsync(new MemoryJournal());
        await live.RegisterAsync("r", Fields("x"), CancellationToken.None);
        Assert.Equal(2, (await live.LookupAsync("a", referrer, includeDeleted: true, CancellationToken.None)).Id);
        Assert.Equal(2, (await live.RegisterAsync("a", referrer, CancellationToken.None)).Id);

        var journal = new MemoryJournal();
        (await SoftDeletedReferrerWithItsReferenceGoneAsync(journal)).Dispose();
        using SchemaRegistry restarted = await OpenAsync(journal);
        Assert.NotNull(restarted.ParsedById(2)); // parsed with its references as they were, as before the restart
        await restarted.RegisterAsync("r", Fields("x"), CancellationToken.None);
        Assert.Equal(2, (await restarted.LookupAsync("a", referrer, includeDeleted: true, CancellationToken.None)).Id);
        Assert.Equal(2, (await restarted.RegisterAsync("a", referrer, CancellationToken.None)).Id);
    }

    [Fact]
    public async Task AStoredSchemaThatFailedToParseIsNotParsedAgainByLaterChecks()
    {
        // From a review: a compatibility check parsed a stored schema that fails (say, one stored before a newer parser
        // limit, which may take seconds to refuse) again under the state lock each time, holding every registry read.
        var journal = new MemoryJournal();
        using (SchemaRegistry first = await OpenAsync(journal))
        {
            await first.RegisterAsync("s", Fields("a,big?"), CancellationToken.None);
        }

        using var held = new ManualResetEventSlim(false);
        var format = new FieldSetFormat { Hold = held, BrokenText = "a,big?" };
        using var registry = new SchemaRegistry([format], journal, NullLogger<SchemaRegistry>.Instance);
        await registry.LoadAsync(CancellationToken.None);
        await registry.WhenIndexedAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(20)); // the index's parse failed

        format.HeldText = "a,big?"; // any further parse of it would wait here
        SchemaRegistryException refused = await Assert.ThrowsAsync<SchemaRegistryException>(
            () => Task.Run(() => registry.CheckCompatibility("s", null, Fields("a"))).WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal(RegistryErrorCodes.StoreError, refused.ErrorCode);
        Assert.Equal(RegistryErrorCodes.StoreError, (await Assert.ThrowsAsync<SchemaRegistryException>(
            () => registry.RegisterAsync("s", Fields("a"), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(20)))).ErrorCode);
        Assert.False(format.Holding.Task.IsCompleted);
    }

    [Fact]
    public async Task AStoredSchemaTheParserFailsOnIsIndexedByItsTextAndReportedAsAStoreError()
    {
        var journal = new MemoryJournal();
        using (SchemaRegistry first = await OpenAsync(journal))
        {
            await first.RegisterAsync("s", Fields("boom"), CancellationToken.None);
        }

        using var registry = new SchemaRegistry([new FieldSetFormat { BrokenText = "boom" }], journal, NullLogger<SchemaRegistry>.Instance);
        await registry.LoadAsync(CancellationToken.None);
        Assert.Equal(2, (await registry.RegisterAsync("t", Fields("ok"), CancellationToken.None)).Id);
        Assert.Equal("boom", registry.GetById(1).Schema);
        Assert.Equal(RegistryErrorCodes.StoreError, Assert.Throws<SchemaRegistryException>(() => registry.ParsedById(1)).ErrorCode);
    }

    [Fact]
    public async Task ARegistrationWaitingForTheIndexEndsWhenTheRegistryIsDisposed()
    {
        var journal = new MemoryJournal();
        using (SchemaRegistry first = await OpenAsync(journal))
        {
            await first.RegisterAsync("s", Fields("slow"), CancellationToken.None);
            await first.RegisterAsync("t", Fields("b"), CancellationToken.None);
        }

        using var held = new ManualResetEventSlim(false);
        var format = new FieldSetFormat { Hold = held, HeldText = "slow" };
        var registry = new SchemaRegistry([format], journal, NullLogger<SchemaRegistry>.Instance);
        await registry.LoadAsync(CancellationToken.None);
        await format.Holding.Task.WaitAsync(TimeSpan.FromSeconds(20));
        Task<RegisteredSchema> waiting = registry.RegisterAsync("u", Fields("c"), CancellationToken.None);
        registry.Dispose();
        held.Set();
        await Assert.ThrowsAnyAsync<Exception>(() => waiting.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.False(waiting.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task AJsonSchemaWithMoreDistinctPatternsThanTheLimitIsRefusedButOneStoredBeforeIsKept()
    {
        // From a hostile-schema review: each pattern becomes a linear-time regex of 0.1-0.5 MB; a schema of 3,000 took the
        // broker 4-7 s and 0.9 GB to build its validator.
        var journal = new MemoryJournal();
        using (var registry = new SchemaRegistry([new JsonSchemaFormat()], journal, NullLogger<SchemaRegistry>.Instance))
        {
            await registry.LoadAsync(CancellationToken.None);
            int limit = SchemaLimits.MaxJsonSchemaPatterns;
            SchemaRegistryException refused = await Assert.ThrowsAsync<SchemaRegistryException>(
                () => registry.RegisterAsync("many", JsonWithPatterns(limit + 1, i => $"^x{i}$"), CancellationToken.None));
            Assert.Equal(RegistryErrorCodes.InvalidSchema, refused.ErrorCode);
            Assert.Contains($"it uses {limit + 1} distinct regular expressions", refused.Message, StringComparison.Ordinal);

            // The limit counts distinct patterns: the same one in every field is one, and the limit itself is accepted.
            await registry.RegisterAsync("repeated", JsonWithPatterns(limit * 4, i => "^[a-z]+$"), CancellationToken.None);
            await registry.RegisterAsync("at-limit", JsonWithPatterns(limit, i => $"^x{i}$"), CancellationToken.None);
        }

        // A schema stored before the limit (written straight to the journal) still loads, and its id still answers.
        string storedText = JsonWithPatterns(SchemaLimits.MaxJsonSchemaPatterns * 2, i => $"^y{i}$").Schema;
        await journal.AppendAsync([RegistryRecords.SchemaVersion(new SchemaVersionValue { Subject = "older", Version = 1, Id = 100, SchemaType = "JSON", Schema = storedText }), RegistryRecords.IdHighWater(100)], CancellationToken.None);
        using var reopened = new SchemaRegistry([new JsonSchemaFormat()], journal, NullLogger<SchemaRegistry>.Instance);
        await reopened.LoadAsync(CancellationToken.None);
        Assert.Equal(storedText, reopened.GetById(100).Schema);
    }

    [Theory]
    [InlineData("message M { string a = 19000; }", "field 'M.a' in the schema has number 19000; numbers 19000 through 19999 are reserved")]
    [InlineData("message M { message N { string b = 19999; } N n = 1; }", "field 'M.N.b' in the schema has number 19999")]
    [InlineData("enum E { A = 0; B = 0; }\nmessage M { E e = 1; }", "enum 'E' in the schema gives 'B' the number 0 of 'A'")]
    [InlineData("message M { enum E { A = 0; B = 1; C = 1; } E e = 1; }", "enum 'M.E' in the schema gives 'C' the number 1 of 'B'; to allow that, declare 'option allow_alias = true;'")]
    public async Task AProtobufSchemaProtocRefusesIsRefusedButOneStoredBeforeStillLoads(string body, string reason)
    {
        // From a review: protobuf-net's parser took numbers in 19000-19999 and enum aliases without allow_alias, which protoc
        // and Confluent's registry refuse; with an alias, a record's value read as the first name in rules.
        string text = "syntax = \"proto3\";\npackage p;\n" + body;
        var journal = new MemoryJournal();
        using (var registry = new SchemaRegistry([new Formats.Protobuf.ProtobufSchemaFormat()], journal, NullLogger<SchemaRegistry>.Instance))
        {
            await registry.LoadAsync(CancellationToken.None);
            SchemaRegistryException refused = await Assert.ThrowsAsync<SchemaRegistryException>(() => registry.RegisterAsync("bad", new SchemaRequest(text, SchemaType.Protobuf, []), CancellationToken.None));
            Assert.Equal(RegistryErrorCodes.InvalidSchema, refused.ErrorCode);
            Assert.Contains(reason, refused.Message, StringComparison.Ordinal);

            // Protoc takes the numbers either side of the range, and aliases the enum allows.
            string allowed = "syntax = \"proto3\";\npackage p;\nmessage M { string a = 18999; string b = 20000; E e = 1; }\nenum E { option allow_alias = true; A = 0; B = 0; }";
            await registry.RegisterAsync("good", new SchemaRequest(allowed, SchemaType.Protobuf, []), CancellationToken.None);
        }

        // Stored before the check (written straight to the journal): it still loads, parses for the gate, and answers by id.
        await journal.AppendAsync([RegistryRecords.SchemaVersion(new SchemaVersionValue { Subject = "older", Version = 1, Id = 100, SchemaType = "PROTOBUF", Schema = text }), RegistryRecords.IdHighWater(100)], CancellationToken.None);
        using var reopened = new SchemaRegistry([new Formats.Protobuf.ProtobufSchemaFormat()], journal, NullLogger<SchemaRegistry>.Instance);
        await reopened.LoadAsync(CancellationToken.None);
        Assert.Equal(text, reopened.GetById(100).Schema);
        Assert.NotNull(reopened.ParsedById(100));

        // A serializer registers its schema again on every start, or looks it up: both still answer with its id.
        Assert.Equal((1, 100), await reopened.RegisterAsync("older", new SchemaRequest(text, SchemaType.Protobuf, []), CancellationToken.None) is var again ? (again.Version, again.Id) : default);
        Assert.Equal((1, 100), await reopened.LookupAsync("older", new SchemaRequest(text, SchemaType.Protobuf, []), includeDeleted: false, CancellationToken.None) is var found ? (found.Version, found.Id) : default);

        // Stored text is not new whatever the subject or metadata (a review: the check went by the full identity, so the text
        // registered again after a version with metadata, which it inherits, was refused as new).
        Assert.Equal(100, (await reopened.RegisterAsync("second", new SchemaRequest(text, SchemaType.Protobuf, []), CancellationToken.None)).Id);
        await reopened.SetCompatibilityAsync("older", CompatibilityLevel.None, CancellationToken.None);
        await reopened.RegisterAsync("older", new SchemaRequest("syntax = \"proto3\";\npackage p;\nmessage Other { string a = 1; }", SchemaType.Protobuf, [], new SchemaMetadata { Properties = new() { ["owner"] = "team" } }), CancellationToken.None);
        Assert.Equal(3, (await reopened.RegisterAsync("older", new SchemaRequest(text, SchemaType.Protobuf, []), CancellationToken.None)).Version);
    }

    [Fact]
    public async Task ASchemaWhoseReferencesImportMoreThanTheLimitInAllIsRefused()
    {
        // From a hostile-schema review: one 1 MB Protobuf schema imported under 40 names was parsed once per name (17 s and
        // 1.1 GB for one registration; the cap of 1,000 referenced files allowed about 27 GB).
        using var registry = new SchemaRegistry([new JsonSchemaFormat()], new MemoryJournal(), NullLogger<SchemaRegistry>.Instance);
        await registry.LoadAsync(CancellationToken.None);
        string large = "{\"description\":\"" + new string('x', 1_000_000) + "\"}";
        await registry.RegisterAsync("base", new SchemaRequest(large, SchemaType.Json, []), CancellationToken.None);
        SchemaRequest Importing(int names) => new("{\"type\":\"object\"}", SchemaType.Json, [.. Enumerable.Range(0, names).Select(i => new SchemaReference($"f{i}.json", "base", 1))]);

        SchemaRegistryException refused = await Assert.ThrowsAsync<SchemaRegistryException>(() => registry.RegisterAsync("five", Importing(5), CancellationToken.None));

        Assert.Equal(RegistryErrorCodes.InvalidSchema, refused.ErrorCode);
        Assert.Contains($"import hold more than {SchemaLimits.MaxReferencedChars} characters in all", refused.Message, StringComparison.Ordinal);
        await registry.RegisterAsync("four", Importing(4), CancellationToken.None);
    }

    [Fact]
    public async Task TheImportLimitCountsWhatEachFormatReadsWhateverTheOrderOfTheReferences()
    {
        // From a review of the limit: counted by name in another order than the Protobuf parser walks, a name bound to a
        // small schema at the top and to a 1 MB one deeper in counted the small one while the parser read the large one;
        // and Avro reads each schema once whatever its names, so eight 1 MB schemas under one name counted as one.
        using var protobuf = new SchemaRegistry([new Formats.Protobuf.ProtobufSchemaFormat()], new MemoryJournal(), NullLogger<SchemaRegistry>.Instance);
        await protobuf.LoadAsync(CancellationToken.None);
        string comment = "// " + new string('x', 1_000_000) + "\n";
        for (int i = 0; i < 5; i++)
        {
            await protobuf.RegisterAsync($"big{i}", new SchemaRequest($"syntax = \"proto3\";\npackage big{i};\nmessage Big {{ int32 a = 1; }}\n{comment}", SchemaType.Protobuf, []), CancellationToken.None);
            await protobuf.RegisterAsync($"wrap{i}", new SchemaRequest($"syntax = \"proto3\";\nimport \"x{i}.proto\";\n", SchemaType.Protobuf, [new SchemaReference($"x{i}.proto", $"big{i}", 1)]), CancellationToken.None);
        }

        await protobuf.RegisterAsync("small", new SchemaRequest("syntax = \"proto3\";\npackage small;\n", SchemaType.Protobuf, []), CancellationToken.None);
        string main = "syntax = \"proto3\";\n" + string.Concat(Enumerable.Range(0, 5).Select(i => $"import \"x{i}.proto\";\n")) + "message Main {\n" + string.Concat(Enumerable.Range(0, 5).Select(i => $"big{i}.Big b{i} = {i + 1};\n")) + "}\n";
        SchemaReference[] shadowed = [.. Enumerable.Range(0, 5).Select(i => new SchemaReference($"w{i}.proto", $"wrap{i}", 1)), .. Enumerable.Range(0, 5).Select(i => new SchemaReference($"x{i}.proto", "small", 1))];
        Assert.Equal(RegistryErrorCodes.InvalidSchema, await ErrorOfAsync(() => protobuf.RegisterAsync("main", new SchemaRequest(main, SchemaType.Protobuf, shadowed), CancellationToken.None)));

        using var avro = new SchemaRegistry([new Formats.Avro.AvroSchemaFormat()], new MemoryJournal(), NullLogger<SchemaRegistry>.Instance);
        await avro.LoadAsync(CancellationToken.None);
        for (int i = 0; i < 5; i++)
        {
            string record = "{\"type\":\"record\",\"name\":\"R" + i + "\",\"doc\":\"" + new string('d', 1_000_000) + "\",\"fields\":[]}";
            await avro.RegisterAsync($"r{i}", new SchemaRequest(record, SchemaType.Avro, []), CancellationToken.None);
        }

        string avroMain = "{\"type\":\"record\",\"name\":\"Main\",\"fields\":[" + string.Join(",", Enumerable.Range(0, 5).Select(i => $"{{\"name\":\"f{i}\",\"type\":\"R{i}\"}}")) + "]}";
        Assert.Equal(RegistryErrorCodes.InvalidSchema, await ErrorOfAsync(() => avro.RegisterAsync("same", new SchemaRequest(avroMain, SchemaType.Avro, [.. Enumerable.Range(0, 5).Select(i => new SchemaReference("same", $"r{i}", 1))]), CancellationToken.None)));

        // One Avro schema under five names is read once: within the limit.
        string one = "{\"type\":\"record\",\"name\":\"Main\",\"fields\":[{\"name\":\"f\",\"type\":\"R0\"}]}";
        await avro.RegisterAsync("once", new SchemaRequest(one, SchemaType.Avro, [.. Enumerable.Range(0, 5).Select(i => new SchemaReference($"n{i}", "r0", 1))]), CancellationToken.None);
    }

    [Fact]
    public async Task AVersionALiveSchemaReferencesIsNotRemovedByRegisteringItsSchemaAgain()
    {
        // From a review: registering a soft-deleted version's schema again deleted that version for good, though a live
        // schema referenced it; the referrer could then not be parsed again, and the contract gate failed its batches.
        using SchemaRegistry registry = await OpenAsync(new MemoryJournal());
        await registry.RegisterAsync("card", Fields("n"), CancellationToken.None);
        await registry.DeleteVersionAsync("card", "1", permanent: false, CancellationToken.None);
        RegisteredSchema pay = await registry.RegisterAsync("pay", Fields("id") with { References = [new SchemaReference("Card", "card", 1)] }, CancellationToken.None);

        await registry.RegisterAsync("card", Fields("n"), CancellationToken.None);
        Assert.Equal([1, 2], registry.Versions("card", includeDeleted: true));

        await registry.DeleteVersionAsync("pay", "1", permanent: false, CancellationToken.None);
        Assert.NotNull(registry.ParsedById(pay.Id));
    }

    /// <summary>Schema "x" registered under subject a (the first id), then imported under subject b as id 900.</summary>
    private static async Task<RegisteredSchema> ImportUnderId900Async(SchemaRegistry registry, bool modeLeftOn = false)
    {
        RegisteredSchema a = await registry.RegisterAsync("a", Fields("x"), CancellationToken.None);
        await registry.SetModeAsync("b", RegistryMode.Import, force: false, CancellationToken.None);
        await registry.RegisterAsync("b", Fields("x") with { Id = 900, Version = 1 }, CancellationToken.None);
        if (!modeLeftOn)
        {
            await registry.DeleteModeAsync("b", CancellationToken.None);
        }

        return a;
    }

    [Fact]
    public async Task AnImportUnderAnotherIdDoesNotMakeTheOriginalIdUnfindable()
    {
        // From a review: the imported id took the content over, and once it was deleted the content found no id at all,
        // so the same schema got a third id though the first still held it.
        using SchemaRegistry registry = await OpenAsync(new MemoryJournal());
        RegisteredSchema a = await ImportUnderId900Async(registry, modeLeftOn: true);
        Assert.Equal(a.Id, (await registry.RegisterAsync("c", Fields("x"), CancellationToken.None)).Id);

        await registry.DeleteModeAsync("b", CancellationToken.None);
        await registry.DeleteSubjectAsync("b", permanent: false, CancellationToken.None);
        await registry.DeleteSubjectAsync("b", permanent: true, CancellationToken.None);
        Assert.Equal(a.Id, (await registry.RegisterAsync("d", Fields("x"), CancellationToken.None)).Id);
    }

    [Fact]
    public async Task AnImportedIdOfKnownContentIsFoundByThatContentOnceTheFirstIdIsGone()
    {
        using SchemaRegistry registry = await OpenAsync(new MemoryJournal());
        await ImportUnderId900Async(registry);
        await registry.DeleteSubjectAsync("a", permanent: false, CancellationToken.None);
        await registry.DeleteSubjectAsync("a", permanent: true, CancellationToken.None);
        Assert.Equal(900, (await registry.RegisterAsync("c", Fields("x"), CancellationToken.None)).Id);
    }

    [Fact]
    public async Task ASoftDeleteDoesNotHandTheContentToAnImportedId()
    {
        // From a review: a soft delete rewrote the version by releasing its id first, so the content went to the imported id,
        // and registering the schema again answered 900 and listed it twice with ?deleted=true.
        using SchemaRegistry registry = await OpenAsync(new MemoryJournal());
        RegisteredSchema a = await ImportUnderId900Async(registry);
        await registry.DeleteSubjectAsync("a", permanent: false, CancellationToken.None);

        RegisteredSchema again = await registry.RegisterAsync("a", Fields("x"), CancellationToken.None);
        Assert.Equal(a.Id, again.Id);
        Assert.Equal([2], registry.Versions("a", includeDeleted: true));
    }
}
