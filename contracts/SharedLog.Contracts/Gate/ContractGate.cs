using System.Buffers;
using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.Logging;
using SharedLog.Contracts.Evidence;
using SharedLog.Contracts.Formats.Avro;
using SharedLog.Contracts.Formats.Json;
using SharedLog.Contracts.Model;
using SharedLog.Contracts.Policy;
using SharedLog.Contracts.Registry;
using SharedLog.Contracts.Rules;
using SharedLog.Protocol;
using SharedLog.Protocol.Records;

namespace SharedLog.Contracts.Gate;

/// <summary>One record of a batch that broke the contract: its index in the batch, the rule, why (for people) and the kind of failure (a bounded metric label).</summary>
/// <summary>A bad record of a batch: its index, the rule (or schema, privacy, tombstone) it broke, and why, at most <see cref="ContractGate.MaxReasonChars"/> characters.</summary>
public sealed record RecordViolation(int BatchIndex, string Rule, string Reason, ViolationKind Kind)
{
    /// <summary>The schemas of the record the gate counted as seen (key, value; none when its side named no schema of the subject).</summary>
    public (SchemaSeen? Key, SchemaSeen? Value) SchemasCounted { get; init; }
}

/// <summary>Why a record broke its contract, in few enough values to label a metric with (the reason text is unbounded).</summary>
public enum ViolationKind
{
    /// <summary>A null value on a topic whose contract refuses tombstones.</summary>
    Tombstone,

    /// <summary>No Confluent framing (magic byte 0 and a schema id).</summary>
    NoSchemaId,

    /// <summary>The schema id is not registered.</summary>
    UnknownSchema,

    /// <summary>The schema is of a type the gate cannot decode, or a JSON schema it cannot build a validator of (draft 4, a pattern .NET cannot compile).</summary>
    UnsupportedSchemaType,

    /// <summary>The schema id is registered, but not under the contract's subject.</summary>
    WrongSubject,

    /// <summary>The schema is a version of the subject outside the contract's pinned versions.</summary>
    VersionNotAllowed,

    /// <summary>The payload does not decode with its schema.</summary>
    Undecodable,

    /// <summary>The payload decodes but does not match its JSON schema.</summary>
    SchemaMismatch,

    /// <summary>A field rule evaluated to false.</summary>
    RuleFailed,

    /// <summary>A field rule could not be evaluated on the record (a missing field, a type error).</summary>
    RuleError,

    /// <summary>The privacy policy could not be applied to the record.</summary>
    Privacy,

    /// <summary>
    /// The privacy policy masked a JSON record, and the masked record no longer matches its schema (a member it requires
    /// dropped, a redacted value outside an enum, a hash longer than a maxLength): stored masked only when flagged.
    /// </summary>
    MaskedSchemaMismatch,

    /// <summary>The schema is of another type (Avro, JSON, Protobuf) than the one the contract's <c>schemaType</c> admits.</summary>
    WrongSchemaType,
}

/// <summary>A record taken out of its batch for the quarantine topic, with what it broke.</summary>
/// <param name="SourceCompression">The codec of the batch the record came in, which its quarantine copy is written with (gzip for an uncompressed one).</param>
public sealed record QuarantinedRecord(int OffsetDelta, long Timestamp, byte[]? Key, byte[]? Value, byte[] RawHeaders, int HeaderCount, string Rule, string Reason, CompressionCodec SourceCompression = CompressionCodec.None);

public enum GateOutcome
{
    /// <summary>Store the batch as it came.</summary>
    Pass,

    /// <summary>Store <see cref="GateResult.Batch"/> instead (privacy applied, bad records removed or flagged).</summary>
    Rewrite,

    /// <summary>Refuse the batch with INVALID_RECORD.</summary>
    Reject,
}

public sealed class GateResult(GateOutcome outcome, byte[]? batch, IReadOnlyList<RecordViolation> violations, IReadOnlyList<QuarantinedRecord> quarantined, GateTally tally)
{
    public GateOutcome Outcome { get; } = outcome;

    /// <summary>
    /// The batch had more than <see cref="ContractGate.MaxViolationsPerBatch"/> bad records: judging stopped there (the
    /// batch is refused), and <see cref="Violations"/> lists the first ones.
    /// </summary>
    public bool JudgingStopped { get; init; }

    /// <summary>
    /// The error a <see cref="GateOutcome.Reject"/> is answered with: INVALID_RECORD, or MESSAGE_TOO_LARGE for a batch
    /// with more bad records than the broker quarantines or flags from one batch (a Java producer splits it and sends again).
    /// </summary>
    public ErrorCode RefusalCode { get; init; } = ErrorCode.InvalidRecord;

    /// <summary>The message of a refusal that is not about the records one by one, else null (see <see cref="Summary"/>).</summary>
    public string? RefusalMessage { get; init; }

    /// <summary>
    /// What this verdict adds to the enforcement evidence once it takes effect: the produce handler counts it when the
    /// batch is refused, or when it is durable and not an idempotent retry (<see cref="ContractGate.Count"/>).
    /// </summary>
    public GateTally Tally { get; } = tally;

    public byte[]? Batch { get; } = batch;

    public IReadOnlyList<RecordViolation> Violations { get; } = violations;

    public IReadOnlyList<QuarantinedRecord> Quarantined { get; } = quarantined;

    /// <summary>The batch-level message a producer sees with the refusal.</summary>
    public string Summary => RefusalMessage ?? (Violations.Count == 0
        ? "ok"
        : $"{(JudgingStopped ? "more than " : "")}{Violations.Count} record(s) break the contract{(JudgingStopped ? " (judging stopped there)" : "")}; first: record {Violations[0].BatchIndex}: {Violations[0].Rule}: {Violations[0].Reason}");
}

/// <summary>
/// A batch's enforcement counts: records accepted and, under <paramref name="FailingOutcome"/>, failing; every violation
/// found (observe mode included, where the result lists none); and the registered schema ids the records named.
/// <paramref name="MasksFields"/>: the contract has a privacy policy, so a violation's reason (which may quote a field's
/// value) is not written to the broker log.
/// </summary>
public sealed record GateTally(int ContractVersion, string Action, long Accepted, long Failing, string FailingOutcome, IReadOnlyList<RecordViolation> Violations, IReadOnlyList<SchemaSeen> SchemasSeen, AuditLevel Audit = AuditLevel.Summary, bool MasksFields = false)
{
    /// <summary>
    /// Under observe, the violations past the first <see cref="ContractGate.MaxViolationsPerBatch"/> (which
    /// <see cref="Violations"/> lists): not held one by one but added up per rule and kind, with the first and last batch index.
    /// </summary>
    public IReadOnlyDictionary<(string Rule, ViolationKind Kind), ViolationSpan>? UnlistedViolations { get; init; }
}

/// <summary>Records of one batch written with a schema registered under the contract's subject: its id, the subject and its version there.</summary>
public readonly record struct SchemaSeen(int SchemaId, string Subject, int Version, long Records);

