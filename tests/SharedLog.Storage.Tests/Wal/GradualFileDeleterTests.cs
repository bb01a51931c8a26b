using SharedLog.Storage.Wal;

namespace SharedLog.Storage.Tests.Wal;

public sealed class GradualFileDeleterTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sharedlog-deleter-" + Guid.NewGuid().ToString("N"));

    public GradualFileDeleterTests() => Directory.CreateDirectory(_directory);

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string NewFile(string name, long bytes)
    {
        string path = Path.Combine(_directory, name);
        using FileStream file = File.Create(path);
        byte[] block = new byte[1 << 20];
        Array.Fill(block, (byte)7);
        for (long written = 0; written < bytes; written += block.Length)
        {
            file.Write(block, 0, (int)Math.Min(block.Length, bytes - written));
        }

        return path;
    }

    [Fact]
    public void AFileIsMovedAsideAtOnceAndDeletedInSlicesLater()
    {
        var failures = new List<Exception>();
        using var deleter = new GradualFileDeleter((_, e) => failures.Add(e));
        string path = NewFile("log.0", (3 * GradualFileDeleter.SliceBytes) + 4096);

        deleter.Delete(path);

        // The name is free at once, for a new segment of the same number.
        Assert.False(File.Exists(path));
        File.WriteAllBytes(path, [1, 2, 3]);
        Wait.Until(() => deleter.Pending == 0 && !File.Exists(path + GradualFileDeleter.Suffix), "the moved file is deleted");
        Assert.Equal([1, 2, 3], File.ReadAllBytes(path));
        Assert.Empty(failures);
    }

    [Fact]
    public void FilesLeftHalfCutByAnEarlierRunAreDeletedAndOthersAreLeftAlone()
    {
        using var deleter = new GradualFileDeleter((_, _) => { });
        string leftover = NewFile("log.3" + GradualFileDeleter.Suffix, GradualFileDeleter.SliceBytes + 1);
        string otherLog = NewFile("other.3" + GradualFileDeleter.Suffix, 10);
        string live = NewFile("log.4", 10);

        deleter.DeleteLeftovers(_directory, "log.");

        Wait.Until(() => deleter.Pending == 0 && !File.Exists(leftover), "the leftover is deleted");
        Assert.True(File.Exists(otherLog));
        Assert.True(File.Exists(live));

        // A file already gone is not an error.
        deleter.Delete(Path.Combine(_directory, "log.9"));
        Assert.Equal(0, deleter.Pending);
    }

    [Fact]
    public void ASecondFileOfTheSameNameQueuedWhileTheFirstIsStillThereGetsItsOwnName()
    {
        using var deleter = new GradualFileDeleter((_, _) => { });
        string path = Path.Combine(_directory, "log.6");
        string queued = NewFile("log.6" + GradualFileDeleter.Suffix, 10);
        File.WriteAllBytes(path, [9]);

        deleter.Delete(path);

        Assert.False(File.Exists(path));
        Wait.Until(() => deleter.Pending == 0 && Directory.GetFiles(_directory).Length == 1, "the second file is deleted under its own name");
        Assert.Equal(queued, Assert.Single(Directory.GetFiles(_directory)));
    }

    [Fact]
    public void AFileThatCannotBeMovedIsDeletedAtOnceWithoutAThrow()
    {
        var failures = new List<Exception>();
        using var deleter = new GradualFileDeleter((_, e) => failures.Add(e));

        // A name with no room for the suffix (NAME_MAX is 255 bytes): the move fails, the file is unlinked at once.
        string path = NewFile("log." + new string('8', 250), 10);
        deleter.Delete(path);

        Assert.False(File.Exists(path));
        Assert.Empty(Directory.GetFiles(_directory));
        Assert.Equal(0, deleter.Pending);
        Assert.Empty(failures);
    }

    [Fact]
    public void AFileHandedOverAfterDisposeKeepsItsSuffixForTheNextStart()
    {
        var deleter = new GradualFileDeleter((_, _) => { });
        deleter.Dispose();
        string path = NewFile("log.5", 10);

        deleter.Delete(path);

        Assert.True(File.Exists(path + GradualFileDeleter.Suffix));
        using var next = new GradualFileDeleter((_, _) => { });
        next.DeleteLeftovers(_directory, "log.");
        Wait.Until(() => !File.Exists(path + GradualFileDeleter.Suffix), "the next run deletes it");
    }
}
