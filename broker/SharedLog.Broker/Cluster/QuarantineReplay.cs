using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using SharedLog.Broker.Handlers;
using SharedLog.Contracts;
using SharedLog.Contracts.Gate;
using SharedLog.Contracts.Model;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Protocol.Records;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.Objects;
using SharedLog.Storage.Streams;

namespace SharedLog.Broker.Cluster;

/// <summary>
/// What to replay: the quarantined records of <see cref="Source"/> from a bad period, chosen by the source offsets
/// and timestamps the quarantine headers carry, written to <see cref="Target"/>.
/// </summary>
public sealed record ReplayRequest
{
    /// <summary>Most records one replay writes unless it asks for fewer; a longer period is replayed in steps (<see cref="ResumeFrom"/>).</summary>
    public const int DefaultMaxRecords = 100_000;

    public const int MaxMaxRecords = 1_000_000;

    public required string Source { get; init; }

    /// <summary>Where the records go; the source topic itself when null (after the contract that quarantined them was fixed).</summary>
    public string? Target { get; init; }

    /// <summary>The quarantine topic to read; the one the contract in force names for the source topic when null.</summary>
    public string? QuarantineTopic { get; init; }

    /// <summary>Source partitions to replay; all when null.</summary>
    public IReadOnlySet<int>? Partitions { get; init; }

    /// <summary>Source offsets, from (inclusive) to (exclusive).</summary>
    public long FromOffset { get; init; }

    public long ToOffset { get; init; } = long.MaxValue;

    /// <summary>Source record timestamps (ms since the epoch), from (inclusive) to (exclusive).</summary>
    public long FromTimestamp { get; init; } = long.MinValue;

    public long ToTimestamp { get; init; } = long.MaxValue;

    /// <summary>Only records quarantined by one of these rules (the <c>sharedlog.rule</c> header); every rule when null.</summary>
    public IReadOnlySet<string>? Rules { get; init; }

    /// <summary>Quarantine offset to start each quarantine partition at (a previous replay's <c>nextOffset</c>); its log start when absent.</summary>
    public IReadOnlyDictionary<int, long>? ResumeFrom { get; init; }

    public int MaxRecords { get; init; } = DefaultMaxRecords;

    /// <summary>Most bytes per second the replay writes (batches as sent), so a long one leaves the disk to live traffic; unlimited when null.</summary>
    public long? MaxBytesPerSecond { get; init; }

    /// <summary>The lowest <see cref="MaxBytesPerSecond"/> taken: below one batch's worth per second a replay would crawl.</summary>
    public const long MinBytesPerSecond = 64 * 1024;

    /// <summary>Count what would be replayed, write nothing.</summary>
    public bool DryRun { get; init; }

    /// <summary>Written into every replayed record's <c>sharedlog.replay</c> header.</summary>
    public required string Id { get; init; }

    /// <summary>
    /// Whether the caller named the replay: then its progress is committed as the offsets of consumer group
    /// <c>sharedlog-replay.ID</c> on the quarantine topic, and a replay of the same id without <see cref="ResumeFrom"/>
    /// starts where that progress stands.
    /// </summary>
    public bool Named { get; init; }

    /// <summary>The consumer group that holds a named replay's progress.</summary>
    public string ProgressGroup => $"sharedlog-replay.{Id}";

    public string Actor { get; init; } = "anonymous";
}

/// <summary>One quarantine partition's part of a replay: read up to <see cref="NextOffset"/> (where a next replay resumes) of <see cref="EndOffset"/>.</summary>
public sealed record ReplayPartitionProgress(int QuarantinePartition, long StartOffset, long NextOffset, long EndOffset);

/// <summary>A record the target refused (its contract, its size): where it is in quarantine and in the source, and why.</summary>
public sealed record ReplayRefusal(int QuarantinePartition, long QuarantineOffset, int SourcePartition, long SourceOffset, string Error, string? Message);

/// <summary>Offsets the replayed records were stored at, per target partition.</summary>
public sealed record ReplayWritten(int Partition, long FirstOffset, long LastOffset, long Records);

public sealed record ReplayReport(
    string Id,
    string Source,
    string Target,
    string QuarantineTopic,
    bool DryRun,
    long Scanned,
    long Matched,
    long Written,
    long QuarantinedAgain,
    long Refused,
    long PastTargetRetention,
    bool Complete,
    long Requarantined,
    long FromDeletedTopic,
    string? Error,
    IReadOnlyList<ReplayPartitionProgress> Partitions,
    IReadOnlyList<ReplayWritten> WrittenRanges,
    IReadOnlyList<ReplayRefusal> Refusals);

/// <summary>
/// Paces a replay's writes to at most a number of bytes per second, measured from its first write. At most one second of
/// unused rate is kept as credit: after a long stretch with nothing to write (scanning records the filter skips) the
/// next writes must not go at full speed for as long as the stretch lasted.
/// </summary>
public sealed class ReplayThrottle(long? bytesPerSecond)
{
    private long _firstWrite;
    private long _bytes;

    /// <summary>Counts <paramref name="bytes"/> about to be written and waits until writing them keeps to the rate.</summary>
    public Task WaitAsync(long bytes, CancellationToken cancellationToken)
    {
        if (bytesPerSecond is null)
        {
            return Task.CompletedTask;
        }

        if (_firstWrite == 0)
        {
            _firstWrite = System.Diagnostics.Stopwatch.GetTimestamp();
        }

        TimeSpan wait = Reserve(bytes, System.Diagnostics.Stopwatch.GetElapsedTime(_firstWrite));
        return wait > TimeSpan.Zero ? Task.Delay(wait, cancellationToken) : Task.CompletedTask;
    }

    /// <summary>Counts <paramref name="bytes"/> written <paramref name="sinceFirstWrite"/>, and returns how long to wait before writing them.</summary>
    internal TimeSpan Reserve(long bytes, TimeSpan sinceFirstWrite)
    {
        long rate = bytesPerSecond ?? long.MaxValue;
        double credited = (sinceFirstWrite.TotalSeconds - 1) * rate;
        if (_bytes < credited)
        {
            _bytes = (long)credited;
        }

        TimeSpan wait = DelayFor(_bytes, sinceFirstWrite, rate);
        _bytes += bytes;
        return wait;
    }

    /// <summary>How long to wait before more bytes go, after <paramref name="bytesSoFar"/> went in <paramref name="elapsed"/>: the first write goes at once.</summary>
    public static TimeSpan DelayFor(long bytesSoFar, TimeSpan elapsed, long bytesPerSecond)
    {
        TimeSpan due = TimeSpan.FromSeconds(bytesSoFar / (double)bytesPerSecond);
        return due > elapsed ? due - elapsed : TimeSpan.Zero;
    }
}

/// <summary>A replay that cannot start: its topics or its filter are wrong.</summary>
public sealed class ReplayRequestException(int status, string message) : Exception(message)
{
    public int Status { get; } = status;
}

