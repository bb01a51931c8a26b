namespace SharedLog.Storage.Objects;

/// <summary>The loop of the background workers (janitor, compactor, the broker's snapshots and expiry): one round per tick; a failed round is reported and the next tick tries again.</summary>
public static class PeriodicRounds
{
    public static async Task RunAsync(TimeSpan interval, Func<DateTimeOffset, CancellationToken, Task> round, Action<Exception> failed, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                try
                {
                    await round(DateTimeOffset.UtcNow, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (!cancellationToken.IsCancellationRequested)
                {
                    // A cancellation that is not ours (a store's request timeout surfaces as one) is a failed round
                    // like any other: ending the loop on it stopped retention and compaction until a restart.
                    failed(e);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }
}
