using BenchmarkDotNet.Running;
using SharedLog.Benchmarks;

// `wal [directory]` runs the side-by-side WAL vs raw-disk measurement; anything else goes to BenchmarkDotNet.
if (args.Length > 0 && args[0] == "wal")
{
    return await WalThroughput.RunAsync(args.Length > 1 ? args[1] : Path.Combine(Path.GetTempPath(), "sharedlog-walbench"));
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
