namespace SharedLog.Storage.Tests;

/// <summary>
/// Directory creation for files that must survive a crash. What the flushes buy (entries kept through a power cut) is
/// not observable from a test; these check that the directories are made, and that failures surface.
/// </summary>
public sealed class FileDurabilityTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "sharedlog-durability-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Fact]
    public void MissingParentsAreCreatedAndAnExistingDirectoryIsLeftAsItIs()
    {
        string nested = Path.Combine(_root, "a", "b", "c");
        FileDurability.CreateDirectoryDurably(nested);
        Assert.True(Directory.Exists(nested));

        File.WriteAllText(Path.Combine(nested, "kept"), "x");
        FileDurability.CreateDirectoryDurably(nested);
        FileDurability.CreateDirectoryDurably(Path.Combine(_root, "a", "other"));
        Assert.Equal("x", File.ReadAllText(Path.Combine(nested, "kept")));
        Assert.True(Directory.Exists(Path.Combine(_root, "a", "other")));
    }

    [Fact]
    public void AFileWhereADirectoryBelongsIsAnError()
    {
        Directory.CreateDirectory(_root);
        File.WriteAllText(Path.Combine(_root, "file"), "x");
        Assert.ThrowsAny<IOException>(() => FileDurability.CreateDirectoryDurably(Path.Combine(_root, "file", "below")));
    }
}
