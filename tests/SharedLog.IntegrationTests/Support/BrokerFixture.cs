using SharedLog.Broker;

namespace SharedLog.IntegrationTests;

/// <summary>A real broker, in-process, on free loopback ports, with a fresh data directory.</summary>
public sealed class BrokerFixture : IAsyncDisposable
{
    private readonly bool _deleteOnDispose;

    private BrokerFixture(BrokerHost host, string dataDir, bool deleteOnDispose)
    {
        Host = host;
        DataDir = dataDir;
        _deleteOnDispose = deleteOnDispose;
    }

    public BrokerHost Host { get; }

    public string DataDir { get; }

    public string BootstrapServers => Host.BootstrapServers;

    /// <summary>Base URL of the broker's schema registry API.</summary>
    public string RegistryUrl => $"http://127.0.0.1:{Host.RegistryPort}";

    public static async Task<BrokerFixture> StartAsync(string? dataDir = null, bool deleteOnDispose = true, params string[] extraArguments)
    {
        dataDir ??= Path.Combine(Path.GetTempPath(), "sharedlog-it-" + Guid.NewGuid().ToString("N"));
        BrokerHost host = BrokerHost.Create(["--port", "0", "--http-port", "0", "--registry-port", "0", "--data-dir", dataDir, "--host", "127.0.0.1", "--Broker:GroupInitialRebalanceDelayMs", "200", .. extraArguments]);
        await host.StartAsync();
        return new BrokerFixture(host, dataDir, deleteOnDispose);
    }

    public async ValueTask DisposeAsync()
    {
        await Host.StopAsync();
        await Host.DisposeAsync();
        if (_deleteOnDispose && Directory.Exists(DataDir))
        {
            Directory.Delete(DataDir, recursive: true);
        }
    }
}
