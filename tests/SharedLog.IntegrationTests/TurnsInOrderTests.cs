using SharedLog.Broker.Cluster;

namespace SharedLog.IntegrationTests;

/// <summary>The per-partition turns the quarantine writer keeps copies in source order with.</summary>
public class TurnsInOrderTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task ATurnComesWhenTheOneTakenBeforeItOnTheSameKeyEnds()
    {
        var turns = new TurnsInOrder<object>();
        var (one, two) = (new object(), new object());
        var started = new List<string>();
        Assert.Equal("a", turns.Take(one, "a", Start, out Turn a));
        turns.Take(one, "b", Start, out Turn b);
        turns.Take(one, "c", Start, out Turn c);
        turns.Take(two, "other", Start, out Turn other);
        Assert.Equal(["a", "b", "c", "other"], started);

        Assert.True(a.Previous.IsCompleted); // the first of its key
        Assert.True(other.Previous.IsCompleted); // another key's line is its own
        Assert.False(b.Previous.IsCompleted);
        Assert.False(c.Previous.IsCompleted);

        // Ended out of order: c's end lets nothing go, b's turn comes with a's end, c's with b's.
        c.End();
        Assert.False(b.Previous.IsCompleted);
        a.End();
        a.End(); // a second end does nothing
        await b.Previous.WaitAsync(Timeout);
        Assert.False(c.Previous.IsCompleted);
        b.End();
        await c.Previous.WaitAsync(Timeout);

        turns.Take(one, "d", Start, out Turn d);
        await d.Previous.WaitAsync(Timeout); // c has ended

        string Start(string name)
        {
            started.Add(name);
            return name;
        }
    }

    [Fact]
    public async Task AStartThatThrowsTakesNoTurn()
    {
        var turns = new TurnsInOrder<object>();
        var key = new object();
        turns.Take(key, 0, static _ => 0, out Turn first);
        Assert.Throws<IOException>(() => turns.Take<int, int>(key, 0, static _ => throw new IOException("append refused"), out _));
        turns.Take(key, 0, static _ => 0, out Turn next);

        // The failed start left no turn that nobody ends: the next one waits only for the first.
        Assert.False(next.Previous.IsCompleted);
        first.End();
        await next.Previous.WaitAsync(Timeout);
    }
}
