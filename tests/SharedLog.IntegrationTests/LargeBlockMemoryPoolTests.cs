using System.Buffers;
using System.Runtime.InteropServices;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using SharedLog.Broker.Network;

namespace SharedLog.IntegrationTests;

/// <summary>The 64 KiB block pool the broker's socket transport reads into and writes from.</summary>
public class LargeBlockMemoryPoolTests
{
    private static byte[] ArrayOf(IMemoryOwner<byte> owner) =>
        MemoryMarshal.TryGetArray(owner.Memory, out ArraySegment<byte> segment) ? segment.Array! : throw new InvalidOperationException("not an array");

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
    public void AReturnedBlockIsReusedAndItsOldLeaseCannotReturnItAgain()
    {
        using var pool = new LargeBlockMemoryPool();
        IMemoryOwner<byte> first = pool.Rent();
        byte[] block = ArrayOf(first);
        first.Dispose();
        Assert.Throws<ObjectDisposedException>(() => first.Memory);

        IMemoryOwner<byte> again = pool.Rent();
        Assert.Same(block, ArrayOf(again));

        // A late second dispose of the first lease must not put the block back while `again` holds it.
        first.Dispose();
        IMemoryOwner<byte> other = pool.Rent();
        Assert.NotSame(block, ArrayOf(other));
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
    public void ThePoolsOfOneFactoryShareOneCapOfIdleBlocks()
    {
        var factory = new LargeBlockMemoryPoolFactory();
        using MemoryPool<byte> first = factory.Create();
        using MemoryPool<byte> second = factory.Create();
        var rented = new List<IMemoryOwner<byte>>();
        for (int i = 0; i < LargeBlockMemoryPool.MaxIdleBlocks; i++)
        {
            rented.Add(first.Rent());
            rented.Add(second.Rent());
        }

        var arrays = new HashSet<byte[]>(rented.Select(ArrayOf), ReferenceEqualityComparer.Instance);
        rented.ForEach(lease => lease.Dispose());

        // Whichever pool rents next, it gets the blocks either pool returned, and only the cap's worth was kept.
        int reused = 0;
        for (int i = 0; i < LargeBlockMemoryPool.MaxIdleBlocks + 10; i++)
        {
            reused += arrays.Contains(ArrayOf(second.Rent())) ? 1 : 0;
        }

        Assert.Equal(LargeBlockMemoryPool.MaxIdleBlocks, reused);
    }

    [Fact]
    public void ConcurrentRentsNeverHandOneBlockToTwoHolders()
    {
        using var pool = new LargeBlockMemoryPool();
        var held = new System.Collections.Concurrent.ConcurrentDictionary<byte[], int>(ReferenceEqualityComparer.Instance);
        int doubles = 0;
        Parallel.For(0, 4, _ =>
        {
            for (int i = 0; i < 20_000; i++)
            {
                IMemoryOwner<byte> lease = pool.Rent();
                byte[] block = ArrayOf(lease);
                if (!held.TryAdd(block, 0))
                {
                    Interlocked.Increment(ref doubles);
                }

                held.TryRemove(block, out int _);
                lease.Dispose();
                lease.Dispose();
            }
        });
        Assert.Equal(0, doubles);
    }

    [Fact]
    public void ADisposedPoolRentsNothingAndItsLeasesStillReturn()
    {
        var pool = new LargeBlockMemoryPool();
        IMemoryOwner<byte> block = pool.Rent();
        pool.Dispose();
        block.Dispose();
        Assert.Throws<ObjectDisposedException>(() => pool.Rent());
    }

    [Fact]
    public async Task TheBrokersSocketTransportGetsItsPoolsFromTheLargeBlockFactory()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        var factory = Assert.IsType<LargeBlockMemoryPoolFactory>(broker.Host.Services.GetRequiredService<IMemoryPoolFactory<byte>>());
        Assert.True(factory.PoolsCreated > 0, "Kestrel made no pool with the broker's factory");
    }
}
