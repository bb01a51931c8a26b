using System.Globalization;
using System.Text.Json;

namespace SharedLog.LoadTest;

/// <summary>
/// Prints librdkafka's own latency windows for each broker: <c>rtt</c> (request sent to response
/// received, so broker queueing and handling plus the network), <c>int_latency</c> (time a record waits in
/// the client's partition queue, linger included) and <c>outbuf_latency</c> (time a request waits to be
/// sent). Comparing them with the end-to-end figure tells broker time from client time.
/// </summary>
internal static class ClientStats
{
    public static void Print(string json)
    {
        using JsonDocument stats = JsonDocument.Parse(json);
        if (!stats.RootElement.TryGetProperty("brokers", out JsonElement brokers))
        {
            return;
        }

        foreach (JsonProperty broker in brokers.EnumerateObject())
        {
            if (broker.Value.GetProperty("nodeid").GetInt32() < 0 || broker.Value.GetProperty("rtt").GetProperty("cnt").GetInt64() == 0)
            {
                continue;
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  stats {broker.Name}: rtt {Window(broker.Value, "rtt")}; int_latency {Window(broker.Value, "int_latency")}; outbuf_latency {Window(broker.Value, "outbuf_latency")}"));
        }
    }

    /// <summary>p50/p99/max of one librdkafka window, given in microseconds, printed in milliseconds.</summary>
    private static string Window(JsonElement broker, string name)
    {
        JsonElement window = broker.GetProperty(name);
        double Ms(string field) => window.GetProperty(field).GetInt64() / 1000.0;
        return string.Create(CultureInfo.InvariantCulture, $"p50 {Ms("p50"):F2} p99 {Ms("p99"):F2} max {Ms("max"):F2} ms (n {window.GetProperty("cnt").GetInt64()})");
    }
}
