using System.Runtime.InteropServices;

namespace SharedLog.Storage;

/// <summary>
/// Native memory aligned to <see cref="DirectIo.SectorSize"/> and a whole number of sectors long, for
/// direct I/O (the WAL's commit slots, object files, the direct I/O probe). Freed by <see cref="Dispose"/>,
/// or by the finalizer when a pooled buffer is dropped with its owner.
/// </summary>
public sealed unsafe class AlignedBuffer : IDisposable
{
    private nint _memory;

    public AlignedBuffer(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        Length = checked((int)DirectIo.AlignUp(length));
        _memory = (nint)NativeMemory.AlignedAlloc((nuint)Length, DirectIo.SectorSize);
    }

    ~AlignedBuffer() => Free();

    /// <summary>The requested length rounded up to whole sectors.</summary>
    public int Length { get; }

    /// <summary>The memory's address, for device calls that take a pointer (tests).</summary>
    internal nint Address => _memory != 0 ? _memory : throw new ObjectDisposedException(nameof(AlignedBuffer));

    public Span<byte> Span
    {
        get
        {
            nint memory = _memory;
            ObjectDisposedException.ThrowIf(memory == 0, this);
            return new Span<byte>((void*)memory, Length);
        }
    }

    public void Dispose()
    {
        Free();
        GC.SuppressFinalize(this);
    }

    private void Free()
    {
        nint memory = Interlocked.Exchange(ref _memory, 0);
        if (memory != 0)
        {
            NativeMemory.AlignedFree((void*)memory);
        }
    }
}
