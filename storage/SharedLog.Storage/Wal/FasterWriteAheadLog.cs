using System.Threading.Channels;
using FASTER.core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace SharedLog.Storage.Wal;

/// <summary>
/// <see cref="IWriteAheadLog"/> on one FasterLog. Appenders enqueue into the log's memory and wait for
/// the commit that covers them; a single committer loop issues commits, so every append that arrives
/// while a commit is in flight shares the next one (group commit). FasterLog's device writes are
/// write-through and a commit persists the commit point (in <see cref="SlotLogCommitManager"/>'s two
/// slots), so a completed append survives a crash; recovery restores the last commit point and drops
/// any torn tail after it. Appenders wait on one shared signal per commit, raised as soon as its commit point is
/// written (and after each commit the committer awaits), rather than each on FasterLog's own wait: the signal also
/// releases them when a commit cannot complete.
/// </summary>
public sealed partial class FasterWriteAheadLog : IWriteAheadLog
{
    private readonly WalOptions _options;
    private readonly ILogger _logger;
    private readonly FasterLogSettings _settings;
    private readonly FasterLog _log;
    private readonly SlotLogCommitManager _commitManager;
    /// <summary>This instance's log epoch, in every entry it writes and every commit point (see <see cref="WalTailScan"/>).</summary>
    private readonly long _epoch = Random.Shared.NextInt64(1, long.MaxValue);
    private readonly Channel<int> _commitRequests = Channel.CreateBounded<int>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    /// <summary>Cancelled when a commit point could not be written: FASTER then never completes that commit.</summary>
    private readonly CancellationTokenSource _commitPointFailed = new();
    private readonly Task _committer;
    /// <summary>Completed after the next commit, or at once when the WAL has failed.</summary>
    private TaskCompletionSource _nextCommitDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _pendingBytes;

    /// <summary>The highest address a written commit point covers (see <see cref="OnCommitPointWritten"/>).</summary>
    private long _commitPointUntil;
    private Exception? _failure;
    private int _disposed;

    public FasterWriteAheadLog(WalOptions options, ILogger<FasterWriteAheadLog>? logger = null)
    {
        options.Validate();
        _options = options;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        System.IO.Directory.CreateDirectory(options.Directory);
        _settings = new FasterLogSettings(options.Directory, deleteDirOnDispose: false)
        {
            PageSizeBits = options.PageSizeBits,
            MemorySizeBits = options.MemorySizeBits,
            SegmentSizeBits = options.SegmentSizeBits,
            LogChecksum = LogChecksumType.PerEntry,
            FastCommitMode = options.FastCommit,
            TryRecoverLatest = true,
            RemoveOutdatedCommits = true,
            AutoRefreshSafeTailAddress = false,
        };
        if (options.DirectIo)
        {
            UseDirectIo();
        }

        if (_settings.LogDevice is not DirectLogDevice)
        {
            // Segments an earlier run with direct I/O was deleting a slice at a time; FASTER's own device unlinks whole.
            foreach (string leftover in GradualFileDeleter.Leftovers(options.Directory, Path.GetFileName(_settings.LogDevice.FileName) + "."))
            {
                File.Delete(leftover);
            }
        }

        // Commit slots bypass the page cache only where the log device's probe showed direct writes work.
        _commitManager = SlotLogCommitManager.Open(options.Directory, UsesDirectIo);

        // Commits may skip their commit-point write only where log writes land in address order (the direct device), and
        // not in fast commit mode, whose commit records in the log the tail scan does not read. Elsewhere commit points
        // carry no epoch, and the next start does not scan past them.
        bool skipsCommitPoints = _settings.LogDevice is DirectLogDevice && !options.FastCommit && options.CommitPointInterval > TimeSpan.Zero;
        _commitManager.Epoch = skipsCommitPoints ? _epoch : 0;
        _commitManager.CommitFailed = OnCommitWriteFailed;
        _commitManager.Committed = OnCommitPointWritten;
        _settings.LogCommitManager = _commitManager;
        try
        {
            RecoverPastCommitPoint();
            _log = new FasterLog(_settings);
        }
        catch
        {
            _commitManager.Dispose();
            throw;
        }

        try
        {
            CheckRecovered();
        }
        catch
        {
            _log.Dispose();
            _commitManager.Dispose();
            throw;
        }

        if (skipsCommitPoints)
        {
            ((DirectLogDevice)_settings.LogDevice).OrderWritesFrom(_log.FlushedUntilAddress);
            _commitManager.CommitPointInterval = options.CommitPointInterval;
            _commitManager.CommitPointBytes = options.CommitPointBytes;
        }

        LogOpened(_logger, options.Directory, _log.BeginAddress, _log.CommittedUntilAddress, UsesDirectIo);
        _committer = Task.Run(CommitLoopAsync);
    }

