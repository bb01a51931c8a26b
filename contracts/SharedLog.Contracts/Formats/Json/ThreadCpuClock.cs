using System.Diagnostics;
using System.Runtime.InteropServices;

namespace SharedLog.Contracts.Formats.Json;

/// <summary>
/// The CPU time the current thread has used, where the OS tells it (Linux), else wall-clock time. A bound on work
/// measured in wall-clock time also counts the time a busy machine makes the thread wait for a core: a review saw a valid
/// record, 70 ms of matching alone, refused with eight validations at once on two cores.
/// </summary>
internal static partial class ThreadCpuClock
{
    /// <summary>CLOCK_THREAD_CPUTIME_ID on Linux.</summary>
    private const int ThreadCpuTimeClock = 3;

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clock, out TimeSpec time);

    /// <summary>Whether <see cref="Now"/> reads the thread's CPU time (64-bit Linux) rather than the wall clock.</summary>
    public static readonly bool MeasuresCpu = OperatingSystem.IsLinux() && Environment.Is64BitProcess && Probe();

    private static bool Probe()
    {
        try
        {
            return ClockGetTime(ThreadCpuTimeClock, out _) == 0;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    /// <summary>Now, in nanoseconds from an arbitrary start: only differences on one thread mean anything.</summary>
    public static long Now()
    {
        if (MeasuresCpu && ClockGetTime(ThreadCpuTimeClock, out TimeSpec time) == 0)
        {
            return (time.Seconds * 1_000_000_000) + time.Nanoseconds;
        }

        return (long)(Stopwatch.GetTimestamp() * (1_000_000_000.0 / Stopwatch.Frequency));
    }
}
