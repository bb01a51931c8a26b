using System.Runtime.CompilerServices;

namespace SharedLog.Broker.Cluster;

/// <summary>
/// Turns per key, in the order they were taken: work started under the key's lock (where a partition's offsets are
/// assigned, say) is given a turn there, so later work that must follow that order (writing each batch's quarantine
/// copies) can wait for the turn before it, although each request reaches that work whenever its own append completes.
/// A key's line lives as long as the key object does (a partition's stream: gone with its topic), so no one removes it.
/// </summary>
internal sealed class TurnsInOrder<TKey>
    where TKey : class
{
    private readonly ConditionalWeakTable<TKey, Line> _lines = new();

    /// <summary>
    /// Runs <paramref name="start"/> under <paramref name="key"/>'s lock and takes the key's next turn with it. If
    /// <paramref name="start"/> throws, no turn is taken. The caller must end the turn (<see cref="Turn.End"/>) on every
    /// path, or every later turn of the key waits on it.
    /// </summary>
    public TResult Take<TState, TResult>(TKey key, TState state, Func<TState, TResult> start, out Turn turn)
    {
        Line line = _lines.GetValue(key, static _ => new Line());
        lock (line)
        {
            TResult started = start(state);
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            turn = new Turn(line.Last, done);
            line.Last = done.Task;
            return started;
        }
    }

    /// <summary>One key's turns: the last one taken.</summary>
    private sealed class Line
    {
        public Task Last { get; set; } = Task.CompletedTask;
    }
}

/// <summary>A place in a key's line (<see cref="TurnsInOrder{TKey}"/>): it comes when the turn before it has ended.</summary>
internal sealed class Turn(Task previous, TaskCompletionSource done)
{
    /// <summary>Completes when the turn taken before this one has ended (at once for the first); it never faults.</summary>
    public Task Previous => previous;

    /// <summary>Ends this turn, letting the next one go; later calls do nothing.</summary>
    public void End() => done.TrySetResult();
}
