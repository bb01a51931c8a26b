using System.Diagnostics;

namespace SharedLog.Storage.Tests;

/// <summary>Waiting on a condition with a deadline, for work a test started in the background.</summary>
internal static class Wait
{
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    public static void Until(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < Deadline, $"Timed out waiting until {what}.");
            Thread.Yield();
        }
    }
}
