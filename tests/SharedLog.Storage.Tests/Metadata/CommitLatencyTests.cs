using System.Diagnostics;
using SharedLog.Storage.Metadata;
using Xunit.Abstractions;

namespace SharedLog.Storage.Tests.Metadata;

/// <summary>
/// Measures CommitObjectAsync (one range, one stream, durable commit) on this machine and prints
/// p50/p99/max. Asserts only correctness: the numbers depend on the disk's fsync time.
/// </summary>
public sealed class CommitLatencyTests(ITestOutputHelper output) : MetadataStoreTestBase
{
    private const int Commits = 2_000;

    [Fact]
    public async Task SequentialCommitLatency()
    {
        PartitionMetadata partition = await CreateLedPartitionAsync("latency");
        var latencies = new double[Commits];
        var total = Stopwatch.StartNew();
        for (int i = 0; i < Commits; i++)
        {
            PreparedObject prepared = await Store.PrepareObjectAsync("data/");
            ObjectCommit commit = Commit(prepared.ObjectId, Range(partition.StreamId, partition.LeaderEpoch, i * 10L, (i + 1) * 10L));
            long started = Stopwatch.GetTimestamp();
            await Store.CommitObjectAsync(commit);
            latencies[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        }

        total.Stop();
        Array.Sort(latencies);
        output.WriteLine(
            $"CommitObjectAsync x{Commits} (one range, synchronous=FULL, WAL): p50 {Percentile(latencies, 0.50):F3} ms, p99 {Percentile(latencies, 0.99):F3} ms, " +
            $"max {latencies[^1]:F3} ms; prepare+commit loop {total.Elapsed.TotalSeconds:F2} s");

        Assert.Equal(Commits * 10L, await Store.GetCommittedEndOffsetAsync(partition.StreamId));
        Assert.Equal(Commits, (await Store.GetObjectRangesAsync(partition.StreamId, 0)).Count);
    }

    private static double Percentile(double[] sorted, double quantile) =>
        sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(quantile * sorted.Length) - 1)];
}
