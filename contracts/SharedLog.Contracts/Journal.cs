namespace SharedLog.Contracts;

/// <summary>One record of a journal: a JSON key and a JSON value (null = tombstone).</summary>
public readonly record struct JournalEntry(byte[] Key, byte[]? Value);

/// <summary>
/// Durable, ordered storage for the contracts layer's own state (registry, contracts, audit). The
/// broker implements it with an internal topic of its own storage, so the state lives in the WAL and
/// the shared object store and is rebuilt by replay.
/// </summary>
public interface IJournal
{
    /// <summary>Appends the entries atomically (one record batch) and completes once they are durable.</summary>
    ValueTask AppendAsync(IReadOnlyList<JournalEntry> entries, CancellationToken cancellationToken);

    /// <summary>Most bytes of keys and values one append takes (its batch's framing aside): a larger append fails.</summary>
    int MaxAppendBytes => int.MaxValue;

    /// <summary>Every record from the start, in order.</summary>
    IAsyncEnumerable<JournalEntry> ReadAllAsync(CancellationToken cancellationToken);
}