/// <summary>
/// Offset-aware replay of a bad period: reads a contract's quarantine topic, picks the records whose quarantine
/// headers place them in the requested source partitions, offsets, timestamps and rules, and produces them to a
/// target topic through the broker's own Produce path, so the target's contract (if any) judges them as it judges
/// any producer's records. Each replayed record has its key, value and own headers, its original timestamp, and
/// headers naming its source topic, partition and offset, the rule and reason it was quarantined for, and the
/// replay's id. Records keep their order per source partition (source partition p goes to target partition p
/// modulo the target's count). A record the target refuses is reported (with its quarantine and source offsets)
/// and the rest of its batch is written; any other failure stops the replay, and each quarantine partition's
/// <c>nextOffset</c> says exactly where a next replay resumes without writing anything twice.
/// </summary>
public sealed partial class QuarantineReplay(TopicService topics, StreamStore streams, IMetadataStore metadata, SharedLog.Broker.Coordinators.GroupLagTracker lag, ContractStore contracts, HandlerRegistry handlers, IJournal audit, SharedLog.Contracts.Evidence.ContractMetrics metrics, ILogger<QuarantineReplay> logger)
{
    /// <summary>Refused records listed in a report; past it they are only counted.</summary>
    public const int MaxListedRefusals = 100;

