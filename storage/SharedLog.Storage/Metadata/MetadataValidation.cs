using System.Buffers;

namespace SharedLog.Storage.Metadata;

/// <summary>Argument checks shared by metadata store implementations; hostile input fails here, before any SQL.</summary>
internal static class MetadataValidation
{
    /// <summary>Kafka's limit: a topic name also names files and metrics.</summary>
    public const int MaxTopicNameLength = 249;

    public const int MaxConfigKeyLength = 255;

    /// <summary>A bound on one request's work; far above any real topic.</summary>
    public const int MaxPartitionCount = 100_000;

    public const int MaxProducerIdBlockSize = 1_000_000;

    public const int MaxKeyPrefixLength = 512;

    private static readonly SearchValues<char> TopicNameChars =
        SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");

    public static void TopicName(string name, string parameterName)
    {
        ArgumentNullException.ThrowIfNull(name, parameterName);
        if (name.Length == 0 || name.Length > MaxTopicNameLength)
        {
            throw new ArgumentException($"A topic name has 1 to {MaxTopicNameLength} characters, not {name.Length}.", parameterName);
        }

        if (name is "." or ".." || name.AsSpan().ContainsAnyExcept(TopicNameChars))
        {
            throw new ArgumentException($"Topic name '{name}' must consist of [a-zA-Z0-9._-] and not be '.' or '..'.", parameterName);
        }
    }

    public static void PartitionCount(int count, string parameterName)
    {
        if (count is < 1 or > MaxPartitionCount)
        {
            throw new ArgumentOutOfRangeException(parameterName, count, $"A topic has 1 to {MaxPartitionCount} partitions.");
        }
    }

    public static void ConfigKey(string key, string parameterName)
    {
        if (string.IsNullOrEmpty(key) || key.Length > MaxConfigKeyLength)
        {
            throw new ArgumentException($"A config name has 1 to {MaxConfigKeyLength} characters.", parameterName);
        }
    }

    public static void Configs(IReadOnlyDictionary<string, string> configs, string parameterName)
    {
        ArgumentNullException.ThrowIfNull(configs, parameterName);
        foreach ((string key, string value) in configs)
        {
            ConfigKey(key, parameterName);
            if (value is null)
            {
                throw new ArgumentException($"Config '{key}' has no value.", parameterName);
            }
        }
    }

    /// <summary>A group id may be empty: Kafka keeps offsets committed under "" (for clients from before groups had names).</summary>
    public static void GroupId(string groupId, string parameterName)
    {
        ArgumentNullException.ThrowIfNull(groupId, parameterName);
    }

    public static void GroupOffset(GroupOffset offset, string parameterName)
    {
        if (offset is null)
        {
            throw new ArgumentNullException(parameterName);
        }

        TopicName(offset.Topic, parameterName);
        if (offset.Partition < 0)
        {
            throw new ArgumentOutOfRangeException(parameterName, offset.Partition, "A partition index is not negative.");
        }
    }

