using SharedLog.Storage.FaultHost;
using SharedLog.Storage.Wal;

namespace SharedLog.Storage.Tests.Wal;

/// <summary>Reopens a WAL the fault host wrote and checks what survived against what it acknowledged.</summary>
internal static class WalRecoveryCheck
{
    /// <summary>The fault host's WAL geometry (tests/SharedLog.Storage.FaultHost/Program.cs).</summary>
    public static WalOptions HostOptions(string directory) => new() { Directory = directory, PageSizeBits = 20, MemorySizeBits = 22, SegmentSizeBits = 22 };

    /// <summary>
    /// Recovery must not be fatal; every recovered entry must be intact and in order per stream; every
    /// acknowledged append must be there with its length.
    /// </summary>
    public static void Verify(string directory, Dictionary<(long Stream, long Offset), int> acknowledged, string label)
    {
        var wal = new FasterWriteAheadLog(HostOptions(directory));
        try
        {
            var recovered = new Dictionary<(long, long), WalEntry>();
            var lastOffset = new Dictionary<long, long>();
            foreach (WalEntry entry in wal.ReadDurableEntries())
            {
                Assert.True(WalTestPayload.Matches(entry.Batch.Span, entry.StreamId, entry.BaseOffset), $"{label}: entry {entry.StreamId}/{entry.BaseOffset} is corrupt");
                if (lastOffset.TryGetValue(entry.StreamId, out long previous))
                {
                    Assert.True(entry.BaseOffset > previous, $"{label}: stream {entry.StreamId} goes from {previous} to {entry.BaseOffset}");
                }

                lastOffset[entry.StreamId] = entry.BaseOffset;
                recovered[(entry.StreamId, entry.BaseOffset)] = entry;
            }

            foreach (((long stream, long offset), int length) in acknowledged)
            {
                Assert.True(recovered.TryGetValue((stream, offset), out WalEntry entry), $"{label}: acknowledged append {stream}/{offset} is missing");
                Assert.Equal(length, entry.Batch.Length);
            }
        }
        finally
        {
            wal.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(60));
        }
    }

    /// <summary>Parses the fault host's "ack stream offset length" line into <paramref name="acknowledged"/>.</summary>
    public static bool TryRecordAck(string line, Dictionary<(long Stream, long Offset), int> acknowledged)
    {
        if (!line.StartsWith("ack ", StringComparison.Ordinal))
        {
            return false;
        }

        string[] parts = line.Split(' ');
        acknowledged[(long.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture), long.Parse(parts[2], System.Globalization.CultureInfo.InvariantCulture))] =
            int.Parse(parts[3], System.Globalization.CultureInfo.InvariantCulture);
        return true;
    }
}
