using SharedLog.Broker.Coordinators;
using SharedLog.Protocol;
using SharedLog.Protocol.Records;

namespace SharedLog.IntegrationTests;

/// <summary>The idempotent producer's per-partition sequence state, on its own.</summary>
public class ProducerStateTests
{
    [Fact]
    public async Task AnAppendCancelledBeforeItTookOffsetsIsNotRememberedSoItsRetryIsWritten()
    {
        var producers = new ProducerStateManager.PartitionProducers();

        // The client went away before the append started: the store refused it without assigning offsets.
        SequenceVerdict verdict = producers.CheckAndAppend(7L, (short)0, 0, 4, 0, _ => Task.FromCanceled<long>(new CancellationToken(canceled: true)), out ErrorCode error, out Task<long>? written);
        Assert.Equal((SequenceVerdict.Append, ErrorCode.None), (verdict, error));
        Assert.True(written!.IsCanceled);

        // Its retry is a new append, not a duplicate of something never written.
        verdict = producers.CheckAndAppend(7L, (short)0, 0, 4, 0, _ => Task.FromResult(100L), out error, out written);
        Assert.Equal(SequenceVerdict.Append, verdict);
        Assert.Equal(100, await written!);

        // The same batch once more is a duplicate, answered with the offset it was written at.
        verdict = producers.CheckAndAppend(7L, (short)0, 0, 4, 0, _ => throw new InvalidOperationException("a duplicate must not be appended"), out error, out written);
        Assert.Equal(SequenceVerdict.Duplicate, verdict);
        Assert.Equal(100, await written!);
    }

    [Fact]
    public async Task BatchesReplayedAtTheSameOffsetInDifferentPartitionsAreAnsweredWithDistinctTasks()
    {
        // The task a retry is answered with stands for its batch (the quarantine writer keys on it), so two
        // partitions' batches at offset 0, read back after a restart, must not share one cached task.
        static RecordBatch Written(long producerId) =>
            RecordBatch.Parse(new RecordBatchBuilder(1) { ProducerId = producerId, ProducerEpoch = 0, BaseSequence = 0 }.Add([1], [2], 1).Build());
        var first = new ProducerStateManager.PartitionProducers();
        var second = new ProducerStateManager.PartitionProducers();
        first.Replay(Written(7));
        second.Replay(Written(8));

        Assert.Equal(SequenceVerdict.Duplicate, first.CheckAndAppend(7L, (short)0, 0, 0, 0, _ => throw new InvalidOperationException("a duplicate must not be appended"), out _, out Task<long>? fromFirst));
        Assert.Equal(SequenceVerdict.Duplicate, second.CheckAndAppend(8L, (short)0, 0, 0, 0, _ => throw new InvalidOperationException("a duplicate must not be appended"), out _, out Task<long>? fromSecond));
        Assert.Equal((0L, 0L), (await fromFirst!, await fromSecond!));
        Assert.NotSame(fromFirst, fromSecond);
    }

    [Fact]
    public async Task AProducerReplayedAfterARestartIsNotExpiredForTheOldTimestampsItSent()
    {
        // A mirror or backfill producer writes records stamped two days ago; the broker restarts and replays its batch.
        long twoDaysAgo = DateTimeOffset.UtcNow.AddDays(-2).ToUnixTimeMilliseconds();
        RecordBatch written = RecordBatch.Parse(new RecordBatchBuilder(1) { ProducerId = 9, ProducerEpoch = 0, BaseSequence = 0 }.Add([1], [2], twoDaysAgo).Build());
        var producers = new ProducerStateManager.PartitionProducers();
        producers.Replay(written);

        // The first snapshot round after the load expires producers idle for a day (producer.id.expiration.ms):
        // this one wrote moments before the restart, so it stays, and its retry is still a duplicate.
        Assert.Equal(0, producers.ExpireBefore(DateTimeOffset.UtcNow.AddDays(-1).ToUnixTimeMilliseconds()));
        Assert.Equal(SequenceVerdict.Duplicate, producers.CheckAndAppend(9L, (short)0, 0, 0, 0, _ => throw new InvalidOperationException("a duplicate must not be appended"), out _, out Task<long>? original));
        Assert.Equal(0L, await original!);
    }
}
