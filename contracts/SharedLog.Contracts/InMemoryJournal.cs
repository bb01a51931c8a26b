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

    public ValueTask AppendAsync(IReadOnlyList<JournalEntry> entries, CancellationToken cancellationToken)
    {
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
