namespace SharedLog.Storage.Objects;

/// <summary>
/// Builds one data object from record batches. Batches of a stream arrive in offset order and are
/// packed into blocks of about <c>blockSizeBytes</c> (a batch is never split; a larger batch gets a
/// block of its own). Adding a batch of another stream closes the current block.
/// </summary>
public sealed class ObjectBuilder
{
    private readonly ObjectKind _kind;
    private readonly int _blockSizeBytes;
    private readonly List<ReadOnlyMemory<byte>> _batches = [];
    private readonly List<BlockIndexEntry> _blocks = [];
    private BlockIndexEntry? _open;
    private long _dataSize;

    public ObjectBuilder(ObjectKind kind, int blockSizeBytes = 1024 * 1024)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSizeBytes, 1024);
        _kind = kind;
        _blockSizeBytes = blockSizeBytes;
    }

    public long DataSize => _dataSize;

    public bool IsEmpty => _batches.Count == 0;

    /// <summary>Size of the object <see cref="Build"/> will produce.</summary>
    public long ObjectSize => _dataSize + ObjectFormat.IndexSize(_blocks.Count + (_open is null ? 0 : 1)) + ObjectFormat.FooterSize;

    public void Add(long streamId, long baseOffset, long endOffset, long firstTimestamp, long maxTimestamp, int recordCount, ReadOnlyMemory<byte> batch)
    {
        if (endOffset <= baseOffset)
        {
            throw new ArgumentException($"Batch offsets [{baseOffset}, {endOffset}) are empty.");
        }

        if (_open is { } open)
        {
            if (open.StreamId == streamId && baseOffset != open.EndOffset)
            {
                throw new ArgumentException($"Stream {streamId}: batch at {baseOffset} does not continue the block ending at {open.EndOffset}.");
            }

            if (open.StreamId != streamId || open.Size + batch.Length > _blockSizeBytes)
            {
                _blocks.Add(open);
                _open = null;
            }
        }

        if (_open is { } current)
        {
            _open = current with
            {
                EndOffset = endOffset,
                MaxTimestamp = Math.Max(current.MaxTimestamp, maxTimestamp),
                Size = current.Size + batch.Length,
                RecordCount = current.RecordCount + recordCount,
            };
        }
        else
        {
            if (_blocks.Count > 0 && _blocks[^1].StreamId == streamId && _blocks[^1].EndOffset != baseOffset)
            {
                throw new ArgumentException($"Stream {streamId}: batch at {baseOffset} does not continue the block ending at {_blocks[^1].EndOffset}.");
            }

            _open = new BlockIndexEntry(streamId, baseOffset, endOffset, firstTimestamp, maxTimestamp, _dataSize, batch.Length, recordCount);
        }

        _batches.Add(batch);
        _dataSize += batch.Length;
    }

    /// <summary>The blocks so far, the open one included.</summary>
    public IReadOnlyList<BlockIndexEntry> Blocks => _open is { } open ? [.. _blocks, open] : _blocks;

    public byte[] Build()
    {
        IReadOnlyList<BlockIndexEntry> blocks = Blocks;
        int indexSize = ObjectFormat.IndexSize(blocks.Count);
        var output = new byte[checked(_dataSize + indexSize + ObjectFormat.FooterSize)];
        int at = 0;
        foreach (ReadOnlyMemory<byte> batch in _batches)
        {
            batch.Span.CopyTo(output.AsSpan(at));
            at += batch.Length;
        }

        Span<byte> index = output.AsSpan(at, indexSize);
        ObjectFormat.WriteIndex(index, blocks);
        ObjectFormat.WriteFooter(output.AsSpan(at + indexSize, ObjectFormat.FooterSize), at, index, _kind);
        return output;
    }
}
