using SharedLog.Storage.ObjectStore;

namespace SharedLog.Storage.Objects;

/// <summary>Reads an object's index and blocks with ranged GETs, never the whole object.</summary>
public static class ObjectReader
{
    /// <summary>Tail bytes fetched on the first read: the footer and, usually, the whole index.</summary>
    private const int TailGuessBytes = 64 * 1024;

    public static async Task<IReadOnlyList<BlockIndexEntry>> ReadIndexAsync(IObjectStore store, string key, long objectSize, CancellationToken cancellationToken = default)
    {
        if (objectSize < ObjectFormat.FooterSize + 4)
        {
            throw new InvalidDataException($"Object {key} of {objectSize} bytes is too small to be a data object.");
        }

        int tailLength = (int)Math.Min(objectSize, TailGuessBytes);
        byte[] tail = new byte[tailLength];
        int read = await store.GetRangeAsync(key, objectSize - tailLength, tail, cancellationToken).ConfigureAwait(false);
        if (read != tailLength)
        {
            throw new InvalidDataException($"Object {key} is shorter than the {objectSize} bytes recorded for it.");
        }

        ObjectFooter footer = ObjectFormat.ReadFooter(tail.AsSpan(tailLength - ObjectFormat.FooterSize), objectSize);
        long tailStart = objectSize - tailLength;
        if (footer.IndexPosition >= tailStart)
        {
            return ObjectFormat.ReadIndex(tail.AsSpan((int)(footer.IndexPosition - tailStart), footer.IndexLength), footer);
        }

        byte[] index = new byte[footer.IndexLength];
        read = await store.GetRangeAsync(key, footer.IndexPosition, index, cancellationToken).ConfigureAwait(false);
        if (read != index.Length)
        {
            throw new InvalidDataException($"Object {key}: index read came back short.");
        }

        return ObjectFormat.ReadIndex(index, footer);
    }

    public static Task<ReadOnlyMemory<byte>> ReadBlockAsync(IObjectStore store, string key, BlockIndexEntry block, CancellationToken cancellationToken = default) =>
        ReadRangeAsync(store, key, block.Position, block.Size, cached: true, cancellationToken);

    /// <summary>
    /// Reads <paramref name="length"/> bytes at <paramref name="position"/>: one block, or several blocks that
    /// lie next to each other in the object (the compactor copies a stream's run of blocks with one GET).
    /// <paramref name="cached"/> says the bytes will be kept in the block cache for readers catching up.
    /// </summary>
    public static async Task<ReadOnlyMemory<byte>> ReadRangeAsync(IObjectStore store, string key, long position, int length, bool cached = false, CancellationToken cancellationToken = default)
    {
        int alignment = store.DirectReadAlignment;
        if (alignment <= 0 || length <= 0)
        {
            // Filled by the read or refused below: no need to zero it first. A block kept in the block cache while
            // readers catch up is placed as stored batches are, out of the generations collections copy; a short-lived
            // read (the compactor's) stays ordinary young garbage.
            byte[] data = cached ? SharedLog.Protocol.Records.RecordBatch.AllocateForStorage(length) : GC.AllocateUninitializedArray<byte>(length);
            int read = await store.GetRangeAsync(key, position, data, cancellationToken).ConfigureAwait(false);
            return read == length ? data : throw ShortRead(key, position, read, length);
        }

        // The aligned range around the wanted bytes, read into an aligned window of a pinned array (so the store
        // can read it direct); the caller gets the wanted bytes as a slice. The array is ordinary GC memory.
        long alignedStart = position / alignment * alignment;
        int lead = (int)(position - alignedStart);
        int windowLength = checked((int)((lead + (long)length + alignment - 1) / alignment * alignment));
        byte[] buffer = GC.AllocateUninitializedArray<byte>(windowLength + alignment, pinned: true);
        Memory<byte> window = buffer.AsMemory(AlignedStartIn(buffer, alignment), windowLength);
        int got = await store.GetRangeAsync(key, alignedStart, window, cancellationToken).ConfigureAwait(false);
        return got >= lead + length ? window.Slice(lead, length) : throw ShortRead(key, position, Math.Max(got - lead, 0), length);
    }

    /// <summary>The index in a pinned array where an address that is a multiple of <paramref name="alignment"/> starts.</summary>
    private static unsafe int AlignedStartIn(byte[] pinned, int alignment)
    {
        fixed (byte* start = pinned)
        {
            long address = (long)start;
            return (int)((alignment - (address % alignment)) % alignment);
        }
    }

    private static InvalidDataException ShortRead(string key, long position, int read, int length) =>
        new($"Object {key}: bytes at {position} came back with {read} of {length} bytes.");
}
