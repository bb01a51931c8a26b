using System.Buffers;
using System.Collections.Concurrent;
using Microsoft.AspNetCore.Connections;

namespace SharedLog.Broker.Network;

/// <summary>
/// Gives Kestrel's socket transport <see cref="LargeBlockMemoryPool"/>s instead of its 4 KiB blocks. The transport
/// receives into one pool block per read, so with 4 KiB blocks a 1 MiB produce request took 256 reads (and as many
/// wake-ups of the connection's frame loop, and as many zero-byte waits for data); with 64 KiB blocks it takes 16.
/// Kestrel creates a pool per I/O queue and listener; they all share this factory's idle blocks, so the broker keeps
/// at most <see cref="LargeBlockMemoryPool.MaxIdleBlocks"/> of them (16 MiB) however many pools there are.
/// </summary>
public sealed class LargeBlockMemoryPoolFactory : IMemoryPoolFactory<byte>
{
    private readonly LargeBlockMemoryPool.IdleBlocks _idle = new();
    private int _created;

    /// <summary>Pools made so far (Kestrel makes them as its listeners start): shows the transport took this factory.</summary>
    public int PoolsCreated => Volatile.Read(ref _created);

    public MemoryPool<byte> Create(MemoryPoolOptions? options = null)
    {
        Interlocked.Increment(ref _created);
        return new LargeBlockMemoryPool(_idle);
    }
}

/// <summary>
/// A pool of 64 KiB blocks. A block comes back when the pipe that rented it disposes its lease; idle blocks beyond
/// <see cref="MaxIdleBlocks"/> are left to the GC, so a burst of connections (or one 50 MiB fetch response) does not
/// leave its memory behind. The blocks are ordinary arrays, not pinned: sockets on Linux pin a buffer only for the
/// system call, and pinned arrays live on the pinned object heap, which only a full collection frees, so the blocks
/// of a large response beyond the idle cap would pile up there. A request for more than a block gets a one-off array.
/// </summary>
public sealed class LargeBlockMemoryPool(LargeBlockMemoryPool.IdleBlocks idle) : MemoryPool<byte>
{
    public const int BlockSize = 64 * 1024;

    /// <summary>Idle blocks kept for reuse, across the pools sharing one <see cref="IdleBlocks"/> (16 MiB).</summary>
    public const int MaxIdleBlocks = 256;

    private volatile bool _disposed;

    /// <summary>A pool with idle blocks of its own.</summary>
    public LargeBlockMemoryPool()
        : this(new IdleBlocks())
    {
    }

    public override int MaxBufferSize => BlockSize;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (minBufferSize > BlockSize)
        {
            return new Lease(new byte[minBufferSize], null);
        }

        return new Lease(idle.Take() ?? GC.AllocateUninitializedArray<byte>(BlockSize), idle);
    }

    /// <summary>A disposed pool rents no more; the idle blocks it shares stay for the other pools.</summary>
    protected override void Dispose(bool disposing) => _disposed = true;

    /// <summary>Idle blocks, shared by the pools of one factory, at most <see cref="MaxIdleBlocks"/>.</summary>
    public sealed class IdleBlocks
    {
        private readonly ConcurrentQueue<byte[]> _blocks = new();
        private int _count;

        public byte[]? Take()
        {
            if (!_blocks.TryDequeue(out byte[]? block))
            {
                return null;
            }

            Interlocked.Decrement(ref _count);
            return block;
        }

        public void Return(byte[] block)
        {
            // Counted before it is queued, so the count never runs behind the queue and the cap holds.
            if (Interlocked.Increment(ref _count) > MaxIdleBlocks)
            {
                Interlocked.Decrement(ref _count);
                return;
            }

            _blocks.Enqueue(block);
        }
    }

    /// <summary>
    /// One rent of a block. Its first dispose returns the block; a later one does nothing, even once the block is
    /// rented again, because the lease, not the block, remembers that it was returned.
    /// </summary>
    private sealed class Lease(byte[] block, IdleBlocks? home) : IMemoryOwner<byte>
    {
        private byte[]? _block = block;

        public Memory<byte> Memory => _block ?? throw new ObjectDisposedException(nameof(LargeBlockMemoryPool), "This block went back to its pool.");

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _block, null) is { } returned && home is not null)
            {
                home.Return(returned);
            }
        }
    }
}
