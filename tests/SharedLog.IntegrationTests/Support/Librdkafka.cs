using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace SharedLog.IntegrationTests;

/// <summary>
/// Loads the librdkafka build bundled with Confluent.Kafka that carries its own dependencies. The
/// default build needs libsasl2.so.3, which Debian 12 lacks; without this the client either fails to
/// load or silently picks up an old system librdkafka.
/// </summary>
public static class Librdkafka
{
    public const string ExpectedVersionPrefix = "2.";

    private static readonly Lazy<string> Loaded = new(Load);

    public static string Version => Loaded.Value;

    [ModuleInitializer]
    internal static void Initialize() => _ = Loaded.Value;

    private static string Load()
    {
        string path = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "centos8-librdkafka.so");
        if (!File.Exists(path))
        {
            throw new FileNotFoundException("Bundled librdkafka build not found; was Confluent.Kafka restored?", path);
        }

        // Every librdkafka variant Confluent.Kafka asks for resolves to the self-contained build.
        NativeLibrary.SetDllImportResolver(typeof(Confluent.Kafka.Library).Assembly, (name, _, _) =>
            name.Contains("librdkafka", StringComparison.Ordinal) ? NativeLibrary.Load(path) : IntPtr.Zero);
        return Confluent.Kafka.Library.VersionString;
    }
}
