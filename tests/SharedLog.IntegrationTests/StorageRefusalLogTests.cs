using Microsoft.Extensions.Logging;
using SharedLog.Broker.Handlers;
using SharedLog.Tests.Shared;

namespace SharedLog.IntegrationTests;

/// <summary>The windowed log of KAFKA_STORAGE_ERROR refusals, at the broker's stop.</summary>
public class StorageRefusalLogTests
{
    [Fact]
    public void RefusalsHeldInTheWindowAreLoggedAtDisposeAndNothingAfter()
    {
        var logger = new ListLogger<StorageRefusalLogTests>();
        var log = new StorageRefusalLog(logger);
        log.Add("orders", 0, "uploads are behind.");
        log.Add("orders", 1, "uploads are behind.");
        log.Add("orders", 2, "uploads are behind.");
        Assert.Single(logger.Entries); // the first at once, the rest held for the window's summary

        // Stopping logs the held two now (the window's timer would have fired after the host's logging was gone).
        log.Dispose();
        Assert.Equal(2, logger.Entries.Count);
        Assert.Contains("2 more produce(s) refused", logger.Entries[1].Message, StringComparison.Ordinal);
        Assert.Contains("orders-2", logger.Entries[1].Message, StringComparison.Ordinal);

        log.Add("orders", 3, "uploads are behind.");
        log.Dispose();
        Assert.Equal(2, logger.Entries.Count);
        Assert.All(logger.Entries, e => Assert.Equal(LogLevel.Warning, e.Level));
    }
}
