using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Win32.SafeHandles;

namespace SharedLog.Storage.Wal;

/// <summary>
/// Deletes WAL segment files a slice at a time in the background. Unlinking a whole 1 GiB segment took ext4 about 440 ms of
/// journal work on the benchmark machine, and produces meanwhile waited up to a few hundred milliseconds (p999): a
/// produce stall once per segment (bench/RESULTS.md, stop 37). A file to delete is renamed out of the log's way at once,
/// then cut down by <see cref="SliceBytes"/> at a time, pausing after each cut a few times as long as the cut took, and
/// unlinked once empty. Files a stop left half cut keep their suffix and are deleted after the next start.
/// </summary>
public sealed class GradualFileDeleter : IDisposable
{
    /// <summary>Added to a file's name when it is handed over for deletion.</summary>
    public const string Suffix = ".deleting";

    /// <summary>Bytes freed per cut: about 3.5 ms of ext4 work at the measured rate of 1 GiB in 440 ms.</summary>
    public const long SliceBytes = 8L << 20;

    private const int PauseFactor = 3;
    private static readonly TimeSpan MinimumPause = TimeSpan.FromMilliseconds(5);

    private readonly Channel<string> _queue = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _stop = new();
    private readonly Action<string, Exception> _onFailure;
    private int _pending;

    /// <param name="onFailure">Told when a file could not be deleted at all (it is left in place, for the next start when it has the suffix).</param>
    public GradualFileDeleter(Action<string, Exception> onFailure)
    {
        _onFailure = onFailure;
        // Runs until Dispose; it catches its own failures, so nothing waits on it.
        _ = Task.Run(RunAsync);
    }

    /// <summary>Files handed over and not yet deleted.</summary>
    public int Pending => Volatile.Read(ref _pending);

    /// <summary>
    /// Moves <paramref name="path"/> out of the way now (a new file of that name may be created at once) and deletes it
    /// later; a missing file is ignored. Never throws: the caller is the log's truncation, which must not fail. When the
    /// file cannot be moved (a full directory, a read-only file system) it is unlinked at once, and a failure of that is
    /// reported.
    /// </summary>
    public void Delete(string path)
    {
        try
        {
            // FASTER asks again for segments a restart no longer has: a stat, not an exception, answers those.
            if (!File.Exists(path))
            {
                return;
            }

            // A name never in use, so no file queued earlier is replaced (and so freed at once) by the move.
            string doomed = path + Suffix;
            if (File.Exists(doomed))
            {
                doomed = $"{path}.{Guid.NewGuid():N}{Suffix}";
            }

            File.Move(path, doomed, overwrite: false);
            Enqueue(doomed);
        }
        catch (FileNotFoundException)
        {
            // Deleted meanwhile.
        }
        catch (Exception e)
        {
            DeleteAtOnce(path, e);
        }
    }

    /// <summary>Deletes the files in <paramref name="directory"/> that an earlier run handed over and did not finish.</summary>
    public void DeleteLeftovers(string directory, string namePrefix)
    {
        foreach (string leftover in Leftovers(directory, namePrefix))
        {
            Enqueue(leftover);
        }
    }

    /// <summary>Files named by an earlier run for deletion, for a log that does not delete gradually (FASTER's own device).</summary>
    public static IEnumerable<string> Leftovers(string directory, string namePrefix) =>
        Directory.Exists(directory) ? Directory.EnumerateFiles(directory, namePrefix + "*" + Suffix) : [];

    private void Enqueue(string doomed)
    {
        Interlocked.Increment(ref _pending);
        if (!_queue.Writer.TryWrite(doomed))
        {
            // Disposed: the file keeps its suffix and goes after the next start.
            Interlocked.Decrement(ref _pending);
        }
    }

    private async Task RunAsync()
    {
        try
        {
            await foreach (string doomed in _queue.Reader.ReadAllAsync(_stop.Token).ConfigureAwait(false))
            {
                try
                {
                    await CutAndDeleteAsync(doomed, _stop.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    DeleteAtOnce(doomed, e);
                }
                finally
                {
                    Interlocked.Decrement(ref _pending);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping: what is left is deleted after the next start.
        }
    }

    /// <summary>After the gradual way failed: space matters more than a stall.</summary>
    private void DeleteAtOnce(string path, Exception cause)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e)
        {
            Report(path, new AggregateException(cause, e));
        }
    }

    private void Report(string path, Exception e)
    {
        try
        {
            _onFailure(path, e);
        }
        catch
        {
            // A failing logger must not end the worker.
        }
    }

    private async Task CutAndDeleteAsync(string doomed, CancellationToken cancellationToken)
    {
        SafeFileHandle file;
        try
        {
            file = File.OpenHandle(doomed, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (FileNotFoundException)
        {
            return;
        }

        using (file)
        {
            long length = RandomAccess.GetLength(file);
            while (length > 0)
            {
                long started = Stopwatch.GetTimestamp();
                length = Math.Max(0, length - SliceBytes);
                RandomAccess.SetLength(file, length);
                // With more files waiting (a trim after an upload stall freed many segments) space comes first.
                TimeSpan pause = Pending > 1 ? MinimumPause : Stopwatch.GetElapsedTime(started) * PauseFactor;
                await Task.Delay(pause > MinimumPause ? pause : MinimumPause, cancellationToken).ConfigureAwait(false);
            }
        }

        File.Delete(doomed);
    }

    /// <summary>Stops at once; files not yet deleted keep their suffix (see <see cref="DeleteLeftovers"/>).</summary>
    public void Dispose()
    {
        _queue.Writer.TryComplete();
        _stop.Cancel();
    }
}
