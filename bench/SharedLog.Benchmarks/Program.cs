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

// `gate-loop json|json6|avro [seconds]` runs one gate benchmark in a plain loop, for a profiler (perf) to sample.
if (args.Length > 0 && args[0] == "gate-loop")
{
    using var gate = new GateBenchmarks();
    gate.Setup();
    string which = args.Length > 1 ? args[1] : "json";
    int perBatch = which == "json6" ? 6 : 100;
    Func<object> inspect = which switch
    {
        "avro" => () => gate.Avro100Records(),
        "json6" => () => gate.Json6Records(),
        _ => () => gate.Json100Records(),
    };
    TimeSpan duration = TimeSpan.FromSeconds(args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 20);
    long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
    var clock = System.Diagnostics.Stopwatch.StartNew();
    long batches = 0;
    while (clock.Elapsed < duration)
    {
        inspect();
        batches++;
    }

    long allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
    Console.WriteLine($"{batches * perBatch / clock.Elapsed.TotalSeconds:F0} records/s ({clock.Elapsed.TotalMicroseconds / (batches * perBatch):F2} us per record, {allocated / (double)(batches * perBatch):F0} bytes allocated per record)");
    return 0;
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
