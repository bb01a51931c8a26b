using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace SharedLog.Storage;

/// <summary>fsync of files and directories, for the few places that create files that must survive a crash.</summary>
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

    /// <summary>Makes a file's data and size durable.</summary>
    public static void FlushFile(SafeFileHandle file, string path)
    {
        if (OperatingSystem.IsLinux() && Fsync((int)file.DangerousGetHandle()) != 0)
        {
            throw new IOException($"fsync of {path} failed (errno {Marshal.GetLastPInvokeError()}).");
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenDirectory(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
