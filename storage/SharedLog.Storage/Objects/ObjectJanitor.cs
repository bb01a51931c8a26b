using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.ObjectStore;
using SharedLog.Storage.Streams;

namespace SharedLog.Storage.Objects;

/// <summary>What one cleanup round did.</summary>
public sealed record JanitorReport(int StreamsTrimmed, int ObjectsMarked, int OrphansRemoved, int ObjectsDeleted);

/// <summary>
/// Keeps the object store to what the metadata says is live: applies <c>retention.ms</c> and
/// <c>retention.bytes</c> by raising log start offsets over whole uploaded ranges, marks objects whose
/// every range is below its stream's log start offset, removes orphans (objects prepared but never
/// committed, older than a grace period, e.g. after a crash between PUT and commit), and deletes the
/// bytes of marked objects before forgetting them. A marked object's bytes are deleted only once
/// <c>deletionGrace</c> has passed since it was marked: a reader may have looked it up just before
/// (compaction replaces objects that are being read). Orphans go at once: nobody ever read them.
/// Merging small objects is the <see cref="ObjectCompactor"/>'s work.
/// </summary>
/// <param name="retentionDefault">A topic's <c>retention.ms</c> when it sets none (the broker's data contracts give one); null for the broker default.</param>
/// <param name="retentionBytesDefault">A topic's <c>retention.bytes</c> when it sets none, likewise; null for no limit.</param>
public sealed partial class ObjectJanitor(
    IObjectStore objects, IMetadataStore metadata, StreamStore streams, TimeSpan orphanGrace, TimeSpan deletionGrace, ILogger<ObjectJanitor>? logger = null,
    Func<string, long?>? retentionDefault = null, Func<string, long?>? retentionBytesDefault = null)
{
    /// <summary>Kafka's default <c>retention.ms</c>: 7 days.</summary>
    public const long DefaultRetentionMs = 604_800_000;

    public const string RetentionMs = "retention.ms";
    public const string RetentionBytes = "retention.bytes";

    private readonly ILogger _logger = (ILogger?)logger ?? NullLogger.Instance;

    public async Task<JanitorReport> RunOnceAsync(DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        int trimmed = 0;
        var liveRanges = new Dictionary<long, bool>();
        foreach (TopicMetadata topic in await metadata.ListTopicsAsync(cancellationToken).ConfigureAwait(false))
        {
            bool deletes = topic.DeletesRecords;
            long retentionMs = RetentionMsOf(topic, retentionDefault);
            long retentionBytes = !deletes ? -1
                : topic.Configs.ContainsKey(RetentionBytes) ? Config(topic, RetentionBytes, -1)
                : retentionBytesDefault?.Invoke(topic.Name) ?? -1;
            foreach (PartitionMetadata partition in topic.Partitions)
            {
                IReadOnlyList<StreamObjectRange> ranges = await metadata.GetObjectRangesAsync(partition.StreamId, 0, cancellationToken: cancellationToken).ConfigureAwait(false);
                long logStart = partition.LogStartOffset;
                long newStart = RetainedStart(ranges, now, retentionMs, retentionBytes);
                if (newStart > logStart && streams.IsOpen(partition.StreamId))
                {
                    logStart = await streams.AdvanceLogStartAsync(partition.StreamId, newStart, cancellationToken).ConfigureAwait(false);
                    trimmed++;
                }

                foreach (StreamObjectRange range in ranges)
                {
                    bool live = range.Range.EndOffset > logStart;
                    liveRanges[range.ObjectId] = liveRanges.GetValueOrDefault(range.ObjectId) || live;
                }
            }
        }

        // Only candidates: this walk read each partition's ranges at a different moment, so an object it saw only
        // through dead ranges may since hold live data of another stream (an upload or a new topic after the walk
        // passed). The store checks every range of the object again in the transaction that marks it.
        var candidates = liveRanges.Where(kv => !kv.Value).Select(kv => kv.Key).ToList();
        IReadOnlyList<long> dead = candidates.Count > 0 ? await metadata.MarkDeadObjectsAsync(candidates, cancellationToken).ConfigureAwait(false) : [];

        int orphans = 0;
        var toDelete = new List<ObjectMetadata>();
        var orphanCandidates = new List<ObjectMetadata>();
        foreach (ObjectMetadata obj in await metadata.ListObjectsAsync(cancellationToken).ConfigureAwait(false))
        {
            if (obj.State == ObjectState.Prepared && now - obj.CreatedAt > orphanGrace && !streams.IsBeingWritten(obj.ObjectId))
            {
                orphanCandidates.Add(obj);
            }
            else if (obj.State == ObjectState.MarkedForDeletion && GraceOver(obj, now))
            {
                toDelete.Add(obj);
            }
        }

        if (orphanCandidates.Count > 0)
        {
            // Marking first makes a late commit of such an upload fail instead of resurrecting it; an upload
            // that committed after the listing is not marked, so its bytes are not deleted.
            IReadOnlyList<long> marked = await metadata.MarkOrphansAsync([.. orphanCandidates.Select(o => o.ObjectId)], cancellationToken).ConfigureAwait(false);
            var markedIds = marked.ToHashSet();
            foreach (ObjectMetadata obj in orphanCandidates)
            {
                if (markedIds.Contains(obj.ObjectId))
                {
                    toDelete.Add(obj);
                    orphans++;
                }
            }
        }

        if (toDelete.Count > 0)
        {
            await objects.DeleteAsync([.. toDelete.Select(o => o.Key)], cancellationToken).ConfigureAwait(false);
            await metadata.ForgetObjectsAsync([.. toDelete.Select(o => o.ObjectId)], cancellationToken).ConfigureAwait(false);
            foreach (ObjectMetadata obj in toDelete)
            {
                streams.ForgetObjectIndex(obj.Key);
            }
        }

        var report = new JanitorReport(trimmed, dead.Count, orphans, toDelete.Count);
        if (toDelete.Count > 0 || trimmed > 0)
        {
            LogRound(_logger, report.StreamsTrimmed, report.ObjectsMarked, report.OrphansRemoved, report.ObjectsDeleted);
        }

        return report;
    }

    /// <summary>No time recorded means marked before times were recorded: long ago.</summary>
    private bool GraceOver(ObjectMetadata obj, DateTimeOffset now) =>
        deletionGrace <= TimeSpan.Zero || obj.MarkedAt is not { } markedAt || now - markedAt >= deletionGrace;

    /// <summary>
    /// The first offset to keep: whole ranges leave only from the front, when too old, or, as Kafka deletes segments for
    /// retention.bytes, when what remains after the range still holds at least the budget (a partition keeps at least
    /// retention.bytes, never less).
    /// </summary>
    internal static long RetainedStart(IReadOnlyList<StreamObjectRange> ranges, DateTimeOffset now, long retentionMs, long retentionBytes)
    {
        long total = ranges.Sum(r => r.Range.Size);
        long start = 0;
        long cutoff = retentionMs < 0 ? long.MinValue : now.ToUnixTimeMilliseconds() - retentionMs;
        foreach (StreamObjectRange range in ranges)
        {
            bool tooOld = range.Range.MaxTimestamp < cutoff;
            bool overBudget = retentionBytes >= 0 && total - range.Range.Size >= retentionBytes;
            if (!tooOld && !overBudget)
            {
                break;
            }

            start = range.Range.EndOffset;
            total -= range.Range.Size;
        }

        return start;
    }

    /// <summary>
    /// How old a record of <paramref name="topic"/> may get before time retention deletes it, in ms; -1 when time does not
    /// delete its records (compacted only, or <c>retention.ms=-1</c>). <paramref name="retentionDefault"/> as for the janitor.
    /// </summary>
    public static long RetentionMsOf(TopicMetadata topic, Func<string, long?>? retentionDefault) =>
        !topic.DeletesRecords ? -1
        : topic.Configs.ContainsKey(RetentionMs) ? Config(topic, RetentionMs, DefaultRetentionMs)
        : retentionDefault?.Invoke(topic.Name) ?? DefaultRetentionMs;

    private static long Config(TopicMetadata topic, string name, long fallback) =>
        topic.Configs.TryGetValue(name, out string? value) && long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out long parsed) ? parsed : fallback;

    /// <summary>Runs a round every <paramref name="interval"/> until cancelled; a failed round is logged and retried.</summary>
    public Task RunAsync(TimeSpan interval, CancellationToken cancellationToken) =>
        PeriodicRounds.RunAsync(interval, RunOnceAsync, e => LogFailed(_logger, e), cancellationToken);

    [LoggerMessage(Level = LogLevel.Information, Message = "Cleanup: {Trimmed} streams trimmed by retention, {Marked} objects marked, {Orphans} orphans, {Deleted} objects deleted")]
    private static partial void LogRound(ILogger logger, int trimmed, int marked, int orphans, int deleted);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cleanup round failed; retrying next round")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}
