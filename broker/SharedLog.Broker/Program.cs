using SharedLog.Broker;

// Runs one broker: `dotnet run --project broker/SharedLog.Broker -c Release -- --port 9092 --http-port 9644 --data-dir ./data`
// or the contract tool: `... -- contracts apply|diff|validate|list ...` (see ContractsCli).
if (args.Length > 0 && args[0] == "contracts")
{
    return await ContractsCli.RunAsync(args[1..], Console.Out, Console.Error);
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
