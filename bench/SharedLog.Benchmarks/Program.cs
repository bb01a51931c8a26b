using BenchmarkDotNet.Running;
using SharedLog.Benchmarks;

// `wal [directory]` runs the side-by-side WAL vs raw-disk measurement; `compact [directory] [runs]` times
// compaction rounds; anything else goes to BenchmarkDotNet.
if (args.Length > 0 && args[0] == "wal")
{
    return await WalThroughput.RunAsync(args.Length > 1 ? args[1] : Path.Combine(Path.GetTempPath(), "sharedlog-walbench"));
}

if (args.Length > 0 && args[0] == "compact")
{
    return await CompactionThroughput.RunAsync(
        args.Length > 1 ? args[1] : Path.Combine(Path.GetTempPath(), "sharedlog-compactbench"),
        args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 3);
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
