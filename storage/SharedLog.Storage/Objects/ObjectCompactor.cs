using System.Buffers;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.ObjectStore;
using SharedLog.Storage.Streams;

namespace SharedLog.Storage.Objects;

/// <summary>What one compaction round did. Input is the size of the replaced objects, output of the new ones.</summary>
public sealed record CompactionReport(int StreamSetObjectsReplaced, int StreamObjectsReplaced, int ObjectsWritten, long InputBytes, long OutputBytes, int BlocksDropped)
{
    public static CompactionReport Nothing { get; } = new(0, 0, 0, 0, 0, 0);
}

/// <summary>
/// Merges the uploader's stream-set objects (one per upload, many streams each) into stream objects (one
/// stream each), so a long-lived partition ends up in a few large objects instead of thousands of small
/// shared ones, and the bytes of deleted topics and of records below a log start offset go away.
/// <para>
/// A round takes committed stream-set objects older than <see cref="StorageOptions.CompactionMinAge"/>,
/// oldest first, up to <see cref="StorageOptions.CompactionMaxBytesPerRound"/> of them (at least one).
/// For each live stream in them it lays out, in offset order, the stream's blocks in those objects and
/// its stream objects smaller than <see cref="StorageOptions.StreamObjectTargetBytes"/>; runs of these
/// that follow on without a gap become new stream objects of up to that target size (a stream's last
/// small object thus grows round by round instead of a new object per round). Blocks are copied as they
/// are, with ranged reads; blocks wholly below the log start offset and streams of deleted topics are left
/// out. All new objects are committed, and all replaced objects marked, in one metadata transaction,
/// which refuses the round if it would lose a live record; a round that fails (or a crash) leaves only
/// prepared, uncommitted objects, which the janitor removes as orphans. Marked objects keep their bytes
/// for <see cref="StorageOptions.DeletionGrace"/>, so reads that found them just before still finish.
/// Two compactors working on the same objects (several brokers) cannot both commit: the second finds
/// its inputs no longer committed.
/// </para>
/// </summary>
public sealed partial class ObjectCompactor(IObjectStore objects, IMetadataStore metadata, StorageOptions options, StreamStore? streams = null, ILogger<ObjectCompactor>? logger = null)
{
    /// <summary>Ranged reads in flight at once while one new object is gathered.</summary>
    private const int ParallelReads = 8;

    private readonly ILogger _logger = (ILogger?)logger ?? NullLogger.Instance;

    /// <summary>
    /// Objects this compactor found it cannot read (missing, or bytes that do not parse), left out of later rounds: a
    /// round with them fails, and rounds pick the oldest objects first, so one bad object would stop compaction for good.
    /// </summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<long, string> _setAside = new();

