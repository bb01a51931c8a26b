namespace SharedLog.IntegrationTests;

/// <summary>Reads the broker's Prometheus endpoint in tests.</summary>
internal static class MetricsScrape
{
    /// <summary>
    /// Scrapes <c>/metrics</c> until <paramref name="find"/> returns a value, for at most 30 s (the exporter
    /// caches a scrape briefly, so a new value shows up a little after the request that made it); null if never.
    /// </summary>
    public static async Task<string?> UntilAsync(HttpClient http, Func<string, string?> find)
    {
        DateTime deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            if (find(await http.GetStringAsync("/metrics")) is { } found)
            {
                return found;
            }

            await Task.Delay(200); // between scrapes only; the loop ends on the condition or the deadline
        }

        return null;
    }
}

/// <summary>
/// Tests that read a broker's <c>/metrics</c> run alone, with no other broker in the process: OpenTelemetry
/// listens to every Meter of a name process-wide, so another in-process broker's measurements would be
/// counted too, and disposing that broker's meters stops the shared metric streams
/// (open-telemetry/opentelemetry-dotnet#6412). A broker process has one broker, so only tests meet this.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class BrokerMetricsCollection
{
    public const string Name = "broker metrics";
}
