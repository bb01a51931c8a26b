using SharedLog.Protocol.Records;
using SharedLog.Storage.Streams;

namespace SharedLog.Storage.Tests.Streams;

/// <summary>
/// A partition's in-memory tail: which cached batches are durable and which a fetch gets. Both are found
/// by offset in the ordered cache rather than by visiting every batch, so these cases pin the boundaries.
/// </summary>
public sealed class StreamLogTests
{
    private static byte[] Batch(int records)
    {
        var builder = new RecordBatchBuilder(1_000);
        for (int i = 0; i < records; i++)
        {
            builder.Add([(byte)i], new byte[16], 1_000 + i);
        }

        return builder.Build();
    }

    /// <summary>A log starting at offset 100 with batches of 1, 2, 3, ... records (so batch i starts at 100 + i(i+1)/2).</summary>
    private static (StreamLog Log, List<CachedBatch> Batches) LogWithBatches(int count)
    {
        var log = new StreamLog(streamId: 7, leaderEpoch: 1, logStartOffset: 100, committedEndOffset: 100);
        var batches = new List<CachedBatch>();
        lock (log.Sync)
        {
            for (int i = 1; i <= count; i++)
            {
                byte[] data = Batch(i);
                batches.Add(log.Reserve(data, i, 1_000, 1_000 + i - 1));
            }
        }

        return (log, batches);
    }

    [Fact]
    public void MarkingABatchDurableMarksEveryEarlierOneAndMovesTheHighWatermarkOnlyForward()
    {
        (StreamLog log, List<CachedBatch> batches) = LogWithBatches(40);
        Assert.Equal(100, log.HighWatermark);

        log.MarkDurable(batches[9]);
        Assert.Equal(batches[9].EndOffset, log.HighWatermark);
        Assert.All(batches.Take(10), b => Assert.True(b.Durable));
        Assert.All(batches.Skip(10), b => Assert.False(b.Durable));

        // A commit that completes late for an earlier batch changes nothing but that batch.
        log.MarkDurable(batches[3]);
        Assert.Equal(batches[9].EndOffset, log.HighWatermark);

        log.MarkDurable(batches[25]);
        Assert.Equal(batches[25].EndOffset, log.HighWatermark);
        Assert.All(batches.Take(26), b => Assert.True(b.Durable));
        Assert.All(batches.Skip(26), b => Assert.False(b.Durable));

        log.MarkDurable(batches[^1]);
        Assert.Equal(log.NextOffset, log.HighWatermark);
        Assert.All(batches, b => Assert.True(b.Durable));
    }

    [Fact]
    public void ACachedReadStartsAtTheBatchHoldingTheOffsetAndStopsAtTheHighWatermarkAndTheByteLimit()
    {
        (StreamLog log, List<CachedBatch> batches) = LogWithBatches(30);
        log.MarkDurable(batches[19]);
        var read = new List<ReadOnlyMemory<byte>>();

        Assert.False(log.TryReadCached(99, log.HighWatermark, int.MaxValue, true, read));

        for (int b = 0; b < batches.Count; b++)
        {
            foreach (long offset in new[] { batches[b].BaseOffset, batches[b].EndOffset - 1 })
            {
                read.Clear();
                Assert.True(log.TryReadCached(offset, log.HighWatermark, int.MaxValue, true, read));
                int expected = Math.Max(0, 20 - b);
                Assert.Equal(expected, read.Count);
                if (expected > 0)
                {
                    Assert.True(read[0].Span.SequenceEqual(batches[b].Data), $"read at {offset} did not start with batch {b}");
                    Assert.True(read[^1].Span.SequenceEqual(batches[19].Data));
                }
            }
        }

        // The first batch comes whole however small the limit; then only what fits.
        read.Clear();
        Assert.True(log.TryReadCached(batches[5].BaseOffset, log.HighWatermark, 1, true, read));
        Assert.Single(read);
        read.Clear();
        int twoAndAHalf = batches[5].Data.Length + batches[6].Data.Length + (batches[7].Data.Length / 2);
        Assert.True(log.TryReadCached(batches[5].BaseOffset, log.HighWatermark, twoAndAHalf, true, read));
        Assert.Equal(2, read.Count);

        // Without the first batch's allowance (the partitions after the first with data in a fetch), only what fits.
        read.Clear();
        Assert.True(log.TryReadCached(batches[5].BaseOffset, log.HighWatermark, batches[5].Data.Length - 1, false, read));
        Assert.Empty(read);
        read.Clear();
        Assert.True(log.TryReadCached(batches[5].BaseOffset, log.HighWatermark, twoAndAHalf, false, read));
        Assert.Equal(2, read.Count);

        // Past the tail: the cache covers it, with nothing to return.
        read.Clear();
        Assert.True(log.TryReadCached(log.NextOffset, log.HighWatermark, int.MaxValue, true, read));
        Assert.Empty(read);

        // A read stops at the high watermark it reports, taken before it, though more became durable since.
        long reported = batches[9].EndOffset;
        read.Clear();
        Assert.True(log.TryReadCached(batches[5].BaseOffset, reported, int.MaxValue, true, read));
        Assert.Equal(5, read.Count);
        Assert.True(read[^1].Span.SequenceEqual(batches[9].Data));
    }

    [Fact]
    public void TheFirstBatchNotInAnObjectIsTheOneAfterTheUploadedEndOffset()
    {
        (StreamLog log, List<CachedBatch> batches) = LogWithBatches(25);
        lock (log.Sync)
        {
            Assert.Equal(0, log.FirstNotUploaded());
            for (int uploaded = 1; uploaded <= batches.Count; uploaded++)
            {
                // What an upload of the first `uploaded` batches leaves behind.
                batches[uploaded - 1].Uploaded = true;
                log.UploadedEndOffset = batches[uploaded - 1].EndOffset;
                int first = log.FirstNotUploaded();
                Assert.Equal(uploaded, first);
                Assert.All(log.Batches.Take(first), b => Assert.True(b.Uploaded));
                Assert.All(log.Batches.Skip(first), b => Assert.False(b.Uploaded));
            }
        }

        // A log reopened over committed data caches only what follows it.
        var reopened = new StreamLog(streamId: 8, leaderEpoch: 1, logStartOffset: 0, committedEndOffset: 500);
        lock (reopened.Sync)
        {
            reopened.Reserve(Batch(3), 3, 1_000, 1_002);
            Assert.Equal(0, reopened.FirstNotUploaded());
        }
    }
}
