using System.Runtime.CompilerServices;
using SharedLog.Contracts;
using SharedLog.Contracts.Registry;
using SharedLog.Protocol.Records;
using SharedLog.Storage.Streams;

namespace SharedLog.Broker.Cluster;

/// <summary>
/// A journal on partition 0 of an internal topic (<c>_schemas</c>, <c>_contracts</c>,
/// <c>_contract_audit</c>), written and read through the same stream store as every other topic, so
/// the state lives in the WAL and the shared object store. The topic is created on the first append.
/// </summary>
public sealed class InternalTopicJournal(TopicService topics, StreamStore streams, string topicName, IReadOnlyDictionary<string, string> topicConfigs) : IJournal
{
    private const int ReadChunkBytes = 4 * 1024 * 1024;

    /// <summary>Configs of topics that hold current state keyed by record key (registry, contracts).</summary>
    public static readonly IReadOnlyDictionary<string, string> CompactedForever = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["cleanup.policy"] = "compact",
        ["retention.ms"] = "-1",
    };

    public string TopicName => topicName;

    /// <summary>What one WAL entry holds, less the batch header and a margin for each record's own framing.</summary>
    public int MaxAppendBytes => streams.MaxBatchBytes - RecordBatch.HeaderSize - 256;

    public async ValueTask AppendAsync(IReadOnlyList<JournalEntry> entries, CancellationToken cancellationToken)
    {
        StreamLog stream = await OpenAsync(cancellationToken);
        long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var builder = new RecordBatchBuilder(now);
        foreach (JournalEntry entry in entries)
        {
            builder.Add(entry.Key, entry.Value, now);
        }

        // Once handed to the WAL the write completes even if the caller goes away: the registry
        // applies the change to memory only after this returns.
        await streams.AppendAsync(stream.StreamId, builder.Build(), CancellationToken.None).AsTask().WaitAsync(cancellationToken);
    }

    public async IAsyncEnumerable<JournalEntry> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken)
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
                foreach (JournalEntry entry in Entries(batch, offset))
                {
                    yield return entry;
                }

                offset = Math.Max(offset, batch.NextOffset);
            }
        }
    }

    private static List<JournalEntry> Entries(RecordBatch batch, long fromOffset)
    {
        var entries = new List<JournalEntry>(batch.RecordCount);
        if (batch.IsControl)
        {
            return entries;
        }

        foreach (Record record in batch.Records())
        {
            if (record.Offset >= fromOffset && !record.KeyIsNull)
            {
                entries.Add(new JournalEntry(record.Key.ToArray(), record.ValueIsNull ? null : record.Value.ToArray()));
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

        (_, Protocol.ErrorCode error, string? message) = await topics.CreateAsync(TopicName, 1, topicConfigs, validateOnly: false, cancellationToken, brokerInternal: true);
        if (error is not Protocol.ErrorCode.None and not Protocol.ErrorCode.TopicAlreadyExists)
        {
            throw new InvalidOperationException($"Cannot create the internal topic {TopicName}: {error} {message}");
        }

        return topics.FindStream(TopicName, 0) ?? throw new InvalidOperationException($"The internal topic {TopicName} is not served by this broker.");
    }
}
