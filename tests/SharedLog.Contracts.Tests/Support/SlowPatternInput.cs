using System.Diagnostics;
using System.Text.RegularExpressions;

namespace SharedLog.Contracts.Tests;

/// <summary>Inputs on which a backtracking pattern is slow but within its per-match timeout, found on the machine running the tests.</summary>
internal static class SlowPatternInput
{
    /// <summary>
    /// A string on which the failing match of <paramref name="pattern"/> (backtracking, as the fallback runs it) takes a few
    /// milliseconds on this machine: well under the 100 ms a single match may take, so only a total can refuse it.
    /// </summary>
    public static string For(string pattern)
    {
        var unbounded = new Regex(pattern, RegexOptions.ECMAScript | RegexOptions.CultureInvariant);
        for (int length = 12; length <= 40; length++)
        {
            string input = new string('a', length) + "!";
            long started = Stopwatch.GetTimestamp();
            Assert.DoesNotMatch(unbounded, input);
            if (Stopwatch.GetElapsedTime(started) >= TimeSpan.FromMilliseconds(4))
            {
                return input;
            }
        }

        throw new InvalidOperationException($"no input up to 40 characters makes '{pattern}' take 4 ms");
    }
}
