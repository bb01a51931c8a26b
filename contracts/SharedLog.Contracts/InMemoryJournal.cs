namespace SharedLog.Contracts;

/// <summary>
/// A journal kept in memory: not durable. For unit tests, benchmarks and tools that exercise the
/// registry or the contract store without a broker; the broker always uses an internal topic.
/// </summary>
public sealed class InMemoryJournal : IJournal
{
    private readonly List<JournalEntry> _entries = [];
    private readonly Lock _sync = new();

    public IReadOnlyList<JournalEntry> Entries
    {
        get
        {
            lock (_sync)
            {
                return [.. _entries];
            }
        }
    }

    /// <inheritdoc/>
    public int MaxAppendBytes { get; init; } = int.MaxValue;

    public ValueTask AppendAsync(IReadOnlyList<JournalEntry> entries, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entries);
        long bytes = 0;
        foreach (JournalEntry entry in entries)
        {
            bytes += entry.Key.Length + (entry.Value?.Length ?? 0);
        }

        if (bytes > MaxAppendBytes)
        {
            throw new ArgumentException($"An append of {bytes} bytes exceeds this journal's {MaxAppendBytes}.", nameof(entries));
        }

        lock (_sync)
        {
            _entries.AddRange(entries);
        }

        return ValueTask.CompletedTask;
    }

    public async IAsyncEnumerable<JournalEntry> ReadAllAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        foreach (JournalEntry entry in Entries)
        {
            cancellationToken.ThrowIfCancellationRequested();
            await Task.Yield();
            yield return entry;
        }
    }
}
