using SharedLog.Storage.FaultHost;
using SharedLog.Storage.Wal;

namespace SharedLog.Storage.Tests.Wal;

public sealed class WalTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sharedlog-wal-" + Guid.NewGuid().ToString("N"));

    private WalOptions Options() => new() { Directory = _directory, PageSizeBits = 20, MemorySizeBits = 22, SegmentSizeBits = 22 };

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public async Task AppendsAreRecoveredInOrderAfterReopen()
    {
        var positions = new List<long>();
        await using (var wal = new FasterWriteAheadLog(Options()))
        {
            for (int i = 0; i < 200; i++)
            {
                positions.Add(await wal.AppendAsync(i % 3, i, 1, WalTestPayload.Create(i % 3, i, 100 + i)));
            }

            Assert.True(wal.DurablePosition > positions[^1]);
        }

        await using (var reopened = new FasterWriteAheadLog(Options()))
        {
            List<WalEntry> entries = [.. reopened.ReadDurableEntries()];
            Assert.Equal(200, entries.Count);
            for (int i = 0; i < entries.Count; i++)
            {
                Assert.Equal(positions[i], entries[i].Position);
                Assert.Equal(i % 3, entries[i].StreamId);
                Assert.Equal(i, entries[i].BaseOffset);
                Assert.Equal(100 + i, entries[i].Batch.Length);
                Assert.True(WalTestPayload.Matches(entries[i].Batch.Span, i % 3, i));
            }
        }
    }

    [Fact]
    public async Task ConcurrentAppendsAllBecomeDurable()
    {
        const int writers = 8;
        const int perWriter = 100;
        await using (var wal = new FasterWriteAheadLog(Options()))
        {
            await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
            {
                for (int i = 0; i < perWriter; i++)
                {
                    await wal.AppendAsync(w, i, 1, WalTestPayload.Create(w, i, 64 + i));
                }
            })));
        }

        await using var reopened = new FasterWriteAheadLog(Options());
        var byStream = reopened.ReadDurableEntries().GroupBy(e => e.StreamId).ToDictionary(g => g.Key, g => g.Select(e => e.BaseOffset).ToList());
        Assert.Equal(writers, byStream.Count);
        foreach ((long stream, List<long> offsets) in byStream)
        {
            Assert.Equal(Enumerable.Range(0, perWriter).Select(i => (long)i), offsets);
        }
    }

    [Fact]
    public async Task TrimDropsEntriesBeforeThePositionAcrossRestarts()
    {
        long trimAt;
        await using (var wal = new FasterWriteAheadLog(Options()))
        {
            for (int i = 0; i < 50; i++)
            {
                await wal.AppendAsync(1, i, 1, WalTestPayload.Create(1, i, 2000));
            }

            trimAt = wal.ReadDurableEntries().Skip(30).First().Position;
            await wal.TrimAsync(trimAt);
            Assert.Equal(trimAt, wal.TrimPosition);
            Assert.Equal(30, wal.ReadDurableEntries().First().BaseOffset);
        }

        await using var reopened = new FasterWriteAheadLog(Options());
        List<WalEntry> entries = [.. reopened.ReadDurableEntries()];
        Assert.Equal(20, entries.Count);
        Assert.Equal(30, entries[0].BaseOffset);
    }

    [Fact]
    public async Task OversizedBatchIsRejectedAndTheLogKeepsWorking()
    {
        await using var wal = new FasterWriteAheadLog(Options());
        var e = await Assert.ThrowsAsync<ArgumentException>(async () => await wal.AppendAsync(1, 0, 1, new byte[Options().MaxEntryBytes + 1]));
        Assert.Contains("maximum entry", e.Message, StringComparison.Ordinal);
        await wal.AppendAsync(1, 0, 1, WalTestPayload.Create(1, 0, 10));
        Assert.Single(wal.ReadDurableEntries());
    }

    [Fact]
    public void InvalidOptionsAreRejected()
    {
        Assert.Throws<ArgumentException>(() => new WalOptions().Validate());
        Assert.Throws<ArgumentException>(() => new WalOptions { Directory = "x", PageSizeBits = 24, MemorySizeBits = 24 }.Validate());
    }
}
