namespace SharedLog.Storage;

/// <summary>
/// An exclusive lock on a broker's data directory (a <c>.lock</c> file held open without sharing, as Kafka holds one in
/// each log directory), so a second broker process started on the same directory stops at once instead of opening the
/// WAL and metadata the first one writes, raising every partition's leader epoch under it and trimming its WAL.
/// </summary>
public sealed class DataDirectoryLock : IDisposable
{
    public const string FileName = ".lock";

    private readonly List<FileStream> _held;

    private DataDirectoryLock(List<FileStream> held) => _held = held;

    /// <summary>Locks every directory (created if missing); throws <see cref="DataDirectoryInUseException"/> when another process holds one.</summary>
    public static DataDirectoryLock Acquire(IEnumerable<string> directories)
    {
        var held = new List<FileStream>();
        try
        {
            foreach (string directory in directories.Select(Path.GetFullPath).Distinct(StringComparer.Ordinal))
            {
                Directory.CreateDirectory(directory);
                string path = Path.Combine(directory, FileName);
                try
                {
                    // FileShare.None: on Linux .NET takes an exclusive advisory lock (flock), released when the file closes,
                    // also when the process dies.
                    held.Add(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
                }
                catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
                {
                    throw new DataDirectoryInUseException(
                        $"The directory {directory} is in use by another broker process (it holds {path}). Stop that broker first, or give this one its own --data-dir.", e);
                }
            }

            return new DataDirectoryLock(held);
        }
        catch
        {
            held.ForEach(stream => stream.Dispose());
            throw;
        }
    }

    public void Dispose() => _held.ForEach(stream => stream.Dispose());
}

/// <summary>The data directory is locked by another broker process.</summary>
public sealed class DataDirectoryInUseException(string message, Exception inner) : IOException(message, inner);
