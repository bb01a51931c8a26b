namespace SharedLog.Storage.Objects;

/// <summary>
/// Blocks read back from objects, bounded in bytes, least recently used out first. Concurrent readers of
/// the same missing block share one fetch.
/// </summary>
public sealed class BlockCache
{
    private readonly long _capacityBytes;
    private readonly Dictionary<(string Key, long Position), LinkedListNode<Entry>> _entries = [];
    private readonly LinkedList<Entry> _lru = new();
    private readonly Dictionary<(string Key, long Position), Task<ReadOnlyMemory<byte>>> _inFlight = [];
    private readonly Lock _sync = new();
    private long _sizeBytes;

    public BlockCache(long capacityBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(capacityBytes);
        _capacityBytes = capacityBytes;
    }

    public long SizeBytes
    {
        get
        {
            lock (_sync)
            {
                return _sizeBytes;
            }
        }
    }

    public long Hits { get; private set; }

    public long Misses { get; private set; }

    /// <summary>Returns the cached block or fetches it with <paramref name="fetch"/> (one fetch per block at a time).</summary>
    public Task<ReadOnlyMemory<byte>> GetOrFetchAsync(string key, long position, Func<Task<ReadOnlyMemory<byte>>> fetch)
    {
        var id = (key, position);
        Task<ReadOnlyMemory<byte>> task;
        lock (_sync)
        {
            if (_entries.TryGetValue(id, out LinkedListNode<Entry>? node))
            {
                _lru.Remove(node);
                _lru.AddFirst(node);
                Hits++;
                return Task.FromResult(node.Value.Data);
            }

            if (_inFlight.TryGetValue(id, out Task<ReadOnlyMemory<byte>>? pending))
            {
                return pending;
            }

            Misses++;
            task = FetchAndStoreAsync(id, fetch);
            if (!task.IsCompleted)
            {
                _inFlight[id] = task;
            }
        }

        return task;
    }

    private async Task<ReadOnlyMemory<byte>> FetchAndStoreAsync((string Key, long Position) id, Func<Task<ReadOnlyMemory<byte>>> fetch)
    {
        try
        {
            ReadOnlyMemory<byte> data = await fetch().ConfigureAwait(false);
            lock (_sync)
            {
                long held = HeldBytes(data);
                if (held <= _capacityBytes && !_entries.ContainsKey(id))
                {
                    _entries[id] = _lru.AddFirst(new Entry(id, data, held));
                    _sizeBytes += held;
                    while (_sizeBytes > _capacityBytes && _lru.Last is { } oldest)
                    {
                        _lru.RemoveLast();
                        _entries.Remove(oldest.Value.Id);
                        _sizeBytes -= oldest.Value.HeldBytes;
                    }
                }
            }

            return data;
        }
        finally
        {
            lock (_sync)
            {
                _inFlight.Remove(id);
            }
        }
    }

    /// <summary>
    /// Memory a cached block keeps alive: a block read direct is a slice of a larger aligned array, and the
    /// whole array stays until the entry goes, so that is what counts against the capacity.
    /// </summary>
    private static long HeldBytes(ReadOnlyMemory<byte> data) =>
        System.Runtime.InteropServices.MemoryMarshal.TryGetArray(data, out ArraySegment<byte> segment) ? segment.Array!.Length : data.Length;

    private sealed record Entry((string Key, long Position) Id, ReadOnlyMemory<byte> Data, long HeldBytes);
}
