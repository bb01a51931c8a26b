namespace SharedLog.Broker.Network;

/// <summary>
/// The order one connection's requests take effect in. Requests run one after another, except produces: a produce
/// lets the next start once it reaches its ordering point (appends queued), and a produce read from a copy of its
/// frame (one the contract gate reads record by record) starts at once on a pool thread, so the gate checks a
/// client's pipelined requests side by side while their appends still queue in request order: each produce waits
/// for <see cref="ProduceTail"/>, the one before it, before it appends. Used by the connection's reading loop only.
/// </summary>
internal sealed class RequestSequence(int overlappedProduces, WorkSlots brokerSlots)
{
    private readonly List<Task> _running = [];
    private readonly Queue<Task> _overlapped = new();

    /// <summary>Completes once the connection's latest produce, and each one before it, reached its ordering point or ended.</summary>
    public Task ProduceTail { get; private set; } = Task.CompletedTask;

    /// <summary>Overlapped produces at most per connection not yet at their ordering point: the cores, at least 2, at most 4.</summary>
    public static int DefaultOverlappedProduces => Math.Clamp(Environment.ProcessorCount, 2, 4);

    /// <summary>
    /// The broker's overlapped produces not yet at their ordering point, across its connections: as many as the cores, at
    /// least 2. Many producer connections each checking several requests at once would take every pool thread from the
    /// network work.
    /// </summary>
    public static WorkSlots BrokerSlots() => new(Math.Max(Environment.ProcessorCount, 2));

    /// <summary>Notes a produce that started, given the <see cref="ProduceTail"/> it was handed as its predecessor.</summary>
    /// <param name="reachedOrEnded">Completes at the produce's own ordering point or end.</param>
    /// <param name="overlapped">Whether it holds a reservation from <see cref="TryReserveOverlapAsync"/>, given back at <paramref name="reachedOrEnded"/>.</param>
    public void ProduceStarted(Task handling, Task reachedOrEnded, bool overlapped)
    {
        // The next produce may append once this one is ordered, and this one is ordered only after the one before it: a
        // produce that ends early (failed or cancelled before its own wait) must not let the next overtake that one.
        ProduceTail = Task.WhenAll(ProduceTail, reachedOrEnded);
        _running.RemoveAll(static t => t.IsCompleted);
        _running.Add(handling);
        if (overlapped)
        {
            _overlapped.Enqueue(reachedOrEnded);
            reachedOrEnded.ContinueWith(static (_, slots) => ((WorkSlots)slots!).Release(), brokerSlots, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    /// <summary>
    /// Reserves the start of one overlapped produce: waits while the connection has its limit of them not yet ordered,
    /// then takes one of the broker's slots. False when the broker has none free: the produce then runs in turn, as before.
    /// </summary>
    public async ValueTask<bool> TryReserveOverlapAsync()
    {
        while (_overlapped.Count > 0 && (_overlapped.Count >= overlappedProduces || _overlapped.Peek().IsCompleted))
        {
            Task oldest = _overlapped.Dequeue();
            if (!oldest.IsCompleted)
            {
                await oldest.ConfigureAwait(false);
            }
        }

        return brokerSlots.TryTake();
    }

    /// <summary>Waits for every started request: other requests see all earlier requests' effects.</summary>
    public async ValueTask WaitForAllAsync()
    {
        if (_running.Count > 0)
        {
            // Their failures are their responses' business, not the waiting request's.
            await Task.WhenAll(_running).ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            _running.Clear();
        }

        _overlapped.Clear();
        ProduceTail = Task.CompletedTask;
    }
}