/// <summary>
/// The contract gate, called by the produce handler after the CRC check and before the WAL append.
/// For each record of a batch on a topic with a contract: the schema id must be present and registered
/// under the contract's subject (and pinned versions), the payload must decode (JSON: validate) with
/// that schema, and every rule must hold; then the privacy policy rewrites the record. The contract's
/// failure action decides the batch's fate. Topics without a contract never reach it. Compiled rules,
/// schema checks and tagged paths are cached per contract version and registry generation.
/// </summary>
public sealed partial class ContractGate(
    ContractStore store,
    SchemaRegistry registry,
    IEnumerable<IPayloadCodec> codecs,
    Formats.Json.JsonPayloadValidatorCache jsonValidators,
    ContractMetrics metrics,
    PrivacyRewriter privacy,
    ILogger<ContractGate> logger,
    TimeProvider? time = null)
{
    /// <summary>The clock a batch's judging time is read from (a test's own, to reach the bound without waiting for it).</summary>
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    public const string ViolationHeader = "sharedlog.contract.violation";

    private static ReadOnlySpan<byte> ViolationHeaderKey => "sharedlog.contract.violation"u8;
    public const int MaxDecompressedBytes = RecordBatch.MaxDecompressedBytes;

    /// <summary>
    /// The most bad records judged in one batch: a compressed batch may hold millions of tiny records, and each bad one
    /// holds its violation (and under quarantine its copy) until the batch is settled. Past this a batch is refused (under
    /// reject, as it would be anyway; under quarantine or flag with MESSAGE_TOO_LARGE); observe counts the rest without
    /// their details. librdkafka sends at most 10,000 records a batch by default.
    /// </summary>
    public const int MaxViolationsPerBatch = 100_000;

    /// <summary>Longest reason a violation keeps; a longer one keeps its start and end (<see cref="ShortText.Cut"/>).</summary>
    public const int MaxReasonChars = 1_000;

    /// <summary>
    /// Longest the gate judges one batch. Each record's checks are bounded (rule steps, schema evaluation budget, regex
    /// timeouts), but a batch of thousands of records each near those bounds would hold a core for minutes; a real batch takes
    /// milliseconds. Past this a batch is refused whole (observe stores the rest unjudged, as it changes nothing).
    /// </summary>
    public static readonly TimeSpan MaxBatchJudgingTime = TimeSpan.FromSeconds(5);

    private readonly Dictionary<SchemaType, IPayloadCodec> _codecs = codecs.ToDictionary(c => c.Type);
    private readonly ConcurrentDictionary<(string Name, int Version), CompiledContract> _compiled = new();
    private readonly ConcurrentDictionary<SchemaCheckKey, SchemaCheck> _schemaChecks = new();

    // PrivacyMisfit's answers, per contract version and the ids of the schemas it admits (not per registry generation: a
    // write to another subject changes nothing here, and the walk may take up to its budget).
    private readonly ConcurrentDictionary<(string Name, int Version, string AdmittedIds), string?> _privacyMisfits = new();
    private readonly ConcurrentDictionary<(long Generation, int SchemaId, string? Message, string Tag), (IReadOnlyList<string> Paths, string? Problem)> _taggedPaths = new();

    // The registry generation the caches above were last swept for (see ForgetOlderGenerations).
    private long _sweptGeneration = -1;

    /// <param name="PrivacyPaths">Per privacy rule, its field path as a one-item list (empty for a tag rule), made once instead of per record.</param>
    /// <param name="PrivacyFieldNames">Per privacy rule, its field path's names (empty for a tag rule), split once instead of per record.</param>
    private sealed record CompiledContract(ContractDefinition Definition, int Version, CompiledRule[] Rules, bool RulesReadHeaders, bool RulesReadKey, string[][] PrivacyPaths, string[][] PrivacyFieldNames);

    /// <param name="SubjectByRecord">True for the first check under a record name strategy (registered, decodable), which does not look at the subject: it must not answer for the subject check.</param>
    /// <param name="Topic">The topic, when the subject is made from it (a pattern contract's topic or topic-record name strategy): else a schema id's standing on one topic would answer for every topic the pattern matches.</param>
    private readonly record struct SchemaCheckKey(long Generation, string Contract, int ContractVersion, bool IsKey, int SchemaId, string? RecordName, bool SubjectByRecord, string? Topic);

    /// <summary>
    /// A schema id's standing for one side of one contract: usable (parsed, codec) or a reason. Under a record name
    /// strategy the first check also keeps the schema's own record name, worked out once rather than per record.
    /// </summary>
    /// <param name="Subject">With <paramref name="Version"/>: where the id is registered, once the subject is known (not for a record name strategy's first check).</param>
    /// <param name="RenamedPrivacyPaths">Per privacy rule, the paths an Avro schema holds its field under when an alias renamed a
    /// level of it (see <see cref="AvroFieldRenames"/>); null (or a null entry) where the rule's own path is all there is.</param>
    private sealed record SchemaCheck(IParsedSchema? Parsed, IPayloadCodec? Codec, string? Problem, ViolationKind Kind = default, string? RecordName = null, int SchemaId = 0, string? Subject = null, int Version = 0, IReadOnlyList<string>?[]? RenamedPrivacyPaths = null);

    /// <summary>Where a record's rewritten key and value sit in the batch's buffer of rewrites; a start of -1 means unchanged.</summary>
    private struct RecordRewrite
    {
        public int KeyStart;
        public int KeyLength;
        public int ValueStart;
        public int ValueLength;

        public static readonly RecordRewrite None = new() { KeyStart = -1, ValueStart = -1 };

        public readonly bool Changed => KeyStart >= 0 || ValueStart >= 0;
    }

    /// <summary>One side (key or value) of the record being checked; two per batch, reset per record.</summary>
    private sealed class SideResult
    {
        public void Reset()
        {
            // The previous record's graph is no longer referenced (rules and privacy are done with it).
            if (Decoded is not null)
            {
                RecordGraphPool.Return(Decoded.Value);
            }

            Value = null;
            Rule = "schema";
            Reason = null;
            Kind = default;
            Parsed = null;
            Codec = null;
            Decoded = null;
            SchemaId = 0;
            Counted = null;
            RenamedPrivacyPaths = null;
        }

        public object? Value { get; set; }

        public string? Rule { get; set; }

        public string? Reason { get; set; }

        public ViolationKind Kind { get; set; }

        public IParsedSchema? Parsed { get; set; }

        public IPayloadCodec? Codec { get; set; }

        public DecodedPayload? Decoded { get; set; }

        public int SchemaId { get; set; }

        /// <summary>The schema check's <see cref="SchemaCheck.RenamedPrivacyPaths"/>.</summary>
        public IReadOnlyList<string>?[]? RenamedPrivacyPaths { get; set; }

        /// <summary>The schema id <see cref="Check"/> and <see cref="Validator"/> are for: records of one batch nearly always share it.</summary>
        public int CheckedSchemaId { get; set; } = -1;

        /// <summary>The schema check this side of the record was counted under in the batch's schemas seen, if any.</summary>
        public SchemaCheck? Counted { get; set; }

        /// <summary>The schema check of <see cref="CheckedSchemaId"/>, kept for the batch (not reset per record).</summary>
        public SchemaCheck? Check { get; set; }

        /// <summary>The JSON validator of <see cref="CheckedSchemaId"/>, kept for the batch (not reset per record).</summary>
        public JsonPayloadValidator? Validator { get; set; }

        /// <summary>The field-name paths a privacy rewrite changed on this side, reused record after record.</summary>
        public List<string[]> ChangedPaths { get; } = [];
    }

    /// <summary>The variables a rule sees: value, key, headers, topic, partition, timestamp.</summary>
    private sealed class RecordActivation : IRuleActivation
    {
        public object? Value { get; set; }

        public object? Key { get; set; }

        public Dictionary<string, object?>? Headers { get; set; }

        public string Topic { get; set; } = "";

        public long Partition { get; set; }

        /// <summary>The record's timestamp as the producer wrote it (milliseconds since the epoch), turned into a rule's timestamp when a rule reads it.</summary>
        public long TimestampMs { get; set; }

        /// <summary>
        /// Records per schema check seen in this batch (by reference: one check per schema id, subject and contract version),
        /// counted here and reported once per batch (a metric per record costs too much).
        /// </summary>
        public Dictionary<SchemaCheck, long> SchemasSeen { get; } = new(ReferenceEqualityComparer.Instance);

        public bool TryResolve(string name, out object? value)
        {
            (bool found, value) = name switch
            {
                "value" => (true, Value),
                "key" => (true, Key),
                "headers" => (true, (object?)Headers ?? new Dictionary<string, object?>()),
                "topic" => (true, Topic),
                "partition" => (true, (object?)Partition),
                "timestamp" => (true, (object?)RuleTimestamp(TimestampMs)),
                _ => (false, null),
            };
            return found;
        }
    }

    /// <summary>
    /// A record timestamp as a rule's timestamp value. A producer may write any 64-bit time; one outside the years 1 to
    /// 9999 (which CEL timestamps span) makes a rule that reads it an error, not the whole batch's gate.
    /// </summary>
    private static RuleValue RuleTimestamp(long milliseconds)
    {
        RuleValue timestamp = RuleTime.Timestamp(Math.DivRem(milliseconds, 1000, out long rest), rest * 1_000_000);
        return timestamp.IsError ? RuleValue.Error($"record timestamp {milliseconds} ms is outside the range of a timestamp (years 1 to 9999)") : timestamp;
    }

    public ActiveContract? ContractFor(string topic) => store.ForTopic(topic);

    /// <summary>Compiles a contract's rules; returns one problem per rule that does not compile (line and column included).</summary>
    public static IReadOnlyList<string> CompileProblems(ContractDefinition definition) => ContractParser.RuleCompileProblems(definition.Rules);

    /// <summary>
    /// The verdict on a batch. <paramref name="records"/> are the batch's records when the caller has them already
    /// (decompressed and checked against the header by <see cref="RecordBatch.CheckedRecords"/>), else they are read here.
    /// </summary>
    public GateResult Inspect(ActiveContract active, string topic, int partition, RecordBatch batch, RecordSet? records = null)
    {
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            return InspectRecords(active, topic, partition, batch, records ?? batch.Records(MaxDecompressedBytes));
        }
        finally
        {
            metrics.GateDuration(topic, System.Diagnostics.Stopwatch.GetElapsedTime(started));
        }
    }

    private GateResult InspectRecords(ActiveContract active, string topic, int partition, RecordBatch batch, RecordSet records)
    {
        if (!_compiled.TryGetValue((active.Definition.Name, active.Version), out CompiledContract? contract))
        {
            contract = CompileNewVersion(active);
        }
        ContractDefinition definition = contract.Definition;
        int count = records.Count;
        var violations = new List<RecordViolation>();
        int bad = 0;
        Dictionary<(string Rule, ViolationKind Kind), ViolationSpan>? unlisted = null;
        bool judgingStopped = false;
        // Under observe too, to count the records the privacy step would fail (a value it cannot hash, a masked record its
        // schema no longer takes), which every other mode refuses, quarantines or flags; its rewrite is not stored there.
        bool applyPrivacy = definition.Privacy.Count > 0;
        long judgingStarted = _time.GetTimestamp();
        int judgedInTime = -1;

        // Rewritten keys and values go into one pooled buffer for the batch, not an array per record:
        // they live until the rebuild, long enough to survive a gen0 collection at batch sizes.
        PooledBufferWriter? rewrites = applyPrivacy ? new PooledBufferWriter(records.Bytes.Length) : null;
        RecordRewrite[]? rewriteIndex = null;
        try
        {
            var scratch = new RecordScratch(new RecordActivation { Topic = topic, Partition = partition }, new SideResult(), new SideResult(), rewrites, records.Bytes);
            int index = 0;
            bool rewritten = false;
            bool forgedFlags = false;
            // Only a batch the privacy policy may rewrite, written uncompressed, is rebuilt to an exact size.
            bool sizeKept = applyPrivacy && batch.Compression == CompressionCodec.None;
            int keptRecordBytes = sizeKept ? 0 : -1;
            foreach (Record record in records)
            {
                // A producer's own violation header is dropped in every mode (see CopyKeptRecords): the header says the broker
                // found the record bad, and consumers keep trusting it after a contract moves from flag to another mode.
                forgedFlags |= record.HeaderCount > 0 && BrokerHeaders.Any(record.RawHeaders, record.HeaderCount, ViolationHeaderKey);

                (string Rule, string Reason, ViolationKind Kind)? violation = CheckRecord(contract, topic, record, scratch, applyPrivacy, out RecordRewrite rewrite);
                if (violation is { } found)
                {
                    if (violations.Count < MaxViolationsPerBatch)
                    {
                        // A reason may quote data (a failed const's schema value, a decoder's view of the payload): it travels
                        // in RecordErrors, quarantine and flag headers and log lines, once per bad record.
                        violations.Add(new RecordViolation(index, found.Rule, ShortText.Cut(found.Reason, MaxReasonChars), found.Kind) { SchemasCounted = (Counted(scratch.Key), Counted(scratch.Value)) });
                    }
                    else if (definition.OnFailure == FailureAction.Observe)
                    {
                        // Still counted by rule, as the ones listed are: observe changes nothing but the evidence.
                        ViolationSpan.AddTo(unlisted ??= [], (found.Rule, found.Kind), new ViolationSpan(1, index, index));
                    }
                    else
                    {
                        judgingStopped = true;
                        break;
                    }

                    bad++;
                }

                // A flagged record that failed a rule carries its masked sides too.
                if (rewrite.Changed)
                {
                    if (rewriteIndex is null)
                    {
                        rewriteIndex = ArrayPool<RecordRewrite>.Shared.Rent(count);
                        rewriteIndex.AsSpan(0, count).Fill(RecordRewrite.None);
                    }

                    rewriteIndex[index] = rewrite;
                    rewritten = true;
                }

                if (sizeKept)
                {
                    keptRecordBytes += KeptRecordSize(batch, record, rewrite);
                }

                index++;
                // After every record (about 20 ns): read every eighth, a batch of up to eight records each slow within its own
                // budgets was never stopped (a review's four records of 7 s each were judged for 33 s, then stored).
                if (index < count && _time.GetElapsedTime(judgingStarted) > MaxBatchJudgingTime)
                {
                    judgedInTime = index;
                    break;
                }
            }

            if (judgedInTime >= 0)
            {
                LogSlowBatch(topic, partition, definition.Name, MaxBatchJudgingTime.TotalSeconds, judgedInTime, count, definition.OnFailure == FailureAction.Observe ? "stored, the rest unjudged (observe)" : "refused whole");
                if (definition.OnFailure != FailureAction.Observe)
                {
                    scratch.Key.Reset();
                    scratch.Value.Reset();
                    return TooSlowToJudge(contract, count, judgedInTime, violations, scratch.Activation.SchemasSeen);
                }

                // Stored unjudged, but a producer's own violation header still goes from every record (see CopyKeptRecords).
                int unjudgedIndex = 0;
                foreach (Record record in records)
                {
                    forgedFlags |= unjudgedIndex++ >= judgedInTime && record.HeaderCount > 0 && BrokerHeaders.Any(record.RawHeaders, record.HeaderCount, ViolationHeaderKey);
                }
            }

            scratch.Key.Reset();
            scratch.Value.Reset();
            return judgingStopped
                ? TooManyViolations(contract, count, violations, scratch.Activation.SchemasSeen)
                : Verdict(contract, batch, records, violations, bad, unlisted, scratch.Activation.SchemasSeen, rewritten ? new Rewrites(rewrites!.WrittenSpan, rewriteIndex) : default, forgedFlags, keptRecordBytes, judgedInTime >= 0 ? count - judgedInTime : 0);
        }
        finally
        {
            // The codec's note of the last record's member positions refers to this batch's memory: let it go with the batch.
            JsonPayloadCodec.ForgetThreadLayout();
            rewrites?.Release();
            if (rewriteIndex is not null)
            {
                ArrayPool<RecordRewrite>.Shared.Return(rewriteIndex);
            }
        }
    }

    /// <summary>The rewritten keys and values of a batch: the buffer and, per record, where its own are in it.</summary>
    private readonly ref struct Rewrites(ReadOnlySpan<byte> bytes, RecordRewrite[]? index)
    {
        private readonly ReadOnlySpan<byte> _bytes = bytes;

        public bool Any => index is not null;

        public ReadOnlySpan<byte> Key(int record, ReadOnlySpan<byte> original) => index is not null && index[record].KeyStart >= 0 ? _bytes.Slice(index[record].KeyStart, index[record].KeyLength) : original;

        public ReadOnlySpan<byte> Value(int record, ReadOnlySpan<byte> original) => index is not null && index[record].ValueStart >= 0 ? _bytes.Slice(index[record].ValueStart, index[record].ValueLength) : original;

        public bool KeyChanged(int record) => index is not null && index[record].KeyStart >= 0;

        public bool ValueChanged(int record) => index is not null && index[record].ValueStart >= 0;
    }

    /// <summary>Objects one batch's records reuse: the rule activation, both sides' results, the buffer of rewrites, and the records' memory.</summary>
    private sealed record RecordScratch(RecordActivation Activation, SideResult Key, SideResult Value, PooledBufferWriter? Rewrites, ReadOnlyMemory<byte> RecordBytes);

    /// <summary>
    /// A batch with more than <see cref="MaxViolationsPerBatch"/> bad records, judged no further: refused whole. Under reject
    /// as any rejection (INVALID_RECORD, counted); under quarantine or flag with MESSAGE_TOO_LARGE, which a Java producer
    /// answers by splitting the batch, so the produce handler does not count it (the halves are counted when judged).
    /// </summary>
    private static GateResult TooManyViolations(CompiledContract contract, int count, List<RecordViolation> violations, Dictionary<SchemaCheck, long> schemasSeen)
    {
        ContractDefinition definition = contract.Definition;
        bool rejects = definition.OnFailure == FailureAction.Reject;
        return new GateResult(GateOutcome.Reject, null, violations, [], RefusedWholeTally(contract, count, violations, schemasSeen))
        {
            JudgingStopped = true,
            RefusalCode = rejects ? ErrorCode.InvalidRecord : ErrorCode.MessageTooLarge,
            RefusalMessage = rejects ? null : $"More than {MaxViolationsPerBatch} records of this batch break contract '{definition.Name}', more than the broker {(definition.OnFailure == FailureAction.Flag ? "flags" : "quarantines")} from one batch: send smaller batches.",
        };
    }

    /// <summary>The evidence of a batch refused before it was judged to the end: every record counted as rejected.</summary>
    private static GateTally RefusedWholeTally(CompiledContract contract, int count, List<RecordViolation> violations, Dictionary<SchemaCheck, long> schemasSeen) =>
        new(contract.Version, ActionLabel(FailureAction.Reject), 0, count, ContractMetrics.Rejected, violations, SchemasSeen(schemasSeen), contract.Definition.Audit, contract.Definition.Privacy.Count > 0);

    /// <summary>A batch whose judging took longer than <see cref="MaxBatchJudgingTime"/>: refused whole with INVALID_RECORD, counted as rejected.</summary>
    private static GateResult TooSlowToJudge(CompiledContract contract, int count, int judged, List<RecordViolation> violations, Dictionary<SchemaCheck, long> schemasSeen)
    {
        return new GateResult(GateOutcome.Reject, null, violations, [], RefusedWholeTally(contract, count, violations, schemasSeen))
        {
            RefusalMessage = $"Checking this batch against contract '{contract.Definition.Name}' took longer than {MaxBatchJudgingTime.TotalSeconds:0} s ({judged} of its {count} records were checked), so it is refused: send smaller batches or simpler records.",
        };
    }

    /// <summary>
    /// A verdict turned into the refusal of its whole batch, for a batch that cannot be stored as judged (its bad records'
    /// quarantine topic cannot exist): every record counted as rejected, the bad ones named, <paramref name="message"/> said.
    /// </summary>
    public static GateResult AsRejection(GateResult verdict, string message)
    {
        ArgumentNullException.ThrowIfNull(verdict);
        GateTally judged = verdict.Tally;
        GateTally rejected = judged with { Action = ActionLabel(FailureAction.Reject), Accepted = 0, Failing = judged.Accepted + judged.Failing, FailingOutcome = ContractMetrics.Rejected };
        return new GateResult(GateOutcome.Reject, null, verdict.Violations, [], rejected) { RefusalMessage = message };
    }

    /// <summary>
    /// The tally of a replay's batch that the target refused (see the produce handler): only the records the refusal names
    /// (<paramref name="named"/>) count, as rejected and under the schemas they were written with. The replay sends the
    /// others again, and they are counted when judged then, or a good record would count twice.
    /// </summary>
    public static GateTally ReplayRefusalTally(GateTally tally, IReadOnlyList<RecordViolation> named)
    {
        ArgumentNullException.ThrowIfNull(tally);
        ArgumentNullException.ThrowIfNull(named);
        var schemas = new Dictionary<SchemaSeen, long>();
        foreach (RecordViolation violation in named)
        {
            foreach (SchemaSeen? side in (ReadOnlySpan<SchemaSeen?>)[violation.SchemasCounted.Key, violation.SchemasCounted.Value])
            {
                if (side is { } seen)
                {
                    System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(schemas, seen, out _) += seen.Records;
                }
            }
        }

        SchemaSeen[] counted = [.. schemas.Select(s => s.Key with { Records = s.Value })];
        return tally with { Failing = named.Count, Violations = named, UnlistedViolations = null, SchemasSeen = counted };
    }

    /// <summary>The schema a side of the record being judged was counted under, as one record of it.</summary>
    private static SchemaSeen? Counted(SideResult side) =>
        side.Counted is { } check ? new SchemaSeen(check.SchemaId, check.Subject!, check.Version, 1) : null;

    private static SchemaSeen[] SchemasSeen(Dictionary<SchemaCheck, long> schemasSeen)
    {
        SchemaSeen[] seen = new SchemaSeen[schemasSeen.Count];
        int seenIndex = 0;
        foreach ((SchemaCheck check, long seenRecords) in schemasSeen)
        {
            seen[seenIndex++] = new SchemaSeen(check.SchemaId, check.Subject!, check.Version, seenRecords);
        }

        return seen;
    }

    /// <param name="bad">How many records broke the contract: <paramref name="violations"/> lists them all, except past <see cref="MaxViolationsPerBatch"/> under observe.</param>
    /// <param name="unlisted">Under observe, the violations past those listed, added up per rule and kind (null when none).</param>
    /// <param name="keptRecordBytes">The records' size in a rebuilt batch that keeps every one of them as it is (rewrites applied, no header added or dropped); -1 when not known.</param>
    /// <param name="unjudged">Under observe, the records past the batch's judging time, stored without being judged: counted neither way.</param>
    private static GateResult Verdict(CompiledContract contract, RecordBatch batch, RecordSet records, List<RecordViolation> violations, int bad, Dictionary<(string Rule, ViolationKind Kind), ViolationSpan>? unlisted, Dictionary<SchemaCheck, long> schemasSeen, Rewrites rewrites, bool forgedFlags, int keptRecordBytes, int unjudged)
    {
        ContractDefinition definition = contract.Definition;
        int count = records.Count;
        string action = ActionLabel(definition.OnFailure);
        SchemaSeen[] seen = SchemasSeen(schemasSeen);

        GateTally Tally(long accepted, string failingOutcome, string? actionTaken = null) => new(contract.Version, actionTaken ?? action, accepted, count - accepted, failingOutcome, violations, seen, definition.Audit, definition.Privacy.Count > 0);
        switch (definition.OnFailure)
        {
            case FailureAction.Observe:
                GateTally observed = Tally(count - unjudged - bad, ContractMetrics.ObservedFailing) with { Failing = bad, UnlistedViolations = unlisted };
                return forgedFlags
                    ? new GateResult(GateOutcome.Rewrite, Rebuild(batch, records, [], default, drop: false, dropForgedFlags: true), [], [], observed)
                    : new GateResult(GateOutcome.Pass, null, [], [], observed);
            case FailureAction.Reject when bad > 0:
                return new GateResult(GateOutcome.Reject, null, violations, [], Tally(0, ContractMetrics.Rejected));
            case FailureAction.Quarantine when bad > 0:
                return new GateResult(GateOutcome.Rewrite, Rebuild(batch, records, violations, rewrites, drop: true, dropForgedFlags: forgedFlags), violations, Quarantine(batch, records, violations), Tally(count - bad, ContractMetrics.Quarantined));
            case FailureAction.Flag when bad > 0 && definition.Class == TopicClass.Sensitive && violations.Exists(v => !Masked(v.Kind)):
                // A sensitive topic never stores a record its privacy policy could not mask (undecodable, or the rewrite
                // itself failed), as flag would store it: the batch is refused instead, naming the records.
                // Counted as the rejection it is, so evidence never mixes these unstored records with stored flagged ones.
                RecordViolation unmasked = violations.Find(v => !Masked(v.Kind))!;
                return new GateResult(GateOutcome.Reject, null, violations, [], Tally(0, ContractMetrics.Rejected, ActionLabel(FailureAction.Reject)))
                {
                    RefusalMessage = $"{violations.Count(v => !Masked(v.Kind))} record(s) of this batch cannot be masked (no usable schema, undecodable, not matching their schema, or their privacy step failed), and sensitive topic contract '{definition.Name}' never stores a record unmasked, so the batch is refused; first: record {unmasked.BatchIndex}: {unmasked.Rule}: {unmasked.Reason}",
                };
            case FailureAction.Flag when bad > 0:
                return new GateResult(GateOutcome.Rewrite, Rebuild(batch, records, violations, rewrites, drop: false, dropForgedFlags: true), violations, [], Tally(count - bad, ContractMetrics.Flagged));
            default:
                // Every record passed, so when none carries a forged flag the kept size is known without measuring again.
                return rewrites.Any || forgedFlags
                    ? new GateResult(GateOutcome.Rewrite, Rebuild(batch, records, violations, rewrites, drop: false, dropForgedFlags: forgedFlags, knownRecordBytes: forgedFlags ? -1 : keptRecordBytes), [], [], Tally(count, ContractMetrics.Accepted))
                    : new GateResult(GateOutcome.Pass, null, [], [], Tally(count, ContractMetrics.Accepted));
        }
    }

    /// <summary>
    /// Adds a verdict to the enforcement evidence (metrics and the audit summary's counts). Called once per verdict that took
    /// effect: counting in <see cref="Inspect"/> would count a batch whose append then failed, and count an idempotent
    /// producer's retry (answered with the original's offsets) a second time.
    /// </summary>
    /// <param name="baseOffset">The offset the batch was stored at, or -1 when it was not (rejected): violations are located by it.</param>
    public void Count(string topic, int partition, long baseOffset, GateResult verdict)
    {
        ArgumentNullException.ThrowIfNull(verdict);
        Count(topic, partition, baseOffset, verdict.Tally);
    }

    /// <summary>
    /// What the broker's log says of a rejection (it logs one when the rejection takes effect: an idempotent retry of a
    /// stored batch is answered with its offsets, not refused). A reason may quote the value that broke the rule or schema:
    /// where the contract masks fields, the log names the kind of failure only (the producer's RecordErrors carry the
    /// reason, with its own data).
    /// </summary>
    public static string RejectionLogText(GateResult verdict)
    {
        ArgumentNullException.ThrowIfNull(verdict);
        if (verdict.Violations.Count == 0)
        {
            return $"the contract rejected the batch: {verdict.Summary}";
        }

        RecordViolation first = verdict.Violations[0];
        string bad = verdict.JudgingStopped ? $"more than {verdict.Violations.Count}" : verdict.Violations.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
        // A failed rule's reason is the contract's own text (its message, or its expression), never the record's: kept.
        string reason = verdict.Tally.MasksFields && first.Kind != ViolationKind.RuleFailed ? $"{ViolationLabel(first.Kind)} (reason withheld: the contract masks fields)" : first.Reason;
        return $"the contract rejected the batch: bad records: {bad}; the first breaks {first.Rule}: {reason}";
    }

    /// <inheritdoc cref="Count(string, int, long, GateResult)"/>
    public void Count(string topic, int partition, long baseOffset, GateTally tally)
    {
        ArgumentNullException.ThrowIfNull(tally);
        bool summarized = tally.Audit >= AuditLevel.Summary;
        Dictionary<(string Rule, ViolationKind Kind), ViolationSpan>? byRule = null;
        if (tally.Violations.Count > 0)
        {
            // Counted per rule and kind, not per record: a batch of a thousand bad records is a few additions. A record's offset is
            // the batch's base offset plus its index (a producer's batch numbers its records 0 to n-1, checked before the gate).
            byRule = [];
            foreach (RecordViolation violation in tally.Violations)
            {
                long offset = baseOffset >= 0 ? baseOffset + violation.BatchIndex : -1;
                ViolationSpan.AddTo(byRule, (violation.Rule, violation.Kind), new ViolationSpan(1, offset, offset));
            }

            foreach (((string Rule, ViolationKind Kind) key, ViolationSpan indexes) in tally.UnlistedViolations ?? System.Collections.ObjectModel.ReadOnlyDictionary<(string, ViolationKind), ViolationSpan>.Empty)
            {
                ViolationSpan.AddTo(byRule, key, baseOffset >= 0 ? indexes with { FirstOffset = baseOffset + indexes.FirstOffset, LastOffset = baseOffset + indexes.LastOffset } : new ViolationSpan(indexes.Records, -1, -1));
            }

        }

        if (summarized)
        {
            // Only what the summary reads needs one window: other batches count without the lock.
            using (metrics.CountingOneBatch())
            {
                AddCounts();
            }
        }
        else
        {
            AddCounts();
        }

        void AddCounts()
        {
            metrics.Records(topic, tally.ContractVersion, ContractMetrics.Accepted, tally.Accepted, summarized);
            metrics.Records(topic, tally.ContractVersion, tally.FailingOutcome, tally.Failing, summarized);
            foreach (((string rule, ViolationKind kind), ViolationSpan span) in byRule ?? [])
            {
                metrics.Violation(new ViolationKey(topic, partition, tally.ContractVersion, rule, ViolationLabel(kind), tally.Action), span, tally.Audit == AuditLevel.Violations);
            }
        }

        foreach (SchemaSeen seen in tally.SchemasSeen)
        {
            metrics.SchemaSeen(topic, seen.SchemaId, seen.Subject, seen.Version, seen.Records);
        }
    }

    /// <summary>
    /// Whether a flagged record with this violation was still masked: a rule's verdict comes after both sides were decoded
    /// and rewritten, and a refused tombstone's after its key was (a key that failed is the verdict instead).
    /// </summary>
    private static bool Masked(ViolationKind kind) => kind is ViolationKind.RuleFailed or ViolationKind.RuleError or ViolationKind.Tombstone or ViolationKind.MaskedSchemaMismatch;

    private static string ActionLabel(FailureAction action) => action switch
    {
        FailureAction.Reject => "reject",
        FailureAction.Quarantine => "quarantine",
        FailureAction.Flag => "flag",
        FailureAction.Observe => "observe",
        _ => action.ToString().ToLowerInvariant(),
    };

    /// <summary>The metric label of a violation kind (the <c>reason</c> label of <c>sharedlog_contract_violations_total</c>).</summary>
    public static string ViolationLabel(ViolationKind kind) => kind switch
    {
        ViolationKind.Tombstone => "tombstone",
        ViolationKind.NoSchemaId => "no_schema_id",
        ViolationKind.UnknownSchema => "unknown_schema",
        ViolationKind.UnsupportedSchemaType => "unsupported_schema_type",
        ViolationKind.WrongSubject => "wrong_subject",
        ViolationKind.VersionNotAllowed => "version_not_allowed",
        ViolationKind.Undecodable => "undecodable",
        ViolationKind.SchemaMismatch => "schema_mismatch",
        ViolationKind.RuleFailed => "rule_failed",
        ViolationKind.RuleError => "rule_error",
        ViolationKind.Privacy => "privacy",
        ViolationKind.MaskedSchemaMismatch => "masked_schema_mismatch",
        ViolationKind.WrongSchemaType => "wrong_schema_type",
        _ => "other",
    };

    private static CompiledContract Compile(ActiveContract active)
    {
        // Rules were compiled when the contract was applied; a rule failing here would mean a stored
        // contract from an older build, and the exception fails the batch with UNKNOWN_SERVER_ERROR (see the produce handler).
        CompiledRule[] rules = [.. active.Definition.Rules.Select(r => CelRule.Compile(r.Expression))];
        // Conservative text checks: a rule that might name headers or key gets them; others skip building them per record.
        bool readsHeaders = active.Definition.Rules.Any(r => r.Expression.Contains("headers", StringComparison.Ordinal));
        bool readsKey = active.Definition.Rules.Any(r => r.Expression.Contains("key", StringComparison.Ordinal));
        string[][] privacyPaths = [.. active.Definition.Privacy.Select(r => r.FieldPath is { } path ? new[] { path } : [])];
        string[][] privacyFieldNames = [.. active.Definition.Privacy.Select(r => r.FieldPath is { } path ? PrivacyRewriter.FieldNames(path) : [])];
        return new CompiledContract(active.Definition, active.Version, rules, readsHeaders, readsKey, privacyPaths, privacyFieldNames);
    }

    private static readonly (string Rule, string Reason, ViolationKind Kind) TombstoneRefused = ("tombstone", "records with a null value are not allowed on this topic", ViolationKind.Tombstone);

    private (string Rule, string Reason, ViolationKind Kind)? CheckRecord(CompiledContract contract, string topic, Record record, RecordScratch scratch, bool applyPrivacy, out RecordRewrite rewrite)
    {
        rewrite = RecordRewrite.None;
        ContractDefinition definition = contract.Definition;
        RecordActivation activation = scratch.Activation;
        // Set again by the sides decoded for this record (a null key or value decodes none).
        scratch.Key.Counted = null;
        scratch.Value.Counted = null;
        // Under flag a failing record is stored all the same, so a side that fails does not stop the other side from
        // being decoded and masked; in the other modes the first failure decides.
        bool storedAnyway = definition.OnFailure == FailureAction.Flag;
        bool refusedTombstone = record.ValueIsNull && definition.RejectTombstones;
        if (refusedTombstone && !storedAnyway)
        {
            return TombstoneRefused;
        }
        (string Rule, string Reason, ViolationKind Kind)? ruleFailed = null;
        SideResult? key = null;
        if (definition.Key is { } keyRequirement && !record.KeyIsNull)
        {
            key = DecodeSide(contract, keyRequirement, topic, isKey: true, record.Key, scratch.RecordBytes, activation.SchemasSeen, scratch.Key);
            if (key.Reason is not null)
            {
                ruleFailed = (key.Rule!, key.Reason, key.Kind);
                key = null;
                if (!storedAnyway)
                {
                    return ruleFailed;
                }
            }
        }

        if (refusedTombstone)
        {
            // Flagged: its key was decoded (and is masked below) as any stored record's.
            ruleFailed ??= TombstoneRefused;
        }

        SideResult? value = null;
        if (definition.Value is { } valueRequirement && !record.ValueIsNull)
        {
            value = DecodeSide(contract, valueRequirement, topic, isKey: false, record.Value, scratch.RecordBytes, activation.SchemasSeen, scratch.Value);
            if (value.Reason is not null)
            {
                ruleFailed ??= (value.Rule!, value.Reason, value.Kind);
                value = null;
                if (!storedAnyway)
                {
                    return ruleFailed;
                }
            }
        }

        // Rules describe records that carry a value: an allowed tombstone (a delete marker) is not held to them, as
        // Confluent's serializers do not run rules on a null message; nor is a record whose payload already failed.
        if (contract.Rules.Length > 0 && !record.ValueIsNull && ruleFailed is null)
        {
            activation.Value = value?.Value;
            activation.Key = key is not null ? key.Value : record.KeyIsNull || !contract.RulesReadKey ? null : Encoding.UTF8.GetString(record.Key);
            activation.TimestampMs = record.Timestamp;
            activation.Headers = contract.RulesReadHeaders ? Headers(record) : null;
            int failed = CompiledRule.FirstNotPassing(contract.Rules, activation, out RuleOutcome outcome);
            if (failed >= 0)
            {
                FieldRuleDefinition rule = definition.Rules[failed];
                ruleFailed = outcome.IsFailed
                    ? (rule.Name, rule.Message ?? $"rule failed: {rule.Expression}", ViolationKind.RuleFailed)
                    : (rule.Name, RuleErrorReason(definition, outcome.ErrorMessage), ViolationKind.RuleError);
            }
        }

        // A record failing a rule is stored only when flagged, and then it is masked like any other record.
        if (ruleFailed is not null && definition.OnFailure != FailureAction.Flag)
        {
            return ruleFailed;
        }

        if (applyPrivacy)
        {
            string? valueProblem = null;
            string? keyProblem = null;
            string? breaksSchema = null;
            if (value is not null)
            {
                ApplyPrivacy(contract, value, record.Value[SchemaWireFormat.HeaderSize..], scratch.Rewrites!, ref valueProblem, ref breaksSchema, out rewrite.ValueStart, out rewrite.ValueLength);
            }

            // Under flag the key is masked even when the value's step failed: the record is stored, and only the side that
            // could not be masked goes as sent. Elsewhere the first failure decides.
            if (key is not null && (valueProblem is null || storedAnyway))
            {
                ApplyPrivacy(contract, key, record.Key[SchemaWireFormat.HeaderSize..], scratch.Rewrites!, ref keyProblem, ref breaksSchema, out rewrite.KeyStart, out rewrite.KeyLength);
            }

            if ((keyProblem ?? valueProblem) is { } problem)
            {
                // Bytes already written for a side that failed stay in the buffer unreferenced (its start is -1: stored as
                // sent). On a sensitive topic the privacy failure is the verdict, since it refuses the batch; elsewhere the
                // record's first failure is named, the key's before the value's.
                if (!storedAnyway)
                {
                    rewrite = RecordRewrite.None;
                }

                return definition.Class == TopicClass.Sensitive || ruleFailed is null || keyProblem is not null
                    ? ("privacy", problem, ViolationKind.Privacy)
                    : ruleFailed;
            }

            if (breaksSchema is not null && ruleFailed is null)
            {
                // Masked, but no longer valid against its schema: a failure like any other, and under flag the masked form
                // is what is stored (the original would store the data the policy masks).
                if (!storedAnyway)
                {
                    rewrite = RecordRewrite.None;
                }

                return ("privacy", breaksSchema, ViolationKind.MaskedSchemaMismatch);
            }
        }

        return ruleFailed;
    }

    private SideResult DecodeSide(CompiledContract contract, SchemaRequirement requirement, string topic, bool isKey, ReadOnlySpan<byte> bytes, ReadOnlyMemory<byte> recordBytes, Dictionary<SchemaCheck, long> schemasSeen, SideResult result)
    {
        string side = isKey ? "key" : "value";
        result.Reset();
        if (!SchemaWireFormat.TryReadSchemaId(bytes, out int schemaId))
        {
            result.Reason = $"{side} has no schema id (Confluent framing: magic byte 0 and a 4-byte schema id)";
            result.Kind = ViolationKind.NoSchemaId;
            return result;
        }

        result.SchemaId = schemaId;
        bool subjectByRecord = requirement.Subject is null && requirement.Strategy != SubjectNameStrategy.TopicNameStrategy;
        if (result.CheckedSchemaId != schemaId || result.Check is null)
        {
            // The registry's answer is taken once per schema id and batch, like a snapshot at the batch's start.
            result.Check = CheckSchema(contract, requirement, topic, isKey, schemaId, recordName: null, subjectByRecord);
            result.Validator = null;
            result.CheckedSchemaId = schemaId;
        }

        SchemaCheck check = result.Check;
        if (check.Problem is not null)
        {
            // A version outside the pinned range is still a version of the subject: counted, so the metric shows who still writes it.
            if (check.Kind == ViolationKind.VersionNotAllowed)
            {
                CountSeen(schemasSeen, check, result);
            }

            result.Reason = $"{side}: {check.Problem}";
            result.Kind = check.Kind;
            return result;
        }

        // Only ids registered under the contract's subject are counted: the 4 bytes come from the producer, and every
        // other value would be a new metric series. Under a record name strategy the subject is known after the decode.
        if (!subjectByRecord)
        {
            CountSeen(schemasSeen, check, result);
        }

        ReadOnlySpan<byte> payload = bytes[SchemaWireFormat.HeaderSize..];
        try
        {
            // Decoded from the batch's memory, so strings can stay slices of it: the graph is dropped before the batch is.
            result.Decoded = check.Codec!.Decode(check.Parsed!, MemoryOf(recordBytes, payload));
        }
        catch (PayloadDecodeException e)
        {
            result.Reason = $"{side} does not decode with schema {schemaId}: {e.Message}";
            result.Kind = ViolationKind.Undecodable;
            return result;
        }

        if (subjectByRecord)
        {
            // As Confluent's serializers, a record name strategy needs a named schema (an Avro record, a Protobuf message, a
            // JSON schema's title): without one there is no subject to hold the id to. Checked before the JSON validation,
            // so an id the subject does not hold never gets a validator built (a producer names any id it likes).
            if (RecordName(check, result.Decoded) is not { } recordName)
            {
                result.Reason = $"{side}: schema {schemaId} names no record, so {requirement.Strategy} gives it no subject";
                result.Kind = ViolationKind.WrongSubject;
                return result;
            }

            SchemaCheck named = CheckSchema(contract, requirement, topic, isKey, schemaId, recordName, subjectByRecord: false);
            if (named.Problem is not null)
            {
                if (named.Kind == ViolationKind.VersionNotAllowed)
                {
                    CountSeen(schemasSeen, named, result);
                }

                result.Reason = $"{side}: {named.Problem}";
                result.Kind = named.Kind;
                return result;
            }

            CountSeen(schemasSeen, named, result);
        }

        if (check.Parsed!.Type == SchemaType.Json)
        {
            // The codec has proven the payload well-formed and bounded; validate it against the schema, on the
            // decoded record when the schema is in the compiled subset, else by parsing it for JsonSchema.Net.
            JsonPayloadValidator validator = result.Validator ??= jsonValidators.GetOrCreate(schemaId, check.Parsed);
            IReadOnlyList<string> errors = (validator.ValidatesDecoded ? validator.ValidateDecoded(result.Decoded.Value) : null) ?? ValidateJson(validator, payload);
            if (errors.Count > 0)
            {
                result.Reason = $"{side} does not match JSON schema {schemaId}: {string.Join("; ", errors.Take(3))}";
                result.Kind = ViolationKind.SchemaMismatch;
                return result;
            }
        }
        else if (check.Parsed.Type == SchemaType.Protobuf && contract.Definition.Class == TopicClass.Sensitive && Formats.Protobuf.ProtobufPayloadCodec.HasUnknownFields(result.Decoded.Value))
        {
            // Fields the schema does not declare (a message serialised with a newer schema under an older id) would be stored
            // as sent, unseen by the privacy policy: a sensitive topic never stores what its policy could not look at.
            result.Reason = $"{side} has fields Protobuf schema {schemaId} does not declare (or enum numbers its proto2 enums do not), which a sensitive topic does not store unseen by its privacy policy";
            result.Kind = ViolationKind.SchemaMismatch;
            return result;
        }

        result.Value = result.Decoded.Value;
        result.Parsed = check.Parsed;
        result.Codec = check.Codec;
        result.RenamedPrivacyPaths = check.RenamedPrivacyPaths;
        result.Rule = null;
        return result;
    }

    private static void CountSeen(Dictionary<SchemaCheck, long> schemasSeen, SchemaCheck check, SideResult side)
    {
        System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(schemasSeen, check, out _)++;
        side.Counted = check;
    }

    /// <summary>The memory of <paramref name="part"/>, a span inside <paramref name="owner"/>.</summary>
    private static ReadOnlyMemory<byte> MemoryOf(ReadOnlyMemory<byte> owner, ReadOnlySpan<byte> part) =>
        owner.Span.Overlaps(part, out int offset) && offset >= 0 && offset + part.Length <= owner.Length
            ? owner.Slice(offset, part.Length)
            : part.ToArray();

    private static IReadOnlyList<string> ValidateJson(JsonPayloadValidator validator, ReadOnlySpan<byte> payload)
    {
        var reader = new System.Text.Json.Utf8JsonReader(payload, new System.Text.Json.JsonReaderOptions { MaxDepth = RecordValue.MaxDepth });
        using var document = System.Text.Json.JsonDocument.ParseValue(ref reader);
        return validator.Validate(document.RootElement);
    }

    private SchemaCheck CheckSchema(CompiledContract contract, SchemaRequirement requirement, string topic, bool isKey, int schemaId, string? recordName, bool subjectByRecord)
    {
        string? subjectTopic = !contract.Definition.IsPattern || subjectByRecord || requirement.Subject is not null || requirement.Strategy == SubjectNameStrategy.RecordNameStrategy ? null : topic;
        var cacheKey = new SchemaCheckKey(registry.Generation, contract.Definition.Name, contract.Version, isKey, schemaId, recordName, subjectByRecord, subjectTopic);
        // The lookup is per record: the miss path (and its closure over these parameters) lives in its own method.
        return _schemaChecks.TryGetValue(cacheKey, out SchemaCheck? known) ? known : AddSchemaCheck(cacheKey, contract.Definition, requirement, topic, isKey, schemaId, recordName, subjectByRecord);
    }

    /// <summary>
    /// The paths a schema tags, or why they cannot all be found (a walk past its budget), cached either way: a failed walk
    /// is as costly as the budget, and is not taken again for every record. Bounded as the schema checks are, since every
    /// registry write starts a new generation.
    /// </summary>
    private (IReadOnlyList<string> Paths, string? Problem) TaggedPaths((long Generation, int SchemaId, string? Message, string Tag) key, IParsedSchema parsed)
    {
        if (_taggedPaths.TryGetValue(key, out (IReadOnlyList<string> Paths, string? Problem) known))
        {
            return known;
        }

        if (_taggedPaths.Count > 10_000)
        {
            _taggedPaths.Clear();
        }

        return _taggedPaths.GetOrAdd(key, static (key, parsed) =>
        {
            try
            {
                return (SchemaTags.PathsWithTag(parsed, key.Tag, key.Message), null);
            }
            catch (InvalidOperationException e)
            {
                return ([], e.Message);
            }
        }, parsed);
    }

    /// <summary>
    /// Drops what the caches hold for older registry generations, once per generation: checks and tag walks are keyed by
    /// generation, so those of an older one are never read again, and kept until a count cap they held the parsed schemas
    /// of deleted ids. The validators of ids that no longer name their schema go too: with them, a churn of registrations
    /// and hard deletes kept megabytes per deleted schema (a review: 11 GB after 1,500).
    /// </summary>
    private void ForgetOlderGenerations(long generation)
    {
        while (true)
        {
            long swept = Volatile.Read(ref _sweptGeneration);
            if (swept >= generation)
            {
                return; // swept (or being swept) for this generation or a newer one already
            }

            if (Interlocked.CompareExchange(ref _sweptGeneration, generation, swept) == swept)
            {
                break; // this thread sweeps; one that lost to an older generation's sweeper tries again
            }
        }

        RemoveKeys(_schemaChecks, static (key, generation) => key.Generation < generation, generation);
        RemoveKeys(_taggedPaths, static (key, generation) => key.Generation < generation, generation);
        jsonValidators.RemoveStale(ParsedOrNull);
    }

    /// <summary>Removes the entries whose key <paramref name="stale"/> picks (a cache's pruning, off the per-record path).</summary>
    private static void RemoveKeys<TKey, TValue, TState>(ConcurrentDictionary<TKey, TValue> cache, Func<TKey, TState, bool> stale, TState state)
        where TKey : notnull
    {
        foreach (TKey key in cache.Keys)
        {
            if (stale(key, state))
            {
                cache.TryRemove(key, out _);
            }
        }
    }

    private IParsedSchema? ParsedOrNull(int schemaId)
    {
        try
        {
            return registry.ParsedById(schemaId);
        }
        catch (SchemaRegistryException)
        {
            return null; // unusable now (a reference of it deleted for good)
        }
    }

    /// <summary>Contract versions compiled and kept (for tests).</summary>
    internal int CompiledContractCount => _compiled.Count;

    /// <summary>Compiles a contract version met for the first time, and forgets the same contract's older versions (one per apply otherwise).</summary>
    private CompiledContract CompileNewVersion(ActiveContract active)
    {
        CompiledContract contract = _compiled.GetOrAdd((active.Definition.Name, active.Version), static (_, a) => Compile(a), active);
        RemoveKeys(_compiled, static (key, newer) => key.Name == newer.Definition.Name && key.Version < newer.Version, active);
        return contract;
    }

    private SchemaCheck AddSchemaCheck(SchemaCheckKey cacheKey, ContractDefinition definition, SchemaRequirement requirement, string topic, bool isKey, int schemaId, string? recordName, bool subjectByRecord)
    {
        if (cacheKey.Generation > Volatile.Read(ref _sweptGeneration))
        {
            ForgetOlderGenerations(cacheKey.Generation);
        }

        return _schemaChecks.GetOrAdd(cacheKey, _ =>
        {
            if (_schemaChecks.Count > 100_000)
            {
                _schemaChecks.Clear();
            }

            IParsedSchema? parsed;
            try
            {
                parsed = registry.ParsedById(schemaId);
            }
            catch (SchemaRegistryException e)
            {
                // Registered, but unusable (a reference of it was deleted for good): the records' failure, not the broker's.
                return new SchemaCheck(null, null, $"schema id {schemaId} cannot be used: {e.Message}", ViolationKind.UnknownSchema);
            }

            if (parsed is null)
            {
                return new SchemaCheck(null, null, $"schema id {schemaId} is not registered", ViolationKind.UnknownSchema);
            }

            if (!_codecs.TryGetValue(parsed.Type, out IPayloadCodec? codec))
            {
                return new SchemaCheck(null, null, $"schema id {schemaId} is {RegistryNames.Name(parsed.Type)}, which the gate cannot decode", ViolationKind.UnsupportedSchemaType);
            }

            if (requirement.DeclaredSchemaType is { } declared && parsed.Type != declared)
            {
                return new SchemaCheck(null, null, $"schema id {schemaId} is {RegistryNames.Name(parsed.Type)}, and the contract admits {RegistryNames.Name(declared)} schemas only", ViolationKind.WrongSchemaType);
            }

            if (subjectByRecord)
            {
                // The record's subject is known only once it is decoded, and a JSON record is validated before that.
                return UnusableJsonSchema(schemaId, parsed) ?? WithRenamedPrivacyPaths(new SchemaCheck(parsed, codec, null, RecordName: SchemaRecordNames.Of(parsed), SchemaId: schemaId), definition, null, isKey);
            }

            string subject = requirement.SubjectFor(topic, isKey, recordName);
            if (registry.VersionUnder(schemaId, subject) is not { } version)
            {
                // A soft-deleted version is no longer one of the subject's: said so, as the producer did use the right subject.
                return new SchemaCheck(null, null, registry.DeletedVersionUnder(schemaId, subject) is { } deleted
                    ? $"schema id {schemaId} is version {deleted} of subject '{subject}', which was deleted"
                    : $"schema id {schemaId} is not registered under subject '{subject}'", ViolationKind.WrongSubject);
            }

            if (!requirement.Admits(version))
            {
                return new SchemaCheck(null, null, $"schema id {schemaId} is version {version} of '{subject}', outside the pinned versions", ViolationKind.VersionNotAllowed, SchemaId: schemaId, Subject: subject, Version: version);
            }

            // A contract applied before its schema was registered had its privacy rules checked against nothing: held to the
            // schemas registered now, as an apply would be, so a misspelt path fails its records instead of storing the
            // field it meant in clear (from a user's review). Once per registry generation and contract version.
            if (PrivacyMisfit(definition, cacheKey.ContractVersion) is { } misfit)
            {
                return new SchemaCheck(null, null, misfit, ViolationKind.Privacy, SchemaId: schemaId, Subject: subject, Version: version);
            }

            return UnusableJsonSchema(schemaId, parsed) ?? WithRenamedPrivacyPaths(new SchemaCheck(parsed, codec, null, SchemaId: schemaId, Subject: subject, Version: version), definition, requirement, isKey);
        });
    }

    /// <summary>
    /// The check with the paths its Avro schema holds each privacy path's field under, where a field alias (in it, or in the
    /// other versions the contract admits, when those can be known) renamed a level of the path; or a failed check when the
    /// aliases spread a path past <see cref="AvroFieldRenames.MaxPaths"/>, as its records cannot be masked for sure.
    /// </summary>
    private SchemaCheck WithRenamedPrivacyPaths(SchemaCheck check, ContractDefinition definition, SchemaRequirement? requirement, bool isKey)
    {
        if (check.Parsed is not AvroParsedSchema avro || definition.Privacy.Count == 0)
        {
            return check;
        }

        List<IParsedSchema> related;
        try
        {
            related = (requirement is null ? null : ContractRegistrySync.RegisteredSchemas(registry, definition, requirement, isKey)) ?? [];
        }
        catch (SchemaRegistryException)
        {
            related = []; // a version deleted while it was read: the writer's own aliases still count
        }

        IReadOnlyList<string>?[]? renamed = null;
        for (int i = 0; i < definition.Privacy.Count; i++)
        {
            if (definition.Privacy[i].FieldPath is not { } path)
            {
                continue;
            }

            IReadOnlyList<string>? paths = AvroFieldRenames.WriterPaths(avro, related, privacy.SplitPath(path), out bool tooMany);
            if (tooMany)
            {
                return new SchemaCheck(null, null, $"privacy[{path}]: Avro schema {check.SchemaId} holds this field under more than {AvroFieldRenames.MaxPaths} paths through its field aliases, so its records cannot be masked for sure", ViolationKind.Privacy, SchemaId: check.SchemaId, Subject: check.Subject, Version: check.Version);
            }

            if (paths is not null)
            {
                (renamed ??= new IReadOnlyList<string>?[definition.Privacy.Count])[i] = paths;
            }
        }

        return renamed is null ? check : check with { RenamedPrivacyPaths = renamed };
    }

    /// <summary>
    /// Why a contract's privacy rules do not fit the schemas registered for it now (the check an apply makes), or null. A
    /// contract whose schemas cannot be known (a pattern, a record name strategy) is not checked, as at apply.
    /// </summary>
    private string? PrivacyMisfit(ContractDefinition definition, int version)
    {
        if (definition.Privacy.Count == 0)
        {
            return null;
        }

        List<(int Id, IParsedSchema Schema)>? keySchemas;
        List<(int Id, IParsedSchema Schema)>? valueSchemas;
        try
        {
            keySchemas = definition.Key is null ? null : ContractRegistrySync.RegisteredSchemaIds(registry, definition, definition.Key, isKey: true);
            valueSchemas = definition.Value is null ? null : ContractRegistrySync.RegisteredSchemaIds(registry, definition, definition.Value, isKey: false);
        }
        catch (SchemaRegistryException)
        {
            // A version deleted between the listing and its read, or one that cannot be read: not knowable now, so not
            // held against the records (as at apply, where what cannot be seen refuses nothing). Asked again next record.
            return null;
        }

        string admittedIds = $"{string.Join(',', keySchemas?.ConvertAll(s => s.Id) ?? [])}/{string.Join(',', valueSchemas?.ConvertAll(s => s.Id) ?? [])}";
        if (_privacyMisfits.TryGetValue((definition.Name, version, admittedIds), out string? known))
        {
            return known;
        }

        if (_privacyMisfits.Count > 10_000)
        {
            _privacyMisfits.Clear();
        }

        IReadOnlyList<string> problems = SchemaFieldPaths.PrivacyPathProblems(definition, (_, isKey) => (isKey ? keySchemas : valueSchemas)?.ConvertAll(s => s.Schema), maskingNothingOnly: true);
        string? misfit = problems.Count == 0
            ? null
            : $"the contract's privacy policy does not fit the schemas registered for it, so its records fail until the contract is fixed: {problems[0]}";
        _privacyMisfits[(definition.Name, version, admittedIds)] = misfit;
        return misfit;
    }

    /// <summary>
    /// The registry takes JSON schemas no validator can be built from (draft 4, a pattern .NET cannot compile): each record
    /// written with one is a bad record of the contract, not a failure of its whole batch. Kept with the schema check, so
    /// the build is not tried again for every record. Null for a usable schema (or one of another type).
    /// </summary>
    private SchemaCheck? UnusableJsonSchema(int schemaId, IParsedSchema parsed)
    {
        if (parsed.Type != SchemaType.Json)
        {
            return null;
        }

        try
        {
            jsonValidators.GetOrCreate(schemaId, parsed);
            return null;
        }
        catch (InvalidSchemaException e)
        {
            LogUnusableSchema(schemaId, e.Message);
            return new SchemaCheck(null, null, $"schema id {schemaId} cannot be used to validate records: {e.Message}", ViolationKind.UnsupportedSchemaType);
        }
    }

    /// <summary>The record name the Record*NameStrategy subjects use: Avro full name, Protobuf message, JSON Schema title.</summary>
    /// <summary>The record name of a decoded side: the message a Protobuf payload's indexes chose, else the schema's own.</summary>
    private static string? RecordName(SchemaCheck check, DecodedPayload decoded) =>
        check.Parsed is not AvroParsedSchema && decoded.MessageFullName is { } message ? message : check.RecordName;

    /// <summary>Applies the privacy rules to a decoded side; when they changed it, writes the new payload (header first) to <paramref name="output"/> and says where.</summary>
    /// <param name="breaksSchema">Set when the masked JSON side no longer matches its schema (the rewrite itself is kept).</param>
    private void ApplyPrivacy(CompiledContract contract, SideResult side, ReadOnlySpan<byte> original, PooledBufferWriter output, ref string? problem, ref string? breaksSchema, out int start, out int length)
    {
        start = -1;
        length = 0;
        bool changed = false;
        bool removed = false;
        List<string[]> changedPaths = side.ChangedPaths;
        changedPaths.Clear();
        int visitsLeft = PrivacyRewriter.MaxVisitsPerRecord;
        IReadOnlyList<PrivacyRuleDefinition> privacyRules = contract.Definition.Privacy;
        for (int ruleIndex = 0; ruleIndex < privacyRules.Count; ruleIndex++)
        {
            PrivacyRuleDefinition rule = privacyRules[ruleIndex];
            IReadOnlyList<string> paths;
            if (rule.FieldPath is not null)
            {
                paths = side.RenamedPrivacyPaths?[ruleIndex] ?? contract.PrivacyPaths[ruleIndex];
            }
            else
            {
                (paths, string? walkProblem) = TaggedPaths((registry.Generation, side.SchemaId, side.Decoded!.MessageFullName, rule.Tag!), side.Parsed!);
                if (walkProblem is not null)
                {
                    // Fail closed: a record whose tagged fields cannot all be found is not stored unmasked.
                    problem = $"tag {rule.Tag}: {walkProblem}";
                    return;
                }
            }

            for (int pathIndex = 0; pathIndex < paths.Count; pathIndex++) // not foreach: an interface's enumerator is a box per record
            {
                string target = paths[pathIndex];
                string[] fieldNames = rule.FieldPath is not null && side.RenamedPrivacyPaths?[ruleIndex] is null ? contract.PrivacyFieldNames[ruleIndex] : privacy.SplitPath(target);
                bool changedHere = privacy.Apply(side.Value, fieldNames, rule.Action, ref visitsLeft, out string? failure);
                if (failure is not null)
                {
                    problem = $"{target}: {failure}";
                    return;
                }

                if (changedHere)
                {
                    changed = true;
                    removed |= rule.Action == PrivacyAction.Drop;
                    changedPaths.Add(fieldNames);
                }
            }
        }

        // Fields the schema does not declare (a message serialised with a newer schema, or framed with another message's
        // index) are kept as sent, where no privacy path reaches them: a topic whose contract masks fields does not store
        // them (a sensitive one refused them already, with held-out enum numbers too, at the decode).
        if (side.Parsed!.Type == SchemaType.Protobuf && Formats.Protobuf.ProtobufPayloadCodec.HasUnknownFields(side.Value, heldOutToo: false))
        {
            problem = $"fields Protobuf schema {side.SchemaId} does not declare, which a topic whose contract masks fields does not store unseen by its privacy policy";
            return;
        }

        // A payload with superseded values is written again from the decoded record even when nothing was masked: stored as
        // sent, it would keep values the policy never saw (a tagged oneof member another member replaced).
        if (!changed && !side.Decoded!.Superseded)
        {
            return;
        }

        try
        {
            Span<byte> header = stackalloc byte[SchemaWireFormat.HeaderSize];
            SchemaWireFormat.WriteHeader(header, side.SchemaId);

            // The rewriter changed the decoded graph in place, so the decoded payload carries the new values.
            int before = output.WrittenCount;
            if (removed && !side.Codec!.SplicesRemovedFields)
            {
                output.Write(side.Codec!.Encode(side.Parsed!, side.Decoded!, header));
            }
            else
            {
                side.Codec!.EncodeRewrite(side.Parsed!, side.Decoded!, original, changedPaths, header, output);
            }

            start = before;
            length = output.WrittenCount - before;
        }
        catch (PayloadDecodeException e)
        {
            problem = $"privacy rewrite cannot be encoded: {e.Message}";
            return;
        }

        if (side.Validator is { } validator)
        {
            // A JSON schema constrains values beyond their type (enum, const, lengths, patterns, bounds, required members): a
            // masked value may break what the original met, and a consumer's deserializer would refuse the stored record.
            // Checked where the rewrite changed the graph (the rest was valid), or on the rewritten text when the schema is
            // outside the compiled subset.
            IReadOnlyList<string> errors = (validator.ValidatesDecoded ? validator.ValidateChanged(side.Value, changedPaths) : null)
                ?? ValidateJson(validator, output.WrittenSpan.Slice(start + SchemaWireFormat.HeaderSize, length - SchemaWireFormat.HeaderSize));
            if (errors.Count > 0)
            {
                breaksSchema ??= $"the masked record does not match JSON schema {side.SchemaId}: {string.Join("; ", errors.Take(3))}";
            }
        }
    }

    /// <summary>
    /// Why a rule could not be evaluated. An evaluation error may quote the field it failed on ("cannot convert '…'"); a
    /// flagged record is stored with its reason in a header, so where the contract masks fields the quote is left out,
    /// or the header would carry in clear what the privacy policy masks in the value.
    /// </summary>
    private static string RuleErrorReason(ContractDefinition definition, string? error) =>
        definition.OnFailure == FailureAction.Flag && definition.Privacy.Count > 0
            ? WithheldRuleErrorReason
            : $"{RuleErrorReasonPrefix}{error}";

    /// <summary>How the reason of a record a rule could not evaluate starts; the evaluation error follows.</summary>
    public const string RuleErrorReasonPrefix = "rule error: ";

    /// <summary>The reason given instead of a rule's evaluation error where it would be stored next to masked fields.</summary>
    public const string WithheldRuleErrorReason = "rule error (its message is withheld: it may quote a field the privacy policy masks)";

    private static Dictionary<string, object?> Headers(Record record)
    {
        var headers = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (RecordHeader header in record.Headers)
        {
            headers[header.KeyString] = header.ValueIsNull ? null : Encoding.UTF8.GetString(header.Value);
        }

        return headers;
    }

    /// <summary>
    /// The batch to store: same producer fields, codec and offset span; rewritten keys/values; bad
    /// records dropped (their offsets become gaps) or kept with a violation header.
    /// </summary>
    /// <param name="knownRecordBytes">The kept records' size when the caller knows it (no record dropped, flagged or stripped of a forged flag), else -1.</param>
    private static byte[] Rebuild(RecordBatch batch, RecordSet records, List<RecordViolation> violations, Rewrites rewrites, bool drop, bool dropForgedFlags = false, int knownRecordBytes = -1)
    {
        // An uncompressed batch is measured first and then written once, straight into the array it is
        // stored in; a compressed one goes through the builder's pooled buffer and the codec.
        RecordHeaderValue[][]? flagHeaders = drop ? null : FlagHeaders(violations);
        RecordBatchBuilder builder = batch.Compression == CompressionCodec.None
            ? RecordBatchBuilder.WithExactRecordBytes(batch.BaseTimestamp, knownRecordBytes >= 0 ? knownRecordBytes : CopyKeptRecords(batch, records, violations, flagHeaders, dropForgedFlags, rewrites, into: null))
            : new RecordBatchBuilder(batch.BaseTimestamp, records.Bytes.Length + (records.Count * 64));
        builder.Compression = batch.Compression;
        builder.TimestampType = batch.TimestampType;
        builder.PartitionLeaderEpoch = batch.PartitionLeaderEpoch;
        builder.ProducerId = batch.ProducerId;
        builder.ProducerEpoch = batch.ProducerEpoch;
        builder.BaseSequence = batch.BaseSequence;
        builder.IsTransactional = batch.IsTransactional;
        builder.LastOffsetDelta = batch.LastOffsetDelta;
        CopyKeptRecords(batch, records, violations, flagHeaders, dropForgedFlags, rewrites, builder);
        return builder.Build();
    }

    /// <summary>The violation header of each bad record a flag keeps, made once for both passes over the batch.</summary>
    private static RecordHeaderValue[][]? FlagHeaders(List<RecordViolation> violations)
    {
        if (violations.Count == 0)
        {
            return null;
        }

        var headers = new RecordHeaderValue[violations.Count][];
        for (int i = 0; i < headers.Length; i++)
        {
            headers[i] = [new RecordHeaderValue(ViolationHeader, Encoding.UTF8.GetBytes($"{violations[i].Rule}: {violations[i].Reason}"))];
        }

        return headers;
    }

    /// <summary>A record's size in a rebuilt batch that keeps it with its rewrites and its headers as they are.</summary>
    private static int KeptRecordSize(RecordBatch batch, Record record, RecordRewrite rewrite) =>
        RecordBatchBuilder.CopiedRecordSize(
            record.Timestamp - batch.BaseTimestamp,
            (int)(record.Offset - batch.BaseOffset),
            rewrite.KeyStart >= 0 ? rewrite.KeyLength : record.Key.Length,
            rewrite.KeyStart < 0 && record.KeyIsNull,
            rewrite.ValueStart >= 0 ? rewrite.ValueLength : record.Value.Length,
            rewrite.ValueStart < 0 && record.ValueIsNull,
            record.RawHeaders.Length,
            record.HeaderCount);

    /// <summary>
    /// Copies the records the rebuilt batch keeps (rewritten sides in place of the originals; bad records
    /// given their header from <paramref name="flagHeaders"/>, or dropped when it is null) into
    /// <paramref name="into"/>, or, when that is null, only adds up the bytes they take.
    /// </summary>
    private static int CopyKeptRecords(RecordBatch batch, RecordSet records, List<RecordViolation> violations, RecordHeaderValue[][]? flagHeaders, bool dropForgedFlags, Rewrites rewrites, RecordBatchBuilder? into)
    {
        int bytes = 0;
        int index = 0;
        int nextViolation = 0;
        foreach (Record record in records)
        {
            int violation = nextViolation < violations.Count && violations[nextViolation].BatchIndex == index ? nextViolation++ : -1;
            if (violation < 0 || flagHeaders is not null)
            {
                RecordHeaderValue[]? extra = violation < 0 ? null : flagHeaders![violation];
                ReadOnlySpan<byte> rawHeaders = record.RawHeaders;
                int headerCount = record.HeaderCount;
                if (dropForgedFlags && BrokerHeaders.Without(rawHeaders, headerCount, ViolationHeaderKey, extra ?? []) is { } replaced)
                {
                    // A producer's violation header goes, so the only one a consumer finds is the broker's.
                    rawHeaders = [];
                    headerCount = 0;
                    extra = replaced;
                }

                int offsetDelta = (int)(record.Offset - batch.BaseOffset);
                ReadOnlySpan<byte> key = rewrites.Key(index, record.Key);
                bool keyIsNull = !rewrites.KeyChanged(index) && record.KeyIsNull;
                ReadOnlySpan<byte> value = rewrites.Value(index, record.Value);
                bool valueIsNull = !rewrites.ValueChanged(index) && record.ValueIsNull;
                if (into is null)
                {
                    bytes += RecordBatchBuilder.CopiedRecordSize(record.Timestamp - batch.BaseTimestamp, offsetDelta, key.Length, keyIsNull, value.Length, valueIsNull, rawHeaders.Length, headerCount, extra);
                }
                else
                {
                    into.AddCopy(offsetDelta, record.Timestamp, key, keyIsNull, value, valueIsNull, rawHeaders, headerCount, extra);
                }
            }

            index++;
        }

        return bytes;
    }

    private static List<QuarantinedRecord> Quarantine(RecordBatch batch, RecordSet records, List<RecordViolation> violations)
    {
        var quarantined = new List<QuarantinedRecord>(violations.Count);
        int index = 0;
        int nextViolation = 0;
        foreach (Record record in records)
        {
            if (nextViolation < violations.Count && violations[nextViolation].BatchIndex == index)
            {
                RecordViolation violation = violations[nextViolation++];
                quarantined.Add(new QuarantinedRecord(
                    (int)(record.Offset - batch.BaseOffset),
                    record.Timestamp,
                    record.KeyIsNull ? null : record.Key.ToArray(),
                    record.ValueIsNull ? null : record.Value.ToArray(),
                    record.RawHeaders.ToArray(),
                    record.HeaderCount,
                    violation.Rule,
                    violation.Reason,
                    batch.Compression));
            }

            index++;
        }

        return quarantined;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Checking a batch on {Topic}-{Partition} against contract {Contract} took longer than {Seconds} s after {Judged} of {Count} records: {Outcome}")]
    private partial void LogSlowBatch(string topic, int partition, string contract, double seconds, int judged, int count, string outcome);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Schema id {SchemaId} is registered, but no JSON Schema validator can be built from it; records written with it are bad records: {Problem}")]
    private partial void LogUnusableSchema(int schemaId, string problem);
}
