using System.Runtime.CompilerServices;

namespace SharedLog.Broker.Cluster;

/// <summary>
/// Runs an action once per key until it succeeds: a caller arriving while an attempt is under way waits for
/// it, after a success does nothing, and after a failure (or when the attempt it waited for fails) makes its
/// own attempt. Entries live as long as their key object does, so no one has to remove them.
/// </summary>
internal sealed class OncePerKey<TKey>
    where TKey : class
{
    private readonly ConditionalWeakTable<TKey, Attempt> _attempts = new();

    public async Task RunAsync(TKey key, Func<CancellationToken, Task> action, CancellationToken cancellationToken)
    {
        Attempt entry = _attempts.GetValue(key, static _ => new Attempt());
        while (true)
        {
            TaskCompletionSource? ours = null;
            Task current;
            lock (entry)
            {
                if (entry.Task is null || entry.Task.IsFaulted || entry.Task.IsCanceled)
                {
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
                    return;
                }
                catch (Exception) when (current.IsFaulted || current.IsCanceled)
                {
                    // The attempt this caller waited for failed (its own caller went away, say): try again here.
                    continue;
                }
            }

            try
            {
                await action(cancellationToken);
                ours.SetResult();
                return;
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
