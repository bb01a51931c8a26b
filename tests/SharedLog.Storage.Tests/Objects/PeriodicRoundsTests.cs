using SharedLog.Storage.Objects;

namespace SharedLog.Storage.Tests.Objects;

public sealed class PeriodicRoundsTests
{
    [Fact]
    public async Task ARoundFailingWithSomeoneElsesCancellationIsReportedAndTheLoopGoesOn()
    {
        // An S3 or HTTP timeout surfaces as a cancelled task whose token is not the loop's: that round failed, and the
        // janitor, compactor and snapshot loops must keep running (they used to end silently, until a restart).
        using var stop = new CancellationTokenSource();
        int rounds = 0;
        var failures = new List<Exception>();
        var thirdRound = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task loop = PeriodicRounds.RunAsync(
            TimeSpan.FromMilliseconds(10),
            (_, _) =>
            {
                int round = Interlocked.Increment(ref rounds);
                if (round == 3)
                {
                    thirdRound.TrySetResult();
                }

                return round == 1 ? Task.FromException(new TaskCanceledException("request timed out")) : Task.CompletedTask;
            },
            e => failures.Add(e),
            stop.Token);

        await thirdRound.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await stop.CancelAsync();
        await loop.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.IsType<TaskCanceledException>(Assert.Single(failures));
        Assert.True(rounds >= 3);
    }

    [Fact]
    public async Task TheLoopEndsQuietlyWhenItsOwnTokenIsCancelledDuringARound()
    {
        using var stop = new CancellationTokenSource();
        var failures = new List<Exception>();
        Task loop = PeriodicRounds.RunAsync(
            TimeSpan.FromMilliseconds(10),
            async (_, token) =>
            {
                await stop.CancelAsync();
                await Task.Delay(Timeout.Infinite, token);
            },
            e => failures.Add(e),
            stop.Token);

        await loop.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Empty(failures);
    }
}
