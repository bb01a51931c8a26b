using System.Runtime.CompilerServices;

namespace SharedLog.Broker.Cluster;

/// <summary>
/// Runs an action once per key until it succeeds: a caller arriving while an attempt is under way waits for
/// it, after a success does nothing, and after a failure (or when the attempt it waited for fails) makes its
/// own attempt. Entries live as long as their key object does, so no one has to remove them. A caller learns which
/// of these happened (<see cref="OnceOutcome"/>), so work that must follow the action once is done by the caller
/// that ran it, outside the attempt: its failure does not make the action count as failed.
/// </summary>
internal sealed class OncePerKey<TKey>
    where TKey : class
{
    private readonly ConditionalWeakTable<TKey, Attempt> _attempts = new();

    public async Task<OnceOutcome> RunAsync(TKey key, Func<CancellationToken, Task> action, CancellationToken cancellationToken)
    {
        Attempt entry = _attempts.GetValue(key, static _ => new Attempt());
        bool earlierFailed = false;
        while (true)
        {
            TaskCompletionSource? ours = null;
            Task current;
            lock (entry)
            {
                if (entry.Task is null || entry.Task.IsFaulted || entry.Task.IsCanceled)
                {
                    earlierFailed |= entry.Task is not null;
                    ours = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    entry.Task = ours.Task;
                }

                current = entry.Task;
            }

            if (ours is null)
            {
                try
                {
                    await current.WaitAsync(cancellationToken);
                    return OnceOutcome.AlreadyDone;
                }
                catch (Exception) when (current.IsFaulted || current.IsCanceled)
                {
                    // The attempt this caller waited for failed (its own caller went away, say): try again here.
                    earlierFailed = true;
                    continue;
                }
            }

            try
            {
                await action(cancellationToken);
                ours.SetResult();
                return earlierFailed ? OnceOutcome.RanAfterFailure : OnceOutcome.Ran;
            }
            catch (OperationCanceledException)
            {
                ours.SetCanceled(CancellationToken.None);
                throw;
            }
            catch (Exception e)
            {
                ours.SetException(e);
                throw;
            }
        }
    }

    /// <summary>The latest attempt for one key: null until one starts.</summary>
    private sealed class Attempt
    {
        public Task? Task { get; set; }
    }
}

/// <summary>What a call of <see cref="OncePerKey{TKey}.RunAsync"/> did.</summary>
public enum OnceOutcome
{
    /// <summary>An earlier or concurrent caller's attempt succeeded; this call did not run its action.</summary>
    AlreadyDone,

    /// <summary>This call ran the action, the first attempt for its key, and it succeeded.</summary>
    Ran,

    /// <summary>This call ran the action after an earlier attempt for its key had failed or been cancelled, and it succeeded.</summary>
    RanAfterFailure,
}
