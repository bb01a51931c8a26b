using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Microsoft.Win32.SafeHandles;

namespace SharedLog.Storage.ObjectStore;

/// <summary>Settings of the local-directory object store (the embedded default).</summary>
public sealed class LocalObjectStoreOptions
{
    public string RootDirectory { get; set; } = string.Empty;

    /// <summary>
    /// Write object files with direct I/O (Linux O_DIRECT) where the file system takes it: an object is
    /// written once and read back rarely, so copying it into the page cache only costs CPU and evicts
    /// what readers use. Reads into sector-aligned memory are direct too (see <see cref="LocalDirectoryObjectStore.GetRangeAsync"/>).
    /// </summary>
    public bool DirectIo { get; set; } = true;

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(RootDirectory))
        {
            throw new ArgumentException("The local object store needs a root directory.");
        }
    }
}

/// <summary>
/// Objects as files under a root directory. A PUT writes a temporary file beside the target, flushes it
/// to disk, renames it over the target (atomic on POSIX) and flushes the directory, so a crash leaves
/// either the old object or the new one, never a torn one. Temporary files are never listed.
/// </summary>
public sealed class LocalDirectoryObjectStore : IObjectStore
{
    private const string TempSuffix = ".sharedlog-tmp";

    // Direct writes go through an aligned chunk of this size; a few chunks are kept for the next PUTs.
    private const int DirectChunkBytes = 4 * 1024 * 1024;
    private const int MaxPooledDirectChunks = 4;

    /// <summary>Bytes per direct write of an object whose writing is spread out (see <see cref="PutAsync(string, ReadOnlySequence{byte}, WriteSpread, CancellationToken)"/>).</summary>
    public const int PacedChunkBytes = 64 * 1024;

    private readonly string _root;
    private readonly TimeProvider _time;
    private readonly ConcurrentBag<AlignedBuffer> _directChunks = [];

    /// <param name="time">The clock of spread writes' schedules; the system's unless a test drives it.</param>
    public LocalDirectoryObjectStore(LocalObjectStoreOptions options, TimeProvider? time = null)
    {
        options.Validate();
        _time = time ?? TimeProvider.System;
        _root = Path.GetFullPath(options.RootDirectory);
        Directory.CreateDirectory(_root);
        RemoveAbandonedTemporaryFiles();
        if (options.DirectIo)
        {
            UsesDirectIo = Storage.DirectIo.Probe(Path.Combine(_root, "direct-probe" + TempSuffix), out string? refusal);
            DirectIoRefusal = refusal;
        }
        else
        {
            DirectIoRefusal = "turned off in the options";
        }
    }

    /// <summary>Whether object files are written with direct I/O (see <see cref="LocalObjectStoreOptions.DirectIo"/>).</summary>
    public bool UsesDirectIo { get; }

    /// <summary>Why object files are written through the page cache, when they are.</summary>
    public string? DirectIoRefusal { get; }

    /// <summary>Maps a key to its file, refusing keys that could escape the root.</summary>
    private string PathOf(string key)
    {
        if (string.IsNullOrEmpty(key) || key.StartsWith('/') || key.EndsWith('/') || key.Contains('\\', StringComparison.Ordinal) || key.EndsWith(TempSuffix, StringComparison.Ordinal))
        {
            throw new ArgumentException($"Object key '{key}' is not valid.", nameof(key));
        }

        foreach (string segment in key.Split('/'))
        {
            if (segment.Length == 0 || segment is "." or "..")
            {
                throw new ArgumentException($"Object key '{key}' has an empty or relative segment.", nameof(key));
            }
        }

        return Path.Combine(_root, key.Replace('/', Path.DirectorySeparatorChar));
    }

    public Task PutAsync(string key, ReadOnlySequence<byte> data, CancellationToken cancellationToken = default) =>
        PutAsync(key, data, WriteSpread.None, cancellationToken);

