namespace SharedLog.Broker.Handlers;

/// <summary>Checks Kafka makes of a request's entries before serving any of them.</summary>
internal static class RequestEntries
{
    /// <summary>The entries that appear more than once: Kafka refuses each of them and serves none of their copies.</summary>
    public static HashSet<T> Repeated<T>(IEnumerable<T> entries, IEqualityComparer<T>? comparer = null)
    {
        var seen = new HashSet<T>(comparer);
        var repeated = new HashSet<T>(comparer);
        foreach (T entry in entries)
        {
            if (!seen.Add(entry))
            {
                repeated.Add(entry);
            }
        }

        return repeated;
    }
}
