using Microsoft.Extensions.Logging;
using SharedLog.Broker.Handlers;
using SharedLog.Protocol;
using SharedLog.Tests.Shared;

namespace SharedLog.IntegrationTests;

/// <summary>The windowed log of produce refusals, at the broker's stop.</summary>
public class RefusalLogTests
{
    [Fact]
    public void RefusalsHeldInTheWindowAreLoggedAtDisposeAndNothingAfter()
    {
        var logger = new ListLogger<RefusalLogTests>();
        var log = new RefusalLog(logger, retriable: true);
        log.Add("orders", 0, ErrorCode.KafkaStorageError, "uploads are behind.");
        log.Add("orders", 1, ErrorCode.KafkaStorageError, "uploads are behind.");
        log.Add("orders", 2, ErrorCode.RequestTimedOut, "the request holds too much.");
        Assert.StartsWith("Produce to orders-0 refused with KAFKA_STORAGE_ERROR (retriable): ", Assert.Single(logger.Entries).Message, StringComparison.Ordinal); // the rest held

        // Stopping logs the held two now (the window's timer would have fired after the host's logging was gone).
        log.Dispose();
        Assert.Equal(2, logger.Entries.Count);
        // Each code counted (naming only the last one's code hid the storage error).
        Assert.StartsWith("2 more produce(s) refused (retriable) within 10 s (KAFKA_STORAGE_ERROR: 1, REQUEST_TIMED_OUT: 1); the last to orders-2 refused with REQUEST_TIMED_OUT: the request", logger.Entries[1].Message, StringComparison.Ordinal);

        log.Add("orders", 3, ErrorCode.KafkaStorageError, "uploads are behind.");
        log.Dispose();
        Assert.Equal(2, logger.Entries.Count);
        Assert.All(logger.Entries, e => Assert.Equal(LogLevel.Warning, e.Level));
    }

    [Fact]
    public void RefusalsThatAreNotRetriableSayThatAndAreWindowedTheSameWay()
    {
        var logger = new ListLogger<RefusalLogTests>();
        var log = new RefusalLog(logger, retriable: false);
        log.Add("orders", 0, ErrorCode.CorruptMessage, "the batch's CRC does not match.");
        log.Add("orders", 0, ErrorCode.InvalidRecord, "the contract rejected the batch.");
        log.Add("orders", 0, ErrorCode.CorruptMessage, "the batch's CRC does not match.");
        Assert.Equal("Produce to orders-0 refused with CORRUPT_MESSAGE (not retriable): the batch's CRC does not match. Further such refusals within 10 s are logged as one line.", Assert.Single(logger.Entries).Message);
        log.Dispose();
        Assert.Equal("2 more produce(s) refused (not retriable) within 10 s (CORRUPT_MESSAGE: 1, INVALID_RECORD: 1); the last to orders-0 refused with CORRUPT_MESSAGE: the batch's CRC does not match.", logger.Entries[1].Message);
    }
}
