using System.Buffers;

namespace SharedLog.Storage.ObjectStore;

/// <summary>
/// The system of record: an S3-compatible bucket, or a local directory in the embedded default.
/// Keys are '/'-separated; writes are whole objects (no append); reads may be ranged.
/// </summary>
public interface IObjectStore
{
    /// <summary>
    /// Stores the object; once this completes it is durable and visible to every reader. The bytes may be
    /// several pieces (an object is written from the cached batches it holds, without joining them first).
    /// </summary>
    Task PutAsync(string key, ReadOnlySequence<byte> data, CancellationToken cancellationToken = default);

    /// <summary>
    /// As <see cref="PutAsync(string, ReadOnlySequence{byte}, CancellationToken)"/>, with the writing spread out as
    /// <paramref name="spread"/> says where a burst of object bytes would hold up other writes to the same disk (a local
    /// directory beside the WAL). A store that writes elsewhere (S3, over the network) takes it as a plain PUT.
    /// </summary>
    Task PutAsync(string key, ReadOnlySequence<byte> data, WriteSpread spread, CancellationToken cancellationToken) => PutAsync(key, data, cancellationToken);

    /// <summary>Reads <paramref name="destination"/>.Length bytes starting at <paramref name="offset"/>; fewer only at the end of the object.</summary>
    Task<int> GetRangeAsync(string key, long offset, Memory<byte> destination, CancellationToken cancellationToken = default);

    /// <summary>
    /// Above 0: a ranged read whose offset, length and destination address are all multiples of this goes
    /// from the disk straight into the destination, past the page cache (a local directory with direct I/O).
    /// A reader that wants that path allocates aligned memory; 0 means the store has no such path.
    /// </summary>
    int DirectReadAlignment => 0;

    /// <summary>Reads the whole object.</summary>
    Task<byte[]> GetAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>Size and time of an object, or null if it does not exist.</summary>
    Task<ObjectInfo?> HeadAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>Every object whose key starts with <paramref name="prefix"/>, in key order.</summary>
    IAsyncEnumerable<ObjectInfo> ListAsync(string prefix, CancellationToken cancellationToken = default);

    /// <summary>Deletes the objects; keys that do not exist are not an error.</summary>
    Task DeleteAsync(IReadOnlyCollection<string> keys, CancellationToken cancellationToken = default);
}

/// <summary>
/// How a PUT may spread its writing: over about <paramref name="Over"/>, until <paramref name="Hurry"/> is cancelled,
/// which asks for the rest at full speed (the PUT goes on; it is not aborted).
/// </summary>
public readonly record struct WriteSpread(TimeSpan Over, CancellationToken Hurry)
{
    /// <summary>No spreading: the object is written at the disk's speed.</summary>
    public static WriteSpread None => default;

    /// <summary>Whether writes should still keep to a schedule.</summary>
    public bool IsPaced => Over > TimeSpan.Zero && !Hurry.IsCancellationRequested;
}

public static class ObjectStoreExtensions
{
    /// <summary>Stores an object held in one piece of memory.</summary>
    public static Task PutAsync(this IObjectStore store, string key, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default) =>
        store.PutAsync(key, new ReadOnlySequence<byte>(data), cancellationToken);
}

public sealed record ObjectInfo(string Key, long Size, DateTimeOffset LastModified);

/// <summary>The object does not exist.</summary>
public sealed class ObjectNotFoundException(string key)
    : Exception($"Object '{key}' does not exist.")
{
    public string Key { get; } = key;
}

/// <summary>The store could not be reached or failed after retries; the caller may try again later.</summary>
public sealed class ObjectStoreUnavailableException(string message, Exception? inner = null)
    : Exception(message, inner);

/// <summary>What a read of stored data may fail with that is the storage's fault, not the request's.</summary>
public static class StorageReadFailure
{
    /// <summary>
    /// Whether <paramref name="exception"/> is a failure of the stored data or of the store under it: the store out of
    /// reach, an object missing, an I/O error, or stored bytes that do not parse. A Kafka broker answers these as a
    /// storage error of the partition (KAFKA_STORAGE_ERROR), not by failing the whole request.
    /// </summary>
    public static bool Is(Exception exception) =>
        exception is ObjectStoreUnavailableException or ObjectNotFoundException or IOException or InvalidDataException;
}
