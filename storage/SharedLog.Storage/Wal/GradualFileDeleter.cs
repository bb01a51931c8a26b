using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Win32.SafeHandles;

namespace SharedLog.Storage.Wal;

/// <summary>
/// Deletes WAL segment files a slice at a time in the background. Unlinking a whole 1 GiB segment took ext4 about 440 ms of
/// journal work on the benchmark machine, and log writes that needed the journal meanwhile waited up to about 100 ms: a
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
    private readonly Task _worker;
    private int _pending;

    /// <param name="onFailure">Told when a file could not be deleted (it is left in place with its suffix).</param>
    public GradualFileDeleter(Action<string, Exception> onFailure)
    {
        _onFailure = onFailure;
        _worker = Task.Run(RunAsync);
    }

    /// <summary>Files handed over and not yet deleted.</summary>
    public int Pending => Volatile.Read(ref _pending);

    /// <summary>Moves <paramref name="path"/> out of the way now (a new file of that name may be created at once) and deletes it later; a missing file is ignored.</summary>
    public void Delete(string path)
    {
        string doomed = path + Suffix;
        try
        {
            File.Move(path, doomed, overwrite: true);
        }
        catch (FileNotFoundException)
        {
            return;
        }

        Enqueue(doomed);
    }

    /// <summary>Deletes the files in <paramref name="directory"/> that an earlier run handed over and did not finish.</summary>
    public void DeleteLeftovers(string directory, string namePrefix)
    {
        foreach (string leftover in Directory.EnumerateFiles(directory, namePrefix + "*" + Suffix))
        {
            Enqueue(leftover);
        }
    }

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
                    _onFailure(doomed, e);
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

    private static async Task CutAndDeleteAsync(string doomed, CancellationToken cancellationToken)
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
                TimeSpan took = Stopwatch.GetElapsedTime(started);
                await Task.Delay(took * PauseFactor > MinimumPause ? took * PauseFactor : MinimumPause, cancellationToken).ConfigureAwait(false);
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
