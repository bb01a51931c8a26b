using SharedLog.Broker.Cluster;

namespace SharedLog.IntegrationTests;

/// <summary>The once-per-source-batch rule the quarantine writer relies on for idempotent retries.</summary>
public class OncePerKeyTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task AnActionThatSucceededIsNotRunAgainButOneThatFailedIs()
    {
        var once = new OncePerKey<object>();
        var key = new object();
        int runs = 0;
        Assert.Equal(OnceOutcome.Ran, await once.RunAsync(key, _ => { runs++; return Task.CompletedTask; }, CancellationToken.None));
        Assert.Equal(OnceOutcome.AlreadyDone, await once.RunAsync(key, _ => { runs++; return Task.CompletedTask; }, CancellationToken.None));
        Assert.Equal(1, runs);

        var failing = new object();
        await Assert.ThrowsAsync<IOException>(() => once.RunAsync(failing, _ => { runs++; return Task.FromException(new IOException("store away")); }, CancellationToken.None));
        Assert.Equal(OnceOutcome.RanAfterFailure, await once.RunAsync(failing, _ => { runs++; return Task.CompletedTask; }, CancellationToken.None));
        Assert.Equal(3, runs);
        Assert.Equal(OnceOutcome.AlreadyDone, await once.RunAsync(failing, _ => { runs++; return Task.CompletedTask; }, CancellationToken.None));
        Assert.Equal(3, runs);
    }

    [Fact]
    public async Task ACallerArrivingDuringAnAttemptWaitsForItAndTakesOverWhenItIsCancelled()
    {
        var once = new OncePerKey<object>();
        var key = new object();
        var firstStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var firstCaller = new CancellationTokenSource();
        int runs = 0;
        Task first = once.RunAsync(
            key,
            async ct =>
            {
                Interlocked.Increment(ref runs);
                firstStarted.SetResult();
                await Task.Delay(Timeout * 6, ct); // held until its caller goes away
            },
            firstCaller.Token);
        await firstStarted.Task.WaitAsync(Timeout);

        Task<OnceOutcome> second = once.RunAsync(key, _ => { Interlocked.Increment(ref runs); return Task.CompletedTask; }, CancellationToken.None);
        Assert.False(second.IsCompleted); // it waits for the attempt under way instead of running its own
        Assert.Equal(1, Volatile.Read(ref runs));

        await firstCaller.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first.WaitAsync(Timeout));
        Assert.Equal(OnceOutcome.RanAfterFailure, await second.WaitAsync(Timeout)); // took over and succeeded
        Assert.Equal(2, Volatile.Read(ref runs));
    }
}
