using SharedLog.Broker;

// Runs one broker: `dotnet run --project broker/SharedLog.Broker -c Release -- --port 9092 --http-port 9644 --data-dir ./data`
// or the contract tool: `... -- contracts apply|diff|validate|list ...` (see ContractsCli).
if (args.Length > 0 && args[0] == "contracts")
{
    return await ContractsCli.RunAsync(args[1..], Console.Out, Console.Error);
}

await using BrokerHost broker = BrokerHost.Create(args);
await broker.StartAsync();
Console.WriteLine($"SharedLog broker listening for Kafka clients on {broker.BootstrapServers}" + (broker.HttpPort is { } http ? $", HTTP on port {http}" : string.Empty) + (broker.RegistryPort is { } registry ? $", schema registry on port {registry}" : string.Empty));
Console.WriteLine($"GC: {(System.Runtime.GCSettings.IsServerGC ? "server" : "workstation")}, large object threshold {GC.GetConfigurationVariables().GetValueOrDefault("LOHThreshold")} bytes; thread pool minimum {MinWorkerThreads()} worker threads");
await broker.WaitForShutdownAsync();
return 0;

static int MinWorkerThreads()
{
    ThreadPool.GetMinThreads(out int workers, out _);
    return workers;
}
