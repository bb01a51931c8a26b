using System.Buffers;

namespace SharedLog.Protocol;

/// <summary>
/// An <see cref="IBufferWriter{T}"/> over arrays rented from <see cref="ArrayPool{T}.Shared"/>, for
/// scratch buffers that would otherwise land on the large object heap once per batch (a rebuilt
/// record batch, a compressed section). <see cref="Release"/> returns the array; the written span is
/// only valid until then. Not disposable on purpose: an abandoned writer's array is simply collected.
/// </summary>
public sealed class PooledBufferWriter(int initialCapacity = 4096) : IBufferWriter<byte>
{
    /// <summary>
    /// Larger arrays are left to the collector instead of going back to the shared pool, which keeps what it is given:
    /// a few hostile requests inflating to tens of megabytes each would otherwise stay in the broker's memory for good.
    /// </summary>
    public const int LargestPooledArray = 16 * 1024 * 1024;

    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(initialCapacity, 256));

    public int WrittenCount { get; private set; }

    public ReadOnlySpan<byte> WrittenSpan => _buffer.AsSpan(0, WrittenCount);

    /// <summary>The written bytes as memory, valid until <see cref="Release"/> (or a write that grows the buffer).</summary>
    public ReadOnlyMemory<byte> WrittenMemory => _buffer.AsMemory(0, WrittenCount);

    public void Advance(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (WrittenCount + count > _buffer.Length)
        {
            throw new InvalidOperationException("Advanced past the end of the buffer.");
        }

        WrittenCount += count;
    }

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsMemory(WrittenCount);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsSpan(WrittenCount);
    }

    /// <summary>Returns the array to the pool; the writer cannot be used afterwards.</summary>
    public void Release()
    {
        byte[] buffer = _buffer;
        _buffer = [];
        WrittenCount = 0;
        GiveBack(buffer);
    }

    private void Ensure(int sizeHint)
    {
        int needed = WrittenCount + Math.Max(sizeHint, 1);
        if (needed <= _buffer.Length)
        {
            return;
        }

        ObjectDisposedException.ThrowIf(_buffer.Length == 0, this);
        byte[] larger = ArrayPool<byte>.Shared.Rent(Math.Max(needed, _buffer.Length * 2));
        WrittenSpan.CopyTo(larger);
        GiveBack(_buffer);
        _buffer = larger;
    }

    private static void GiveBack(byte[] buffer)
    {
        if (buffer.Length is > 0 and <= LargestPooledArray)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