    /// <summary>
    /// Checks a commit's shape and returns its ranges per stream, ordered by start offset. Ranges of one
    /// stream must follow each other without gap or overlap; every range must lie inside the object.
    /// </summary>
    public static Dictionary<long, ObjectRange[]> CommitRanges(ObjectCommit commit, string parameterName)
    {
        ArgumentNullException.ThrowIfNull(commit, parameterName);
        if (commit.Ranges is null || commit.Replaces is null)
        {
            throw new ArgumentException("A commit needs its ranges and its replaced objects (possibly empty).", parameterName);
        }

        if (commit.Ranges.Count == 0)
        {
            throw new ArgumentException($"Commit of object {commit.ObjectId} has no ranges.", parameterName);
        }

        if (commit.ObjectSize < 0)
        {
            throw new ArgumentException($"Object {commit.ObjectId} has a negative size.", parameterName);
        }

        if (commit.Replaces.Contains(commit.ObjectId))
        {
            throw new ArgumentException($"Object {commit.ObjectId} cannot replace itself.", parameterName);
        }

        var byStream = new Dictionary<long, List<ObjectRange>>();
        foreach (ObjectRange range in commit.Ranges)
        {
            if (range is null)
            {
                throw new ArgumentException("A commit range is null.", parameterName);
            }

            if (range.StartOffset < 0 || range.EndOffset <= range.StartOffset)
            {
                throw new ArgumentException($"Stream {range.StreamId}: range [{range.StartOffset}, {range.EndOffset}) is empty or negative.", parameterName);
            }

            // Written as a subtraction so huge values cannot overflow past the check.
            if (range.Position < 0 || range.Size <= 0 || range.Size > commit.ObjectSize || range.Position > commit.ObjectSize - range.Size)
            {
                throw new ArgumentException(
                    $"Stream {range.StreamId}: bytes [{range.Position}, +{range.Size}) do not lie inside object {commit.ObjectId} of {commit.ObjectSize} bytes.", parameterName);
            }

            if (!byStream.TryGetValue(range.StreamId, out List<ObjectRange>? list))
            {
                list = [];
                byStream.Add(range.StreamId, list);
            }

            list.Add(range);
        }

        var result = new Dictionary<long, ObjectRange[]>(byStream.Count);
        foreach ((long streamId, List<ObjectRange> list) in byStream)
        {
            ObjectRange[] ordered = [.. list.OrderBy(r => r.StartOffset)];
            for (int i = 1; i < ordered.Length; i++)
            {
                if (ordered[i].StartOffset != ordered[i - 1].EndOffset)
                {
                    throw new ArgumentException(
                        $"Stream {streamId}: ranges of one commit must be contiguous, but [{ordered[i - 1].StartOffset}, {ordered[i - 1].EndOffset}) is followed by [{ordered[i].StartOffset}, {ordered[i].EndOffset}).",
                        parameterName);
                }
            }

            result.Add(streamId, ordered);
        }

        return result;
    }

    /// <summary>
    /// Checks the shape of a compaction commit and returns each new object's ranges per stream (as
    /// <see cref="CommitRanges"/>). The replaced objects are named once, for the whole compaction; no new
    /// object may be among them, and the new objects may not hold the same records of a stream twice.
    /// </summary>
    public static List<Dictionary<long, ObjectRange[]>> CompactionCommits(IReadOnlyList<ObjectCommit> newObjects, IReadOnlyCollection<long> replaces, string parameterName)
    {
        ArgumentNullException.ThrowIfNull(newObjects, parameterName);
        ArgumentNullException.ThrowIfNull(replaces, nameof(replaces));
        if (replaces.Count == 0)
        {
            throw new ArgumentException("A compaction replaces at least one object.", nameof(replaces));
        }

        var result = new List<Dictionary<long, ObjectRange[]>>(newObjects.Count);
        var ids = new HashSet<long>();
        var spans = new List<(long StreamId, long Start, long End)>();
        foreach (ObjectCommit commit in newObjects)
        {
            Dictionary<long, ObjectRange[]> byStream = CommitRanges(commit, parameterName);
            if (commit.Replaces.Count > 0)
            {
                throw new ArgumentException($"Object {commit.ObjectId}: a compaction names its replaced objects once, not per new object.", parameterName);
            }

            if (!ids.Add(commit.ObjectId) || replaces.Contains(commit.ObjectId))
            {
                throw new ArgumentException($"Object {commit.ObjectId} appears twice in the compaction, or replaces itself.", parameterName);
            }

            foreach ((long streamId, ObjectRange[] ranges) in byStream)
            {
                spans.Add((streamId, ranges[0].StartOffset, ranges[^1].EndOffset));
            }

            result.Add(byStream);
        }

        spans.Sort();
        for (int i = 1; i < spans.Count; i++)
        {
            if (spans[i].StreamId == spans[i - 1].StreamId && spans[i].Start < spans[i - 1].End)
            {
                throw new ArgumentException(
                    $"Stream {spans[i].StreamId}: new objects overlap at [{spans[i].Start}, {Math.Min(spans[i].End, spans[i - 1].End)}).", parameterName);
            }
        }

        return result;
    }
}
