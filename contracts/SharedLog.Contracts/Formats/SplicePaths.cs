using System.Numerics;

namespace SharedLog.Contracts.Formats;

/// <summary>The name a privacy splice stands at in a payload (a JSON member, an Avro field), compared with one level of a path.</summary>
internal interface ISpliceName
{
    bool Is(string pathName);
}

/// <summary>
/// The changed paths a privacy splice still follows while it walks a payload (JSON and Avro alike): one
/// bit per path of the rewrite, narrowed at every member to the paths that name it. A rewrite with more
/// paths than bits is re-encoded whole instead.
/// </summary>
internal static class SplicePaths
{
    public const int Max = 64;

    /// <summary>Every path of a rewrite with <paramref name="count"/> paths (at most <see cref="Max"/>).</summary>
    public static ulong All(int count) => count >= Max ? ulong.MaxValue : (1UL << count) - 1;

    /// <summary>
    /// The live paths whose name at <paramref name="level"/> is <paramref name="name"/>; <paramref name="leaf"/>
    /// says whether one of them ends there (its value is the one to rewrite).
    /// </summary>
    public static ulong Matching<TName>(ulong live, IReadOnlyList<string[]> paths, int level, ref TName name, out bool leaf)
        where TName : ISpliceName, allows ref struct
    {
        ulong matched = 0;
        leaf = false;
        for (ulong bits = live; bits != 0; bits &= bits - 1)
        {
            string[] path = paths[BitOperations.TrailingZeroCount(bits)];
            if (path.Length > level && name.Is(path[level]))
            {
                matched |= bits & (~bits + 1);
                leaf |= path.Length == level + 1;
            }
        }

        return matched;
    }

    /// <summary>The name at <paramref name="level"/> of the first path in <paramref name="matched"/>.</summary>
    public static string NameAt(ulong matched, IReadOnlyList<string[]> paths, int level) => paths[BitOperations.TrailingZeroCount(matched)][level];
}