    /// <summary>
    /// Refuses to open a WAL that recovered less than its commit points say it holds. FasterLog's recovery swallows its
    /// own failures and starts an empty log (its next appends then overwrite acknowledged entries, whose offsets are
    /// handed out again), and a lost or unreadable commit-slot file reads as a log never committed. Nothing acknowledged
    /// is lost only when no commit was ever written: a new WAL, or a crash during its first commit.
    /// </summary>
    private void CheckRecovered()
    {
        if (_commitManager.NewestCommitMetadata() is { } newest)
        {
            var claimed = new FasterLogRecoveryInfo();
            using (var reader = new BinaryReader(new MemoryStream(newest)))
            {
                claimed.Initialize(reader);
            }

            if (_log.CommittedUntilAddress < claimed.UntilAddress)
            {
                throw new InvalidDataException($"The WAL in {_options.Directory} did not recover: its newest commit point covers the log until {claimed.UntilAddress}, recovery reached {_log.CommittedUntilAddress}. Acknowledged entries would be overwritten; start refused (see the log above for FASTER's reason, and keep the directory for inspection).");
            }

            return;
        }

        if (SegmentsHoldData())
        {
            string? problem = !_commitManager.Existed
                ? $"its {SlotLogCommitManager.FileName} file is missing"
                : _commitManager.WrittenSlots() == 2 ? $"neither slot of its {SlotLogCommitManager.FileName} file checks out" : null;
            if (problem is not null)
            {
                throw new InvalidDataException($"The WAL in {_options.Directory} holds log data but {problem}: what was acknowledged cannot be told from what was not. Start refused; keep the directory for inspection.");
            }

            // One slot torn and the other never written: the first commit was cut short, so nothing was acknowledged.
            LogFirstCommitTorn(_logger, _options.Directory);
        }
    }

