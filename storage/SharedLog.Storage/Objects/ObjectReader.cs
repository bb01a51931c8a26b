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

    public static Task<byte[]> ReadBlockAsync(IObjectStore store, string key, BlockIndexEntry block, CancellationToken cancellationToken = default) =>
        ReadRangeAsync(store, key, block.Position, block.Size, cancellationToken);

    /// <summary>
    /// Reads <paramref name="length"/> bytes at <paramref name="position"/>: one block, or several blocks that
    /// lie next to each other in the object (the compactor copies a stream's run of blocks with one GET).
    /// </summary>
    public static async Task<byte[]> ReadRangeAsync(IObjectStore store, string key, long position, int length, CancellationToken cancellationToken = default)
    {
        // Filled by the read or refused below: no need to zero it first.
        byte[] data = GC.AllocateUninitializedArray<byte>(length);
        int read = await store.GetRangeAsync(key, position, data, cancellationToken).ConfigureAwait(false);
        if (read != length)
        {
            throw new InvalidDataException($"Object {key}: bytes at {position} came back with {read} of {length} bytes.");
        }

        return data;
    }
}
