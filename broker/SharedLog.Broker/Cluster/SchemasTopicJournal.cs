using System.Runtime.CompilerServices;
using SharedLog.Contracts.Registry;
using SharedLog.Protocol.Records;
using SharedLog.Storage.Streams;

namespace SharedLog.Broker.Cluster;

/// <summary>
/// The schema registry's journal: partition 0 of the compacted internal topic <c>_schemas</c>,
/// written and read through the same stream store as every other topic, so registry state lives
/// in the WAL and the shared object store and survives the loss of the broker's disk.
/// </summary>
public sealed class SchemasTopicJournal(TopicService topics, StreamStore streams) : IRegistryJournal
{
    public const string TopicName = "_schemas";
    private const int ReadChunkBytes = 4 * 1024 * 1024;

    private static readonly Dictionary<string, string> SchemasTopicConfigs = new(StringComparer.Ordinal)
    {
        ["cleanup.policy"] = "compact",
        ["retention.ms"] = "-1",
    };

    public async ValueTask AppendAsync(IReadOnlyList<RegistryJournalEntry> entries, CancellationToken cancellationToken)
    {
        StreamLog stream = await OpenAsync(cancellationToken);
        long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var builder = new RecordBatchBuilder(now);
        foreach (RegistryJournalEntry entry in entries)
        {
            builder.Add(entry.Key, entry.Value, now);
        }

        // Once handed to the WAL the write completes even if the caller goes away: the registry
        // applies the change to memory only after this returns.
        await streams.AppendAsync(stream.StreamId, builder.Build(), CancellationToken.None).AsTask().WaitAsync(cancellationToken);
    }

    public async IAsyncEnumerable<RegistryJournalEntry> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // Reading never creates the topic: a broker whose registry was never written has no _schemas.
        if (topics.FindStream(TopicName, 0) is not { } stream)
        {
            yield break;
        }

        long offset = stream.LogStartOffset;
        long end = stream.HighWatermark;
        while (offset < end)
        {
            StreamReadResult read = await streams.ReadAsync(stream.StreamId, offset, ReadChunkBytes, cancellationToken);
            if (read.Batches.Count == 0)
            {
                break;
            }

            foreach (ReadOnlyMemory<byte> bytes in read.Batches)
            {
                RecordBatch batch = RecordBatch.Parse(bytes);
                foreach (RegistryJournalEntry entry in Entries(batch, offset))
                {
                    yield return entry;
                }

                offset = Math.Max(offset, batch.NextOffset);
            }
        }
    }

    private static List<RegistryJournalEntry> Entries(RecordBatch batch, long fromOffset)
    {
        var entries = new List<RegistryJournalEntry>(batch.RecordCount);
        if (batch.IsControl)
        {
            return entries;
        }

        foreach (Record record in batch.Records())
        {
            if (record.Offset >= fromOffset && !record.KeyIsNull)
            {
                entries.Add(new RegistryJournalEntry(record.Key.ToArray(), record.ValueIsNull ? null : record.Value.ToArray()));
            }
        }

        return entries;
    }

    private async Task<StreamLog> OpenAsync(CancellationToken cancellationToken)
    {
        if (topics.FindStream(TopicName, 0) is { } stream)
        {
            return stream;
        }

        (_, Protocol.ErrorCode error, string? message) = await topics.CreateAsync(TopicName, 1, SchemasTopicConfigs, validateOnly: false, cancellationToken);
        if (error is not Protocol.ErrorCode.None and not Protocol.ErrorCode.TopicAlreadyExists)
        {
            throw new InvalidOperationException($"Cannot create the registry topic {TopicName}: {error} {message}");
        }

        return topics.FindStream(TopicName, 0) ?? throw new InvalidOperationException($"The registry topic {TopicName} is not served by this broker.");
    }
}
