using SharedLog.Storage.Objects;

namespace SharedLog.Storage.Metadata;

/// <summary>
/// Cluster metadata: topics, partitions and their streams, configs, the object index, log start
/// offsets, consumer group offsets and producer id blocks. Every multi-row change is one transaction;
/// writes that move a partition's data are fenced by the partition's leader epoch. SQLite implements
/// it for the embedded default; PostgreSQL follows for multi-broker clusters.
/// </summary>
public interface IMetadataStore : IAsyncDisposable
{
    /// <summary>Creates the schema if needed (idempotent).</summary>
    Task InitializeAsync(CancellationToken cancellationToken = default);

    // ---- topics and partitions ----

    /// <summary>Creates a topic with its partitions (each gets a new stream id). Throws <see cref="TopicExistsException"/>.</summary>
    Task<TopicMetadata> CreateTopicAsync(string name, int partitionCount, IReadOnlyDictionary<string, string> configs, CancellationToken cancellationToken = default);

    Task<TopicMetadata?> GetTopicAsync(string name, CancellationToken cancellationToken = default);

    Task<TopicMetadata?> GetTopicAsync(Guid topicId, CancellationToken cancellationToken = default);

    Task<IReadOnlyList<TopicMetadata>> ListTopicsAsync(CancellationToken cancellationToken = default);

    /// <summary>Deletes the topic, its partitions and configs; its objects are marked for deletion. False if absent.</summary>
    Task<bool> DeleteTopicAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>Raises the partition count (never lowers it).</summary>
    Task<TopicMetadata> AddPartitionsAsync(string name, int newPartitionCount, CancellationToken cancellationToken = default);

    /// <summary>Sets (value) or removes (null) topic configs.</summary>
    Task<TopicMetadata> AlterTopicConfigsAsync(string name, IReadOnlyDictionary<string, string?> changes, CancellationToken cancellationToken = default);

    /// <summary>Makes <paramref name="brokerId"/> the partition's leader with a new, higher epoch.</summary>
    Task<PartitionMetadata> ClaimLeadershipAsync(long streamId, int brokerId, CancellationToken cancellationToken = default);

    /// <summary>
    /// As <see cref="ClaimLeadershipAsync(long, int, CancellationToken)"/> for each of <paramref name="streamIds"/>, all in
    /// one change (all claimed or, on an unknown stream, none); the partitions come back in the order asked for.
    /// </summary>
    Task<IReadOnlyList<PartitionMetadata>> ClaimLeadershipAsync(IReadOnlyList<long> streamIds, int brokerId, CancellationToken cancellationToken = default);

    Task<PartitionMetadata?> GetPartitionAsync(long streamId, CancellationToken cancellationToken = default);

    /// <summary>Raises the log start offset (DeleteRecords, retention); fenced by leader epoch.</summary>
    Task SetLogStartOffsetAsync(long streamId, int leaderEpoch, long logStartOffset, CancellationToken cancellationToken = default);

    // ---- object index ----

    /// <summary>Reserves a new object id and records the object as prepared (not yet committed), so an upload that never commits can be found and removed.</summary>
    Task<PreparedObject> PrepareObjectAsync(string keyPrefix, CancellationToken cancellationToken = default);

    /// <summary>
    /// Atomically: marks the prepared object committed with its ranges, checks every range's leader epoch
    /// (<see cref="FencedException"/>) and that it starts exactly at the stream's committed end offset
    /// (<see cref="OffsetConflictException"/>), advances those end offsets, and marks
    /// <see cref="ObjectCommit.Replaces"/> objects as deleted (compaction).
    /// </summary>
    Task CommitObjectAsync(ObjectCommit commit, CancellationToken cancellationToken = default);

    /// <summary>
    /// One compaction, atomically: commits every prepared object of <paramref name="newObjects"/> (their own
    /// <see cref="ObjectCommit.Replaces"/> must be empty) and marks every object of <paramref name="replaces"/>
    /// for deletion. Refused (<see cref="InvalidOperationException"/>, nothing changes) unless every replaced
    /// object is committed, every new range lies inside the data the replaced objects hold for its stream,
    /// and every replaced record at or after its stream's log start offset is in a new range. Committed end
    /// offsets do not move. <paramref name="newObjects"/> may be empty when nothing live is left to keep.
    /// </summary>
    Task CommitCompactionAsync(IReadOnlyList<ObjectCommit> newObjects, IReadOnlyCollection<long> replaces, CancellationToken cancellationToken = default);

    /// <summary>
    /// Committed objects holding data of the stream at or after <paramref name="fromOffset"/>, ordered by
    /// start offset; at most <paramref name="limit"/> of them (a fetch needs the next few, not all).
    /// </summary>
    Task<IReadOnlyList<StreamObjectRange>> GetObjectRangesAsync(long streamId, long fromOffset, int limit = int.MaxValue, CancellationToken cancellationToken = default);

    /// <summary>The offset after the last committed (uploaded) record of the stream, 0 if none.</summary>
    Task<long> GetCommittedEndOffsetAsync(long streamId, CancellationToken cancellationToken = default);

