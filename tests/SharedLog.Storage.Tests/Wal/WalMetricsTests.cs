using SharedLog.Storage.FaultHost;
using SharedLog.Storage.Wal;

namespace SharedLog.Storage.Tests.Wal;

/// <summary>The WAL's instruments are process-wide: these tests run alone, so only their own WAL writes are measured.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class WalMetricsCollection
{
    public const string Name = "WAL metrics";
}

[Collection(WalMetricsCollection.Name)]
public sealed class WalMetricsTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sharedlog-walmetrics-" + Guid.NewGuid().ToString("N"));

    // A commit point with every commit, so each commit makes one write of each kind.
    private WalOptions Options() => new() { Directory = _directory, PageSizeBits = 20, MemorySizeBits = 22, SegmentSizeBits = 22, CommitPointInterval = TimeSpan.Zero };

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public async Task EachCommitRecordsItsDeviceWritesByKind()
    {
        var writes = new System.Collections.Concurrent.ConcurrentQueue<(string Kind, double Milliseconds)>();
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == StorageMetrics.MeterName && instrument.Name == "sharedlog.wal.write.duration")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<double>((_, value, tags, _) =>
        {
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                if (tag.Key == "kind")
                {
                    writes.Enqueue(((string)tag.Value!, value));
                }
            }
        });
        listener.Start();

        await using var wal = new FasterWriteAheadLog(Options());
        for (int i = 0; i < 5; i++)
        {
            await wal.AppendAsync(1, i, 1, WalTestPayload.Create(1, i, 100));
        }

        // Every append was acknowledged before the next was made, so each waited for a commit point of its own; this
        // collection runs alone, so no other test's WAL adds to the count.
        Assert.True(writes.Count(w => w.Kind == "commit_point" && w.Milliseconds > 0) >= 5, $"{writes.Count(w => w.Kind == "commit_point")} commit points timed");
        Assert.All(writes, w => Assert.True(w.Kind is "log" or "commit_point", $"unexpected kind {w.Kind}"));
        if (wal.UsesDirectIo)
        {
            // The log pages go through the direct-I/O device, which times each write.
            Assert.Contains(writes, w => w.Kind == "log" && w.Milliseconds > 0);
        }
    }
}
