namespace SharedLog.Broker;

/// <summary>
/// A count of extra work in progress that is taken without waiting: a caller that finds no slot free does the work the
/// ordinary way instead (in turn, on its own thread). Bounds how much of the thread pool record checks may hold.
/// </summary>
public sealed class WorkSlots(int limit)
{
    private int _taken;

    public bool TryTake()
    {
        int now = Volatile.Read(ref _taken);
        while (now < limit)
        {
            int seen = Interlocked.CompareExchange(ref _taken, now + 1, now);
            if (seen == now)
            {
                return true;
            }

            now = seen;
        }

        return false;
    }

    public void Release() => Interlocked.Decrement(ref _taken);
}
