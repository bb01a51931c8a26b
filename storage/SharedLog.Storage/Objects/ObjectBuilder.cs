using System.Buffers;
using SharedLog.Protocol;

namespace SharedLog.Storage.Objects;

/// <summary>
/// Builds one data object from record batches. Batches of a stream arrive in offset order and are
/// packed into blocks of about <c>blockSizeBytes</c> (a batch is never split; a larger batch gets a
/// block of its own). Adding a batch of another stream closes the current block. The compactor adds
/// whole blocks taken from other objects instead (<see cref="AddBlock"/>).
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

        CheckContinues(streamId, baseOffset);
        if (_open is { } open)
        {
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
            _open = new BlockIndexEntry(streamId, baseOffset, endOffset, firstTimestamp, maxTimestamp, _dataSize, batch.Length, recordCount);
        }

        _batches.Add(batch);
        _dataSize += batch.Length;
    }

    /// <summary>
    /// Appends a whole block read from another object, bytes unchanged: the compactor moves blocks, it
    /// does not re-pack their batches. <paramref name="block"/> describes <paramref name="data"/> (its
    /// position is where it was; here it gets its new one).
    /// </summary>
    public void AddBlock(BlockIndexEntry block, ReadOnlyMemory<byte> data)
    {
        if (data.Length != block.Size || block.EndOffset <= block.StartOffset)
        {
            throw new ArgumentException($"Stream {block.StreamId}: block [{block.StartOffset}, {block.EndOffset}) of {block.Size} bytes came with {data.Length} bytes.");
        }

        CheckContinues(block.StreamId, block.StartOffset);
        if (_open is { } open)
        {
            _blocks.Add(open);
            _open = null;
        }

        _blocks.Add(block with { Position = _dataSize });
        _batches.Add(data);
        _dataSize += data.Length;
    }

    /// <summary>Data of one stream must follow on without gap or overlap, whichever way it is added.</summary>
    private void CheckContinues(long streamId, long baseOffset)
    {
        // The open block, when there is one, is always the last block.
        BlockIndexEntry? last = _open ?? (_blocks.Count > 0 ? _blocks[^1] : null);
        if (last is { } previous && previous.StreamId == streamId && previous.EndOffset != baseOffset)
        {
            throw new ArgumentException($"Stream {streamId}: data at {baseOffset} does not continue the block ending at {previous.EndOffset}.");
        }
    }

    /// <summary>The blocks so far, the open one included.</summary>
    public IReadOnlyList<BlockIndexEntry> Blocks => _open is { } open ? [.. _blocks, open] : _blocks;

    /// <summary>
    /// The object as pieces: the added batches and blocks themselves, not copied, then the index and
    /// footer. Uploads write these pieces directly, so building an object allocates only its index
    /// instead of one array of the object's size (megabytes, on the large object heap).
    /// </summary>
    public ReadOnlySequence<byte> BuildParts()
    {
        IReadOnlyList<BlockIndexEntry> blocks = Blocks;
        int indexSize = ObjectFormat.IndexSize(blocks.Count);
        byte[] tail = new byte[indexSize + ObjectFormat.FooterSize];
        Span<byte> index = tail.AsSpan(0, indexSize);
        ObjectFormat.WriteIndex(index, blocks);
        ObjectFormat.WriteFooter(tail.AsSpan(indexSize), _dataSize, index, _kind);
        var pieces = new List<ReadOnlyMemory<byte>>(_batches.Count + 1);
        pieces.AddRange(_batches);
        pieces.Add(tail);
        return MemorySequence.Join(pieces);
    }

    /// <summary>The object in one array.</summary>
    public byte[] Build() => BuildParts().ToArray();
}
