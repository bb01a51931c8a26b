using System.Buffers;
using System.Collections.Concurrent;
using Microsoft.AspNetCore.Connections;

namespace SharedLog.Broker.Network;

/// <summary>
/// Gives Kestrel's socket transport <see cref="LargeBlockMemoryPool"/>s instead of its 4 KiB blocks. The transport
/// receives into one pool block per read, so with 4 KiB blocks a 1 MiB produce request took 256 reads (and as many
/// wake-ups of the connection's frame loop, and as many zero-byte waits for data); with 64 KiB blocks it takes 16.
/// </summary>
public sealed class LargeBlockMemoryPoolFactory : IMemoryPoolFactory<byte>
{
    public MemoryPool<byte> Create(MemoryPoolOptions? options = null) => new LargeBlockMemoryPool();
}

/// <summary>
/// A pool of 64 KiB blocks. Blocks come back when the pipe that rented them is done with them; at most
/// <see cref="MaxIdleBlocks"/> idle ones are kept, so a burst of connections (or one 50 MiB fetch response) does not
/// leave its memory behind. The blocks are ordinary arrays, not pinned: sockets on Linux pin a buffer only for the
/// system call, and pinned arrays live on the pinned object heap, which only a full collection frees, so the blocks
/// of a large response beyond the idle cap would pile up there. A request for more than a block gets a one-off array.
/// </summary>
public sealed class LargeBlockMemoryPool : MemoryPool<byte>
{
    public const int BlockSize = 64 * 1024;

    /// <summary>Idle blocks kept for reuse (16 MiB).</summary>
    public const int MaxIdleBlocks = 256;

    private readonly ConcurrentQueue<Block> _idle = new();
    private int _idleCount;
    private volatile bool _disposed;

    public override int MaxBufferSize => BlockSize;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (minBufferSize > BlockSize)
        {
            return new OneOff(minBufferSize);
        }

        if (_idle.TryDequeue(out Block? block))
        {
            Interlocked.Decrement(ref _idleCount);
            block.Lease();
            return block;
        }

        var fresh = new Block(this);
        fresh.Lease();
        return fresh;
    }

    protected override void Dispose(bool disposing)
    {
        _disposed = true;
        _idle.Clear();
    }

    private void Return(Block block)
    {
        // Blocks of a disposed pool, or beyond the idle cap, are left to the GC.
        if (_disposed || Interlocked.Increment(ref _idleCount) > MaxIdleBlocks)
        {
            if (!_disposed)
            {
                Interlocked.Decrement(ref _idleCount);
            }

            return;
        }

        _idle.Enqueue(block);
    }

    /// <summary>A pooled block; it owns its array for life and goes back to the pool when disposed.</summary>
    private sealed class Block(LargeBlockMemoryPool pool) : IMemoryOwner<byte>
    {
        private readonly byte[] _array = GC.AllocateUninitializedArray<byte>(BlockSize);
        private int _leased;

        public Memory<byte> Memory => _array;

        public void Lease() => Volatile.Write(ref _leased, 1);

        public void Dispose()
        {
            // Only the lease holder's first dispose returns the block: a second would hand it out twice.
            if (Interlocked.Exchange(ref _leased, 0) == 1)
            {
                pool.Return(this);
            }
        }
    }

    private sealed class OneOff(int size) : IMemoryOwner<byte>
    {
        public Memory<byte> Memory { get; } = new byte[size];

        public void Dispose()
        {
        }
    }
}
