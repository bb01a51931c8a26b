using System.Buffers;
using System.Runtime.InteropServices;
using SharedLog.Protocol;

namespace SharedLog.Broker.Network;

/// <summary>
/// One response as a list of send buffers: what the protocol writer writes goes into pooled chunks, and the record
/// batches of a fetch are referenced where they lie (the block cache, the partition's recent batches) instead of being
/// copied. The socket then gathers them in one send, so a consumer's bytes are copied once (into the kernel), not twice.
/// </summary>
internal sealed class ResponseSegments : IReferencingBufferWriter
{
    private const int ChunkSize = 16 * 1024;

    /// <summary>Pieces of referenced data smaller than this are copied instead.</summary>
    public const int MinReferencedPieceBytes = 2048;

    /// <summary>A buffer list grown past this by one large response is not kept for the connection's next ones.</summary>
    private const int MaxKeptSegments = 1024;

    private List<ArraySegment<byte>> _segments = [];
    private readonly List<byte[]> _rented = [];
    private byte[]? _chunk;
    private int _chunkStart;
    private int _chunkUsed;

    /// <summary>Bytes written and referenced so far.</summary>
    public long Length { get; private set; }

    /// <summary>The buffers to send, in order.</summary>
    public List<ArraySegment<byte>> Segments
    {
        get
        {
            Seal();
            return _segments;
        }
    }

    public void Advance(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (_chunk is null || _chunkUsed + count > _chunk.Length)
        {
            throw new InvalidOperationException("Advanced past the buffer that was handed out.");
        }

        _chunkUsed += count;
        Length += count;
    }

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _chunk.AsMemory(_chunkUsed);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _chunk.AsSpan(_chunkUsed);
    }

    public void AppendReferenced(ReadOnlySequence<byte> data)
    {
        Seal();
        foreach (ReadOnlyMemory<byte> memory in data)
        {
            if (memory.IsEmpty)
            {
                continue;
            }

            // Small pieces (batches of a producer that sends few records at a time) are copied: thousands of tiny
            // send buffers would cost more than the copy they save.
            if (memory.Length >= MinReferencedPieceBytes && MemoryMarshal.TryGetArray(memory, out ArraySegment<byte> array))
            {
                _segments.Add(array);
                Length += memory.Length;
            }
            else
            {
                // A small piece, or memory that is not an array (none of the broker's today), is copied like any other bytes.
                memory.Span.CopyTo(GetSpan(memory.Length));
                Advance(memory.Length);
                Seal();
            }
        }
    }

    /// <summary>Gives the chunks back to the pool. Only once the socket is done with them: a send still running must not see them reused.</summary>
    public void Release()
    {
        foreach (byte[] chunk in _rented)
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }

        _rented.Clear();
        if (_segments.Capacity > MaxKeptSegments)
        {
            _segments = [];
        }
        else
        {
            _segments.Clear();
        }

        _chunk = null;
        _chunkStart = _chunkUsed = 0;
        Length = 0;
    }

    private void Ensure(int sizeHint)
    {
        sizeHint = Math.Max(sizeHint, 1);
        if (_chunk is not null && _chunk.Length - _chunkUsed >= sizeHint)
        {
            return;
        }

        Seal();
        _chunk = ArrayPool<byte>.Shared.Rent(Math.Max(sizeHint, ChunkSize));
        _rented.Add(_chunk);
        _chunkStart = _chunkUsed = 0;
    }

    /// <summary>Ends the current run of written bytes as a send buffer; later writes start the next one.</summary>
    private void Seal()
    {
        if (_chunk is not null && _chunkUsed > _chunkStart)
        {
            _segments.Add(new ArraySegment<byte>(_chunk, _chunkStart, _chunkUsed - _chunkStart));
            _chunkStart = _chunkUsed;
        }
    }
}
