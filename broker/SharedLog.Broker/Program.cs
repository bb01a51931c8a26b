using SharedLog.Broker;

// Runs one broker: `dotnet run --project broker/SharedLog.Broker -c Release -- --port 9092 --http-port 9644 --data-dir ./data`
// or the contract tool: `... -- contracts apply|diff|validate|list ...` (see ContractsCli).
if (args.Length > 0 && args[0] == "contracts")
{
    return await ContractsCli.RunAsync(args[1..], Console.Out, Console.Error);
}

if (args is ["--help"] or ["-h"])
{
    Console.WriteLine("""
        Usage: SharedLog.Broker [--port N] [--http-port N] [--registry-port N] [--data-dir DIR] [--host ADDRESS]
                                [--advertised-host NAME] [--node-id N] [--Section:Key VALUE ...]
               SharedLog.Broker contracts apply|diff|validate|list|history|rollback|delete|replay ...

          --port             Kafka listener port (default 9092; 0 picks a free one)
          --http-port        admin HTTP port: /health, /metrics, /contracts, /replays (default 9644; 0 free, -1 off)
          --registry-port    schema registry port, Confluent's REST API (default 8081; 0 free, -1 off)
          --data-dir         WAL, SQLite metadata and the local object store (default ./data)
          --host             address the Kafka listener binds (default 127.0.0.1; 0.0.0.0 for all)
          --advertised-host  host name clients are told to connect to (default: --host)
          --node-id          this broker's id (default 1)
        Any other setting by its configuration key (--S3:Bucket NAME) or as an environment variable
        (SHAREDLOG_S3__Bucket=NAME); every setting is in docs/configuration.md. An unknown flag or setting is an error.
        """);
    return 0;
}

BrokerHost created;
try
{
    created = BrokerHost.Create(args);
}
catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
{
    // A setting out of range or of the wrong type: one line naming it, and the exit code of a usage error.
    await Console.Error.WriteLineAsync($"sharedlog: invalid configuration: {e.Message}");
    return 2;
}
catch (SharedLog.Storage.DataDirectoryInUseException e)
{
    await Console.Error.WriteLineAsync($"sharedlog: the broker could not start: {e.Message}");
    return 1;
}

await using BrokerHost broker = created;
try
{
    await broker.StartAsync();
}
catch (Exception e) when (e is not OperationCanceledException)
{
    // The host logged what failed (a port in use, a WAL that cannot show what it acknowledged); exit with a failure
    // status instead of an unhandled exception's abort.
    await Console.Error.WriteLineAsync($"sharedlog: the broker could not start: {e.Message}");
    return 1;
}

Console.WriteLine($"SharedLog broker listening for Kafka clients on {broker.BootstrapServers}" + (broker.HttpPort is { } http ? $", HTTP on port {http}" : string.Empty) + (broker.RegistryPort is { } registry ? $", schema registry on port {registry}" : string.Empty));
Console.WriteLine($"GC: {(System.Runtime.GCSettings.IsServerGC ? "server" : "workstation")}, large object threshold {GC.GetConfigurationVariables().GetValueOrDefault("LOHThreshold")} bytes; thread pool minimum {MinWorkerThreads()} worker threads");
await broker.WaitForShutdownAsync();
return 0;

static int MinWorkerThreads()
{
    ThreadPool.GetMinThreads(out int workers, out _);
    return workers;
}
