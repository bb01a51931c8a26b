using SharedLog.Broker.Coordinators;
using SharedLog.Protocol;

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
}
