namespace SharedLog.Contracts.Tests;

/// <summary>
/// A theory over data in ../shared/&lt;folder&gt; (beside the repository). Without the folder it is
/// reported as skipped with one clear line, so it is not counted as passed; under CI (CI=true) it runs
/// and its own check fails on the missing folder (DESIGN §5).
/// </summary>
public sealed class SharedDataTheoryAttribute : TheoryAttribute
{
    public SharedDataTheoryAttribute(string folder)
    {
        bool isCi = string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);
        string? path = FindShared(folder);
        if (path is null && !isCi)
        {
            Skip = $"shared data missing: ../shared/{folder} not found (required when CI=true)";
        }
    }

    private static string? FindShared(string folder)
    {
        for (DirectoryInfo? dir = new(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SharedLogBroker.sln")))
            {
                string candidate = Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", folder));
                return Directory.Exists(candidate) ? candidate : null;
            }
        }

        return null;
    }
}
