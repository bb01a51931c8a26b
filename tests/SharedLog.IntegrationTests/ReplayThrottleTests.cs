using SharedLog.Broker.Cluster;

namespace SharedLog.IntegrationTests;

public class ReplayThrottleTests
{
    [Theory]
    [InlineData(0, 0, 1024, 0)] // the first write goes at once
    [InlineData(1024 * 1024, 250, 1024 * 1024, 750)] // 1 MiB at 1 MiB/s: due at 1 s, 0.25 s gone
    [InlineData(1024 * 1024, 1500, 1024 * 1024, 0)] // behind the rate: no wait
    [InlineData(3 * 1024 * 1024, 1000, 1024 * 1024, 2000)]
    public void WaitsUntilTheBytesSoFarKeepToTheRate(long bytesSoFar, int elapsedMs, long bytesPerSecond, int expectedMs) =>
        Assert.Equal(TimeSpan.FromMilliseconds(expectedMs), ReplayThrottle.DelayFor(bytesSoFar, TimeSpan.FromMilliseconds(elapsedMs), bytesPerSecond));

    [Fact]
    public void AStretchWithNothingToWriteEarnsAtMostOneSecondOfCredit()
    {
        // 64 KiB/s; one write at the start, then 30 s of scanning records the filter skips.
        var throttle = new ReplayThrottle(64 * 1024);
        Assert.Equal(TimeSpan.Zero, throttle.Reserve(64 * 1024, TimeSpan.Zero));
        TimeSpan later = TimeSpan.FromSeconds(30);

        // The second of credit goes at once; after it the writes keep to the rate again, not 30 s of it at full speed.
        Assert.Equal(TimeSpan.Zero, throttle.Reserve(64 * 1024, later));
        Assert.Equal(TimeSpan.Zero, throttle.Reserve(64 * 1024, later));
        Assert.Equal(TimeSpan.FromSeconds(1), throttle.Reserve(64 * 1024, later));
        Assert.Equal(TimeSpan.FromSeconds(2), throttle.Reserve(64 * 1024, later));
    }

    [Fact]
    public async Task WithoutARateNothingWaits()
    {
        var throttle = new ReplayThrottle(null);
        Task first = throttle.WaitAsync(long.MaxValue / 2, CancellationToken.None);
        Task second = throttle.WaitAsync(long.MaxValue / 2, CancellationToken.None);
        Assert.True(first.IsCompletedSuccessfully && second.IsCompletedSuccessfully);
        await Task.WhenAll(first, second);
    }

    [Fact]
    public async Task AWaitEndsWhenTheReplayIsCancelled()
    {
        var throttle = new ReplayThrottle(64 * 1024);
        await throttle.WaitAsync(64L * 1024 * 3600, CancellationToken.None); // the first write goes at once; the next is an hour away
        using var cancel = new CancellationTokenSource();
        Task waiting = throttle.WaitAsync(1, cancel.Token);
        Assert.False(waiting.IsCompleted);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
    }
}

public class ReplayRequestTimestampTests
{
    [Theory]
    [InlineData("2026-12-04T10:30:00Z", 1_796_380_200_000)]
    [InlineData("2026-12-04T10:30:00.250Z", 1_796_380_200_250)]
    [InlineData("2026-12-04T11:30:00+01:00", 1_796_380_200_000)]
    [InlineData("2026-12-04T10:30Z", 1_796_380_200_000)]
    [InlineData("2026-12-04", 1_796_342_400_000)]
    public void IsoTimesAreTakenInUtcUnlessTheyNameAnOffset(string text, long expectedMs) =>
        Assert.Equal(expectedMs, ReplayRequests.Parse($$"""{ "source": "orders", "fromTimestamp": "{{text}}" }""", "test").FromTimestamp);

    [Theory]
    [InlineData("04/12/2026")]
    [InlineData("Dec 4 2026")]
    [InlineData("yesterday")]
    public void OtherTimeFormatsAreRefusedNotGuessed(string text) =>
        Assert.Equal(400, Assert.Throws<ReplayRequestException>(() => ReplayRequests.Parse($$"""{ "source": "orders", "fromTimestamp": "{{text}}" }""", "test")).Status);
}
