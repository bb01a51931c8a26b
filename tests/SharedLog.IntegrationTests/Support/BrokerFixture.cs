using Microsoft.Extensions.Logging;
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

    /// <summary>A loopback port free a moment ago, for a server a test starts itself (one that cannot take port 0).</summary>
    public static int FreeLoopbackPort()
    {
        using var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        probe.Start();
        return ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
    }

    public static Task<BrokerFixture> StartAsync(string? dataDir = null, bool deleteOnDispose = true, params string[] extraArguments) =>
        StartAsync(dataDir, deleteOnDispose, logging: null, extraArguments);

    /// <summary>A broker whose logging the test adds to (e.g. a provider that collects what is logged).</summary>
    public static Task<BrokerFixture> StartAsync(Action<ILoggingBuilder> logging, params string[] extraArguments) =>
        StartAsync(dataDir: null, deleteOnDispose: true, logging, extraArguments);

    private static async Task<BrokerFixture> StartAsync(string? dataDir, bool deleteOnDispose, Action<ILoggingBuilder>? logging, string[] extraArguments)
    {
        dataDir ??= Path.Combine(Path.GetTempPath(), "sharedlog-it-" + Guid.NewGuid().ToString("N"));
        BrokerHost host = BrokerHost.Create(["--port", "0", "--http-port", "0", "--registry-port", "0", "--data-dir", dataDir, "--host", "127.0.0.1", "--Broker:GroupInitialRebalanceDelayMs", "200", .. extraArguments], logging);
        try
        {
            await host.StartAsync();
        }
        catch
        {
            await host.DisposeAsync(); // releases the data directory for a later start in the same test
            throw;
        }

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