    /// <summary>Every object: prepared, committed and marked for deletion (for the compactor and orphan cleanup).</summary>
    Task<IReadOnlyList<ObjectMetadata>> ListObjectsAsync(CancellationToken cancellationToken = default);

    /// <summary>Marks objects for deletion (retention, deleted topics) and records when, so their bytes outlive readers for a grace period.</summary>
    Task MarkObjectsDeletedAsync(IReadOnlyCollection<long> objectIds, CancellationToken cancellationToken = default);

    /// <summary>
    /// Marks for deletion those of <paramref name="objectIds"/> that are committed and hold no live data: no range
    /// of a stream that still has a partition ends above that partition's log start offset. The check and the
    /// mark are one transaction, so a range committed or a partition created since the caller looked keeps the
    /// object. Returns the ids marked.
    /// </summary>
    Task<IReadOnlyList<long>> MarkDeadObjectsAsync(IReadOnlyCollection<long> objectIds, CancellationToken cancellationToken = default);

    /// <summary>
    /// Marks for deletion those of <paramref name="objectIds"/> that are still prepared (never committed)
    /// and returns their ids: an upload that committed since it was listed as an orphan is left alone.
    /// </summary>
    Task<IReadOnlyList<long>> MarkOrphansAsync(IReadOnlyCollection<long> objectIds, CancellationToken cancellationToken = default);

    /// <summary>Forgets objects whose bytes were removed from the object store.</summary>
    Task ForgetObjectsAsync(IReadOnlyCollection<long> objectIds, CancellationToken cancellationToken = default);

    // ---- consumer groups ----

    Task CommitGroupOffsetsAsync(string groupId, IReadOnlyList<GroupOffset> offsets, CancellationToken cancellationToken = default);

    Task<IReadOnlyList<GroupOffset>> FetchGroupOffsetsAsync(string groupId, CancellationToken cancellationToken = default);

    Task DeleteGroupOffsetsAsync(string groupId, IReadOnlyList<(string Topic, int Partition)>? partitions, CancellationToken cancellationToken = default);

    Task<IReadOnlyList<string>> ListGroupsAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Offset expiry (Kafka's offsets.retention.minutes, KIP-211): deletes the group's offsets that have expired as of
    /// <paramref name="now"/>, except those of <paramref name="keepTopics"/>, and returns the partitions deleted. An
    /// offset committed with its own retention (OffsetCommit v2-4 retention_time_ms) expires at its expire time; any
    /// other once its base time is at or before <paramref name="cutoff"/> (now minus the retention): the time the
    /// group became empty when <paramref name="emptySince"/> is given, else its own commit time. An offset committed at
    /// or after <paramref name="now"/> is kept: it came after the caller judged the group (a member may have joined and
    /// committed since). A group left without offsets loses its saved state too.
    /// </summary>
    Task<IReadOnlyList<(string Topic, int Partition)>> DeleteExpiredGroupOffsetsAsync(string groupId, DateTimeOffset now, DateTimeOffset cutoff, DateTimeOffset? emptySince, IReadOnlySet<string>? keepTopics, CancellationToken cancellationToken = default);

    /// <summary>Saves (replaces) what outlives a group's members: its protocol type and since when it has had none.</summary>
    Task SaveGroupStateAsync(SavedGroupState state, CancellationToken cancellationToken = default);

    /// <summary>The saved states of all groups.</summary>
    Task<IReadOnlyList<SavedGroupState>> ListGroupStatesAsync(CancellationToken cancellationToken = default);

    /// <summary>Deletes the saved states of groups that hold no offsets, except <paramref name="keep"/>; returns how many.</summary>
    Task<int> DeleteGroupStatesWithoutOffsetsAsync(IReadOnlySet<string> keep, CancellationToken cancellationToken = default);

    // ---- producer ids ----

    /// <summary>Allocates a block of producer ids that no other allocation will return.</summary>
    Task<ProducerIdBlock> AllocateProducerIdsAsync(int blockSize, CancellationToken cancellationToken = default);

    /// <summary>Stores (replaces) partitions' producer state snapshots in one transaction.</summary>
    Task SaveProducerSnapshotsAsync(IReadOnlyList<ProducerSnapshot> snapshots, CancellationToken cancellationToken = default);

    /// <summary>The partition's last producer state snapshot, or null if none was ever saved.</summary>
    Task<ProducerSnapshot?> GetProducerSnapshotAsync(long streamId, CancellationToken cancellationToken = default);
}

public sealed record TopicMetadata(
    Guid TopicId,
    string Name,
    IReadOnlyList<PartitionMetadata> Partitions,
    IReadOnlyDictionary<string, string> Configs,
    DateTimeOffset CreatedAt)
{
    /// <summary>
    /// Whether the topic's <c>cleanup.policy</c> includes <c>delete</c> (Kafka's default). As in Kafka, only then do
    /// retention and DeleteRecords remove records: a compact-only topic (Kafka Connect's configs and offsets, Streams
    /// changelogs) keeps every record.
    /// </summary>
    public bool DeletesRecords => CleanupPolicyIncludes("delete", whenUnset: true);

    /// <summary>Whether the topic's <c>cleanup.policy</c> includes <c>compact</c>: as in Kafka, its records must then have keys.</summary>
    public bool CompactsRecords => CleanupPolicyIncludes("compact", whenUnset: false);

    private bool CleanupPolicyIncludes(string policyName, bool whenUnset)
    {
        if (!Configs.TryGetValue("cleanup.policy", out string? policy))
        {
            return whenUnset;
        }

        foreach (string part in policy.Split(',', StringSplitOptions.TrimEntries))
        {
            if (part == policyName)
            {
                return true;
            }
        }

        return false;
    }
}

public sealed record PartitionMetadata(
    Guid TopicId,
    string TopicName,
    int Partition,
    long StreamId,
    int LeaderBrokerId,
    int LeaderEpoch,
    long LogStartOffset,
    long CommittedEndOffset);

public sealed record PreparedObject(long ObjectId, string Key);

public enum ObjectState
{
    Prepared = 0,
    Committed = 1,
    MarkedForDeletion = 2,
}

/// <summary>One stream's slice of an object: records [StartOffset, EndOffset) at bytes [Position, Position + Size).</summary>
public sealed record ObjectRange(long StreamId, int LeaderEpoch, long StartOffset, long EndOffset, long Position, long Size, long FirstTimestamp, long MaxTimestamp);

public sealed record ObjectCommit(long ObjectId, long ObjectSize, IReadOnlyList<ObjectRange> Ranges, IReadOnlyCollection<long> Replaces)
{
    /// <summary>What the object holds: the uploader writes stream-set objects, the compactor stream objects.</summary>
    public ObjectKind Kind { get; init; } = ObjectKind.StreamSet;
}

public sealed record ObjectMetadata(long ObjectId, string Key, ObjectState State, long Size, DateTimeOffset CreatedAt)
{
    /// <summary>The kind recorded at commit; prepared objects, and every object committed before kinds were recorded, read as stream-set.</summary>
    public ObjectKind Kind { get; init; } = ObjectKind.StreamSet;

