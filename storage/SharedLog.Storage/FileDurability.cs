using System.Runtime.InteropServices;

namespace SharedLog.Storage;

/// <summary>fsync of a directory, so a file created or renamed in it survives a crash (files themselves: <see cref="RandomAccess.FlushToDisk"/>).</summary>
public static partial class FileDurability
{
    /// <summary>Makes a create or rename in <paramref name="directory"/> durable (Linux; .NET cannot open directories, so via libc).</summary>
    public static void FlushDirectory(string directory)
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        const int ReadOnlyDirectory = 0x10000; // O_RDONLY | O_DIRECTORY
        int fd = OpenDirectory(directory, ReadOnlyDirectory);
        if (fd < 0)
        {
            throw new IOException($"Cannot open directory {directory} to flush it (errno {Marshal.GetLastPInvokeError()}).");
        }

        try
        {
            if (Fsync(fd) != 0)
            {
                throw new IOException($"fsync of directory {directory} failed (errno {Marshal.GetLastPInvokeError()}).");
            }
        }
        finally
        {
            _ = Close(fd);
        }
    }

    /// <summary>
    /// Creates <paramref name="directory"/> and any missing parents, and makes each new entry durable in its parent, so a
    /// file later flushed in it is not lost with its directory in a power cut (a file's fsync covers its own entry's
    /// directory only when that directory is flushed too).
    /// </summary>
    public static void CreateDirectoryDurably(string directory)
    {
        if (Directory.Exists(directory))
        {
            return;
        }

        var missing = new Stack<string>();
        for (string? at = Path.GetFullPath(directory); at is not null && !Directory.Exists(at); at = Path.GetDirectoryName(at))
        {
            missing.Push(at);
        }

        Directory.CreateDirectory(directory);
        foreach (string created in missing)
        {
            FlushDirectory(Path.GetDirectoryName(created)!);
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenDirectory(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
