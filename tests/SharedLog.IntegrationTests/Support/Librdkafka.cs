using System.Runtime.CompilerServices;
using SharedLog.Clients;

namespace SharedLog.IntegrationTests;

/// <summary>Loads the self-contained librdkafka before any test touches Confluent.Kafka.</summary>
public static class Librdkafka
{
    public const string ExpectedVersionPrefix = "2.";

    public static string Version => LibrdkafkaLoader.Version;

    [ModuleInitializer]
    internal static void Initialize()
    {
        _ = LibrdkafkaLoader.Version;

        // Client calls such as Consume and Flush block their thread; with the broker in the same process
        // on two cores, a small pool would let them starve the broker's own continuations.
        ThreadPool.GetMinThreads(out int workers, out int io);
        ThreadPool.SetMinThreads(Math.Max(workers, 64), Math.Max(io, 64));
    }
}