    private const int ReadChunkBytes = 4 * 1024 * 1024;

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> _running = new(StringComparer.Ordinal);
    private const int ProduceTimeoutMs = 30_000;
    private static readonly TimeSpan AuditTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The contract in force, naming one topic, whose quarantine topic is <paramref name="topic"/> (a user's slip: the quarantine topic named as the source).</summary>
    private ContractDefinition? QuarantinedFrom(string topic)
    {
        foreach ((_, ActiveContract active) in contracts.CurrentContracts)
        {
            if (!active.Definition.IsPattern && active.Definition.OnFailure == FailureAction.Quarantine && active.Definition.QuarantineTopicFor(active.Definition.Topic) == topic)
            {
                return active.Definition;
            }
        }

        return null;
    }

    public async Task<ReplayReport> RunAsync(ReplayRequest request, CancellationToken cancellationToken)
    {
        // The contract is looked up only for a topic that exists: a lookup under a pattern contract is cached per name.
        bool sourceExists = topics.Find(request.Source) is not null;
        ActiveContract? sourceContract = sourceExists ? contracts.ForTopic(request.Source) : null;
        string quarantineName = request.QuarantineTopic
            ?? sourceContract?.Definition.QuarantineTopicFor(request.Source)
            ?? throw new ReplayRequestException(404, sourceExists && QuarantinedFrom(request.Source) is { } quarantinedFrom
                ? $"Topic '{request.Source}' is the quarantine topic of contract '{quarantinedFrom.Name}' for topic '{quarantinedFrom.Topic}': a replay names the topic the records were produced to ('{quarantinedFrom.Topic}'), and reads its quarantine topic."
                : sourceExists
                ? $"Topic '{request.Source}' has no contract in force (it may have been deleted), so its quarantine topic is not known: name it with quarantineTopic (the CLI's --quarantine-topic)."
                : $"Topic '{request.Source}' does not exist, so its quarantine topic is not known: name it with quarantineTopic (the CLI's --quarantine-topic).");
        if (quarantineName == request.Source)
        {
            // The source holds records replayed into it earlier, which keep their quarantine headers: read as quarantine
            // copies, they would be written again (a review's replay from its own source matched 100 of them).
            throw new ReplayRequestException(400, $"quarantineTopic names the source topic '{request.Source}' itself: name the topic its bad records were quarantined to.");
        }

        if (InternalTopics.IsInternal(quarantineName))
        {
            // A pattern's template can make a journal's name ("_{topic}"): its records are the broker's, not quarantined ones.
            throw new ReplayRequestException(400, $"Cannot replay from internal topic '{quarantineName}'.");
        }

        TopicMetadata quarantineTopic = topics.Find(quarantineName) ?? throw new ReplayRequestException(404, $"Quarantine topic '{quarantineName}' does not exist.");
        string targetName = request.Target ?? request.Source;
        TopicMetadata target = topics.Find(targetName) ?? throw new ReplayRequestException(404, $"Target topic '{targetName}' does not exist.");
        if (InternalTopics.IsInternal(targetName))
        {
            throw new ReplayRequestException(400, $"Cannot replay into internal topic '{targetName}'.");
        }

        if (targetName == quarantineName)
        {
            throw new ReplayRequestException(400, "Cannot replay a quarantine topic into itself.");
        }

        // Partitions are never removed: one past the count is a slip in the request, not a filter that happens to match nothing.
        if (topics.Find(request.Source) is { } source && request.Partitions?.FirstOrDefault(p => p >= source.Partitions.Count, -1) is >= 0 and int noSuchPartition)
        {
            throw new ReplayRequestException(400, $"partitions: source topic '{request.Source}' has partitions 0 to {source.Partitions.Count - 1}, not {noSuchPartition}.");
        }

        if (request.ResumeFrom?.Keys.FirstOrDefault(p => p >= quarantineTopic.Partitions.Count, -1) is >= 0 and int noSuchQuarantinePartition)
        {
            throw new ReplayRequestException(400, $"resumeFrom: quarantine topic '{quarantineName}' has partitions 0 to {quarantineTopic.Partitions.Count - 1}, not {noSuchQuarantinePartition}; resume points are quarantine partitions and offsets.");
        }

        // A rule no contract version ever had matches nothing: a misspelt name is said, not answered "matched 0".
        HashSet<string>? knownRules = request.Rules is null ? null : contracts.RuleNamesOfEveryVersion();
        if (request.Rules?.Order(StringComparer.Ordinal).FirstOrDefault(r => r is not ("schema" or "privacy" or "tombstone") && !knownRules!.Contains(r)) is { } unknownRule)
        {
            throw new ReplayRequestException(400, $"rules: no version of any contract has a rule named '{unknownRule}' (the failures that are not rules are named schema, privacy and tombstone).");
        }

        if (!handlers.TryGet(ApiKey.Produce, out IApiHandler produce))
        {
            throw new InvalidOperationException("The broker serves no Produce.");
        }

        // One run per name at a time: two would write the same records and move each other's progress.
        if (request.Named && !_running.TryAdd(request.Id, 0))
        {
            throw new ReplayRequestException(409, $"Replay '{request.Id}' is running; wait for it, or use another id.");
        }

        try
        {
            return await ReplayAsync(request, sourceContract, quarantineTopic, target, produce, cancellationToken);
        }
        finally
        {
            if (request.Named)
            {
                _running.TryRemove(request.Id, out _);
            }
        }
    }

    private async Task<ReplayReport> ReplayAsync(ReplayRequest request, ActiveContract? sourceContract, TopicMetadata quarantine, TopicMetadata target, IApiHandler produce, CancellationToken cancellationToken)
    {
        string quarantineName = quarantine.Name;
        string targetName = target.Name;

        // A named replay continues from its committed progress, per partition, unless resumeFrom names the partition. The
        // progress holds only for the same replay: under another filter the records it skipped may be ones to write.
        string fingerprint = Fingerprint(request, quarantineName, targetName);
        var resumeFrom = new Dictionary<int, long>();
        if (request.Named)
        {
            foreach (GroupOffset committed in await metadata.FetchGroupOffsetsAsync(request.ProgressGroup, cancellationToken))
            {
                if (committed.Offset < 0)
                {
                    continue;
                }

                // Progress on another quarantine topic (the id used for another source) is another replay's too.
                if (committed.Metadata != fingerprint)
                {
                    throw new ReplayRequestException(409, $"Replay '{request.Id}' was run before with another source, target or filter ({committed.Metadata}); its progress would skip records this one picks. Use another id, or delete consumer group {request.ProgressGroup}.");
                }

                if (committed.Topic == quarantineName)
                {
                    resumeFrom[committed.Partition] = committed.Offset;
                }
            }
        }

        foreach ((int partition, long offset) in request.ResumeFrom ?? new Dictionary<int, long>())
        {
            resumeFrom[partition] = offset;
        }

        long retentionMs = ObjectJanitor.RetentionMsOf(target, contracts.RetentionMsFor);
        var run = new Run(request, target, streams, produce)
        {
            SourceTopicId = topics.Find(request.Source) is { } sourceNow ? QuarantineWriter.TopicIdText(sourceNow.TopicId) : null,
            // Replayed records keep their timestamps: under CreateTime, those older than the target keeps records are deleted
            // by its time retention soon after they are written.
            RetentionCutoff = retentionMs < 0 || TopicConfigs.TimestampsOf(target.Configs).LogAppendTime
                ? long.MinValue
                : DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - retentionMs,
            // A rule error may quote a field; stored next to a value the target's contract masks, it would carry it in clear.
            WithholdsRuleErrors = contracts.ForTopic(targetName)?.Definition.Privacy.Count > 0,
            CommitProgress = request.Named && !request.DryRun ? (partition, offset) => CommitProgressAsync(request, fingerprint, quarantine, partition, offset) : null,
        };
        // What is in quarantine now, every partition's end taken before any is read: records the replay quarantines again
        // (the target being the source) come after them, also in a partition read later.
        var ends = new Dictionary<int, (StreamLog Stream, long End)>();
        foreach (PartitionMetadata partition in quarantine.Partitions)
        {
            if (topics.FindStream(quarantineName, partition.Partition) is { } stream)
            {
                ends[partition.Partition] = (stream, stream.HighWatermark);
            }
        }

        // A resume point past a partition's end is a mistake in the request (a source offset given for a quarantine one, say):
        // refused before anything is read, rather than reported as a replay that has nothing left to do.
        foreach ((int partition, long offset) in request.ResumeFrom ?? new Dictionary<int, long>())
        {
            if (ends.TryGetValue(partition, out (StreamLog Stream, long End) read) && offset > read.End)
            {
                throw new ReplayRequestException(400, $"resumeFrom: quarantine partition {partition} of {quarantineName} ends at offset {read.End}, before {offset}; resume offsets are the quarantine topic's (a previous replay's nextOffset), not the source's.");
            }
        }

        var progress = new List<ReplayPartitionProgress>();
        foreach (PartitionMetadata partition in quarantine.Partitions)
        {
            if (!ends.TryGetValue(partition.Partition, out (StreamLog Stream, long End) read))
            {
                run.Fail($"quarantine partition {partition.Partition} is not served by this broker");
                continue;
            }

            (StreamLog stream, long end) = read;
            bool resuming = resumeFrom.TryGetValue(partition.Partition, out long resume);
            if (resuming && (resume < stream.LogStartOffset || resume > end))
            {
                // Records this replay was to go on with are gone (retention, DeleteRecords), or its committed progress is past
                // the end (which no replay commits): said for every such partition, even after another failed, and not
                // skipped. The progress stays where it was.
                run.Fail(resume < stream.LogStartOffset
                    ? $"quarantine partition {partition.Partition}: offsets {resume} to {stream.LogStartOffset - 1} are gone (its log start moved to {stream.LogStartOffset}, by retention or DeleteRecords) before this replay wrote them; resume from {stream.LogStartOffset} to go on without them"
                    : $"quarantine partition {partition.Partition}: resume offset {resume} is past its end ({end}); resume offsets are the quarantine topic's, from {stream.LogStartOffset} to {end}");
                progress.Add(new ReplayPartitionProgress(partition.Partition, resume, resume, end));
                continue;
            }

            long start = resuming ? resume : stream.LogStartOffset;
            long next = run.Failed ? start : await run.ReplayPartitionAsync(partition.Partition, stream.StreamId, start, end, cancellationToken);
            await run.CommitAsync(partition.Partition, next);
            progress.Add(new ReplayPartitionProgress(partition.Partition, start, next, end));
        }

        var report = new ReplayReport(
            request.Id,
            request.Source,
            targetName,
            quarantineName,
            request.DryRun,
            run.Scanned,
            run.Matched,
            run.Written,
            run.QuarantinedAgain,
            run.RefusedCount,
            run.PastTargetRetention,
            Complete: !run.Failed && progress.TrueForAll(p => p.NextOffset >= p.EndOffset),
            run.Requarantined,
            run.FromDeletedTopic,
            run.Error,
            progress,
            [.. run.WrittenRanges.Values],
            run.Refusals);
        metrics.Replayed(quarantineName, targetName, run.Written, run.RefusedCount);
        string resumeAt = ResumePoints(progress);
        // A replay that stopped on a failure is a 503 to its caller: logged as one, at warning level.
        LogReplayed(logger, run.Error is null ? LogLevel.Information : LogLevel.Warning, request.Id, request.Actor, quarantineName, targetName, request.DryRun, run.Matched, run.Written, run.QuarantinedAgain, run.RefusedCount, report.Complete, run.Error ?? "none", resumeAt);
        if (!request.DryRun)
        {
            await AuditAsync(request, report, sourceContract?.Definition.Name ?? request.Source);
        }

        return report;
    }

    /// <summary>
    /// A named replay's progress: the quarantine offset a next run of it starts at, as its group's committed offset, with the
    /// replay's fingerprint as the offset's metadata. Kept until the group is deleted (not expired after
    /// offsets.retention.minutes as a consumer's would be: a replay run again a month later must not write twice).
    /// </summary>
    /// <exception cref="UnknownTopicException">The quarantine topic was deleted while the replay ran (and perhaps created
    /// again, by the next bad record): progress is the topic's, not the name's, and its offsets went with it.</exception>
    private async Task CommitProgressAsync(ReplayRequest request, string fingerprint, TopicMetadata quarantine, int partition, long offset)
    {
        if (topics.Find(quarantine.Name)?.TopicId != quarantine.TopicId)
        {
            throw new UnknownTopicException(quarantine.Name);
        }

        DateTimeOffset now = DateTimeOffset.UtcNow;
        var committed = new GroupOffset(quarantine.Name, partition, offset, -1, fingerprint, now, ExpireTime: now.AddYears(100)) { TopicId = quarantine.TopicId };
        await metadata.CommitGroupOffsetsAsync(request.ProgressGroup, [committed], CancellationToken.None);
        lag.Committed(request.ProgressGroup, [committed]);
    }

    /// <summary>What makes two runs the same replay: source, quarantine topic, target and filter (not the record limit or resume offsets).</summary>
    private static string Fingerprint(ReplayRequest request, string quarantineTopic, string target)
    {
        string filter = string.Join('|',
            request.Source,
            quarantineTopic,
            target,
            request.Partitions is null ? "*" : string.Join(',', request.Partitions.Order()),
            request.FromOffset,
            request.ToOffset,
            request.FromTimestamp,
            request.ToTimestamp,
            request.Rules is null ? "*" : RulesPart(request.Rules));
        return "replay " + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(filter)).AsSpan(0, 8));
    }

    /// <summary>
    /// The rule filter in a fingerprint: names joined by ',' as before (progress stored by earlier builds stays this
    /// replay's), unless a name has a ',' itself, when ["a,b"] and ["a","b"] would be one filter: then as a JSON array.
    /// </summary>
    private static string RulesPart(IEnumerable<string> rules)
    {
        string[] ordered = [.. rules.Order(StringComparer.Ordinal)];
        return Array.Exists(ordered, r => r.Contains(',', StringComparison.Ordinal)) ? JsonSerializer.Serialize(ordered) : string.Join(',', ordered);
    }

    /// <summary>Each quarantine partition's next offset, as the CLI's <c>--resume-from</c> takes them (<c>0=57,1=12</c>).</summary>
    private static string ResumePoints(IEnumerable<ReplayPartitionProgress> progress) =>
        string.Join(',', progress.Select(p => $"{p.QuarantinePartition.ToString(CultureInfo.InvariantCulture)}={p.NextOffset.ToString(CultureInfo.InvariantCulture)}"));

    /// <summary>A replay's evidence in the audit topic, keyed by the contract (or the source topic when none is in force); a failed write is logged, not fatal.</summary>
    private async Task AuditAsync(ReplayRequest request, ReplayReport report, string key)
    {
        var record = new Dictionary<string, object?>
        {
            ["type"] = "replay",
            ["id"] = report.Id,
            ["actor"] = request.Actor,
            ["at"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
            ["source"] = report.Source,
            ["target"] = report.Target,
            ["quarantineTopic"] = report.QuarantineTopic,
            ["partitions"] = request.Partitions?.Order().ToArray(),
            ["fromOffset"] = request.FromOffset == 0 ? null : request.FromOffset, // 0 is every offset: no filter given, as the others
            ["toOffset"] = request.ToOffset == long.MaxValue ? null : request.ToOffset,
            ["fromTimestamp"] = request.FromTimestamp == long.MinValue ? null : request.FromTimestamp,
            ["toTimestamp"] = request.ToTimestamp == long.MaxValue ? null : request.ToTimestamp,
            ["rules"] = request.Rules?.Order(StringComparer.Ordinal).ToArray(),
            ["maxBytesPerSecond"] = request.MaxBytesPerSecond,
            ["maxRecords"] = request.MaxRecords,
            ["scanned"] = report.Scanned,
            ["matched"] = report.Matched,
            ["written"] = report.Written,
            ["quarantinedAgain"] = report.QuarantinedAgain,
            ["refused"] = report.Refused,
            // Written but judged bad again (back in quarantine), and written where the target's retention will soon delete
            // them: the report's counts, so the audit alone tells what the replay achieved.
            ["requarantined"] = report.Requarantined,
            ["pastTargetRetention"] = report.PastTargetRetention,
            ["fromDeletedTopic"] = report.FromDeletedTopic,
            ["complete"] = report.Complete,
            ["error"] = report.Error,
            // Where the same request goes on (its resumeFrom): an unnamed replay keeps no progress, and the CLI may have
            // stopped waiting for the answer.
            ["resumeFrom"] = ResumePoints(report.Partitions),
        };
        try
        {
            // Also when the replay was stopped by a shutdown: what it wrote is on record.
            await audit.AppendAsync([new JournalEntry(Encoding.UTF8.GetBytes(key), JsonSerializer.SerializeToUtf8Bytes(record, ReadableJson.Options))], CancellationToken.None).AsTask().WaitAsync(AuditTimeout);
        }
        catch (Exception e)
        {
            LogAuditFailed(logger, e, request.Id);
        }
    }

    /// <summary>A quarantined record picked for replay, copied out of the read buffer, with the headers it is written with.</summary>
    /// <param name="Codec">The compression of the quarantine batch it was read from (its producer's, see QuarantineWriter).</param>
    private sealed record Picked(int QuarantinePartition, long QuarantineOffset, int SourcePartition, long SourceOffset, long Timestamp, byte[]? Key, byte[]? Value, RecordHeaderValue[] Headers, CompressionCodec Codec)
    {
        public int Size(int offsetDelta, long baseTimestamp) =>
            RecordBatchBuilder.CopiedRecordSize(Timestamp - baseTimestamp, offsetDelta, Key?.Length ?? 0, Key is null, Value?.Length ?? 0, Value is null, 0, 0, Headers);
    }

    /// <summary>The replay's state: counts, the batch being filled (one target partition at a time, in quarantine order) and the outcome.</summary>
    private sealed class Run(ReplayRequest request, TopicMetadata target, StreamStore streams, IApiHandler produce)
    {
        // A paced replay writes small batches, about 200 a second: one large WAL write would hold live produces back behind it.
        private readonly int _batchLimit = (int)Math.Min(
            Math.Min(Math.Min(streams.MaxBatchBytes, QuarantineWriter.MaxBatchBytes), int.Parse(TopicConfigs.Effective(target.Configs, TopicConfigs.MaxMessageBytes), CultureInfo.InvariantCulture)),
            request.MaxBytesPerSecond is { } rate ? Math.Max(16 * 1024, rate / 200) : long.MaxValue);
        private readonly List<Picked> _batch = [];
        private int _batchBytes = RecordBatch.HeaderSize;
        private int _batchPartition = -1;
        private readonly ReplayThrottle _throttle = new(request.MaxBytesPerSecond);

        public long Scanned { get; private set; }

        public long Matched { get; private set; }

        /// <summary>Records picked with a timestamp before this (ms since the epoch) are past the target's time retention.</summary>
        public long RetentionCutoff { get; init; } = long.MinValue;

        /// <summary>Picked records older than the target's time retention keeps: written, then soon deleted by it.</summary>
        public long PastTargetRetention { get; private set; }

        /// <summary>Copies a run of this named replay wrote that the target quarantined again: met again, and left alone.</summary>
        public long Requarantined { get; private set; }

        /// <summary>
        /// The source topic's id as its copies name it (<see cref="QuarantineWriter.SourceTopicIdHeader"/>), null when the
        /// source does not exist: a copy naming another id is of an earlier topic of the same name, deleted since.
        /// </summary>
        public string? SourceTopicId { get; init; }

        /// <summary>Copies of the source's name and filter left out because they are of an earlier topic of that name.</summary>
        public long FromDeletedTopic { get; private set; }

        /// <summary>Replace the reason of a record a rule could not evaluate with <see cref="ContractGate.WithheldRuleErrorReason"/>.</summary>
        public bool WithholdsRuleErrors { get; init; }

        /// <summary>Records the target took and stored, not counting <see cref="QuarantinedAgain"/>.</summary>
        public long Written { get; private set; }

        /// <summary>Records the target took but its contract quarantined again: their offsets there are gaps.</summary>
        public long QuarantinedAgain { get; private set; }

        public long RefusedCount { get; private set; }

        public List<ReplayRefusal> Refusals { get; } = [];

        public SortedDictionary<int, ReplayWritten> WrittenRanges { get; } = [];

        public bool Failed => Error is not null;

        /// <summary>Commits a quarantine partition's progress (null: not kept, for unnamed replays and dry runs).</summary>
        public Func<int, long, Task>? CommitProgress { get; init; }

        /// <summary>Keeps the offset a next run starts at; a failure to keep it ends the replay (a rerun would write twice).</summary>
        public async Task CommitAsync(int quarantinePartition, long nextOffset)
        {
            if (CommitProgress is null)
            {
                return;
            }

            try
            {
                await CommitProgress(quarantinePartition, nextOffset);
            }
            catch (UnknownTopicException e)
            {
                Fail($"quarantine topic {e.Topic} was deleted while this replay ran: its progress is not kept, and a topic created again under that name is replayed from its first record");
            }
            catch (Exception e)
            {
                Fail($"its progress could not be kept ({e.GetType().Name}: {e.Message})");
            }
        }

        public string? Error { get; private set; }

        /// <summary>Ends the replay with <paramref name="error"/>; a partition's own problem found after another's is added to it (bounded).</summary>
        public void Fail(string error) => Error = Error is null ? error : Error.Length < 4_000 ? $"{Error}; {error}" : Error;

        /// <summary>
        /// Replays one quarantine partition from <paramref name="start"/> to <paramref name="end"/>; returns the offset a next
        /// replay resumes at. A failure (a read, a write the target did not refuse, a shutdown) ends the replay with its error
        /// and the offset of the first record not written.
        /// </summary>
        public async Task<long> ReplayPartitionAsync(int quarantinePartition, long streamId, long start, long end, CancellationToken cancellationToken)
        {
            long offset = start;
            try
            {
                while (offset < end)
                {
                    StreamReadResult read = await streams.ReadAsync(streamId, offset, ReadChunkBytes, cancellationToken);
                    if (read.Batches.Count == 0)
                    {
                        Fail($"quarantine partition {quarantinePartition} returned nothing at offset {offset} (its end was {end})");
                        return await FlushAsync(cancellationToken) ?? offset;
                    }

                    foreach (ReadOnlyMemory<byte> bytes in read.Batches)
                    {
                        RecordBatch batch = RecordBatch.Parse(bytes);
                        long? stoppedAt = null;
                        List<Picked> picked = batch.IsControl ? [] : PickFrom(quarantinePartition, batch, offset, end, out stoppedAt);
                        foreach (Picked record in picked)
                        {
                            if (!request.DryRun && await AddAsync(record, cancellationToken) is { } resumeAt)
                            {
                                return resumeAt;
                            }
                        }

                        if (stoppedAt is { } limitReached)
                        {
                            return await FlushAsync(cancellationToken) ?? limitReached;
                        }

                        offset = Math.Max(offset, batch.NextOffset);
                    }
                }

                return await FlushAsync(cancellationToken) ?? Math.Min(offset, end);
            }
            catch (Exception e)
            {
                // Records picked but not yet sent are where a next replay starts; without any, the batch that failed to read.
                Fail(e is OperationCanceledException && cancellationToken.IsCancellationRequested
                    ? !request.Named
                        ? "the broker is stopping; run the replay again with resumeFrom (where this one stopped, in this answer) to go on"
                        : "the broker is stopping; a named replay goes on from its progress when run again"
                    : $"{e.GetType().Name}: {e.Message}");
                long resumeAt = _batch.Count > 0 ? _batch[0].QuarantineOffset : offset;
                _batch.Clear();
                return resumeAt;
            }
        }

        /// <summary>
        /// The records of <paramref name="batch"/> in [<paramref name="from"/>, <paramref name="end"/>) the filter picks, copied;
        /// <paramref name="stoppedAt"/> is the offset of the first record left unread because the replay reached its record limit.
        /// </summary>
        private List<Picked> PickFrom(int quarantinePartition, RecordBatch batch, long from, long end, out long? stoppedAt)
        {
            stoppedAt = null;
            var picked = new List<Picked>();
            foreach (Record record in batch.Records(RecordBatch.MaxDecompressedBytes))
            {
                if (record.Offset < from || record.Offset >= end)
                {
                    continue;
                }

                if (Matched >= request.MaxRecords)
                {
                    stoppedAt = record.Offset;
                    break;
                }

                Scanned++;
                if (Pick(quarantinePartition, batch.Compression, record) is { } one)
                {
                    Matched++;
                    picked.Add(one);
                }
            }

            return picked;
        }

        /// <summary>The record as it is replayed, or null when the request's filter leaves it out (or its quarantine headers are missing).</summary>
        private Picked? Pick(int quarantinePartition, CompressionCodec codec, Record record)
        {
            string? sourceTopic = null;
            string? sourceTopicId = null;
            string? rule = null;
            string? reason = null;
            long sourcePartition = -1;
            long sourceOffset = -1;
            long timestamp = record.Timestamp;
            bool fromThisReplay = false;
            foreach (RecordHeader header in record.Headers)
            {
                ReadOnlySpan<byte> key = header.Key;
                if (!key.StartsWith(BrokerHeaders.Prefix))
                {
                    continue;
                }

                if (System.Text.Ascii.Equals(key, QuarantineWriter.SourceTopicHeader))
                {
                    sourceTopic = Encoding.UTF8.GetString(header.Value);
                }
                else if (System.Text.Ascii.Equals(key, QuarantineWriter.SourceTopicIdHeader))
                {
                    sourceTopicId = Encoding.UTF8.GetString(header.Value);
                }
                else if (System.Text.Ascii.Equals(key, QuarantineWriter.SourcePartitionHeader))
                {
                    sourcePartition = Number(header.Value);
                }
                else if (System.Text.Ascii.Equals(key, QuarantineWriter.SourceOffsetHeader))
                {
                    sourceOffset = Number(header.Value);
                }
                else if (System.Text.Ascii.Equals(key, QuarantineWriter.SourceTimestampHeader) && Utf8Number(header.Value, out long original))
                {
                    timestamp = original;
                }
                else if (System.Text.Ascii.Equals(key, QuarantineWriter.RuleHeader))
                {
                    rule = Encoding.UTF8.GetString(header.Value);
                }
                else if (System.Text.Ascii.Equals(key, QuarantineWriter.ReasonHeader))
                {
                    reason = Encoding.UTF8.GetString(header.Value);
                }
                else if (System.Text.Ascii.Equals(key, ReplayHeader) && request.Named)
                {
                    fromThisReplay = Encoding.UTF8.GetString(header.Value) == request.Id;
                }
            }

            // A record this replay wrote that the target's contract quarantined again (its copy keeps the replay's header):
            // sent again, it would come back again, on every run.
            if (fromThisReplay)
            {
                Requarantined++;
                return null;
            }

            if (sourceTopic != request.Source || sourcePartition is < 0 or > int.MaxValue || sourceOffset < 0
                || (request.Partitions is not null && !request.Partitions.Contains((int)sourcePartition))
                || sourceOffset < request.FromOffset || sourceOffset >= request.ToOffset
                || timestamp < request.FromTimestamp || timestamp >= request.ToTimestamp
                || (request.Rules is not null && (rule is null || !request.Rules.Contains(rule))))
            {
                return null;
            }

            // Copies written before topic ids were (no header) cannot be told apart, and are picked by name as they were.
            if (sourceTopicId is not null && SourceTopicId is not null && sourceTopicId != SourceTopicId)
            {
                FromDeletedTopic++;
                return null;
            }

            if (timestamp < RetentionCutoff)
            {
                PastTargetRetention++;
            }

            if (WithholdsRuleErrors && reason is not null && reason.StartsWith(ContractGate.RuleErrorReasonPrefix, StringComparison.Ordinal))
            {
                reason = ContractGate.WithheldRuleErrorReason;
            }

            // Picked: the producer's own headers (the broker's are replaced by the replay's), copied out of the read buffer.
            RecordHeaderValue[] replayHeaders =
            [
                Header(QuarantineWriter.SourceTopicHeader, sourceTopic),
                Header(QuarantineWriter.SourcePartitionHeader, sourcePartition.ToString(CultureInfo.InvariantCulture)),
                Header(QuarantineWriter.SourceOffsetHeader, sourceOffset.ToString(CultureInfo.InvariantCulture)),
                .. sourceTopicId is null ? Array.Empty<RecordHeaderValue>() : [Header(QuarantineWriter.SourceTopicIdHeader, sourceTopicId)],
                Header(QuarantineWriter.RuleHeader, rule ?? ""),
                Header(QuarantineWriter.ReasonHeader, reason ?? ""),
                Header(ReplayHeader, request.Id),
            ];
            // Never null here: a picked record carries the broker's headers (its source topic header matched).
            RecordHeaderValue[] headers = BrokerHeaders.Without(record.RawHeaders, record.HeaderCount, BrokerHeaders.Prefix, replayHeaders, prefixOnly: true)!;
            return new Picked(quarantinePartition, record.Offset, (int)sourcePartition, sourceOffset, timestamp, record.KeyIsNull ? null : record.Key.ToArray(), record.ValueIsNull ? null : record.Value.ToArray(), headers, codec);
        }

        private static long Number(ReadOnlySpan<byte> utf8) => Utf8Number(utf8, out long value) ? value : -1;

        private static bool Utf8Number(ReadOnlySpan<byte> utf8, out long value) =>
            System.Buffers.Text.Utf8Parser.TryParse(utf8, out value, out int consumed) && consumed == utf8.Length;

        /// <summary>Adds a record to the batch, sending the batch first when it goes to another partition or is full; returns where to resume when a send failed.</summary>
        private async Task<long?> AddAsync(Picked picked, CancellationToken cancellationToken)
        {
            int partition = picked.SourcePartition % target.Partitions.Count;
            long baseTimestamp = _batch.Count > 0 ? _batch[0].Timestamp : picked.Timestamp;
            int size = picked.Size(_batch.Count, baseTimestamp);
            if (_batch.Count > 0 && (partition != _batchPartition || _batchBytes + size > _batchLimit))
            {
                if (await FlushAsync(cancellationToken) is { } resumeAt)
                {
                    return resumeAt;
                }

                size = picked.Size(0, picked.Timestamp);
            }

            _batchPartition = partition;
            _batch.Add(picked);
            _batchBytes += size;
            return null;
        }

        /// <summary>
        /// Sends the batch; returns null when every record was stored or refused by the target, else the quarantine offset to
        /// resume at. Records the target refuses by index are left out and the rest sent again (each round leaves out at least
        /// one, so this ends); a refusal that names no record is narrowed down by sending the records one at a time.
        /// </summary>
        private async Task<long?> FlushAsync(CancellationToken cancellationToken)
        {
            if (_batch.Count == 0)
            {
                return null;
            }

            // Cleared only once settled: an exception leaves the batch for the caller to resume at.
            List<Picked> sending = [.. _batch];
            long after = _batch[^1].QuarantineOffset + 1;
            int quarantinePartition = _batch[^1].QuarantinePartition;
            while (sending.Count > 0)
            {
                (ProduceResponse.PartitionProduceResponse answer, long quarantinedAgain) = await SendAsync(_batchPartition, sending, cancellationToken);
                var error = (ErrorCode)answer.ErrorCode;
                if (error == ErrorCode.None || answer.BaseOffset >= 0)
                {
                    Stored(_batchPartition, answer.BaseOffset, sending, quarantinedAgain);
                    if (error != ErrorCode.None)
                    {
                        // Stored, then failed (writing the target's own quarantine copies): not written again on resume.
                        Settle();
                        return Stop(error, answer, after, $"the batch of quarantine offsets {sending[0].QuarantineOffset}-{after - 1} was stored, but then ");
                    }

                    break;
                }

                if (!RefusedByTarget(error))
                {
                    Settle();
                    return Stop(error, answer, sending[0].QuarantineOffset);
                }

                var refusedIndexes = new HashSet<int>();
                foreach (ProduceResponse.BatchIndexAndErrorMessage recordError in answer.RecordErrors)
                {
                    if (recordError.BatchIndex >= 0 && recordError.BatchIndex < sending.Count && refusedIndexes.Add(recordError.BatchIndex))
                    {
                        Refuse(sending[recordError.BatchIndex], error, recordError.BatchIndexErrorMessage ?? answer.ErrorMessage);
                    }
                }

                if (refusedIndexes.Count == 0)
                {
                    if (sending.Count == 1)
                    {
                        Refuse(sending[0], error, answer.ErrorMessage);
                        break;
                    }

                    // Refused whole (say too large for the target): one at a time, so only the records at fault are refused.
                    foreach (Picked single in sending)
                    {
                        _batch.Clear();
                        _batch.Add(single);
                        if (await FlushAsync(cancellationToken) is { } resumeAt)
                        {
                            return resumeAt;
                        }
                    }

                    break;
                }

                sending = [.. sending.Where((_, i) => !refusedIndexes.Contains(i))];
            }

            Settle();
            await CommitAsync(quarantinePartition, after);
            return Failed ? after : null;
        }

        private void Settle()
        {
            _batch.Clear();
            _batchBytes = RecordBatch.HeaderSize;
        }

        /// <summary>Errors that refuse records themselves (the target's contract, its size limit, its timestamp bounds), not the write.</summary>
        private static bool RefusedByTarget(ErrorCode error) => error is ErrorCode.InvalidRecord or ErrorCode.MessageTooLarge or ErrorCode.InvalidTimestamp;

        /// <summary>Ends the replay at a write the target did not refuse but failed (storage, timeout); it resumes at <paramref name="resumeAt"/>.</summary>
        private long Stop(ErrorCode error, ProduceResponse.PartitionProduceResponse answer, long resumeAt, string what = "")
        {
            Fail($"{what}writing to {target.Name}-{_batchPartition} failed with {KafkaErrorName(error)}{(string.IsNullOrEmpty(answer.ErrorMessage) ? "" : $": {answer.ErrorMessage}")}");
            return resumeAt;
        }

        /// <summary>Produces <paramref name="records"/> to the target; the answer, and how many of them its contract quarantined.</summary>
        private async Task<(ProduceResponse.PartitionProduceResponse Answer, long QuarantinedAgain)> SendAsync(int partition, List<Picked> records, CancellationToken cancellationToken)
        {
            byte[] batch = Batch(records, CompressionCodec.None);
            int maxMessageBytes = int.Parse(TopicConfigs.Effective(target.Configs, TopicConfigs.MaxMessageBytes), System.Globalization.CultureInfo.InvariantCulture);
            if (batch.Length > maxMessageBytes)
            {
                // Records that came compressed can be larger than the target's max.message.bytes once decompressed (a record
                // replayed to its own topic, which took it compressed): such a batch is compressed as its records came (the
                // producer's codec, which its readers read), else with gzip at its smallest, which every client reads.
                CompressionCodec codec = records[0].Codec;
                batch = codec != CompressionCodec.None && records.TrueForAll(r => r.Codec == codec) ? Batch(records, codec) : batch;
                if (batch.Length > maxMessageBytes)
                {
                    batch = Batch(records, CompressionCodec.Gzip, System.IO.Compression.CompressionLevel.SmallestSize);
                }
            }

            await _throttle.WaitAsync(batch.Length, cancellationToken);
            var body = new ProduceRequest
            {
                Acks = -1,
                TimeoutMs = ProduceTimeoutMs,
                TopicData = [new ProduceRequest.TopicProduceData { Name = target.Name, PartitionData = [new ProduceRequest.PartitionProduceData { Index = partition, Records = new ReadOnlySequence<byte>(batch) }] }],
            };
            var header = new RequestHeader { RequestApiKey = (short)ApiKey.Produce, RequestApiVersion = ProduceVersion, ClientId = ClientId };
            var quarantinedAgain = new System.Runtime.CompilerServices.StrongBox<long>();
            var response = (ProduceResponse?)await produce.HandleAsync(new RequestContext(header, ProduceVersion, ClientId, null) { FromReplay = true, QuarantinedByTarget = quarantinedAgain }, body, cancellationToken);
            return (response?.Responses.FirstOrDefault()?.PartitionResponses.FirstOrDefault()
                ?? new ProduceResponse.PartitionProduceResponse { ErrorCode = (short)ErrorCode.UnknownServerError, ErrorMessage = "no produce answer" }, Interlocked.Read(ref quarantinedAgain.Value));
        }

        private static byte[] Batch(List<Picked> records, CompressionCodec compression, System.IO.Compression.CompressionLevel gzipLevel = System.IO.Compression.CompressionLevel.Fastest)
        {
            var builder = new RecordBatchBuilder(records[0].Timestamp) { Compression = compression, GzipLevel = gzipLevel };
            for (int i = 0; i < records.Count; i++)
            {
                Picked record = records[i];
                builder.AddCopy(i, record.Timestamp, record.Key, record.Key is null, record.Value, record.Value is null, [], 0, record.Headers);
            }

            return builder.Build();
        }

        /// <summary>
        /// Counts a batch the target took: its offsets span every record sent, <paramref name="quarantinedAgain"/> of which its
        /// contract quarantined (gaps among them), so the range's record count is of those stored.
        /// </summary>
        private void Stored(int partition, long baseOffset, List<Picked> records, long quarantinedAgain)
        {
            long stored = records.Count - quarantinedAgain;
            Written += stored;
            QuarantinedAgain += quarantinedAgain;
            long last = baseOffset + records.Count - 1;
            WrittenRanges[partition] = WrittenRanges.TryGetValue(partition, out ReplayWritten? before)
                ? before with { LastOffset = last, Records = before.Records + stored }
                : new ReplayWritten(partition, baseOffset, last, stored);
        }

        private void Refuse(Picked record, ErrorCode error, string? message)
        {
            RefusedCount++;
            if (Refusals.Count < MaxListedRefusals)
            {
                Refusals.Add(new ReplayRefusal(record.QuarantinePartition, record.QuarantineOffset, record.SourcePartition, record.SourceOffset, KafkaErrorName(error), Withheld(message)));
            }
        }

        /// <summary>
        /// The target's reason for a refusal ("rule: reason", as its producer reads it), with a rule error's message withheld
        /// where the target masks fields: it may quote the field it failed on, and the answer goes to whoever runs the replay.
        /// </summary>
        private string? Withheld(string? message)
        {
            int at = WithholdsRuleErrors && message is not null ? message.IndexOf(": " + ContractGate.RuleErrorReasonPrefix, StringComparison.Ordinal) : -1;
            return at < 0 ? message : string.Concat(message.AsSpan(0, at + 2), ContractGate.WithheldRuleErrorReason);
        }
    }

    /// <summary>The header naming the replay that wrote a record.</summary>
    public const string ReplayHeader = "sharedlog.replay";

    /// <summary>The client id the replay's produces carry (in the broker's request metrics and logs).</summary>
    public const string ClientId = "sharedlog-replay";

    private static readonly short ProduceVersion = ApiMessages.HighestVersion(ApiKey.Produce);

    /// <summary>An error code as Kafka's documentation and clients name it (INVALID_RECORD).</summary>
    private static string KafkaErrorName(ErrorCode error)
    {
        string name = error.ToString();
        var snake = new StringBuilder(name.Length + 8);
        for (int i = 0; i < name.Length; i++)
        {
            if (i > 0 && char.IsUpper(name[i]))
            {
                snake.Append('_');
            }

            snake.Append(char.ToUpperInvariant(name[i]));
        }

        return snake.ToString();
    }

    private static RecordHeaderValue Header(string key, string value) => new(key, Encoding.UTF8.GetBytes(value));

    [LoggerMessage(Message = "Replay {Id} by {Actor} from {QuarantineTopic} into {Target} (dry run {DryRun}): {Matched} matched, {Written} written, {QuarantinedAgain} quarantined again, {Refused} refused, complete {Complete}, error {Error}, resume from {ResumeFrom}")]
    private static partial void LogReplayed(ILogger logger, LogLevel level, string id, string actor, string quarantineTopic, string target, bool dryRun, long matched, long written, long quarantinedAgain, long refused, bool complete, string error, string resumeFrom);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Replay {Id}: its audit record could not be written")]
    private static partial void LogAuditFailed(ILogger logger, Exception error, string id);
}

