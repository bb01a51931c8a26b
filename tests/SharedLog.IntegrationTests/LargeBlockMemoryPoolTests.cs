using System.Buffers;
using SharedLog.Broker.Network;

namespace SharedLog.IntegrationTests;

/// <summary>The 64 KiB block pool the broker's socket transport reads into and writes from.</summary>
public class LargeBlockMemoryPoolTests
{
    [Fact]
    public void ABlockIsAWholeBlockWhateverSmallerSizeIsAskedFor()
    {
        using var pool = new LargeBlockMemoryPool();
        Assert.Equal(LargeBlockMemoryPool.BlockSize, pool.MaxBufferSize);
        foreach (int asked in new[] { -1, 0, 1, 2048, LargeBlockMemoryPool.BlockSize })
        {
            using IMemoryOwner<byte> block = pool.Rent(asked);
            Assert.Equal(LargeBlockMemoryPool.BlockSize, block.Memory.Length);
        }
    }

    [Fact]
    public void AReturnedBlockIsReusedAndADoubleDisposeDoesNotHandItOutTwice()
    {
        using var pool = new LargeBlockMemoryPool();
        IMemoryOwner<byte> first = pool.Rent();
        first.Memory.Span[0] = 42;
        first.Dispose();
        first.Dispose();

        IMemoryOwner<byte> again = pool.Rent();
        IMemoryOwner<byte> other = pool.Rent();
        Assert.Same(first, again);
        Assert.NotSame(again, other);
        Assert.Equal(42, again.Memory.Span[0]);
        Assert.False(again.Memory.Span.Overlaps(other.Memory.Span));
    }

    [Fact]
    public void AskingForMoreThanABlockGetsAnArrayOfThatSizeThatIsNotPooled()
    {
        using var pool = new LargeBlockMemoryPool();
        IMemoryOwner<byte> big = pool.Rent(LargeBlockMemoryPool.BlockSize + 1);
        Assert.Equal(LargeBlockMemoryPool.BlockSize + 1, big.Memory.Length);
        big.Dispose();
        Assert.Equal(LargeBlockMemoryPool.BlockSize, pool.Rent().Memory.Length);
    }

    [Fact]
    public void OnlyTheIdleCapOfReturnedBlocksIsKept()
    {
        using var pool = new LargeBlockMemoryPool();
        var rented = new List<IMemoryOwner<byte>>();
        for (int i = 0; i < LargeBlockMemoryPool.MaxIdleBlocks + 10; i++)
        {
            rented.Add(pool.Rent());
        }

        rented.ForEach(block => block.Dispose());
        var kept = new HashSet<IMemoryOwner<byte>>(rented, ReferenceEqualityComparer.Instance);
        int reused = 0;
        for (int i = 0; i < LargeBlockMemoryPool.MaxIdleBlocks + 10; i++)
        {
            reused += kept.Contains(pool.Rent()) ? 1 : 0;
        }

        Assert.Equal(LargeBlockMemoryPool.MaxIdleBlocks, reused);
    }

    [Fact]
    public void ADisposedPoolRentsNothing()
    {
        var pool = new LargeBlockMemoryPool();
        IMemoryOwner<byte> block = pool.Rent();
        pool.Dispose();
        block.Dispose();
        Assert.Throws<ObjectDisposedException>(() => pool.Rent());
    }
}
