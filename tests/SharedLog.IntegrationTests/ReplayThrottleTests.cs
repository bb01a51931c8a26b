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