/// <summary>
/// Reads a replay request (the body of <c>POST /replays</c>): a JSON object whose keys are <see cref="ReplayRequest"/>'s
/// in camelCase, timestamps as epoch milliseconds or ISO 8601 text, <c>resumeFrom</c> an object of quarantine partition
/// to offset. Unknown keys and values of the wrong kind are refused, so a typo cannot widen a replay.
/// </summary>
public static class ReplayRequests
{
    public static readonly JsonSerializerOptions JsonOptions = ReadableJson.Web();

    private const int MaxNameLength = 249; // Kafka's longest topic name

    public static ReplayRequest Parse(string json, string actor)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw Bad($"The replay request is not JSON: {e.Message}");
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw Bad("The replay request must be a JSON object.");
            }

            string? source = null, target = null, quarantineTopic = null, id = null;
            HashSet<int>? partitions = null;
            HashSet<string>? rules = null;
            Dictionary<int, long>? resumeFrom = null;
            long fromOffset = 0, toOffset = long.MaxValue, fromTimestamp = long.MinValue, toTimestamp = long.MaxValue;
            int maxRecords = ReplayRequest.DefaultMaxRecords;
            long? maxBytesPerSecond = null;
            bool dryRun = false;
            var keys = new HashSet<string>(StringComparer.Ordinal);
            foreach (JsonProperty property in document.RootElement.EnumerateObject())
            {
                JsonElement value = property.Value;
                if (!keys.Add(property.Name))
                {
                    // Which of the two was meant cannot be known; the last one would win silently.
                    throw Bad($"The replay request has the key '{property.Name}' more than once.");
                }

                switch (property.Name)
                {
                    case "source": source = Name(value, "source"); break;
                    case "target": target = Name(value, "target"); break;
                    case "quarantineTopic": quarantineTopic = Name(value, "quarantineTopic"); break;
                    case "id": id = Text(value, "id", 256); break;
                    case "partitions":
                        partitions = [.. Items(value, "partitions").Select(p => (int)Whole(p, "partitions[]", 0, int.MaxValue))];
                        if (partitions.Count == 0)
                        {
                            throw Bad("partitions must name at least one partition; leave it out to replay every partition.");
                        }

                        break;
                    case "rules":
                        rules = [.. Items(value, "rules").Select(r => Text(r, "rules[]", 256))];
                        if (rules.Count == 0)
                        {
                            // An empty filter would match nothing: a request that replays nothing is a slip, not a choice.
                            throw Bad("rules must name at least one rule; leave it out to replay the records of every rule.");
                        }

                        break;
                    case "fromOffset": fromOffset = Whole(value, "fromOffset", 0, long.MaxValue); break;
                    case "toOffset": toOffset = Whole(value, "toOffset", 0, long.MaxValue); break;
                    case "fromTimestamp": fromTimestamp = Timestamp(value, "fromTimestamp"); break;
                    case "toTimestamp": toTimestamp = Timestamp(value, "toTimestamp"); break;
                    case "maxRecords": maxRecords = (int)Whole(value, "maxRecords", 1, ReplayRequest.MaxMaxRecords); break;
                    case "maxBytesPerSecond": maxBytesPerSecond = Whole(value, "maxBytesPerSecond", ReplayRequest.MinBytesPerSecond, long.MaxValue); break;
                    case "dryRun": dryRun = value.ValueKind is JsonValueKind.True or JsonValueKind.False ? value.GetBoolean() : throw Bad("dryRun must be true or false."); break;
                    case "resumeFrom": resumeFrom = ResumeOffsets(value); break;
                    default: throw Bad($"Unknown key '{property.Name}' in the replay request.");
                }
            }

            if (source is null)
            {
                throw Bad("The replay request needs 'source', the topic whose quarantined records to replay.");
            }

            if (toOffset <= fromOffset)
            {
                throw Bad($"toOffset ({toOffset}) must be greater than fromOffset ({fromOffset}).");
            }

            if (toTimestamp <= fromTimestamp)
            {
                throw Bad($"toTimestamp ({toTimestamp}) must be later than fromTimestamp ({fromTimestamp}).");
            }

            return new ReplayRequest
            {
                Source = source,
                Target = target,
                QuarantineTopic = quarantineTopic,
                Partitions = partitions,
                Rules = rules,
                FromOffset = fromOffset,
                ToOffset = toOffset,
                FromTimestamp = fromTimestamp,
                ToTimestamp = toTimestamp,
                ResumeFrom = resumeFrom,
                MaxRecords = maxRecords,
                MaxBytesPerSecond = maxBytesPerSecond,
                DryRun = dryRun,
                Id = id ?? Guid.NewGuid().ToString("N"),
                Named = id is not null,
                Actor = actor,
            };
        }
    }

    private static ReplayRequestException Bad(string message) => new(400, message);

    private static string Name(JsonElement value, string key) => Text(value, key, MaxNameLength);

    // Control characters are refused: an id or rule name goes into log lines and headers, where a line break forges a line.
    private static string Text(JsonElement value, string key, int maxLength) =>
        value.ValueKind == JsonValueKind.String && value.GetString() is { Length: > 0 } text && text.Length <= maxLength && !text.Any(char.IsControl)
            ? text
            : throw Bad($"{key} must be a non-empty string of at most {maxLength} characters, without control characters.");

    private static JsonElement.ArrayEnumerator Items(JsonElement value, string key) =>
        value.ValueKind == JsonValueKind.Array && value.GetArrayLength() <= 10_000 ? value.EnumerateArray() : throw Bad($"{key} must be an array of at most 10000 items.");

    private static long Whole(JsonElement value, string key, long min, long max) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out long number) && number >= min && number <= max
            ? number
            : throw Bad($"{key} must be a whole number from {min} to {max}.");

    private static readonly string[] Iso8601Forms = ["yyyy-MM-dd'T'HH:mm:ss.FFFFFFFK", "yyyy-MM-dd'T'HH:mmK", "yyyy-MM-dd"];

    private static long Timestamp(JsonElement value, string key)
    {
        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out long milliseconds))
        {
            return milliseconds;
        }

        // ISO 8601 only: a free-form parse would read "04/12/2026" as April 12 and replay another period than meant.
        if (value.ValueKind == JsonValueKind.String && DateTimeOffset.TryParseExact(value.GetString(), Iso8601Forms, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out DateTimeOffset at))
        {
            return at.ToUnixTimeMilliseconds();
        }

        throw Bad($"{key} must be milliseconds since the epoch or an ISO 8601 time.");
    }

    private static Dictionary<int, long> ResumeOffsets(JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw Bad("resumeFrom must be an object of quarantine partition to offset, e.g. {\"0\": 120}.");
        }

        var offsets = new Dictionary<int, long>();
        foreach (JsonProperty partition in value.EnumerateObject())
        {
            if (!int.TryParse(partition.Name, NumberStyles.None, CultureInfo.InvariantCulture, out int index) || offsets.Count >= 10_000)
            {
                throw Bad($"resumeFrom's key '{partition.Name}' is not a partition number.");
            }

            if (!offsets.TryAdd(index, Whole(partition.Value, $"resumeFrom[{index}]", 0, long.MaxValue)))
            {
                throw Bad($"resumeFrom gives partition {index} more than once.");
            }
        }

        return offsets;
    }
}
