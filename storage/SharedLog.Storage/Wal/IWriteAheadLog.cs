namespace SharedLog.Storage.Wal;

/// <summary>
/// The broker's write-ahead log: every produced batch is appended here and acknowledged once durable.
/// One log per broker holds the entries of all its partitions (streams); entries stay until their data
/// has been uploaded to the object store and the log is trimmed past them.
/// </summary>
public interface IWriteAheadLog : IAsyncDisposable
{
    /// <summary>
    /// Appends one batch of a stream. The task completes when the entry is durable (fsynced with its
    /// group commit) and yields the entry's position in the log.
    /// </summary>
    ValueTask<long> AppendAsync(long streamId, long baseOffset, int recordCount, ReadOnlyMemory<byte> batch, CancellationToken cancellationToken = default);

    /// <summary>Every durable entry after the trim point, in log order (used once, at start).</summary>
    IEnumerable<WalEntry> ReadDurableEntries();

    /// <summary>Discards every entry before <paramref name="position"/> (their data is in the object store).</summary>
    ValueTask TrimAsync(long position, CancellationToken cancellationToken = default);

    /// <summary>Position of the first entry kept.</summary>
    long TrimPosition { get; }

    /// <summary>Position after the last durable entry.</summary>
    long DurablePosition { get; }

    /// <summary>The largest batch one entry can carry; a larger one is refused by <see cref="AppendAsync"/>.</summary>
    int MaxEntryBytes { get; }

    /// <summary>Why the log takes no more appends (a device or commit-point write failed), or null while it works.</summary>
    Exception? Failure { get; }
}

/// <summary>One recovered entry: its position, the position after it, and the batch it carries.</summary>
public readonly record struct WalEntry(long Position, long NextPosition, long StreamId, long BaseOffset, int RecordCount, ReadOnlyMemory<byte> Batch);

/// <summary>The log could not make an entry durable (device failure, full disk, or closed).</summary>
public sealed class WalUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