    /// <summary>
    /// Appends acknowledged after the newest commit point (commits in between write none) are in the segment files but
    /// not in what FasterLog recovers: finds them (<see cref="WalTailScan"/>) and writes a commit point covering them,
    /// before FasterLog opens and recovers to it. The new commit point carries this instance's epoch, so entries an
    /// earlier instance left past it are never taken for this one's.
    /// </summary>
    private void RecoverPastCommitPoint()
    {
        if (_commitManager.NewestCommit() is not { Epoch: not 0 } newest)
        {
            // No commit, or one written before epochs, when every commit wrote its commit point.
            return;
        }

        var info = new FasterLogRecoveryInfo();
        using (var reader = new BinaryReader(new MemoryStream(newest.Metadata)))
        {
            info.Initialize(reader);
        }

        using var scan = new WalTailScan(_settings.LogDevice.FileName, _options.PageSizeBits, _options.SegmentSizeBits, _options.MaxEntryBytes + WalEntryFormat.HeaderSize);
        (long end, int entries) = scan.FindEnd(info.UntilAddress, newest.Epoch);
        if (entries == 0)
        {
            return;
        }

        long committedUntil = info.UntilAddress;
        info.UntilAddress = end;
        info.CommitNum = newest.CommitNum + 1;
        _commitManager.Commit(info.BeginAddress, end, info.ToByteArray(), info.CommitNum, forceWriteMetadata: true);
        LogRecoveredPastCommitPoint(_logger, _options.Directory, entries, committedUntil, end);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "WAL in {Directory}: {Entries} entries found after the newest commit point ({CommitPoint} to {End}); a commit point now covers them")]
    private static partial void LogRecoveredPastCommitPoint(ILogger logger, string directory, int entries, long commitPoint, long end);

    /// <summary>Whether a log segment file holds anything but zeros (zero-fill ahead writes zeros past the tail).</summary>
    private bool SegmentsHoldData()
    {
        string prefix = Path.GetFileName(_settings.LogDevice.FileName);
        byte[] buffer = new byte[1 << 20];
        foreach (string segment in System.IO.Directory.EnumerateFiles(_options.Directory, prefix + ".*"))
        {
            if (segment.EndsWith(GradualFileDeleter.Suffix, StringComparison.Ordinal))
            {
                // A segment the log let go of, still being deleted.
                continue;
            }

            using FileStream file = File.OpenRead(segment);
            int read;
            while ((read = file.Read(buffer, 0, buffer.Length)) > 0)
            {
                if (buffer.AsSpan(0, read).ContainsAnyExcept((byte)0))
                {
                    return true;
                }
            }
        }

        return false;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "WAL in {Directory} has log data but no commit: its first commit was cut short, so none of it was acknowledged; it starts empty")]
    private static partial void LogFirstCommitTorn(ILogger logger, string directory);

    /// <summary>Swaps FASTER's buffered device for the direct-I/O one on the same segment files, where the file system allows it.</summary>
    private void UseDirectIo()
    {
        IDevice buffered = _settings.LogDevice;
        DirectLogDevice? direct = DirectLogDevice.TryCreate(
            buffered.FileName,
            out string? refusal,
            _options.ZeroFillAheadBytes,
            1L << _options.SegmentSizeBits,
            e => LogZeroFillStopped(_logger, _options.Directory, e.Message),
            (file, e) => LogSegmentDeleteFailed(_logger, file, e.Message));
        if (direct is null)
        {
            LogDirectIoRefused(_logger, _options.Directory, refusal ?? "unknown reason");
            return;
        }

        buffered.Dispose();
        _settings.LogDevice = direct;
        UsesDirectIo = true;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "WAL in {Directory} stopped writing zeros ahead of its tail ({Reason}); commits continue, each extending the segment file")]
    private static partial void LogZeroFillStopped(ILogger logger, string directory, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "WAL segment file {File} could not be deleted ({Reason})")]
    private static partial void LogSegmentDeleteFailed(ILogger logger, string file, string reason);

    /// <summary>How far the newest segment file is written (data or zeros), when direct I/O and zero-fill ahead are on.</summary>
    public (int Segment, long End)? ZeroFilled => (_settings.LogDevice as DirectLogDevice)?.ZeroFilled;

    /// <summary>Whether log pages are written with direct I/O (see <see cref="WalOptions.DirectIo"/>).</summary>
    public bool UsesDirectIo { get; private set; }

    [LoggerMessage(Level = LogLevel.Warning, Message = "WAL in {Directory} writes through the page cache: direct I/O is not available here ({Reason})")]
    private static partial void LogDirectIoRefused(ILogger logger, string directory, string reason);

    public long TrimPosition => _log.BeginAddress;

    public long DurablePosition => _log.CommittedUntilAddress;

    public int MaxEntryBytes => _options.MaxEntryBytes;

    public Exception? Failure => Volatile.Read(ref _failure);

    public async ValueTask<long> AppendAsync(long streamId, long baseOffset, int recordCount, ReadOnlyMemory<byte> batch, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (_failure is { } failure)
        {
            throw new WalUnavailableException("The WAL failed earlier and accepts no more appends.", failure);
        }

        if (batch.Length > _options.MaxEntryBytes)
        {
            throw new ArgumentException($"Batch of {batch.Length} bytes exceeds the WAL's maximum entry of {_options.MaxEntryBytes} bytes.", nameof(batch));
        }

        var entry = new WalEnqueueEntry(_epoch, streamId, baseOffset, recordCount, batch);
        long position = _log.Enqueue(entry);
        Interlocked.Add(ref _pendingBytes, entry.SerializedLength);
        _commitRequests.Writer.TryWrite(0);
        while (true)
        {
            // The signal is read before the durable address: a commit that has not raised it yet still will.
            Task committed = Volatile.Read(ref _nextCommitDone).Task;
            if (Math.Max(Volatile.Read(ref _commitPointUntil), _log.CommittedUntilAddress) > position)
            {
                return position;
            }

            if (_failure is { } failed)
            {
                throw new WalUnavailableException(failed is WalUnavailableException ? failed.Message : $"WAL commit failed: {failed.Message}", failed);
            }

            await (cancellationToken.CanBeCanceled ? committed.WaitAsync(cancellationToken) : committed).ConfigureAwait(false);
        }
    }

    /// <summary>Wakes every append waiting for a commit; each then finds itself durable, or waits for the next round.</summary>
    private void RaiseCommitDone() =>
        Interlocked.Exchange(ref _nextCommitDone, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    /// <summary>
    /// A commit point is durable up to <paramref name="untilAddress"/>: the appends it covers are woken at once, from
    /// FASTER's commit worker. (Waiting for FASTER's own commit task costs one more thread-pool hop per commit.)
    /// </summary>
    private void OnCommitPointWritten(long untilAddress)
    {
        long seen = Volatile.Read(ref _commitPointUntil);
        while (untilAddress > seen)
        {
            long found = Interlocked.CompareExchange(ref _commitPointUntil, untilAddress, seen);
            if (found == seen)
            {
                break;
            }

            seen = found;
        }

        RaiseCommitDone();
    }

    /// <summary>Records the WAL's first failure and releases every waiting append for good.</summary>
    private void Fail(Exception e)
    {
        Interlocked.CompareExchange(ref _failure, e, null);
        var released = new TaskCompletionSource();
        released.SetResult();
        Interlocked.Exchange(ref _nextCommitDone, released).TrySetResult();
    }

    /// <summary>
    /// A commit point could not be written (an I/O error on the commit-slot file). Appends waiting for that
    /// commit, and every later one, are refused: the broker answers them with a retriable storage error
    /// instead of leaving them waiting for a commit that will never come.
    /// </summary>
    private void OnCommitWriteFailed(Exception e)
    {
        LogCommitWriteFailed(_logger, _options.Directory, e);
        Fail(new WalUnavailableException("The WAL could not write its commit point and accepts no more appends.", e));
        try
        {
            _commitPointFailed.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The WAL closed meanwhile; nothing waits for a commit any more.
        }
    }

    [LoggerMessage(Level = LogLevel.Critical, Message = "WAL in {Directory} could not write a commit point; it accepts no more appends until the broker restarts")]
    private static partial void LogCommitWriteFailed(ILogger logger, string directory, Exception exception);

    /// <summary>
    /// A FasterLog commit, then the appends it made durable are woken. <paramref name="cancellationToken"/> must
    /// include <see cref="_commitPointFailed"/>'s: once a commit point could not be written this throws
    /// <see cref="WalUnavailableException"/>, as FASTER never completes that commit.
    /// </summary>
    private async Task CommitOrFailAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _log.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_commitPointFailed.IsCancellationRequested)
        {
            throw new WalUnavailableException("The WAL could not write its commit point and accepts no more appends.", _failure);
        }

        RaiseCommitDone();
    }

    /// <summary>The commit-slot manager, for fault injection in tests.</summary>
    internal SlotLogCommitManager CommitManager => _commitManager;

    private async Task CommitLoopAsync()
    {
        ChannelReader<int> requests = _commitRequests.Reader;
        try
        {
            CancellationToken failed = _commitPointFailed.Token;
            while (await requests.WaitToReadAsync(failed).ConfigureAwait(false))
            {
                requests.TryRead(out _);
                if (_options.GroupCommitDelay > TimeSpan.Zero && Interlocked.Read(ref _pendingBytes) < _options.GroupCommitBytes)
                {
                    // Let a small group grow; a large one is committed at once.
                    await Task.Delay(_options.GroupCommitDelay, failed).ConfigureAwait(false);
                }

                Interlocked.Exchange(ref _pendingBytes, 0);
                long started = System.Diagnostics.Stopwatch.GetTimestamp();
                await CommitOrFailAsync(failed).ConfigureAwait(false);
                StorageMetrics.WalCommitDuration.Record(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WalUnavailableException && _commitPointFailed.IsCancellationRequested)
        {
            // Recorded and logged where the commit point failed; no commit after it can succeed.
        }
        catch (Exception e)
        {
            LogCommitFailed(_logger, e);
            Fail(e);
        }
    }

    public IEnumerable<WalEntry> ReadDurableEntries()
    {
        long end = _log.CommittedUntilAddress;
        long reached = _log.BeginAddress;
        using FasterLogScanIterator iterator = _log.Scan(_log.BeginAddress, end);
        while (iterator.GetNext(out byte[] entry, out int length, out long position, out long nextPosition))
        {
            reached = nextPosition;
            yield return WalEntryFormat.Parse(position, nextPosition, entry.AsMemory(0, length));
        }

        // A commit covers the log up to the end of its last entry, or up to the next page when an entry that did not fit
        // moved the tail there before the commit (the rest of the page is padding). Entries ending shorter than that were
        // read as zeros, which FASTER takes for padding: a segment file lost or cut, and acknowledged entries with it.
        long pageSize = 1L << _options.PageSizeBits;
        bool paddedToNextPage = (end & (pageSize - 1)) == 0 && end - reached < pageSize;
        if (reached < end && !paddedToNextPage)
        {
            throw new InvalidDataException($"The WAL in {_options.Directory} is durable until {end}, but its entries end at {reached}: part of the log reads as zeros (a segment file lost or truncated). Start refused; keep the directory for inspection.");
        }
    }

    public async ValueTask TrimAsync(long position, CancellationToken cancellationToken = default)
    {
        if (position <= _log.BeginAddress)
        {
            return;
        }

        if (position > _log.CommittedUntilAddress)
        {
            throw new ArgumentOutOfRangeException(nameof(position), $"Cannot trim to {position}: the log is durable only until {_log.CommittedUntilAddress}.");
        }

        _log.TruncateUntil(position);

        // The new begin address is persisted by the next commit.
        if (cancellationToken.CanBeCanceled)
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _commitPointFailed.Token);
            await CommitOrFailAsync(linked.Token).ConfigureAwait(false);
        }
        else
        {
            await CommitOrFailAsync(_commitPointFailed.Token).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _commitRequests.Writer.TryComplete();
        await _committer.ConfigureAwait(false);
        try
        {
            // Whatever was enqueued is committed before closing, so a clean stop loses nothing, and its commit point is
            // written, so the next start has no tail to scan.
            await CommitOrFailAsync(_commitPointFailed.Token).ConfigureAwait(false);
            if (_failure is null)
            {
                _commitManager.WriteSkippedCommitPoint();
            }
        }
        catch (Exception e)
        {
            LogFinalCommitFailed(_logger, e);
        }

        // An append that raced the close is refused rather than left waiting for a commit that will not come.
        Fail(new ObjectDisposedException(nameof(FasterWriteAheadLog)));
        _commitPointFailed.Dispose();
        _log.Dispose();
        _settings.Dispose();
        _commitManager.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "WAL opened at {Directory}: begin {Begin}, durable until {Durable}, direct I/O {DirectIo}")]
    private static partial void LogOpened(ILogger logger, string directory, long begin, long durable, bool directIo);

    [LoggerMessage(Level = LogLevel.Critical, Message = "WAL commit failed; appends fail until the broker restarts")]
    private static partial void LogCommitFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "Final WAL commit failed")]
    private static partial void LogFinalCommitFailed(ILogger logger, Exception exception);
}
