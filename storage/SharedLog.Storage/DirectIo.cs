using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace SharedLog.Storage;

/// <summary>
/// Linux direct I/O (O_DIRECT) for files the broker writes once and does not read back soon (WAL pages,
/// object files): the bytes go from an aligned user buffer to the disk without a copy into the page
/// cache. .NET has no open option for it, so a handle is opened normally and switched with fcntl.
/// Offsets, lengths and buffer addresses must all be multiples of <see cref="SectorSize"/>.
/// </summary>
public static partial class DirectIo
{
    /// <summary>Alignment of direct writes and reads; covers 512-byte and 4 KiB logical sectors.</summary>
    public const int SectorSize = 4096;

    private const int GetStatusFlags = 3;
    private const int SetStatusFlags = 4;

    /// <summary>Linux's O_DIRECT on this architecture; 0 where direct I/O is not used.</summary>
    public static int OpenFlag => !OperatingSystem.IsLinux() ? 0 : RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 0x4000,
        Architecture.Arm64 => 0x10000,
        _ => 0,
    };

    /// <summary>Why direct I/O cannot be used on this platform at all, or null when it may be (the file system can still refuse).</summary>
    public static string? PlatformRefusal => OpenFlag != 0
        ? null
        : $"direct I/O is only used on Linux x64 and arm64, not {RuntimeInformation.OSDescription} {RuntimeInformation.ProcessArchitecture}";

    /// <summary>Switches an open file to O_DIRECT; an <see cref="IOException"/> (with errno) when the file system refuses.</summary>
    public static void Enable(SafeFileHandle handle, string path)
    {
        int directFlag = OpenFlag;
        if (directFlag == 0)
        {
            throw new IOException(PlatformRefusal);
        }

        int fd = (int)handle.DangerousGetHandle();
        int flags = Fcntl(fd, GetStatusFlags, 0);
        if (flags < 0 || Fcntl(fd, SetStatusFlags, flags | directFlag) < 0)
        {
            throw new IOException($"O_DIRECT refused for {path} (errno {Marshal.GetLastPInvokeError()})");
        }
    }

    /// <summary>
    /// Whether files in the directory of <paramref name="scratchPath"/> take direct writes: opens that
    /// scratch file, switches it to O_DIRECT, writes one aligned sector and deletes it. tmpfs and some
    /// overlay file systems refuse, at the fcntl or at the write.
    /// </summary>
    public static bool Probe(string scratchPath, out string? refusal)
    {
        refusal = PlatformRefusal;
        if (refusal is not null)
        {
            return false;
        }

        try
        {
            using SafeFileHandle handle = File.OpenHandle(scratchPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite);
            Enable(handle, scratchPath);
            using var sector = new AlignedBuffer(SectorSize);
            sector.Span.Clear();
            RandomAccess.Write(handle, sector.Span, 0);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DllNotFoundException or EntryPointNotFoundException)
        {
            refusal = e.Message;
            return false;
        }
        finally
        {
            File.Delete(scratchPath);
        }
    }

    /// <summary>Rounds up to a whole number of sectors.</summary>
    public static long AlignUp(long length) => (length + SectorSize - 1) & ~(long)(SectorSize - 1);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(int fd, int command, int argument);
}
