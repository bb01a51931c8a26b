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

// `contract-applies [applies] [contracts]` times contract changes made in a row.
if (args.Length > 0 && args[0] == "contract-applies")
{
    return await ContractApplyThroughput.RunAsync(
        args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 500,
        args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 50);
}

// `gate-loop json|json6|json-rules|json-schema|avro|proto|proto-rules [seconds] [keptMiB]` runs one gate benchmark in a plain loop, for a profiler (perf) to sample.
// The batches the gate rebuilds are kept, oldest dropped first, up to keptMiB (default 256, the broker's log cache), as
// the broker keeps stored batches. They live on the pinned and large object heaps, whose memory a loop keeps getting
// fresh from the kernel: 0.27 page faults per record here against 0.02 in the broker at full load, so the loop's time
// per record (json6, stop 41: 4.9 us kept, 5.7 us dropped at once, 2.1 us with ordinary arrays) overstates the gate's.
if (args.Length > 0 && args[0] == "gate-loop")
{
    using var gate = new GateBenchmarks();
    gate.Setup();
    string which = args.Length > 1 ? args[1] : "json";
    int perBatch = which == "json6" ? 6 : 100;
    TimeSpan duration = TimeSpan.FromSeconds(args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 20);
    long keptLimit = (args.Length > 3 ? long.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture) : 256) << 20;
    var kept = new Queue<byte[]>();
    long keptBytes = 0;
    long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
    var clock = System.Diagnostics.Stopwatch.StartNew();
    long batches = 0;
    while (clock.Elapsed < duration)
    {
        if (gate.InspectForLoop(which).Batch is { } rebuilt && keptLimit > 0)
        {
            kept.Enqueue(rebuilt);
            keptBytes += rebuilt.Length;
            while (keptBytes > keptLimit)
            {
                keptBytes -= kept.Dequeue().Length;
            }
        }

        batches++;
    }

    long allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
    Console.WriteLine($"{batches * perBatch / clock.Elapsed.TotalSeconds:F0} records/s ({clock.Elapsed.TotalMicroseconds / (batches * perBatch):F2} us per record, {allocated / (double)(batches * perBatch):F0} bytes allocated per record)");
    return 0;
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
