using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using SharedLog.Storage.Wal;

namespace SharedLog.Benchmarks;

/// <summary>
/// Durable-append throughput and latency of the WAL next to the raw disk doing the same thing by hand
/// (sequential write + fdatasync per append), in one run on one directory. Latency is per append, from
/// call to durable.
/// </summary>
public static partial class WalThroughput
{
    private static readonly int[] Sizes = [1024, 16 * 1024, 256 * 1024, 1024 * 1024];
    private static readonly int[] WriterCounts = [1, 8];
    private static readonly TimeSpan Duration = TimeSpan.FromSeconds(3);

    public static async Task<int> RunAsync(string directory)
    {
        Console.WriteLine($"# WAL vs raw disk, {Duration.TotalSeconds:0} s per case, directory {directory}");
        Console.WriteLine("| case | append size | writers | MB/s | appends/s | p50 ms | p99 ms |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
        foreach (int size in Sizes)
        {
            foreach (int writers in WriterCounts)
            {
                Print("raw write+fdatasync", size, writers, await RawAsync(directory, size, writers));
                Print("WAL (default)", size, writers, await WalAsync(directory, size, writers, fastCommit: false, zeroFill: true));
                Print("WAL, no zero-fill ahead", size, writers, await WalAsync(directory, size, writers, fastCommit: false, zeroFill: false));
                Print("WAL, fast commit", size, writers, await WalAsync(directory, size, writers, fastCommit: true, zeroFill: true));
            }
        }

        return 0;
    }

    private static void Print(string name, int size, int writers, (long Appends, double Seconds, List<double> LatenciesMs) r)
    {
        r.LatenciesMs.Sort();
        double mbps = r.Appends * (double)size / r.Seconds / 1e6;
        Console.WriteLine($"| {name} | {size / 1024} KiB | {writers} | {mbps:0.0} | {r.Appends / r.Seconds:0} | {Percentile(r.LatenciesMs, 0.50):0.000} | {Percentile(r.LatenciesMs, 0.99):0.000} |");
    }

    private static double Percentile(List<double> sorted, double p) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)(p * sorted.Count))];

    private static async Task<(long, double, List<double>)> WalAsync(string root, int size, int writers, bool fastCommit, bool zeroFill)
    {
        string dir = Path.Combine(root, "wal-" + Guid.NewGuid().ToString("N"));
        var options = new WalOptions { Directory = dir, PageSizeBits = 22, MemorySizeBits = 26, SegmentSizeBits = 30, FastCommit = fastCommit };
        if (!zeroFill)
        {
            options.ZeroFillAheadBytes = 0;
        }

        var latencies = new List<double>[writers];
        long appends = 0;
        var clock = Stopwatch.StartNew();
        await using (var wal = new FasterWriteAheadLog(options))
        {
            byte[] payload = new byte[size];
            Random.Shared.NextBytes(payload);
            await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
            {
                latencies[w] = [];
                long offset = 0;
                while (clock.Elapsed < Duration)
                {
                    long start = Stopwatch.GetTimestamp();
                    await wal.AppendAsync(w, offset++, 1, payload);
                    latencies[w].Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                    Interlocked.Increment(ref appends);
                }
            })));
        }

        double seconds = clock.Elapsed.TotalSeconds;
        Directory.Delete(dir, recursive: true);
        return (appends, seconds, latencies.SelectMany(l => l).ToList());
    }

    /// <summary>One file, appends serialized by a lock, fdatasync after each (what a naive WAL does).</summary>
    private static async Task<(long, double, List<double>)> RawAsync(string root, int size, int writers)
    {
        Directory.CreateDirectory(root);
        string path = Path.Combine(root, "raw-" + Guid.NewGuid().ToString("N"));
        var latencies = new List<double>[writers];
        long appends = 0;
        var gate = new Lock();
        using (SafeFileHandle file = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write))
        {
            long position = 0;
            byte[] payload = new byte[size];
            Random.Shared.NextBytes(payload);
            var clock = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(() =>
            {
                latencies[w] = [];
                while (clock.Elapsed < Duration)
                {
                    long start = Stopwatch.GetTimestamp();
                    lock (gate)
                    {
                        RandomAccess.Write(file, payload, position);
                        position += size;
                        if (FdataSync(file.DangerousGetHandle().ToInt32()) != 0)
                        {
                            throw new IOException("fdatasync failed: " + Marshal.GetLastPInvokeError());
                        }
                    }

                    latencies[w].Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                    Interlocked.Increment(ref appends);
                }
            })));
            double seconds = clock.Elapsed.TotalSeconds;
            File.Delete(path);
            return (appends, seconds, latencies.SelectMany(l => l).ToList());
        }
    }

    [LibraryImport("libc", EntryPoint = "fdatasync", SetLastError = true)]
    private static partial int FdataSync(int fd);
}