    public async Task<CompactionReport> RunOnceAsync(DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        IReadOnlyList<ObjectMetadata> all = await metadata.ListObjectsAsync(cancellationToken).ConfigureAwait(false);
        List<ObjectMetadata> inputs = PickInputs(all, now);
        if (inputs.Count == 0)
        {
            return CompactionReport.Nothing;
        }

        var logStarts = new Dictionary<long, long>();
        foreach (TopicMetadata topic in await metadata.ListTopicsAsync(cancellationToken).ConfigureAwait(false))
        {
            foreach (PartitionMetadata partition in topic.Partitions)
            {
                logStarts[partition.StreamId] = partition.LogStartOffset;
            }
        }

        var indexes = new Dictionary<long, IReadOnlyList<BlockIndexEntry>>(inputs.Count);
        var liveStreams = new SortedSet<long>();
        int inputBlocks = 0;
        foreach (ObjectMetadata input in inputs)
        {
            IReadOnlyList<BlockIndexEntry> index;
            try
            {
                index = await ObjectReader.ReadIndexAsync(objects, input.Key, input.Size, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (IsDamage(e))
            {
                SetAside(input.ObjectId, input.Key, e);
                continue;
            }

            indexes.Add(input.ObjectId, index);
            inputBlocks += index.Count;
            foreach (BlockIndexEntry block in index)
            {
                if (logStarts.ContainsKey(block.StreamId))
                {
                    liveStreams.Add(block.StreamId);
                }
            }
        }

        inputs.RemoveAll(o => !indexes.ContainsKey(o.ObjectId));
        if (inputs.Count == 0)
        {
            return CompactionReport.Nothing;
        }

        var smallStreamObjects = new Dictionary<long, ObjectMetadata>();
        foreach (ObjectMetadata obj in all)
        {
            if (obj.State == ObjectState.Committed && obj.Kind == ObjectKind.Stream && obj.Size < options.StreamObjectTargetBytes && !_setAside.ContainsKey(obj.ObjectId))
            {
                smallStreamObjects.Add(obj.ObjectId, obj);
            }
        }

        // Merges of stream objects alone share what the stream-set inputs left of the byte budget.
        long budget = options.CompactionMaxBytesPerRound - inputs.Sum(o => o.Size);
        var groups = new List<Group>();
        foreach (long streamId in liveStreams)
        {
            foreach (Group group in await PlanStreamAsync(streamId, logStarts[streamId], indexes, smallStreamObjects, cancellationToken).ConfigureAwait(false))
            {
                if (group.HasStreamSetBlocks || group.StreamObjectBytes <= budget)
                {
                    budget -= group.StreamObjectBytes;
                    groups.Add(group);
                }
            }
        }

        var commits = new List<ObjectCommit>(groups.Count);
        try
        {
            return await WriteAndCommitAsync(groups, commits, indexes.Keys, inputs, inputBlocks, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            foreach (ObjectCommit commit in commits)
            {
                streams?.EndWriting(commit.ObjectId);
            }
        }
    }

    private async Task<CompactionReport> WriteAndCommitAsync(
        List<Group> groups, List<ObjectCommit> commits, IEnumerable<long> inputIds, List<ObjectMetadata> inputs, int inputBlocks, CancellationToken cancellationToken)
    {
        var replaced = new HashSet<long>(inputIds);
        int copiedBlocks = 0;
        long inputBytes = inputs.Sum(o => o.Size);
        long outputBytes = 0;
        int streamObjectsReplaced = 0;
        foreach (Group group in groups)
        {
            foreach (Piece piece in group.Pieces)
            {
                if (piece.Block is null && replaced.Add(piece.Range.ObjectId))
                {
                    inputBytes += piece.Range.ObjectSize;
                    streamObjectsReplaced++;
                }
                else if (piece.Block is not null)
                {
                    copiedBlocks++;
                }
            }

            ObjectCommit? written;
            try
            {
                written = await WriteAsync(group, cancellationToken).ConfigureAwait(false);
            }
            catch (DamagedObjectException e)
            {
                // The round cannot commit without this group's blocks (its inputs would be replaced without them): it
                // fails, and the object that could not be read sits out later rounds.
                foreach (Piece piece in group.Pieces)
                {
                    if (piece.Range.Key == e.Key)
                    {
                        SetAside(piece.Range.ObjectId, piece.Range.Key, e.InnerException!);
                    }
                }

                throw;
            }

            if (written is { } commit)
            {
                commits.Add(commit);
                outputBytes += commit.ObjectSize;
            }
        }

        await metadata.CommitCompactionAsync(commits, replaced, cancellationToken).ConfigureAwait(false);
        // Reads of this broker go to the new objects at once instead of to the replaced ones until lookups expire.
        streams?.ForgetRangeLookups();
        StorageMetrics.CompactedBytes.Add(inputBytes);
        var report = new CompactionReport(inputs.Count, streamObjectsReplaced, commits.Count, inputBytes, outputBytes, inputBlocks - copiedBlocks);
        LogRound(_logger, report.StreamSetObjectsReplaced, report.StreamObjectsReplaced, report.InputBytes, report.ObjectsWritten, report.OutputBytes, report.BlocksDropped);
        return report;
    }

    /// <summary>Missing or unparseable stored bytes; an unreachable store is not damage, and its round is simply tried again.</summary>
    private static bool IsDamage(Exception e) => e is ObjectNotFoundException or InvalidDataException;

    /// <summary>Runs a read of one object, naming the object when its bytes turn out missing or damaged.</summary>
    private static async Task<T> Damaged<T>(string key, Func<Task<T>> read)
    {
        try
        {
            return await read().ConfigureAwait(false);
        }
        catch (Exception e) when (IsDamage(e))
        {
            throw new DamagedObjectException(key, e);
        }
    }

    /// <summary>An object of a compaction group that cannot be read: which one, and why.</summary>
    private sealed class DamagedObjectException(string key, Exception inner) : IOException($"Object {key} cannot be read: {inner.Message}", inner)
    {
        public string Key { get; } = key;
    }

    private void SetAside(long objectId, string key, Exception e)
    {
        if (_setAside.TryAdd(objectId, key))
        {
            LogSetAside(_logger, e, key);
        }
    }

    /// <summary>Runs a round every <paramref name="interval"/> until cancelled; a failed round is logged and retried.</summary>
    public Task RunAsync(TimeSpan interval, CancellationToken cancellationToken) =>
        PeriodicRounds.RunAsync(interval, RunOnceAsync, e => LogFailed(_logger, e), cancellationToken);

    /// <summary>Committed stream-set objects old enough, oldest first, within the byte budget (at least one, however large).</summary>
    private List<ObjectMetadata> PickInputs(IReadOnlyList<ObjectMetadata> all, DateTimeOffset now)
    {
        var picked = new List<ObjectMetadata>();
        long bytes = 0;
        DateTimeOffset cutoff = now - options.CompactionMinAge;
        foreach (ObjectMetadata obj in all
            .Where(o => o.State == ObjectState.Committed && o.Kind == ObjectKind.StreamSet && o.CreatedAt <= cutoff && !_setAside.ContainsKey(o.ObjectId))
            .OrderBy(o => o.CreatedAt)
            .ThenBy(o => o.ObjectId))
        {
            if (picked.Count > 0 && bytes + obj.Size > options.CompactionMaxBytesPerRound)
            {
                break;
            }

            picked.Add(obj);
            bytes += obj.Size;
        }

        return picked;
    }

    /// <summary>
    /// Lays out one stream's committed data in offset order and cuts it into the objects to write: blocks
    /// of the inputs always go somewhere; a small stream object joins when it follows on and still fits;
    /// anything else (a newer stream-set object, a full stream object, a gap) ends the current group.
    /// Groups that would only rewrite one stream object as it is are left out.
    /// </summary>
    private async Task<List<Group>> PlanStreamAsync(
        long streamId, long logStart, Dictionary<long, IReadOnlyList<BlockIndexEntry>> indexes, Dictionary<long, ObjectMetadata> smallStreamObjects, CancellationToken cancellationToken)
    {
        var groups = new List<Group>();
        var current = new Group(streamId, logStart);
        foreach (StreamObjectRange range in await metadata.GetObjectRangesAsync(streamId, logStart, cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            if (indexes.TryGetValue(range.ObjectId, out IReadOnlyList<BlockIndexEntry>? index))
            {
                foreach (BlockIndexEntry block in index)
                {
                    if (block.StreamId == streamId && block.EndOffset > logStart && block.StartOffset >= range.Range.StartOffset && block.EndOffset <= range.Range.EndOffset)
                    {
                        current = Place(groups, current, new Piece(range, block, block.StartOffset, block.EndOffset, block.Size));
                    }
                }
            }
            else if (smallStreamObjects.ContainsKey(range.ObjectId))
            {
                current = Place(groups, current, new Piece(range, null, range.Range.StartOffset, range.Range.EndOffset, range.Range.Size));
            }
            else
            {
                current = Close(groups, current);
            }
        }

        Close(groups, current);
        return groups.FindAll(g => g.HasStreamSetBlocks || g.Pieces.Count > 1);
    }

    private Group Place(List<Group> groups, Group current, Piece piece)
    {
        if (current.Pieces.Count > 0 && (current.EndOffset != piece.StartOffset || current.Size + piece.Size > options.StreamObjectTargetBytes))
        {
            current = Close(groups, current);
        }

        current.Add(piece);
        return current;
    }

    private static Group Close(List<Group> groups, Group current)
    {
        if (current.Pieces.Count == 0)
        {
            return current;
        }

        groups.Add(current);
        return new Group(current.StreamId, current.LogStart);
    }

    /// <summary>Copies the group's blocks into a new stream object and uploads it (prepared, not committed). Null if nothing live was left.</summary>
    private async Task<ObjectCommit?> WriteAsync(Group group, CancellationToken cancellationToken)
    {
        var blocks = new List<(string Key, BlockIndexEntry Block)>();
        int epoch = 0;
        foreach (Piece piece in group.Pieces)
        {
            epoch = Math.Max(epoch, piece.Range.Range.LeaderEpoch);
            if (piece.Block is { } block)
            {
                blocks.Add((piece.Range.Key, block));
                continue;
            }

            foreach (BlockIndexEntry stored in await Damaged(piece.Range.Key, () => ObjectReader.ReadIndexAsync(objects, piece.Range.Key, piece.Range.ObjectSize, cancellationToken)).ConfigureAwait(false))
            {
                if (stored.StreamId == group.StreamId && stored.EndOffset > group.LogStart)
                {
                    blocks.Add((piece.Range.Key, stored));
                }
            }
        }

        // Blocks lying next to each other in one source object come with one ranged read.
        var runs = new List<(int First, int End, long Length)>();
        for (int first = 0; first < blocks.Count;)
        {
            (string key, BlockIndexEntry start) = blocks[first];
            int end = first + 1;
            long length = start.Size;
            while (end < blocks.Count && blocks[end].Key == key && blocks[end].Block.Position == start.Position + length && length + blocks[end].Block.Size <= options.StreamObjectTargetBytes)
            {
                length += blocks[end].Block.Size;
                end++;
            }

            runs.Add((first, end, length));
            first = end;
        }

        // The reads overlap, a few at a time: against S3 each is a round trip, and a quiet partition's
        // group is one small read per input object. The group is held in memory whole anyway.
        using var reading = new SemaphoreSlim(ParallelReads);
        ReadOnlyMemory<byte>[] data = await Task.WhenAll(runs.Select(async run =>
        {
            await reading.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                (string key, BlockIndexEntry start) = blocks[run.First];
                return await Damaged(key, () => ObjectReader.ReadRangeAsync(objects, key, start.Position, (int)run.Length, cancellationToken: cancellationToken)).ConfigureAwait(false);
            }
            finally
            {
                reading.Release();
            }
        })).ConfigureAwait(false);

        var builder = new ObjectBuilder(ObjectKind.Stream, options.BlockSizeBytes);
        for (int r = 0; r < runs.Count; r++)
        {
            int at = 0;
            for (int i = runs[r].First; i < runs[r].End; i++)
            {
                (string key, BlockIndexEntry block) = blocks[i];
                ReadOnlyMemory<byte> bytes = data[r].Slice(at, block.Size);
                try
                {
                    CheckBlock(key, block, bytes);
                }
                catch (Exception e) when (IsDamage(e))
                {
                    throw new DamagedObjectException(key, e);
                }

                builder.AddBlock(block, bytes);
                at += block.Size;
            }
        }

        if (builder.IsEmpty)
        {
            return null;
        }

        ReadOnlySequence<byte> output = builder.BuildParts();
        IReadOnlyList<BlockIndexEntry> written = builder.Blocks;
        var range = new ObjectRange(
            group.StreamId, epoch, written[0].StartOffset, written[^1].EndOffset, 0, builder.DataSize, written.Min(b => b.FirstTimestamp), written.Max(b => b.MaxTimestamp));
        PreparedObject prepared = await metadata.PrepareObjectAsync(options.ObjectKeyPrefix, cancellationToken).ConfigureAwait(false);
        streams?.BeginWriting(prepared.ObjectId); // until the round commits or fails (see the round)
        try
        {
            await objects.PutAsync(prepared.Key, output, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            streams?.EndWriting(prepared.ObjectId);
            throw;
        }

        return new ObjectCommit(prepared.ObjectId, output.Length, [range], []) { Kind = ObjectKind.Stream };
    }

    /// <summary>
    /// The bytes must be exactly the block's batches, in offset order: a copy taken from the wrong place
    /// fails the round here, before any object it would replace is marked.
    /// </summary>
    private static void CheckBlock(string key, BlockIndexEntry block, ReadOnlyMemory<byte> data)
    {
        var batches = new List<ReadOnlyMemory<byte>>();
        BatchHeader.Split(data, block.StartOffset, batches);
        long next = block.StartOffset;
        long size = 0;
        foreach (ReadOnlyMemory<byte> batch in batches)
        {
            if (BatchHeader.BaseOffset(batch.Span) != next)
            {
                break;
            }

            next += BatchHeader.LastOffsetDelta(batch.Span) + 1;
            size += batch.Length;
        }

        if (next != block.EndOffset || size != data.Length)
        {
            throw new InvalidDataException(
                $"Object {key}: block at {block.Position} does not hold offsets [{block.StartOffset}, {block.EndOffset}) in {block.Size} bytes of batches.");
        }
    }

    /// <summary>A piece of a stream's data: one block of a stream-set input, or a whole small stream object (<see cref="Block"/> null).</summary>
    private sealed record Piece(StreamObjectRange Range, BlockIndexEntry? Block, long StartOffset, long EndOffset, long Size);

    /// <summary>Pieces of one stream that follow on without a gap and become one new stream object.</summary>
    private sealed class Group(long streamId, long logStart)
    {
        public long StreamId { get; } = streamId;

        public long LogStart { get; } = logStart;

        public List<Piece> Pieces { get; } = [];

        public long EndOffset { get; private set; }

        public long Size { get; private set; }

        public long StreamObjectBytes { get; private set; }

        public bool HasStreamSetBlocks { get; private set; }

        public void Add(Piece piece)
        {
            Pieces.Add(piece);
            EndOffset = piece.EndOffset;
            Size += piece.Size;
            if (piece.Block is null)
            {
                StreamObjectBytes += piece.Range.ObjectSize;
            }
            else
            {
                HasStreamSetBlocks = true;
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Compaction: {StreamSets} stream-set and {StreamObjects} stream objects ({InputBytes} bytes) replaced by {Written} stream objects ({OutputBytes} bytes); {Dropped} dead blocks left out")]
    private static partial void LogRound(ILogger logger, int streamSets, int streamObjects, long inputBytes, int written, long outputBytes, int dropped);

    [LoggerMessage(Level = LogLevel.Error, Message = "Compaction: object {Key} cannot be read (missing, or its bytes do not parse); it is left out of compaction from now on, and reads of its ranges fail with a storage error")]
    private static partial void LogSetAside(ILogger logger, Exception exception, string key);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Compaction round failed; its uploaded objects stay uncommitted (the janitor removes them) and the next round tries again")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}
