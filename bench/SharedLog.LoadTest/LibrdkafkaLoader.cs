using System.Runtime.InteropServices;

namespace SharedLog.Clients;

/// <summary>
/// Points Confluent.Kafka at the librdkafka build bundled in its package that carries its own
/// dependencies. The default build needs libsasl2.so.3, which Debian 12 lacks; without this the client
/// either fails to load or silently picks up an old system librdkafka. Shared by the load tool and the
/// integration tests (linked into both).
/// </summary>
public static class LibrdkafkaLoader
{
    private static readonly Lazy<string> Loaded = new(Load);

    /// <summary>The loaded librdkafka version; loading happens on first use.</summary>
    public static string Version => Loaded.Value;

    private static string Load()
    {
        string path = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "centos8-librdkafka.so");
        if (!File.Exists(path))
        {
            throw new FileNotFoundException("Bundled librdkafka build not found; was Confluent.Kafka restored?", path);
        }

        NativeLibrary.SetDllImportResolver(typeof(Confluent.Kafka.Library).Assembly, (name, _, _) =>
            name.Contains("librdkafka", StringComparison.Ordinal) ? NativeLibrary.Load(path) : IntPtr.Zero);
        return Confluent.Kafka.Library.VersionString;
    }
}
