namespace SharedLog.Protocol.Tests;

/// <summary>
/// Locates the shared data folder (../shared beside the repository). Data-driven tests use
/// <see cref="SharedDataFactAttribute"/>: without the folder they are reported as not run with one
/// clear line, except under CI (CI=true), where the folder is required and its absence fails.
/// </summary>
public static class SharedData
{
    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    public static string SharedDirectory => Path.GetFullPath(Path.Combine(RepositoryRoot, "..", "shared"));

    public static string KafkaProtocolDirectory => Path.Combine(SharedDirectory, "kafka-protocol");

    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public static bool KafkaProtocolAvailable => Directory.Exists(Path.Combine(KafkaProtocolDirectory, "message"));

    /// <summary>Returns the spec folder, failing loudly if it is missing.</summary>
    public static string RequireKafkaProtocol()
    {
        Assert.True(KafkaProtocolAvailable, $"Kafka protocol specs are missing at {KafkaProtocolDirectory}.");
        return KafkaProtocolDirectory;
    }

    private static string FindRepositoryRoot()
    {
        for (DirectoryInfo? dir = new(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SharedLogBroker.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Tests must run from inside the SharedLog repository.");
    }
}

/// <summary>A fact that needs ../shared/kafka-protocol; see <see cref="SharedData"/>.</summary>
public sealed class SharedDataFactAttribute : FactAttribute
{
    public SharedDataFactAttribute()
    {
        if (!SharedData.KafkaProtocolAvailable && !SharedData.IsCi)
        {
            Skip = $"shared data missing: {SharedData.KafkaProtocolDirectory} not found (required when CI=true)";
        }
    }
}
