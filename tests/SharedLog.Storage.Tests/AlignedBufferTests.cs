using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace SharedLog.Storage.Tests;

public class AlignedBufferTests
{
    [Theory]
    [InlineData(1, 4096)]
    [InlineData(4096, 4096)]
    [InlineData(4097, 8192)]
    [InlineData(4 * 1024 * 1024, 4 * 1024 * 1024)]
    public void MemoryStartsOnASectorAndSpansWholeSectors(int requested, int expected)
    {
        using var buffer = new AlignedBuffer(requested);
        Span<byte> span = buffer.Span;
        Assert.Equal(expected, span.Length);
        nint address = Unsafe.ByteOffset(ref Unsafe.NullRef<byte>(), ref MemoryMarshal.GetReference(span));
        Assert.Equal(0, (long)address % DirectIo.SectorSize);

        // The whole span is usable memory.
        span.Fill(0xA5);
        Assert.Equal(0xA5, span[^1]);
    }

    [Fact]
    public void ADisposedBufferRefusesUseAndDisposesTwiceQuietly()
    {
        var buffer = new AlignedBuffer(10);
        buffer.Dispose();
        buffer.Dispose();
        Assert.Throws<ObjectDisposedException>(() => buffer.Span.Length);
        Assert.Throws<ArgumentOutOfRangeException>(() => new AlignedBuffer(0));
    }
}