    /// <summary>
    /// As <see cref="PutAsync(string, ReadOnlySequence{byte}, CancellationToken)"/>. With direct I/O and a
    /// <paramref name="spread"/> that paces, the file is written <see cref="PacedChunkBytes"/> at a time on a schedule that
    /// ends about <see cref="WriteSpread.Over"/> after the start: a synchronous WAL write on the same disk then waits behind
    /// one small piece, and the cache flush that ends it carries little besides its own bytes, instead of a whole object
    /// written in one burst just before it. Once <see cref="WriteSpread.Hurry"/> is cancelled the rest goes at full speed.
    /// </summary>
    public async Task PutAsync(string key, ReadOnlySequence<byte> data, WriteSpread spread, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        string path = PathOf(key);
        string directory = Path.GetDirectoryName(path)!;
        // The object is the partition's only copy once its WAL entries are trimmed: its new directories must outlive a crash too.
        FileDurability.CreateDirectoryDurably(directory);
        string temp = path + "." + Guid.NewGuid().ToString("N") + TempSuffix;
        try
        {
            // File writes and fsync block a thread whatever the API (.NET has no asynchronous file I/O on
            // Linux), so they run here directly; one gather write (pwritev) takes the pieces as they are.
            using (SafeFileHandle file = File.OpenHandle(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                if (UsesDirectIo && data.Length >= Storage.DirectIo.SectorSize && await TryWriteDirectAsync(file, temp, data, spread, cancellationToken).ConfigureAwait(false))
                {
                    // Written from aligned chunks, past the page cache.
                }
                else if (data.IsSingleSegment)
                {
                    RandomAccess.Write(file, data.First.Span, 0);
                }
                else
                {
                    var pieces = new List<ReadOnlyMemory<byte>>();
                    foreach (ReadOnlyMemory<byte> piece in data)
                    {
                        pieces.Add(piece);
                    }

                    RandomAccess.Write(file, pieces, 0);
                }

                RandomAccess.FlushToDisk(file);
            }

            File.Move(temp, path, overwrite: true);
            FileDurability.FlushDirectory(directory);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    /// <summary>Temporary files older than this at start are left by a PUT that never finished (the process died).</summary>
    public static readonly TimeSpan AbandonedTemporaryAge = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Deletes temporary files of PUTs a crash interrupted: they are never listed, so nothing else would ever
    /// remove them. Recent ones are kept, in case another process writes under the same root.
    /// </summary>
    private void RemoveAbandonedTemporaryFiles()
    {
        DateTime cutoff = DateTime.UtcNow - AbandonedTemporaryAge;
        foreach (string file in Directory.EnumerateFiles(_root, "*" + TempSuffix, SearchOption.AllDirectories))
        {
            try
            {
                if (File.GetLastWriteTimeUtc(file) < cutoff)
                {
                    File.Delete(file);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Left for the next start; an unreadable leftover must not stop the broker.
            }
        }
    }

    /// <summary>
    /// Writes the object through a pooled, sector-aligned chunk with O_DIRECT (the tail sector padded, then the file cut
    /// to its length), on the schedule of <paramref name="spread"/> while it paces; false, with nothing written, when this
    /// file refuses O_DIRECT. Cancellation is seen while the schedule waits, not during writes.
    /// </summary>
    private async ValueTask<bool> TryWriteDirectAsync(SafeFileHandle file, string path, ReadOnlySequence<byte> data, WriteSpread spread, CancellationToken cancellationToken)
    {
        try
        {
            Storage.DirectIo.Enable(file, path);
        }
        catch (IOException)
        {
            return false;
        }

        bool paced = spread.IsPaced;
        int writeBytes = paced ? PacedChunkBytes : DirectChunkBytes;
        long started = _time.GetTimestamp();
        AlignedBuffer chunkBuffer = _directChunks.TryTake(out AlignedBuffer? pooled) ? pooled : new AlignedBuffer(DirectChunkBytes);
        try
        {
            long offset = 0;
            int filled = 0;
            foreach (ReadOnlyMemory<byte> piece in data)
            {
                ReadOnlyMemory<byte> rest = piece;
                while (!rest.IsEmpty)
                {
                    int take = Math.Min(rest.Length, writeBytes - filled);
                    rest.Span[..take].CopyTo(chunkBuffer.Span[filled..]);
                    filled += take;
                    rest = rest[take..];
                    if (filled == writeBytes)
                    {
                        RandomAccess.Write(file, chunkBuffer.Span[..filled], offset);
                        offset += filled;
                        filled = 0;
                        // Nothing to wait for after the last piece: the flush follows.
                        if (paced && offset < data.Length && !await KeepToScheduleAsync(started, spread, offset, data.Length, cancellationToken).ConfigureAwait(false))
                        {
                            // Hurried, or behind its schedule: the rest in whole chunks, as an unpaced PUT (nothing is pending in the chunk now).
                            paced = false;
                            writeBytes = DirectChunkBytes;
                        }
                    }
                }
            }

            if (filled > 0)
            {
                int padded = (int)Storage.DirectIo.AlignUp(filled);
                chunkBuffer.Span[filled..padded].Clear();
                RandomAccess.Write(file, chunkBuffer.Span[..padded], offset);
                if (padded != filled)
                {
                    RandomAccess.SetLength(file, offset + filled);
                }
            }

            return true;
        }
        finally
        {
            if (_directChunks.Count < MaxPooledDirectChunks)
            {
                _directChunks.Add(chunkBuffer);
            }
            else
            {
                chunkBuffer.Dispose();
            }
        }
    }

    /// <summary>
    /// Waits while the <paramref name="written"/> bytes are a millisecond or more ahead of their share of the spread;
    /// false once the spread is hurried or used up (a disk slower than the schedule: the rest goes at its speed).
    /// </summary>
    private async ValueTask<bool> KeepToScheduleAsync(long started, WriteSpread spread, long written, long total, CancellationToken cancellationToken)
    {
        TimeSpan elapsed = _time.GetElapsedTime(started);
        if (spread.Hurry.IsCancellationRequested || elapsed >= spread.Over)
        {
            return false;
        }

        TimeSpan ahead = (spread.Over * ((double)written / total)) - elapsed;
        if (ahead < TimeSpan.FromMilliseconds(1))
        {
            return true;
        }

        using var waiting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, spread.Hurry);
        try
        {
            await Task.Delay(ahead, _time, waiting.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>Sector-aligned ranged reads bypass the page cache when objects are written with direct I/O.</summary>
    public int DirectReadAlignment => UsesDirectIo ? Storage.DirectIo.SectorSize : 0;

    public async Task<int> GetRangeAsync(string key, long offset, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        using SafeFileHandle handle = Open(key);

        // Held through every read: a direct read needs the destination to stay at the address that was checked.
        using System.Buffers.MemoryHandle pinned = destination.Pin();

        // Objects are written past the page cache, so a buffered read goes to the disk anyway and then costs a
        // kernel copy into memory the reader has just allocated; a direct read lands in that memory at once.
        bool direct = UsesDirectIo && IsSectorAligned(offset, destination.Length, pinned) && TryEnableDirect(handle, key);
        int total = 0;
        while (total < destination.Length)
        {
            int read = await RandomAccess.ReadAsync(handle, destination[total..], offset + total, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                break;
            }

            total += read;
            if (direct && read % Storage.DirectIo.SectorSize != 0)
            {
                // Only the end of the object cuts a direct read off mid-sector (and the next offset could not be read direct).
                break;
            }
        }

        return total;
    }

    private static unsafe bool IsSectorAligned(long offset, int length, System.Buffers.MemoryHandle pinned)
    {
        const int Sector = Storage.DirectIo.SectorSize;
        return offset % Sector == 0 && length % Sector == 0 && length > 0 && (nint)pinned.Pointer % Sector == 0;
    }

    private bool TryEnableDirect(SafeFileHandle handle, string key)
    {
        try
        {
            Storage.DirectIo.Enable(handle, PathOf(key));
            return true;
        }
        catch (IOException)
        {
            // The probe at start said yes; if this file says no, the buffered read is still right.
            return false;
        }
    }

    public async Task<byte[]> GetAsync(string key, CancellationToken cancellationToken = default)
    {
        using SafeFileHandle handle = Open(key);
        byte[] data = GC.AllocateUninitializedArray<byte>(checked((int)RandomAccess.GetLength(handle)));
        int total = 0;
        while (total < data.Length)
        {
            int read = await RandomAccess.ReadAsync(handle, data.AsMemory(total), total, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new IOException($"Object '{key}' shrank while being read.");
            }

            total += read;
        }

        return data;
    }

    private SafeFileHandle Open(string key)
    {
        try
        {
            return File.OpenHandle(PathOf(key), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, FileOptions.Asynchronous);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ObjectNotFoundException(key);
        }
    }

    public Task<ObjectInfo?> HeadAsync(string key, CancellationToken cancellationToken = default)
    {
        var file = new FileInfo(PathOf(key));
        return Task.FromResult(file.Exists ? new ObjectInfo(key, file.Length, file.LastWriteTimeUtc) : null);
    }

    public async IAsyncEnumerable<ObjectInfo> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var found = new List<ObjectInfo>();
        foreach (string file in Directory.EnumerateFiles(_root, "*", SearchOption.AllDirectories))
        {
            if (file.EndsWith(TempSuffix, StringComparison.Ordinal))
            {
                continue;
            }

            string key = Path.GetRelativePath(_root, file).Replace(Path.DirectorySeparatorChar, '/');
            if (key.StartsWith(prefix, StringComparison.Ordinal))
            {
                var info = new FileInfo(file);
                found.Add(new ObjectInfo(key, info.Length, info.LastWriteTimeUtc));
            }
        }

        found.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
        foreach (ObjectInfo info in found)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return info;
        }

        await Task.CompletedTask.ConfigureAwait(false);
    }

    public Task DeleteAsync(IReadOnlyCollection<string> keys, CancellationToken cancellationToken = default)
    {
        foreach (string key in keys)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                File.Delete(PathOf(key));
            }
            catch (DirectoryNotFoundException)
            {
                // Deleting what is not there is not an error, as in S3.
            }
        }

        return Task.CompletedTask;
    }
}
