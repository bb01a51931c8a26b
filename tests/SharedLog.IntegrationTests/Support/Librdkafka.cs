using System.Runtime.CompilerServices;
using SharedLog.Clients;

namespace SharedLog.IntegrationTests;

/// <summary>Loads the self-contained librdkafka before any test touches Confluent.Kafka.</summary>
public static class Librdkafka
{
    public const string ExpectedVersionPrefix = "2.";

    public static string Version => LibrdkafkaLoader.Version;

    [ModuleInitializer]
    internal static void Initialize() => _ = LibrdkafkaLoader.Version;
}