    /// <summary>When the object was marked for deletion; null if it is not, or if it was marked before the time was recorded (long ago).</summary>
    public DateTimeOffset? MarkedAt { get; init; }
}

public sealed record StreamObjectRange(long ObjectId, string Key, long ObjectSize, ObjectRange Range);

/// <summary>A committed offset; <paramref name="ExpireTime"/> is set only when the commit asked for its own retention.</summary>
public sealed record GroupOffset(string Topic, int Partition, long Offset, int LeaderEpoch, string? Metadata, DateTimeOffset CommitTime, DateTimeOffset? ExpireTime = null)
{
    /// <summary>
    /// When set, the commit holds only for the topic under this id: one deleted (its offsets with it) and perhaps created
    /// again under the name refuses it with <see cref="UnknownTopicException"/>, so an offset of the old topic never lands on the new.
    /// </summary>
    public Guid? TopicId { get; init; }
}

/// <summary>
/// What outlives a classic group's members, as Kafka keeps it in its group metadata record: the protocol type
/// ("consumer", "connect"; a group that only commits offsets has none and no state) and since when the group has
/// been without members (null while it has some).
/// </summary>
public sealed record SavedGroupState(string GroupId, string ProtocolType, DateTimeOffset? EmptySince);

public readonly record struct ProducerIdBlock(long FirstProducerId, int Count);

/// <summary>A partition's idempotent producer state as of <paramref name="Offset"/>, in the broker's own encoding.</summary>
public sealed record ProducerSnapshot(long StreamId, long Offset, string State);

public sealed class TopicExistsException(string name) : Exception($"Topic '{name}' already exists.");

public sealed class UnknownTopicException(string name) : Exception($"Topic '{name}' does not exist.")
{
    public string Topic { get; } = name;
}

/// <summary>The metadata store refused a write for one stream (unknown, fenced, or not continuing its data).</summary>
public abstract class StreamRefusedException(long streamId, string message) : Exception(message)
{
    public long StreamId { get; } = streamId;
}

/// <summary>A write carried a leader epoch older than the partition's current one.</summary>
public sealed class FencedException(long streamId, int epoch, int currentEpoch)
    : StreamRefusedException(streamId, $"Stream {streamId}: leader epoch {epoch} is fenced by epoch {currentEpoch}.");

/// <summary>A committed range does not continue the stream's committed data.</summary>
public sealed class OffsetConflictException(long streamId, long expected, long actual)
    : StreamRefusedException(streamId, $"Stream {streamId}: range starts at {actual} but the committed end offset is {expected}.")
{
    /// <summary>The stream's committed end offset.</summary>
    public long CommittedEnd { get; } = expected;

    /// <summary>Where the refused range started.</summary>
    public long RangeStart { get; } = actual;
}
